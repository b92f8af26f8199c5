"""Per-stage wall-clock timing that a benchmark can read without changing results.

`synthesize` always records its stages (frontend, prosody, sampling, decoder) with `perf_counter`.
Pass a `StageTimer(sync=True)` to synchronise CUDA around each stage: the numbers are then the stages'
real GPU times (the outputs are identical either way; only the waits differ).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch

STAGES = ("frontend", "prosody", "sampling", "decoder")


class StageTimer:
    """Accumulates seconds per stage over any number of calls."""

    def __init__(self, sync: bool = False):
        self.sync = sync
        self.records: dict[str, list[float]] = defaultdict(list)

    def _wait(self, device: torch.device | None) -> None:
        if self.sync and device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    @contextmanager
    def stage(self, name: str, device: torch.device | None = None) -> Iterator[None]:
        self._wait(device)
        start = time.perf_counter()
        try:
            yield
        finally:
            self._wait(device)
            self.records[name].append(time.perf_counter() - start)

    def last(self) -> dict[str, float]:
        """The latest time of each stage."""
        return {name: values[-1] for name, values in self.records.items() if values}

    def totals(self) -> dict[str, float]:
        return {name: sum(values) for name, values in self.records.items()}
