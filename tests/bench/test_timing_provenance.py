"""Timings that cannot lie: cached generations never replay an earlier run's speed, every timing says where,
when and under what machine load it was measured, and cache keys carry a version."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from bench import cache as cache_module
from bench.cache import GenerationCache, generation_key
from bench.config import BenchConfig
from bench.contention import LoadMonitor
from bench.run import run_benchmark
from bench.testsets.manifest import write_manifest
from suites.item import EvalItem

REAL = Path("bench/testsets/assets/real").resolve()

# An external TTS that sleeps FSB_TEST_SLEEP seconds per batch (the environment is not part of the cache key:
# the same audio, at another speed) and reports no timings, so the runner times the command's wall time.
SLOW_TTS = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np, soundfile as sf
    time.sleep(float(os.environ.get("FSB_TEST_SLEEP", "0")))
    for line in open(sys.argv[1]):
        r = json.loads(line)
        sf.write(r["output"], 0.1 * np.sin(np.arange(16000) / 4.0), 16000)
    """
)


def _config(tmp_path: Path, **extra) -> BenchConfig:
    items = [
        EvalItem(f"i{k}", text, str(REAL / "librivox_0890.wav"), "librivox")
        for k, text in enumerate(("He was not an ill disposed young man.", "It was a fine day."))
    ]
    script = tmp_path / "slow_tts.py"
    script.write_text(SLOW_TTS)
    data = {
        "name": "t",
        "output_dir": str(tmp_path / "out"),
        "cache_dir": str(tmp_path / "cache"),
        "seeds": [0],
        "testsets": [{"name": "t", "manifest": str(write_manifest(items, tmp_path / "set.jsonl"))}],
        "systems": [{"kind": "external", "name": "slow", "command": [sys.executable, str(script), "{input}"]}],
        "suites": {"rtf": {}},
        "mlflow": False,
        "reports": False,
        "bootstrap_resamples": 50,
        **extra,
    }
    return BenchConfig.from_dict(data)


def _agg(outcome, metric: str) -> float:
    table = outcome.results.aggregates.set_index(["system", "suite", "metric"])["value"]
    return float(table[("t:slow", "rtf", metric)])


def test_a_rerun_never_reports_the_cached_runs_speed(tmp_path, monkeypatch):
    """The audited defect: a 50x slower second run reported the first run's RTF (the score cache replayed it)."""
    monkeypatch.setenv("FSB_TEST_SLEEP", "0")
    first = run_benchmark(_config(tmp_path), progress=False)
    assert _agg(first, "timed_here") == 2 and _agg(first, "borrowed") == 0
    fast = _agg(first, "rtf")
    assert fast > 0

    monkeypatch.setenv("FSB_TEST_SLEEP", "1.5")  # the system got much slower; its audio did not change
    cached = run_benchmark(_config(tmp_path), progress=False)
    assert (cached.generated, cached.cached) == (0, 2)
    assert _agg(cached, "borrowed") == 2 and _agg(cached, "timed_here") == 0
    assert np.isnan(_agg(cached, "rtf"))  # no RTF of this run, rather than the first run's
    note = cached.results.metadata["aggregate_notes"]["t:slow"]["rtf.rtf"]
    assert "cached generations" in note and "--retime" in note
    items = cached.results.items
    assert set(items["timing_source"]) == {"cache"}
    assert items["timed_at"].str.contains(first.results.metadata["run"]["timing_context"]["host"]).all()

    retimed = run_benchmark(_config(tmp_path, retime=True), progress=False)
    assert (retimed.generated, retimed.cached) == (2, 0)
    assert set(retimed.results.items["timing_source"]) == {"this run"}
    # 1.5 s shared by 2 s of audio: at least 0.75, far above the first run's
    assert _agg(retimed, "rtf") >= 0.75 > 2 * fast


def test_generation_cache_records_where_and_when_timings_were_measured(tmp_path, monkeypatch):
    monkeypatch.setenv("FSB_TEST_SLEEP", "0")
    outcome = run_benchmark(_config(tmp_path), progress=False)
    entries = sorted((tmp_path / "cache").glob("*/*.json"))
    assert len(entries) == 2
    timed = json.loads(entries[0].read_text())["timed"]
    context = outcome.results.metadata["run"]["timing_context"]
    for key in ("host", "device", "cpu", "torch", "git_commit", "code_version"):
        assert timed[key] == context[key], key
    assert timed["source"] == "this run" and timed["measured_at"]
    run = context["run_id"]
    assert timed["batch_id"] in (f"t:slow#0@{run}", f"t:slow#1@{run}")
    assert set(timed["load"]) >= {"others_cores", "steal_fraction", "load1", "contended"}
    items = outcome.results.items
    assert items["batch_id"].tolist() == [f"t:slow#0@{run}", f"t:slow#1@{run}"]  # batch_size 1: one timing each
    assert items["contended"].map(lambda v: isinstance(v, bool | np.bool_)).all()
    hit, _ = GenerationCache(tmp_path / "cache").get(entries[0].stem)
    assert hit.timed["source"] == "cache" and hit.timed["measured_at"] == timed["measured_at"]


@pytest.fixture
def busy_process():
    """Another process spinning on one core for the duration of a test."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.3)
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="contention is measured from /proc (Linux)")
def test_timings_under_competition_are_flagged(tmp_path, monkeypatch, busy_process):
    """What the audit saw: RTF 1.36 beside 0.03 while another job shared the cores, reported as a number."""
    monkeypatch.setenv("FSB_TEST_SLEEP", "1.0")
    outcome = run_benchmark(_config(tmp_path), progress=False)
    items = outcome.results.items
    assert items["contended"].all()
    assert _agg(outcome, "contended") == 2
    entry = json.loads(next((tmp_path / "cache").glob("*/*.json")).read_text())
    assert entry["timed"]["load"]["others_cores"] > 0.5
    assert any(str(busy_process.pid) in c for c in entry["timed"]["load"]["competitors"])


@pytest.mark.skipif(not Path("/proc/stat").is_file(), reason="contention is measured from /proc (Linux)")
def test_load_monitor_counts_other_processes_not_our_own_work(busy_process):
    with LoadMonitor() as monitor:
        deadline = time.perf_counter() + 1.0
        while time.perf_counter() < deadline:  # our own busy work is not competition
            pass
    report = monitor.report
    assert report.contended and 0.5 < report.others_cores < 2.5
    assert "CONTENDED" in report.summary()


def test_cache_keys_carry_a_version(tmp_path, monkeypatch):
    item = EvalItem("a", "Hello.", str(REAL / "librivox_0890.wav"), "s")
    system = {"kind": "external", "command": ["x"]}
    key = generation_key(system, item, 0)
    monkeypatch.setattr(cache_module, "GENERATION_KEY_VERSION", cache_module.GENERATION_KEY_VERSION + 1)
    assert generation_key(system, item, 0) != key
