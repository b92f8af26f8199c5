"""The benchmark's FlashSpeech system: one sampling plan per step count, recorded in describe() and the meta."""

from __future__ import annotations

import json

import pytest

from bench.systems import SystemConfig, build_systems
from bench.testsets.embedded import EMBEDDED
from bench.testsets.manifest import load_manifest
from flashspeech.codecs import MelCodec
from flashspeech.config import tiny
from flashspeech.foundation.hashing import fingerprint


def _system_config(checkpoint: str, steps: list[int], sampler: str | None = None) -> SystemConfig:
    table = {"kind": "flashspeech", "checkpoint": checkpoint, "steps": steps}
    return SystemConfig.from_dict(table if sampler is None else {**table, "sampler": sampler})  # a [[systems]] table


def test_random_diffusion_systems_record_sampler_and_evaluations():
    systems = build_systems([_system_config("random:tiny-diffusion", [2, 8], "euler")], "cpu")
    assert [s.name for s in systems] == ["diffusion-euler@2", "diffusion-euler@8"]
    described = systems[1].describe()
    assert described["sampling"] == systems[1].tts.plan(8, "euler").describe()
    assert described["sampling"]["sampler"] == "euler" and described["sampling"]["nfe"] == 8
    assert described["preset"] == "tiny-diffusion" and described["sampling"]["steps"] == 8 and not described["trained"]
    (default,) = build_systems([_system_config("random:tiny-diffusion", [4])], "cpu")
    assert default.name == "diffusion-heun@4"
    assert default.describe()["sampling"]["sampler"] == "heun" and default.describe()["sampling"]["nfe"] == 7
    manifest = load_manifest(EMBEDDED["real"].manifest_path(None))
    (generated,) = systems[0].generate(manifest.items[:1], [0])
    assert generated.error is None and generated.audio is not None and len(generated.audio) > 0
    assert generated.meta["sigmas"] == list(systems[0].plan.sigmas) and len(generated.meta["sigmas"]) == 3
    assert systems[0].sampling()["sampler"] == "euler" and systems[0].sampling()["nfe"] == 2


def test_consistency_systems_describe_their_sampler_and_reject_another():
    """Cache keys carry a version (bench.cache), not compatibility code: a consistency system names its sampler and
    denoiser calls like the diffusion baseline, and random weights are identified by their whole config."""
    (system,) = build_systems([_system_config("random:tiny", [2])], "cpu")
    assert system.name == "flashspeech@2"
    described = system.describe()
    assert (described["sampling"]["sampler"], described["sampling"]["nfe"]) == ("consistency", 2)
    assert json.loads(json.dumps(described["sampling"])) == described["sampling"]
    config = tiny(latent_dim=MelCodec().latent_dim).to_dict()
    assert described["checkpoint_sha256"] == fingerprint(config)
    with pytest.raises(ValueError, match="sampler 'heun' needs a diffusion model"):
        build_systems([_system_config("random:tiny", [2], "heun")], "cpu")


def test_sigma_min_option_moves_the_grids_lowest_sigma_and_the_description():
    table = {"kind": "flashspeech", "checkpoint": "random:tiny-diffusion", "steps": [4], "name": "low"}
    (default,) = build_systems([SystemConfig.from_dict(table)], "cpu")
    (raised,) = build_systems([SystemConfig.from_dict({**table, "sigma_min": 0.3})], "cpu")
    assert default.plan.sigmas[-2] == pytest.approx(0.002) and raised.plan.sigmas[-2] == pytest.approx(0.3)
    assert raised.plan.sigmas[0] == default.plan.sigmas[0] and raised.plan.sigmas[-1] == 0.0
    assert raised.describe()["sampling"]["sigmas"] != default.describe()["sampling"]["sigmas"]  # a new cache key
    with pytest.raises(ValueError, match="sigma_min: expected a number > 0"):
        build_systems([SystemConfig.from_dict({**table, "sigma_min": 0})], "cpu")
