"""Reliability matrix, end to end: bad input becomes named, counted problems while every valid item is still
generated and scored; a run killed with SIGKILL during generation or scoring resumes without recomputing what
was finished and ends with the same results; two runs sharing one cache directory do not corrupt it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from bench.cli import main
from bench.results import Results

REAL = Path("bench/testsets/assets/real").resolve()
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _bad_inputs(tmp_path: Path) -> Path:
    """A manifest with two good items, four valid-but-awkward ones and six broken entries."""
    voice, rate = sf.read(REAL / "librivox_0890.wav", dtype="float32")
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    sf.write(tmp_path / "silent.wav", np.zeros(2 * rate, dtype=np.float32), rate)
    from scipy.signal import resample_poly

    at44 = resample_poly(voice, 441, 160).astype(np.float32)
    sf.write(tmp_path / "stereo44.wav", np.stack([at44, 0.5 * at44], axis=1), 44_100)
    good = str(REAL / "librivox_0890.wav")

    def item(id_: str, text: str, prompt: str, speaker: str = "a") -> str:
        return json.dumps({"id": id_, "text": text, "prompt_audio": prompt, "speaker": speaker}, ensure_ascii=False)

    lines = [
        item("good-1", "He was not an ill disposed young man.", good),
        item("good-2", "It was a fine day in the town.", str(REAL / "cards_001.wav"), "b"),
        item("missing", "A missing prompt.", "nope.wav"),
        "{not json",
        item("empty-file", "An empty prompt file.", "empty.wav"),
        item("corrupt", "A corrupt prompt file.", "corrupt.wav"),
        item("silent", "A silent prompt.", "silent.wav", "d"),
        item("stereo-44k", "A stereo prompt at forty four kilohertz.", "stereo44.wav", "e"),
        item("empty-text", "", good),
        item("non-ascii", "Zoë ate crème brûlée at the café.", good),
        item("good-1", "A duplicate id.", good),
    ]
    manifest = tmp_path / "set.jsonl"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


def _write_config(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_bad_input_is_named_counted_and_the_rest_still_runs(tmp_path, capsys):
    manifest = _bad_inputs(tmp_path)
    config = _write_config(
        tmp_path / "bad.toml",
        f"""
        name = "bad"
        output_dir = "{tmp_path / "out"}"
        seeds = [0]
        mlflow = false
        reports = false
        bootstrap_resamples = 100
        [[testsets]]
        name = "bad"
        manifest = "{manifest}"
        [[systems]]
        kind = "flashspeech"
        checkpoint = "pretrained:flashspeech-tiny"
        steps = [1]
        [suites.wer]
        [suites.similarity]
        [suites.rtf]
        """,
    )
    assert main(["run", "--config", str(config), "--quiet"]) == 0
    printed = capsys.readouterr().out
    results = Results.load(tmp_path / "out")

    # each broken entry is a named problem: line, item and field
    problems = results.metadata["testsets"]["bad"]["problems"]
    expected = {
        ":3 item 'missing' field 'prompt_audio'": "file not found",
        ":4 field '<line>'": "invalid JSON",
        ":5 item 'empty-file' field 'prompt_audio'": "unreadable audio",
        ":6 item 'corrupt' field 'prompt_audio'": "unreadable audio",
        ":9 item 'empty-text' field 'text'": "empty text",
        ":11 item 'good-1' field 'id'": "duplicate id",
    }
    assert len(problems) == len(expected)
    for where, what in expected.items():
        assert any(where in p and what in p for p in problems), where
        assert where in printed  # and the command line says so
    assert "6 test-set problem(s) in 'bad'" in printed

    # ... and counted next to the numbers
    agg = results.aggregates.set_index(["system", "suite", "metric"])["value"]
    assert agg[("bad:flashspeech@1", "testset", "failed")] == 6
    assert agg[("bad:flashspeech@1", "testset", "items")] == 11

    # every valid item was generated and scored (stereo 44.1 kHz and non-ASCII text included)
    items = results.items.set_index("item_id")
    valid = ["good-1", "good-2", "silent", "stereo-44k", "non-ascii"]
    assert sorted(items.index) == sorted(valid)
    assert (items["status"] == "ok").all()
    assert items["wer.error"].isna().all() and items["wer.wer"].notna().all()
    assert items["rtf.error"].isna().all()
    # a silent prompt has no voice to compare with: that one similarity score fails, named and counted
    sim_errors = items["similarity.error"].dropna()
    assert list(sim_errors.index) == ["silent"] and "prompt audio" in sim_errors["silent"]
    assert items.loc[["good-1", "good-2", "stereo-44k", "non-ascii"], "similarity.sim_o"].notna().all()
    assert agg[("bad:flashspeech@1", "similarity", "failed")] == 1
    assert "1 failed similarity score(s)" in printed and "silent" in printed


# --- killed runs and shared caches --------------------------------------------------------------------------

# An external TTS that logs each item it generates (to count regenerations) and takes a while per batch.
LOGGING_TTS = textwrap.dedent(
    """
    import json, os, sys, time
    import numpy as np, soundfile as sf
    time.sleep(float(os.environ.get("FSB_TEST_SLEEP", "0.4")))
    for line in open(sys.argv[1]):
        r = json.loads(line)
        k = sum(map(ord, r["text"])) % 7
        sf.write(r["output"], 0.1 * np.sin(np.arange(12000 + 800 * k) / (3.0 + k)), 16000)
        with open(os.environ["FSB_TEST_LOG"], "a") as log:
            log.write(r["id"] + "\\n")
    """
)
TEXTS = [
    "He was not an ill disposed young man.",
    "It was a fine day in the town.",
    "The cards were on the table.",
    "She walked along the river bank.",
    "Nobody knew where the key had gone.",
    "A cold wind came down from the hills.",
]


def _run_config(tmp_path: Path, name: str, cache: Path, systems: int = 1) -> Path:
    manifest = tmp_path / "set.jsonl"
    if not manifest.exists():
        rows = [
            {"id": f"i{k}", "text": t, "prompt_audio": str(REAL / "librivox_0890.wav"), "speaker": f"s{k % 3}"}
            for k, t in enumerate(TEXTS)
        ]
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = tmp_path / "tts.py"
    script.write_text(LOGGING_TTS)
    blocks = "".join(
        f"""
        [[systems]]
        kind = "external"
        name = "ext{n}"
        command = ["{sys.executable}", "{script}", "{{input}}", "{n}"]
        """
        for n in range(systems)
    )
    return _write_config(
        tmp_path / f"{name}.toml",
        f"""
        name = "{name}"
        output_dir = "{tmp_path / name}"
        cache_dir = "{cache}"
        seeds = [0]
        mlflow = false
        reports = false
        bootstrap_resamples = 100
        [[testsets]]
        name = "t"
        manifest = "{manifest}"
        {blocks}
        [suites.wer]
        [suites.rtf]
        """,
    )


def _start(config: Path, log: Path, sleep: float = 0.4) -> subprocess.Popen:
    env = {**os.environ, "FSB_TEST_LOG": str(log), "FSB_TEST_SLEEP": str(sleep), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--config", str(config), "--quiet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "timed out waiting for the run to get there"
        time.sleep(0.02)


def _scores(directory: Path) -> pd.DataFrame:
    """The items table without what legitimately differs between runs (timings, paths, batch ids)."""
    items = Results.load(directory).items
    keep = ["system", "item_id", "seed", "status", "error", *sorted(c for c in items.columns if c.startswith("wer."))]
    return items[keep].sort_values(["system", "item_id"]).reset_index(drop=True)


def _cache_entries(cache: Path) -> dict[str, int]:
    """Generation-cache entry -> mtime_ns (an entry is complete once its JSON exists)."""
    return {p.stem: p.stat().st_mtime_ns for p in cache.glob("*/*.json") if p.parent.name != "scores"}


def _log(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_kill_during_generation_resumes_without_recomputing(tmp_path):
    reference = _finish(_start(_run_config(tmp_path, "reference", tmp_path / "cache-ref"), tmp_path / "ref.log"))
    assert "6 generated, 0 from the cache" in reference

    cache, log = tmp_path / "cache", tmp_path / "gen.log"
    config = _run_config(tmp_path, "killed", cache)
    proc = _start(config, log)
    _wait_for(lambda: len(_cache_entries(cache)) >= 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = _cache_entries(cache)
    assert 2 <= len(done) < len(TEXTS)
    time.sleep(1.5)  # the TTS command in flight outlives its killed parent: let it finish its (lost) batch
    generated_before = _log(log)

    out = _finish(_start(config, log))
    assert f"{len(TEXTS) - len(done)} generated, {len(done)} from the cache" in out
    assert all(_cache_entries(cache)[key] == mtime for key, mtime in done.items())  # finished work kept as is
    regenerated = _log(log)[len(generated_before) :]
    # only what was not finished is generated again, once each (the batch in flight at the kill was lost)
    assert len(set(regenerated)) == len(regenerated) == len(TEXTS) - len(done)
    pd.testing.assert_frame_equal(_scores(tmp_path / "killed"), _scores(tmp_path / "reference"))


def test_kill_during_scoring_resumes_without_rescoring(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "gen.log"
    config = _run_config(tmp_path, "killed", cache, systems=2)
    proc = _start(config, log, sleep=0.0)
    scores = cache / "scores"
    _wait_for(lambda: len(list(scores.glob("*.json"))) >= 1, proc)  # one system's WER rows are finished
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in scores.glob("*.json")}
    assert len(finished) == 1, "killed after both systems were scored: the test did not interrupt scoring"
    generations = len(_log(log))

    out = _finish(_start(config, log, sleep=0.0))
    assert f"0 generated, {2 * len(TEXTS)} from the cache" in out
    assert len(_log(log)) == generations  # nothing regenerated
    after = {p.name: p.stat().st_mtime_ns for p in scores.glob("*.json")}
    assert len(after) == 2 and all(after[name] == mtime for name, mtime in finished.items())  # not rescored

    reference = _run_config(tmp_path, "reference", tmp_path / "cache-ref", systems=2)
    _finish(_start(reference, tmp_path / "ref.log", sleep=0.0))
    pd.testing.assert_frame_equal(_scores(tmp_path / "killed"), _scores(tmp_path / "reference"))


def test_concurrent_runs_share_one_cache_safely(tmp_path):
    cache = tmp_path / "cache"
    procs = [_start(_run_config(tmp_path, name, cache), tmp_path / f"{name}.log") for name in ("one", "two")]
    for proc in procs:
        _finish(proc)
    entries = [p for p in cache.glob("*/*.json") if p.parent.name != "scores"]
    assert len(entries) == len(TEXTS)  # one entry per distinct generation, whoever wrote it last
    for entry in entries:
        info = json.loads(entry.read_text())  # every entry complete and readable
        assert info["timings"] and sf.info(str(entry.with_suffix(".wav"))).frames > 0
    assert not list(cache.rglob("*.tmp*"))  # no half-written files left behind
    pd.testing.assert_frame_equal(_scores(tmp_path / "one"), _scores(tmp_path / "two"))
    third = _finish(_start(_run_config(tmp_path, "three", cache), tmp_path / "three.log"))
    assert f"0 generated, {len(TEXTS)} from the cache" in third
    pd.testing.assert_frame_equal(_scores(tmp_path / "three"), _scores(tmp_path / "one"))
