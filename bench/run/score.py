"""Score: every suite over the run's samples, each behind the score cache (`CachedSuite`).

A suite's rows are cached per (suite, system): adding a system to a run scores only that system (unless the
suite's `context_key`, what its rows see of the other samples, changes too). Suites that read timings (RTF) are
rescored every run, never cached: the same audio must not replay another run's speed."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from bench.cache import ScoreCache
from bench.config import BenchConfig
from bench.execution import Executor, ScoringUnit, UnitFailure, by_length, merge_shards, score_shards
from bench.execution.units import ScoredShard
from suites.base import ItemScore, Need, Sample, Suite, suite_code_digest


def _identity(sample: Sample) -> tuple[str, str | None, bytes, bytes | None]:
    """What a per-sample row is computed from: the item, its text, the audio and the reconstructed prompt."""
    prompt = sample.reconstructed_prompt
    digest = hashlib.sha1(np.ascontiguousarray(sample.audio).tobytes()).digest()
    return (
        sample.item.id,
        sample.item.text,
        digest + str(sample.sample_rate).encode(),
        (None if prompt is None else hashlib.sha1(np.ascontiguousarray(prompt).tobytes()).digest()),
    )


def distinct_samples(samples: Sequence[Sample]) -> list[Sample]:
    """`samples` without replicas: a sample identical to an earlier one (same item, text, audio and reconstructed
    prompt: a deterministic system's other seeds) is left out, its row to be copied (`replicate_rows`)."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for sample in samples:
        identity = _identity(sample)
        if identity not in seen:
            seen.add(identity)
            out.append(sample)
    return out


def replicate_rows(rows: Sequence[ItemScore], scored: Sequence[Sample], samples: Sequence[Sample]) -> list[ItemScore]:
    """The rows of every sample of `samples` from the rows of its distinct subset `scored`: a replica gets a copy
    of its original's row under its own seed (error rows included), in the order of `samples`."""
    if len(scored) == len(samples):
        return list(rows)
    original = {_identity(s): (s.item.id, s.seed) for s in scored}
    by_key = {(r.item_id, r.seed): r for r in rows if r.seed is not None}
    out = []
    for sample in samples:
        row = by_key.get(original[_identity(sample)])
        if row is not None:
            out.append(row if row.seed == sample.seed else replace(row, seed=sample.seed))
    return out + [r for r in rows if r.seed is None]


class CachedSuite:
    """A suite behind the score cache (lm-evaluation-harness's `CachingLM` is the model), scoring one system's
    samples at a time. A system's samples are scored in units (shards at the suite's batch and item boundaries,
    each cached as soon as it is done, so a run killed while scoring keeps every shard it finished); their merged
    rows are cached under the system's key. Shards take the samples longest first (`by_length`), so batches waste
    little on padding; rows come back in generation order."""

    def __init__(self, suite: Suite, options: dict[str, Any], cache: ScoreCache, code: str, device: str, shard: int):
        self.suite, self.options, self.cache, self.code = suite, options, cache, code
        self.device, self.shard_items = device, shard

    @property
    def cacheable(self) -> bool:
        return Need.TIMINGS not in self.suite.needs  # timings: this run's, every run

    def _shards(self, group: Sequence[Sample]) -> list[list[Sample]]:
        return score_shards(by_length(group), self.suite.batch_size, self.shard_items)

    def _unit(self, system: str, shard: list[Sample], description: dict[str, Any]) -> ScoringUnit:
        key, root = self.cache.key(description, shard), str(self.cache.root)
        return ScoringUnit(self.suite.name, self.options, self.device, system, shard, key, root, self.cacheable)

    def score(self, samples: Sequence[Sample], executor: Executor, progress: bool = True) -> list[ItemScore]:
        """The suite's rows over `samples` (those with timings only, for a suite that reads them), system by
        system in the samples' order."""
        from tqdm.auto import tqdm

        suite, cacheable = self.suite, self.cacheable
        mine = [s for s in samples if cacheable or s.timings]
        by_system: dict[str, list[Sample]] = {}
        for sample in mine:
            by_system.setdefault(sample.system, []).append(sample)
        description = {**suite.describe(), "context": suite.context_key(mine), "code": self.code}
        # replicas (identical samples of a system) are scored once and their rows copied (`rows_per_sample`)
        distinct = {s: distinct_samples(g) if suite.rows_per_sample else g for s, g in by_system.items()}
        # over the samples in shard order: a system scored as one shard is cached once, under its system key
        keys = {system: self.cache.key(description, by_length(group)) for system, group in distinct.items()}
        rows: dict[str, list[ItemScore]] = {}
        units: list[ScoringUnit] = []
        with tqdm(total=len(mine), desc=f"scoring {suite.name}", unit="item", disable=not progress) as bar:
            for system, group in by_system.items():
                cached = self.cache.get(keys[system]) if cacheable else None
                if cached is not None:  # a shard's rows are in by_length order
                    rows[system] = replicate_rows(merge_shards([cached], distinct[system]), distinct[system], group)
                    bar.update(len(group))
                    continue
                bar.update(len(group) - len(distinct[system]))  # replicas: their rows are copied, not scored
                units += [self._unit(system, shard, description) for shard in self._shards(distinct[system])]
            context = mine if description["context"] is not None else None
            outcomes = executor.run(units, context=context, on_done=lambda unit, _: bar.update(unit.size))
        shards: dict[str, list[ScoredShard]] = {}
        shard_keys: dict[str, set[str]] = {}
        for unit, outcome in zip(units, outcomes, strict=True):
            if isinstance(outcome, UnitFailure):
                error = outcome.message(unit)
                failed = [ItemScore(suite.name, s.system, s.item.id, s.seed, error=error) for s in unit.samples]
                outcome = ScoredShard(failed, cannot_run=True)  # not cached: retried next run
            shards.setdefault(unit.system, []).append(outcome)
            shard_keys.setdefault(unit.system, set()).add(unit.key)
        for system, parts in shards.items():
            scored = merge_shards([p.rows for p in parts], distinct[system])
            rows[system] = replicate_rows(scored, distinct[system], by_system[system])
            if cacheable and keys[system] not in shard_keys[system] and not any(p.cannot_run for p in parts):
                self.cache.put(keys[system], scored)
        return [r for system in by_system for r in rows[system]]


def score(
    suites: Sequence[tuple[Suite, dict[str, Any]]],
    samples: list[Sample],
    cache: ScoreCache,
    executor: Executor,
    config: BenchConfig,
    progress: bool,
    timings: dict[str, float],
) -> dict[str, list[ItemScore]]:
    """suite name -> its rows; each suite's wall time goes into `timings` (`score_<suite>_s`)."""
    scores: dict[str, list[ItemScore]] = {}
    code = suite_code_digest()  # the same source for every suite: hashed once
    for suite, options in suites:
        start = time.perf_counter()
        cached = CachedSuite(suite, options, cache, code, config.device, config.executor.shard_items)
        scores[suite.name] = cached.score(samples, executor, progress)
        timings[f"score_{suite.name}_s"] = time.perf_counter() - start
    return scores
