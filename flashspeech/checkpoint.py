"""Checkpoint format: a directory with safetensors weights and a JSON description, loaded strictly.

    <dir>/model.safetensors   generator weights (float tensors as trained)
    <dir>/config.json         {"format", "model": FlashSpeechConfig, "codec": codec description,
                               "vocab": phoneme vocabulary, "weights_sha256", "metadata": {...}}

Loading verifies the weights' sha256 against config.json, rebuilds the model from its config and loads
the state dict strictly: any missing, unexpected or mis-shaped key is an error that names the keys.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from flashspeech.codecs import Codec, load_codec
from flashspeech.config import FlashSpeechConfig
from flashspeech.foundation.weights import (
    CheckpointError,
    as_dtype,
    check_state_dict,
    resolve_checkpoint,
    verify_weights,
    write_description,
    write_weights,
)
from flashspeech.model import FlashSpeechModel
from flashspeech.text.phonemes import PhonemeVocab

FORMAT = "flashspeech-bench/checkpoint-v1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_checkpoint(
    model: FlashSpeechModel, codec: Codec, vocab: PhonemeVocab, path: str | os.PathLike, **metadata: object
) -> Path:
    """Write weights then config (config last: a directory with config.json is complete)."""
    out = Path(path)
    sha = write_weights(model.state_dict(), out / WEIGHTS, FORMAT)
    description = {
        "format": FORMAT,
        "model": model.cfg.to_dict(),
        "codec": codec.describe(),
        "vocab": vocab.to_json(),
        "weights_sha256": sha,
        "metadata": metadata,
    }
    write_description(out / CONFIG, description)
    return out


def export_checkpoint(
    source: str | os.PathLike, dest: str | os.PathLike, dtype: torch.dtype | None = torch.float16
) -> Path:
    """Copy a checkpoint directory, storing floating-point weights as `dtype` (loading casts them back)."""
    from safetensors.torch import load_file

    source, out = resolve_checkpoint(source), Path(dest)
    description = read_description(source)
    description["weights_sha256"] = write_weights(
        as_dtype(load_file(str(source / WEIGHTS)), dtype), out / WEIGHTS, FORMAT
    )
    description["metadata"] = {**description.get("metadata", {}), "weights_dtype": str(dtype or "as trained")}
    write_description(out / CONFIG, description)
    return out


def read_description(path: str | os.PathLike) -> dict:
    path = resolve_checkpoint(path)
    config_path = path / CONFIG
    if not config_path.is_file():
        raise CheckpointError(f"{config_path}: not found (a checkpoint directory needs {CONFIG} and {WEIGHTS})")
    description = json.loads(config_path.read_text(encoding="utf-8"))
    if description.get("format") != FORMAT:
        raise CheckpointError(f"{config_path}: format {description.get('format')!r}, expected {FORMAT!r}")
    return description


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[FlashSpeechModel, Codec, PhonemeVocab]:
    """Strict load of a checkpoint directory: the generator, its codec and its phoneme vocabulary, on `device`."""
    from safetensors.torch import load_file

    path = resolve_checkpoint(path)
    description = read_description(path)
    weights = path / WEIGHTS
    verify_weights(weights, description["weights_sha256"])
    cfg = FlashSpeechConfig.from_dict(description["model"])
    vocab = PhonemeVocab.from_json(description["vocab"])
    model = FlashSpeechModel(cfg)
    state = load_file(str(weights))
    check_state_dict(model, state, str(weights))
    model.load_state_dict(state, strict=True)
    codec = load_codec(description["codec"])
    return model.to(device), codec.to(device), vocab
