"""Checkpoint save / load: bit-exact round trip, strict keys, sha256 check."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from flashspeech.checkpoint import CONFIG, WEIGHTS, CheckpointError
from flashspeech.codecs import MelCodec
from flashspeech.config import tiny
from flashspeech.foundation.hashing import sha256_file
from flashspeech.synthesis import FlashSpeech


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    codec = MelCodec(n_iter=8)
    tts = FlashSpeech.from_config(tiny(latent_dim=codec.latent_dim), codec, seed=4)
    torch.nn.init.normal_(tts.model.lcm.out_proj.weight, std=0.05)
    path = tts.save_pretrained(tmp_path_factory.mktemp("ckpt") / "tiny", trained_steps=0, note="random")
    return tts, path


def _copy_with_state(path, copy, state):
    """A checkpoint directory at `copy` with the config of `path` and these weights (sha256 updated)."""
    copy.mkdir()
    (copy / CONFIG).write_text((path / CONFIG).read_text())
    _rewrite_weights(copy, state)


def _rewrite_weights(path, state):
    save_file(state, str(path / WEIGHTS))
    config = json.loads((path / CONFIG).read_text())
    config["weights_sha256"] = sha256_file(path / WEIGHTS)
    (path / CONFIG).write_text(json.dumps(config))


def test_round_trip_is_bit_exact(saved):
    tts, path = saved
    loaded = FlashSpeech.from_pretrained(path)
    original, restored = tts.model.state_dict(), loaded.model.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    assert loaded.codec.describe() == tts.codec.describe()
    assert loaded.vocab == tts.vocab and loaded.config == tts.config
    prompt = torch.sin(torch.arange(16000) / 10.0) * 0.1
    a = tts.synthesize(["Round trip."], [prompt], seed=9)
    b = loaded.synthesize(["Round trip."], [prompt], seed=9)
    assert torch.equal(a.waveforms[0], b.waveforms[0])
    metadata = json.loads((path / CONFIG).read_text())["metadata"]
    assert metadata == {"trained_steps": 0, "note": "random"}


def test_renamed_key_fails_naming_both_keys(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "renamed"
    state = load_file(str(path / WEIGHTS))
    state["lcm.out_proj.weight_renamed"] = state.pop("lcm.out_proj.weight")
    _copy_with_state(path, copy, state)
    with pytest.raises(CheckpointError) as exc:
        FlashSpeech.from_pretrained(copy)
    message = str(exc.value)
    assert "missing keys (1): lcm.out_proj.weight" in message
    assert "unexpected keys (1): lcm.out_proj.weight_renamed" in message


def test_shape_mismatch_is_named(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "shape"
    state = load_file(str(path / WEIGHTS))
    state["pitch_embedding.weight"] = state["pitch_embedding.weight"][:10].clone()
    _copy_with_state(path, copy, state)
    with pytest.raises(CheckpointError, match=r"shape mismatches \(1\): pitch_embedding.weight"):
        FlashSpeech.from_pretrained(copy)


def test_corrupted_weights_fail_the_sha256_check(saved, tmp_path):
    _, path = saved
    copy = tmp_path / "corrupt"
    copy.mkdir()
    (copy / CONFIG).write_text((path / CONFIG).read_text())
    data = bytearray((path / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (copy / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"sha256 .* does not match"):
        FlashSpeech.from_pretrained(copy)


def test_missing_files_and_foreign_format(tmp_path, saved):
    with pytest.raises(CheckpointError, match=r"config\.json: not found"):
        FlashSpeech.from_pretrained(tmp_path)
    _, path = saved
    config = json.loads((path / CONFIG).read_text())
    config["format"] = "something-else"
    (tmp_path / CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="format 'something-else'"):
        FlashSpeech.from_pretrained(tmp_path)
