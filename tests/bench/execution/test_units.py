"""Work units and the local executor: sharding never changes a number, failures become failed items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.execution import ExecutorConfig, LocalExecutor, UnitFailure, by_length, merge_shards, score_shards
from bench.run import run_benchmark
from suites.base import ItemScore, Sample
from tests.bench.execution.conftest import items

TIMING_COLUMNS = ("audio_path", "batch_id", "timed_at", "contended")


def comparable(results) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The items table and aggregates without what depends on where and when it ran (paths, timings)."""
    table = results.items.drop(columns=[c for c in results.items if c in TIMING_COLUMNS or c.startswith("rtf.")])
    aggregates = results.aggregates[results.aggregates["suite"] != "rtf"].reset_index(drop=True)
    return table.reset_index(drop=True), aggregates


def _samples(per_item: list[int]) -> list[Sample]:
    out = []
    for item, n in zip(items([f"i{k}" for k in range(len(per_item))]), per_item, strict=True):
        out += [Sample(item, "s", np.zeros(10, np.float32), 16000, seed=seed) for seed in range(n)]
    return out


def test_score_shards_cut_only_at_batch_starts_between_items():
    samples = _samples([2, 2, 2, 2, 2, 2])
    shards = score_shards(samples, batch_size=4, target=3)
    assert [len(s) for s in shards] == [4, 4, 4]
    assert [s for shard in shards for s in shard] == samples
    # an item with three seeds: a cut must start a batch and an item
    odd = _samples([3, 3, 3, 3])
    assert [len(s) for s in score_shards(odd, batch_size=2, target=1)] == [6, 6]
    assert [len(s) for s in score_shards(odd, batch_size=8, target=1)] == [12]  # no such place: one shard
    assert score_shards([], 4, 4) == []


def test_longest_items_first_and_rows_back_in_generation_order():
    samples = _samples([2, 1, 2])  # items i0, i1, i2
    samples[1].audio = np.zeros(30, np.float32)  # i0 seed 1 is the longest clip; i2 next
    samples[4].audio = np.zeros(20, np.float32)
    ordered = by_length(samples)
    assert [(s.item.id, s.seed) for s in ordered] == [("i0", 0), ("i0", 1), ("i2", 0), ("i2", 1), ("i1", 0)]

    def row(item, seed):
        return ItemScore("prosody", "s", item, seed)

    shards = [
        [row("i0", 0), row("i0", 1), row("i0", None)],
        [row("i2", 0), row("i2", 1), row("i2", None), row("i1", 0)],
    ]
    merged = merge_shards(shards, samples)
    assert [(r.item_id, r.seed) for r in merged] == [
        ("i0", 0),
        ("i0", 1),
        ("i1", 0),
        ("i2", 0),
        ("i2", 1),
        ("i0", None),
        ("i2", None),
    ]


class _Flaky:
    """A unit that raises `fails` times, then returns its name."""

    pool, size = "p", 1

    def __init__(self, name: str, fails: int):
        self.name, self.fails, self.calls = name, fails, 0

    def describe(self) -> str:
        return self.name

    def run(self, worker, context=None):
        self.calls += 1
        if self.calls <= self.fails:
            raise RuntimeError(f"{self.name} attempt {self.calls}")
        return self.name


def test_local_executor_retries_then_records_the_last_error():
    units = [_Flaky("a", 0), _Flaky("b", 2), _Flaky("c", 5)]
    done = []
    out = LocalExecutor(ExecutorConfig(max_retries=2)).run(units, on_done=lambda u, r: done.append(u.name))
    assert out[:2] == ["a", "b"] and done == ["a", "b", "c"]
    assert isinstance(out[2], UnitFailure) and out[2].attempts == 3 and "c attempt 3" in out[2].error
    assert "c failed after 3 attempt(s)" in out[2].message(units[2])


def test_sharding_changes_no_number_and_keeps_the_system_cache_key(make_config, tmp_path):
    suites = {"defects": {"batch_size": 2}, "prosody": {"batch_size": 2}, "wer": {}}
    systems = [{"kind": "ground_truth"}, {"kind": "flashspeech", "checkpoint": "random:tiny", "steps": [1]}]
    names = ["a", "b", "c", "d", "e"]
    whole = run_benchmark(
        make_config(names, cache="whole", suites=suites, systems=systems, executor={"shard_items": 1000}),
        progress=False,
    )
    sharded = run_benchmark(
        make_config(names, cache="sharded", suites=suites, systems=systems, executor={"shard_items": 2}),
        progress=False,
    )
    for a, b in zip(comparable(whole.results), comparable(sharded.results), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert whole.generated == sharded.generated == 5 + 10  # ground truth: one generation serves both seeds
    groups = {p.name for p in (tmp_path / "whole" / "scores").glob("*.json")}
    shards = {p.name for p in (tmp_path / "sharded" / "scores").glob("*.json")}
    assert len(groups) == 3 * 2 and groups < shards  # every (suite, system) key, plus the shards'


def test_a_unit_that_keeps_failing_becomes_failed_items(make_config, monkeypatch):
    from bench.systems.references import GroundTruthSystem

    def broken(self, items, seeds):
        raise MemoryError("no room")

    monkeypatch.setattr(GroundTruthSystem, "generate", broken)
    config = make_config(["a", "b", "c"], systems=[{"kind": "ground_truth"}], executor={"shard_items": 2})
    results = run_benchmark(config, progress=False).results
    table = results.items
    assert len(table) == 6 and (table["status"] == "failed").all()
    assert table["error"].str.contains("failed after 3 attempt\\(s\\): MemoryError: no room").all()
    failed = results.aggregates.set_index(["system", "suite", "metric"])["value"][
        ("t:ground_truth", "generation", "failed")
    ]
    assert failed == 6


def test_executor_config_errors_name_the_field(make_config):
    from bench.config import ConfigError

    with pytest.raises(ConfigError, match=r"executor\.kind"):
        make_config(["a"], executor={"kind": "slurm"})
    with pytest.raises(ConfigError, match=r"executor\.workers: unknown key"):
        make_config(["a"], executor={"workers": 3})
    with pytest.raises(ConfigError, match=r"executor\.shard_items"):
        make_config(["a"], executor={"shard_items": 0})
