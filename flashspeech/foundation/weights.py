"""Strict weights loading shared by every checkpoint format (the model's, the neural decoder's): the error type,
the key check, and where `pretrained:<name>` points (flashspeech/pretrained/<name>)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded as it is; the message says which file or keys."""


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise CheckpointError naming every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )

    def listing(keys: list[str], sep: str = ", ") -> str:
        return f"({len(keys)}): {sep.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"

    problems = []
    if missing:
        problems.append(f"missing keys {listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {listing(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches {listing(shapes, '; ')}")
    if problems:
        raise CheckpointError(f"{source} does not match the model:\n  " + "\n  ".join(problems))


PRETRAINED = "pretrained:"


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory, or `pretrained:<name>` for one shipped in `flashspeech/pretrained/<name>`."""
    text = str(path)
    if text.startswith(PRETRAINED):
        name = text[len(PRETRAINED) :]
        root = Path(__file__).resolve().parents[1] / "pretrained"
        if not (root / name).is_dir():
            shipped = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise CheckpointError(
                f"{text}: no shipped checkpoint of that name (shipped: {', '.join(shipped) or 'none'})"
            )
        return root / name
    return Path(path)


def write_weights(state: dict[str, torch.Tensor], path: str | os.PathLike, format: str) -> str:
    """Write `state` (contiguous CPU tensors) to a safetensors file atomically; returns the file's sha256."""
    from safetensors.torch import save_file

    from flashspeech.foundation.hashing import sha256_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), metadata={"format": format})
    os.replace(tmp, path)
    return sha256_file(path)


def write_description(path: str | os.PathLike, description: dict) -> Path:
    """Write a checkpoint's config.json atomically (write it last: a directory with its config.json is complete)."""
    from flashspeech.foundation.files import write_text_atomic

    return write_text_atomic(path, json.dumps(description, indent=1, ensure_ascii=False) + "\n")


def as_dtype(state: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The floating-point tensors of `state` cast to `dtype` (None: unchanged), the others as they are."""
    if dtype is None:
        return dict(state)
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def verify_weights(weights: Path, recorded: str | None, error: type[Exception] = CheckpointError) -> None:
    """Raise `error` unless the weights file exists and has the sha256 its config.json records."""
    from flashspeech.foundation.hashing import sha256_file

    if not weights.is_file():
        raise error(f"{weights}: not found")
    digest = sha256_file(weights)
    if digest != recorded:
        raise error(f"{weights}: sha256 {digest} does not match {recorded} recorded in config.json")
