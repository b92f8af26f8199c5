"""What makes two benchmark runs comparable over time, recorded as tags on their MLflow runs.

A run's `Lineage` is its branch and commit (where it sits in history) and the four things that must match for
its numbers to be compared with another run's: the config name, the dependency lock (sha256 of
requirements/lock.txt), the evaluator fingerprint (one digest over every suite's `evaluator_fingerprint`) and the
device model (`Device.identity`: the GPU's name, or the CPU's model on a CPU run). Every field is read from the run's
typed record (`bench.record.RunRecord`). `bench.tracking` writes the tags (`flashspeech_bench.<field>`) and the
regression gate (`bench.gate`) selects baselines and histories by them; the module sits beside both, below the gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.record import RunRecord

TAG_PREFIX = "flashspeech_bench."
COMPARABLE = ("config", "lock_sha256", "evaluator", "device_model")  # must match for a run to be a baseline


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
        """From a run's results metadata (`Results.metadata`, as the runner writes it), through its record."""
        record = RunRecord.of(metadata)
        provenance = record.provenance
        return cls(
            config=record.config,
            commit=provenance.commit,
            branch=provenance.branch,
            lock_sha256=provenance.lock_sha256,
            evaluator=provenance.evaluator,
            device_model=record.device.identity if record.device.recorded else None,  # unknown: comparable with nothing
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
