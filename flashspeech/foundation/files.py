"""Atomic file writes: a crash or a kill never leaves a half-written file at the final path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_path(path: str | os.PathLike) -> tuple[Path, Path]:
    """A temporary sibling of `path` to write to, then `os.replace` onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; results are meant to be shared
    return Path(tmp), path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write a text file atomically."""
    tmp, final = atomic_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
