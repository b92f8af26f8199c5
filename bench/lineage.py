"""What makes two benchmark runs comparable over time, recorded as tags on their MLflow runs.

A run's `Lineage` is its branch and commit (where it sits in history) and the four things that must match for
its numbers to be compared with another run's: the config name, the dependency lock (sha256 of
requirements/lock.txt), the evaluator fingerprint (one digest over every suite's `evaluator_fingerprint`) and the
device model (the GPU's name, or the CPU's model on a CPU run).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

TAG_PREFIX = "flashspeech_bench."
LOCK_ENV = "FLASHSPEECH_BENCH_LOCK"  # another lock file to hash (an installed, non-editable package has none)
COMPARABLE = ("config", "lock_sha256", "evaluator", "device_model")  # must match for a run to be a baseline


def lock_file() -> Path | None:
    """The dependency lock this code was installed from: `FLASHSPEECH_BENCH_LOCK`, else the checkout's."""
    if override := os.environ.get(LOCK_ENV, "").strip():
        return Path(override)
    path = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
    return path if path.is_file() else None


def lock_digest(path: Path | None = None) -> str | None:
    """sha256 (16 hex digits) of the lock file; None when there is none."""
    path = path or lock_file()
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else None
    except OSError:
        return None


def evaluator_digest(evaluators: Mapping[str, Any]) -> str | None:
    """One digest over the suites' evaluator fingerprints (suite -> {"digest": ...}); None without suites."""
    digests = {str(k): v.get("digest") for k, v in evaluators.items() if isinstance(v, Mapping)}
    if not digests:
        return None
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Lineage:
    """Where a run sits in history and what it can be compared with (see the module docstring)."""

    config: str | None = None
    commit: str | None = None
    branch: str | None = None
    lock_sha256: str | None = None
    evaluator: str | None = None
    device_model: str | None = None

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> Lineage:
        """From a run's results metadata (`Results.metadata`, as the runner writes it)."""
        run = metadata.get("run") or {}
        env = metadata.get("environment") or {}
        context = run.get("timing_context") or {}
        kind = str(env.get("device") or context.get("device") or "").split(":")[0] or None
        gpu, cpu = env.get("gpu") or context.get("gpu"), context.get("cpu") or env.get("cpu")
        model = gpu if kind == "cuda" else cpu
        device_model = f"{kind}:{model}" if kind and model else None  # unknown: comparable with nothing
        return cls(
            config=run.get("name"),
            commit=run.get("git_commit") or context.get("git_commit"),
            branch=run.get("branch"),
            lock_sha256=run.get("lock_sha256"),
            evaluator=evaluator_digest(metadata.get("evaluators") or {}),
            device_model=device_model,
        )

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> Lineage:
        return cls(**{name: tags.get(TAG_PREFIX + name) or None for name in asdict(cls())})

    def tags(self) -> dict[str, str]:
        """MLflow tags (`flashspeech_bench.<field>`) for the fields that are known."""
        return {TAG_PREFIX + k: str(v) for k, v in asdict(self).items() if v is not None}

    def mismatch(self, other: Lineage) -> list[str]:
        """The comparability fields that differ from `other` (a field unknown on either side differs)."""
        return [f for f in COMPARABLE if getattr(self, f) is None or getattr(self, f) != getattr(other, f)]
