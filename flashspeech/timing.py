"""Wall-clock timing that a benchmark can read without changing results.

`synthesize` always records its stages (frontend, prosody, sampling, decoder) with `perf_counter`.
Pass a `StageTimer(sync=True)` to synchronise CUDA around each stage: the numbers are then the stages'
real GPU times (the outputs are identical either way; only the waits differ). A batch's stage times are
split among its items with `share_batch_timings`. `measure(fn, warmup=..., repeats=...)` times a callable:
warm-up calls first, CUDA synchronised around each timed call; its `Measurement` carries `environment()`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from flashspeech.foundation.environment import environment

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


def share_batch_timings(timings: dict[str, float], audio_seconds: Sequence[float]) -> list[dict[str, float]]:
    """Split one batch's timings among its items in proportion to their audio length (sums are kept)."""
    seconds = np.asarray(audio_seconds, dtype=np.float64)
    if seconds.size == 0 or (seconds < 0).any() or seconds.sum() <= 0:
        raise ValueError("need a non-empty batch with positive total audio length")
    weights = seconds / seconds.sum()
    return [{stage: float(t) * float(w) for stage, t in timings.items()} for w in weights]


@dataclass(frozen=True)
class Measurement:
    """Times of the repeated (not warm-up) calls of `measure`, in seconds."""

    times: tuple[float, ...]
    warmup: int
    device: str
    result: Any = field(default=None, repr=False, compare=False)  # the last call's return value
    environment: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def repeats(self) -> int:
        return len(self.times)

    @property
    def median(self) -> float:
        return float(np.median(self.times))

    @property
    def iqr(self) -> float:
        q25, q75 = np.percentile(self.times, [25, 75])
        return float(q75 - q25)

    @property
    def min(self) -> float:
        return float(np.min(self.times))

    def rtf(self, audio_seconds: float) -> float:
        """Median time per second of audio produced by one call."""
        return self.median / audio_seconds

    def summary(self) -> dict[str, float]:
        return {"median_s": self.median, "iqr_s": self.iqr, "min_s": self.min, "repeats": float(self.repeats)}


def _synchronizer(device: Any) -> Callable[[], None]:
    name = str(device) if device is not None else "cpu"
    if not name.startswith("cuda"):
        return lambda: None
    return lambda: torch.cuda.synchronize(name)


def measure(
    fn: Callable[[], Any],
    *,
    warmup: int = 1,
    repeats: int = 5,
    device: Any = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> Measurement:
    """Call `fn` `warmup` times untimed, then `repeats` times timed (synchronising CUDA around each)."""
    if warmup < 0 or repeats < 1:
        raise ValueError(f"need warmup >= 0 and repeats >= 1, got {warmup}, {repeats}")
    sync = _synchronizer(device)
    for _ in range(warmup):
        fn()
    sync()
    times, result = [], None
    for _ in range(repeats):
        sync()
        start = clock()
        result = fn()
        sync()
        times.append(clock() - start)
    return Measurement(
        times=tuple(times), warmup=warmup, device=str(device), result=result, environment=environment(device)
    )
