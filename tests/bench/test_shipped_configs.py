"""Every shipped bench config and training recipe parses, and every checkpoint they name is shipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config import load_config
from bench.training.recipes import load_recipe
from flashspeech.foundation.weights import PRETRAINED, resolve_checkpoint

CONFIGS = Path(__file__).resolve().parents[2] / "bench" / "configs"
BENCH = sorted((CONFIGS / "bench").glob("*.toml"))
TRAIN = sorted((CONFIGS / "train").glob("*.toml"))


def test_the_shipped_configs_are_found():
    assert {"smoke", "model-card", "diffusion-steps"} <= {p.stem for p in BENCH}
    assert {"tiny", "tiny-diffusion"} <= {p.stem for p in TRAIN}


@pytest.mark.parametrize("path", BENCH, ids=lambda p: p.stem)
def test_bench_config_parses_and_its_pretrained_checkpoints_are_shipped(path):
    config = load_config(path)
    for system in config.systems:
        for option in ("checkpoint", "decoder"):  # a shipped model, a shipped neural decoder
            value = getattr(system.options, option, None)
            if isinstance(value, str) and value.startswith(PRETRAINED):
                assert resolve_checkpoint(value).is_dir(), f"{path.name}: {system.name or system.kind}.{option}"


@pytest.mark.parametrize("path", TRAIN, ids=lambda p: p.stem)
def test_training_recipe_parses_and_starts_from_shipped_checkpoints(path):
    from bench.training.vocoder import VocoderRecipe

    recipe = load_recipe(path)
    if isinstance(recipe, VocoderRecipe):  # the mel codec's decoder: one stage, trained from scratch
        assert recipe.train.steps > recipe.train.gan_start >= 0, path.name
        return
    assert recipe.stages, path.name
    names = {s.name for s in recipe.stages}
    for stage in recipe.stages:
        if stage.init and stage.init not in names and stage.init.startswith(PRETRAINED):
            assert resolve_checkpoint(stage.init).is_dir(), f"{path.name}: stage {stage.name}"
