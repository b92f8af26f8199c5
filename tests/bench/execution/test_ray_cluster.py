"""The Ray executor on a local cluster with fractional CPUs (the 2-core CI machine): the same numbers and cache
keys as the local executor, a killed worker loses nothing and repeats nothing, a unit that keeps killing its
worker becomes failed items with the error."""

from __future__ import annotations

import collections
import os

import pandas as pd
import pytest

from bench.run import run_benchmark
from tests.bench.execution.test_units import comparable

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")

RAY = {"kind": "ray", "actors": 2, "cpus_per_actor": 0.5, "shard_items": 2, "max_retries": 2}
# one torch thread in the driver, so in each actor too (actors take the driver's count): 2 actors x 2 threads
# would oversubscribe the 2-core machine
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module (the executor uses a running one and leaves it running)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    ray.init(num_cpus=2, object_store_memory=200 << 20, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _generated(log) -> collections.Counter:
    return collections.Counter(log.read_text().splitlines())


def test_ray_gives_the_local_numbers_and_cache_keys(make_config, tmp_path, cluster):
    suites = {"defects": {"batch_size": 2}, "prosody": {"batch_size": 2}, "similarity": {}, "wer": {}}
    systems = [{"kind": "ground_truth"}, {"kind": "flashspeech", "checkpoint": "random:tiny", "steps": [1]}]
    names = ["a", "b", "c", "d"]
    local = run_benchmark(
        make_config(names, cache="local", suites=suites, systems=systems, executor={"shard_items": 2}), progress=False
    )
    remote = run_benchmark(
        make_config(names, cache="ray", suites=suites, systems=systems, executor=RAY), progress=False
    )
    assert remote.results.metadata["run"]["executor"]["kind"] == "ray"
    assert (local.generated, local.cached) == (remote.generated, remote.cached) == (4 + 8, 0)
    for a, b in zip(comparable(local.results), comparable(remote.results), strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert (remote.results.items["status"] == "ok").all()
    assert set(remote.results.items["timing_source"]) == {"this run"}
    for kind in ("[0-9a-f][0-9a-f]/*.json", "scores/*.json"):  # generation entries, score shards and systems
        keys = {p.name for p in (tmp_path / "local").glob(kind)}
        assert keys and keys == {p.name for p in (tmp_path / "ray").glob(kind)}


def test_a_killed_worker_loses_nothing_and_repeats_nothing(make_config, cluster):
    # units of two items; "victim" is the second item of the second unit: "c" is cached before the kill
    config = make_config(["a", "b", "c", "victim", "e"], mode="once", seeds=[0], executor=RAY)
    outcome = run_benchmark(config, progress=False)
    table = outcome.results.items
    assert (table["status"] == "ok").all() and len(table) == 5
    assert _generated(make_config.log) == {f"{name} 0": 1 for name in ["a", "b", "c", "victim", "e"]}
    assert (make_config.log.parent / "killed-victim-0").exists()  # the worker was killed once
    again = run_benchmark(config, progress=False)
    assert (again.generated, again.cached) == (0, 5)


def test_a_unit_that_always_kills_its_worker_becomes_failed_items(make_config, cluster):
    config = make_config(["a", "victim", "c"], mode="always", seeds=[0], executor={**RAY, "max_retries": 1})
    results = run_benchmark(config, progress=False).results
    table = results.items.set_index("item_id")
    # the unit (a, victim) fails on both attempts; "a" was cached by the first, so only "victim" is lost
    assert table.loc["victim", "status"] == "failed"
    assert "failed after 2 attempt(s): worker died" in table.loc["victim", "error"]
    assert table.loc[["a", "c"], "status"].eq("ok").all()
    assert _generated(make_config.log) == {"a 0": 1, "c 0": 1}
    failed = results.aggregates.set_index(["system", "suite", "metric"])["value"][("t:ext", "generation", "failed")]
    assert failed == 1


def test_an_actor_no_node_can_hold_is_an_error_not_a_hang(make_config, cluster):
    from bench.execution import ExecutorConfig, ExecutorError, build_executor

    executor = build_executor(ExecutorConfig(kind="ray", gpus_per_actor=1), "cpu")
    with pytest.raises(ExecutorError, match=r"gpus_per_actor = 1, but no node .* has more than 0 GPU"), executor:
        pass
    assert ray.is_initialized()  # a cluster it did not start is left running


def test_the_shipped_checkpoint_gives_the_same_audio_on_ray_and_locally(make_config, tmp_path, cluster):
    """The shipped FlashSpeech on committed real clips: torch rounds differently at other CPU thread counts, so Ray
    actors run with the driver's count by default and the generation key records it: the same seed gives the same
    audio (and key) on either executor; an actor thread count that differs is a different key, never a hit."""
    import numpy as np

    from flashspeech.foundation.audio import read_audio

    systems = [{"kind": "flashspeech", "checkpoint": "pretrained:flashspeech-tiny", "steps": [2]}]
    fields = {"systems": systems, "suites": {}, "seeds": [0]}
    local = run_benchmark(make_config(["a", "b"], cache="local", **fields), progress=False)
    remote = run_benchmark(make_config(["a", "b"], cache="ray", executor=RAY, **fields), progress=False)
    assert (local.generated, remote.generated) == (2, 2)
    wavs = {side: sorted((tmp_path / side).glob("[0-9a-f][0-9a-f]/*.wav")) for side in ("local", "ray")}
    assert [p.name for p in wavs["local"]] == [p.name for p in wavs["ray"]] and len(wavs["local"]) == 2
    for a, b in zip(wavs["local"], wavs["ray"], strict=True):
        np.testing.assert_array_equal(read_audio(a, None).samples, read_audio(b, None).samples)
    other = {**RAY, "threads_per_actor": 3 if torch_threads() != 3 else 2}
    again = run_benchmark(make_config(["a", "b"], cache="ray", executor=other, **fields), progress=False)
    assert (again.generated, again.cached) == (2, 0)  # another thread count: regenerated under its own key


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()
