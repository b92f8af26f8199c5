"""Work units: the pieces a run is cut into, each idempotent through the content-addressed caches.

A `GenerationUnit` is (system, test set, shard of (item, seed) pairs that were missing from the generation
cache); a `ScoringUnit` is (suite, system, shard of that system's samples). A unit reads and writes the same
caches as every other unit, so any worker can run it, a retried unit redoes only what its failed attempt did
not finish, and the driver reads everything back from the caches. A `Worker` runs units; it loads each system
and suite once and keeps it for the units that follow (an actor of the Ray executor is one `Worker`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cache import CachedSystem, Entry, GenerationCache, ScoreCache
from bench.systems import System, SystemConfig, build_systems
from flashspeech.foundation.hashing import canonical_json
from suites.base import CANNOT_RUN, ItemScore, Sample, Suite
from suites.item import EvalItem


def batch_id(label: str, number: int, run_id: str) -> str:
    """Unique across runs (an items-table column): a cache hit keeps the batch id, and so the run, that timed it.
    Which run made a generation is read from its timing's own `run_id` field, never from this text."""
    return f"{label}#{number}@{run_id}"


@dataclass
class GenerationUnit:
    """Generate `entries` with one system (built from `config`, named `system`), `batch_size` per call.

    `first_batch` numbers the unit's first batch within its (test set, system), so batch ids stay unique
    however the entries are sharded; `context` is the run's timing context (host, device, commit, start)."""

    label: str  # "<test set>:<system>"
    config: SystemConfig
    system: str
    device: str
    entries: list[Entry]
    first_batch: int
    batch_size: int
    context: dict[str, Any]
    cache_root: str
    retime: bool = False

    @property
    def pool(self) -> str:
        return f"system {self.system}"  # one loaded model per actor: units of a system share a pool

    @property
    def size(self) -> int:
        return len(self.entries)

    def describe(self) -> str:
        return f"generation of {self.label}, {self.size} item(s) from batch {self.first_batch}"

    @property
    def run_id(self) -> str:
        return str(self.context.get("run_id", ""))

    def run(self, worker: Worker, context: Any = None) -> dict[str, str | None]:
        """key -> None (its audio is in the cache) or the item's error. Entries this run already cached (by an
        earlier attempt of this unit) are skipped, so a retried unit never generates an item twice."""
        system = worker.system(self.config, self.system, self.device)
        cached = CachedSystem(system, GenerationCache(Path(self.cache_root)), self.run_id, self.retime)
        outcome: dict[str, str | None] = {}
        todo: list[tuple[int, list[Entry]]] = []
        for number, start in enumerate(range(0, len(self.entries), self.batch_size)):
            batch = []
            for entry in self.entries[start : start + self.batch_size]:
                if cached.done(entry.key):
                    outcome[entry.key] = None
                else:
                    batch.append(entry)
            if batch:
                todo.append((self.first_batch + number, batch))
        if todo:
            worker.warm(system, todo[0][1][0].item)
        for number, batch in todo:
            generated = cached.generate(batch, self.context, batch_id(self.label, number, self.run_id))
            for entry, result in zip(batch, generated, strict=True):
                outcome[entry.key] = result.error
        return outcome

    def failed(self, error: str) -> dict[str, str | None]:
        """Every entry's error when the unit itself failed (after its retries)."""
        return {entry.key: error for entry in self.entries}


@dataclass
class ScoringUnit:
    """Score `samples` (one system's, a shard cut at the suite's batch and item boundaries) with one suite.

    `key` is the shard's score-cache key (`ScoreCache.key` over exactly these samples); `cacheable` is False
    for suites that read timings (RTF), which are rescored every run. The run's samples, which some suites
    look across (`Suite.context_key`), come as the `context` argument of `run`."""

    suite: str
    options: dict[str, Any]
    device: str
    system: str
    samples: list[Sample]
    key: str
    cache_root: str
    cacheable: bool = True

    @property
    def pool(self) -> str:
        return f"suite {self.suite}"

    @property
    def size(self) -> int:
        return len(self.samples)

    def describe(self) -> str:
        return f"{self.suite} scoring of {self.system}, {self.size} sample(s)"

    def run(self, worker: Worker, context: Sequence[Sample] | None = None) -> ScoredShard:
        cache = ScoreCache(Path(self.cache_root))
        cached = cache.get(self.key) if self.cacheable else None
        if cached is not None:
            return ScoredShard(cached)
        suite = worker.suite(self.suite, self.options, self.device)
        try:
            rows = suite.score(self.samples, progress=False, context=context)
        except CANNOT_RUN as exc:  # the whole suite cannot run: every sample says why (not cached)
            return ScoredShard([suite.failure(s, exc) for s in self.samples], cannot_run=True)
        if self.cacheable:
            cache.put(self.key, rows)
        return ScoredShard(rows)


