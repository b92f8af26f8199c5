"""Shared fixtures: one torch thread for tiny-model modules; a small synthetic corpus built once per session."""

from __future__ import annotations

import pytest
import torch

from bench.testsets.espeak_corpus import VOICES, CorpusConfig, build_corpus

pytest_plugins = ["tests.fixtures.mlflow_server"]  # the loopback `mlflow server` fixture

SMALL_VOICES = ("m1", "f3", "f5", "klatt4")  # two training, two held-out voices


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one intra-op thread (2 spinning OpenMP threads on a shared 2-core box cost 5-8x)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
