"""sha256 of files and of JSON-able values: the identities that caches, checkpoints and results record."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_VERIFIED: dict[tuple[str, int, float], str] = {}  # (path, size, mtime) -> sha256: hash big files once


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, non-JSON values (paths, enums) as their str()."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def fingerprint(value: Any, length: int | None = None) -> str:
    """sha256 hex digest of `value`'s canonical JSON, or its first `length` digits."""
    digest = hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
    return digest if length is None else digest[:length]


def sha256_files(paths: Sequence[str | os.PathLike], chunk: int = 1 << 20) -> str:
    """sha256 of the files' bytes one after another (a file split in parts hashes as the whole)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    return sha256_files([path], chunk)


def cached_sha256(path: str | os.PathLike) -> str:
    """sha256_file, computed once per (path, size, mtime) in this process: for large model files."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    return _VERIFIED[key]


def source_digest(*roots: str | os.PathLike, length: int = 16) -> str:
    """sha256 (`length` hex digits) of the Python source under `roots` (directories or .py files): every `*.py`
    file's path relative to its root and its bytes, in sorted order; `__pycache__` is skipped. What the caches
    key "the code that ran" by: an edited line anywhere under a root changes it."""
    h = hashlib.sha256()
    for root in roots:
        root = Path(root).resolve()
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
        h.update(f"{root.name}\0".encode())
        for path in files:
            rel = path.name if path == root else path.relative_to(root).as_posix()
            h.update(f"{rel}\0{path.stat().st_size}\0".encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:length]
