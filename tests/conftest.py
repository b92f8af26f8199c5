"""Shared fixtures: a small synthetic corpus built once per test session."""

from __future__ import annotations

import pytest

from bench.data.synth import VOICES, CorpusConfig, build_corpus

SMALL_VOICES = ("m1", "f3", "f5", "klatt4")  # two training, two held-out voices


@pytest.fixture(scope="session")
def small_config() -> CorpusConfig:
    voices = tuple(v for v in VOICES if v.name in SMALL_VOICES)
    return CorpusConfig(voices=voices, heldout=("f5", "klatt4"), max_sentences=30, test_sentence_every=5)


@pytest.fixture(scope="session")
def small_corpus(small_config, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    return build_corpus(small_config, cache, progress=False)


def pytest_collection_modifyitems(config, items):
    """GPU-marked tests skip cleanly where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
