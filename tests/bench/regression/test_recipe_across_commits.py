"""`.ci/regression` across a throwaway git history of this repository: each commit's code runs (the generation
cache is keyed by the generating code), the gate fails the commit that truncates FlashSpeech's audio and passes the
innocent ones (including one that edits the generating code without changing its audio), `history` names the
regressing commit, and every run logs RTF."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gate.history import HistoryConfig, departures, history_table
from bench.gate.store import list_runs, run_metrics

ROOT = Path(__file__).resolve().parents[3]
SYNTHESIS = "flashspeech/synthesis.py"
DECODE = "waveforms.append(self.codec.decode(z)[0].float().cpu())"
TRUNCATE = "w = self.codec.decode(z)[0].float().cpu(); waveforms.append(w[: int(0.4 * len(w))])"
CONFIG = """
name = "recipe-e2e"
seeds = [0]
bootstrap_resamples = 50
reports = false  # the gate and the history are what this test reads

[[testsets]]
name = "smoke"
max_items = 10

[[systems]]
kind = "flashspeech"
checkpoint = "pretrained:flashspeech-tiny"
steps = [1]

[suites.wer]

[suites.rtf]
"""
GATE = """
[gate.metrics."rtf.rtf"]
allowed_rel = 0.5  # two CPU runs of the same code, seconds apart, on a machine that runs the test suite
"""
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=GIT_ENV)
    return out.stdout.strip()


def _checkout(dest: Path) -> Path:
    """This working tree's files (tracked and untracked-not-ignored) in a fresh one-commit repository: text files
    copied (the test edits some), binary assets (weights, clips) hard-linked: never write to those."""
    listed = _git(ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, dest / name
        if not source.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix in (".py", ".md", ".toml", ".txt", ".json", ".jsonl") or source.parent.name == ".ci":
            shutil.copy2(source, target)
        else:
            try:
                os.link(source, target)
            except OSError:  # another filesystem: copy
                shutil.copy2(source, target)
    _git(dest, "init", "-q", "-b", "main")
    _git(dest, "add", "-A")
    _git(dest, "commit", "-q", "-m", "c0")
    return dest


def _commit(repo: Path, message: str, edit: tuple[str, str, str] | None = None) -> str:
    if edit is None:
        assert (repo / "README.md").stat().st_nlink == 1  # a copy, not this checkout's file
        with (repo / "README.md").open("a", encoding="utf-8") as fh:
            fh.write(f"\n{message}\n")
    else:
        path, old, new = edit
        text = (repo / path).read_text(encoding="utf-8")
        assert old in text
        (repo / path).write_text(text.replace(old, new), encoding="utf-8")
    _git(repo, "commit", "-q", "-am", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_recipe_names_the_regressing_commit_and_passes_the_innocent_ones(tmp_path):
    repo = _checkout(tmp_path / "repo")
    (tmp_path / "recipe-e2e.toml").write_text(CONFIG)
    (tmp_path / "gate.toml").write_text(GATE)
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "FSB_CONFIG": str(tmp_path / "recipe-e2e.toml"),
        "FSB_OUT": str(tmp_path / "ci"),
        "FSB_CACHE": str(tmp_path / "cache"),  # one cache across the commits, as the workflow restores it
        "FSB_BENCH": f"{sys.executable} -m bench run",  # run from the checkout: its code is what runs
        "FSB_HISTORY": f"{sys.executable} -m bench history",
        "FSB_BRANCH": "main",
        "FSB_NOISE_RUNS": "0",
        "FSB_GATE_ARGS": f"--gate-config {tmp_path / 'gate.toml'} --allow-incomparable rtf.rtf",
    }

    def recipe(history: bool = False) -> subprocess.CompletedProcess[str]:
        """One CI run; the history report (read at the end) only when asked: `true` stands in for it before."""
        step = env if history else {**env, "FSB_HISTORY": "true"}
        return subprocess.run(
            [str(repo / ".ci" / "regression")], cwd=repo, env=step, capture_output=True, text=True, timeout=900
        )

    commits, codes = [_git(repo, "rev-parse", "HEAD")], []
    codes.append(recipe().returncode)  # c0: no baseline yet
    commits.append(_commit(repo, "c1: docs"))
    codes.append(recipe().returncode)
    # c2 edits the generating code without changing its audio: regenerated (new code digest), passes
    commits.append(_commit(repo, "c2: comment", (SYNTHESIS, DECODE, DECODE + "  # decode each item")))
    codes.append(recipe().returncode)
    commits.append(_commit(repo, "c3: truncate", (SYNTHESIS, DECODE + "  # decode each item", TRUNCATE)))
    run = recipe()
    codes.append(run.returncode)
    regressed = run
    commits.append(_commit(repo, "c4: revert", (SYNTHESIS, TRUNCATE, DECODE)))
    codes.append(recipe(history=True).returncode)
    assert codes == [0, 0, 0, 3, 0], regressed.stdout[-4000:] + regressed.stderr[-2000:]
    assert "wer.wer_corpus | " in regressed.stdout and "**regressed**" in regressed.stdout

    runs = list_runs(uri, config="recipe-e2e")
    assert [r.lineage.commit for r in runs] == commits
    assert [r.gate for r in runs] == ["no baseline", "passed", "passed", "failed", "passed"]
    metrics = run_metrics(uri, runs)
    timed = metrics[metrics["metric"] == "rtf.rtf"]
    assert set(timed["run_id"]) == {r.run_id for r in runs}  # RTF logged on every run
    assert (metrics.loc[metrics["metric"] == "rtf.timed_here", "value"] == 10).all()  # every sample timed
    table, _ = history_table(uri, HistoryConfig(config="recipe-e2e", branch="main"))
    found = departures(table)
    assert commits[3] in set(found.loc[found["metric"] == "wer.wer_corpus", "commit"])
    assert (tmp_path / "ci" / "history" / "history.md").read_text().count(commits[3][:8]) >= 2
