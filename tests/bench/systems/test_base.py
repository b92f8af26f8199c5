"""The system registry: each kind parses and validates its own options; configs round-trip."""

from __future__ import annotations

import pytest

from bench.config import BenchConfig, ConfigError
from bench.systems import SYSTEMS, SystemConfig, SystemConfigError
from bench.systems.external import ExternalOptions
from bench.systems.flashspeech import FlashSpeechOptions


def test_every_kind_is_registered_with_its_determinism():
    kinds = {"flashspeech", "flashspeech_vc", "ground_truth", "codec_resynthesis", "source_passthrough", "external"}
    assert set(SYSTEMS) == kinds
    assert SYSTEMS["ground_truth"].deterministic and SYSTEMS["codec_resynthesis"].deterministic
    assert SYSTEMS["source_passthrough"].deterministic
    assert not SYSTEMS["flashspeech"].deterministic and not SYSTEMS["external"].deterministic
    assert not SYSTEMS["flashspeech_vc"].deterministic
    # which test sets each kind is given: TTS, voice conversion (vc), or both
    assert {k: sorted(SYSTEMS[k].tasks) for k in kinds} == {
        "flashspeech": ["tts"],
        "flashspeech_vc": ["vc"],
        "ground_truth": ["tts", "vc"],
        "codec_resynthesis": ["tts", "vc"],
        "source_passthrough": ["vc"],
        "external": ["tts"],  # by default; its `tasks` option says otherwise
    }


def test_a_kind_takes_only_its_own_options():
    cfg = SystemConfig.from_dict({"kind": "flashspeech", "steps": [1, 2], "checkpoint": "random:tiny"}, "systems.0")
    assert isinstance(cfg.options, FlashSpeechOptions) and cfg.options.steps == [1, 2]
    with pytest.raises(
        SystemConfigError, match=r"systems\.0\.command: unknown key of flashspeech systems \(known: kind, "
    ):
        SystemConfig.from_dict({"kind": "flashspeech", "steps": [1], "command": ["x"]}, "systems.0")
    with pytest.raises(SystemConfigError, match=r"systems\.1\.steps: unknown key of external systems \(known: kind, "):
        SystemConfig.from_dict({"kind": "external", "command": ["tts"], "steps": [1]}, "systems.1")
    ext = SystemConfig.from_dict({"kind": "external", "command": ["tts", "{input}"], "name": "other"})
    assert ext.options == ExternalOptions(["tts", "{input}"], 16_000) and ext.name == "other"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "nope"}, r"systems\.0\.kind: unknown system kind 'nope'"),
        ({"kind": "flashspeech"}, r"systems\.0\.steps: a flashspeech system needs a list of step counts"),
        ({"kind": "flashspeech", "steps": [0]}, r"systems\.0\.steps"),
        ({"kind": "external"}, r"systems\.0\.command: an external system needs a command"),
        ({"kind": "ground_truth", "batch_size": 0}, r"systems\.0\.batch_size: must be an integer >= 1"),
    ],
)
def test_bad_entries_name_the_field(entry, message):
    with pytest.raises(SystemConfigError, match=message):
        SystemConfig.from_dict(entry, "systems.0")
    with pytest.raises(ConfigError, match=message):
        BenchConfig.from_dict({"testsets": [{"name": "smoke"}], "systems": [entry]})


def test_config_round_trips_through_its_flat_tables():
    data = {
        "testsets": [{"name": "smoke"}],
        "systems": [
            {"kind": "flashspeech", "name": "fs", "steps": [1, 4], "sampler": None, "alpha": 0.0},
            {"kind": "ground_truth"},
            {"kind": "external", "command": ["tts"], "sample_rate": 24_000, "batch_size": 4},
        ],
    }
    config = BenchConfig.from_dict(data)
    flat = config.to_dict()
    assert flat["systems"][0] == {
        "kind": "flashspeech",
        "name": "fs",
        "batch_size": 1,
        "steps": [1, 4],
        "checkpoint": "random:tiny",
        "alpha": 0.0,
        "alpha_duration": None,
        "alpha_pitch": None,
        "sampler": None,
        "sigma_min": None,
        "decoder": None,
    }
    assert flat["systems"][1] == {"kind": "ground_truth", "name": None, "batch_size": 1}
    assert BenchConfig.from_dict(flat) == config