@dataclass
class ScoredShard:
    rows: list[ItemScore]
    cannot_run: bool = False  # the suite could not run at all: the rows are errors, not cached


def score_shards(samples: Sequence[Sample], batch_size: int, target: int) -> list[list[Sample]]:
    """Consecutive shards of about `target` samples, cut only where a suite batch starts (a multiple of
    `batch_size`) and a new item begins: every batch, and every item's seeds, stay together, so a sharded
    suite sees the same batches as one that scores the whole list."""
    shards: list[list[Sample]] = []
    start = 0
    for i in range(1, len(samples)):
        if i - start >= target and i % batch_size == 0 and samples[i].item.id != samples[i - 1].item.id:
            shards.append(list(samples[start:i]))
            start = i
    if start < len(samples):
        shards.append(list(samples[start:]))
    return shards


def by_length(samples: Sequence[Sample]) -> list[Sample]:
    """The samples with their items ordered by their longest sample, longest first (an item's seeds stay together,
    in order; ties keep their order): a suite's batches, and a unit's shard, then hold clips of similar length."""
    items: dict[str, list[Sample]] = {}
    for sample in samples:
        items.setdefault(sample.item.id, []).append(sample)
    ordered = sorted(items.values(), key=lambda group: -max(s.duration for s in group))
    return [s for group in ordered for s in group]


def merge_shards(shards: Sequence[Sequence[ItemScore]], samples: Sequence[Sample]) -> list[ItemScore]:
    """One system's rows from its shards, in the order of `samples` (the system's, as generated): the per-sample
    rows, then the rows over all seeds of an item (seed None) in the order of their items."""
    position = {(s.item.id, s.seed): i for i, s in enumerate(samples)}
    first: dict[str, int] = {}
    for i, s in enumerate(samples):
        first.setdefault(s.item.id, i)
    rows = [r for shard in shards for r in shard]
    per_sample = sorted((r for r in rows if r.seed is not None), key=lambda r: position.get((r.item_id, r.seed), -1))
    per_item = sorted((r for r in rows if r.seed is None), key=lambda r: first.get(r.item_id, -1))
    return per_sample + per_item


@dataclass
class Worker:
    """Runs units; loads each system and suite once. `threads`: torch CPU threads (None: leave as they are);
    `device`: the device to build on instead of the units' (a Ray actor sees its GPU as "cuda")."""

    threads: int | None = None
    device: str | None = None
    _models: dict[str, Any] = field(default_factory=dict)
    _warm: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)

    def run(self, unit: GenerationUnit | ScoringUnit, context: Any = None) -> Any:
        return unit.run(self, context)

    def model(self, key: str, build: Callable[[], Any]) -> Any:
        """The model stored under `key`, built by `build()` the first time."""
        if key not in self._models:
            self._models[key] = build()
        return self._models[key]

    def system(self, config: SystemConfig, name: str, device: str) -> System:
        device = self.device or device

        def build() -> System:
            for system in build_systems([config], device):
                if system.name == name:
                    return system
            raise KeyError(f"system config {config.name or config.kind!r} builds no system named {name!r}")

        return self.model(canonical_json(["system", config.to_dict(), name, device]), build)

    def suite(self, name: str, options: dict[str, Any], device: str) -> Suite:
        from suites import build_suite

        device = self.device or device
        return self.model(
            canonical_json(["suite", name, options, device]), lambda: build_suite(name, device=device, **options)
        )

    def adopt_system(self, config: SystemConfig, device: str, system: System) -> None:
        """Use an already built system (the local executor shares the driver's) instead of building it again."""
        self._models[canonical_json(["system", config.to_dict(), system.name, device])] = system

    def adopt_suite(self, name: str, options: dict[str, Any], device: str, suite: Suite) -> None:
        self._models[canonical_json(["suite", name, options, device])] = suite

    def warm(self, system: System, item: EvalItem) -> None:
        """Warm a system up once (untimed) before its first timed batch on this worker."""
        if system.name in self._warm:
            return
        self._warm.add(system.name)
        with contextlib.suppress(Exception):  # a failing item is recorded by the real call
            system.warmup(item)
