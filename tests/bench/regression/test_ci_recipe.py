"""The CI recipe (.ci/regression) end to end on CPU: run, log, gate against the auto baseline, history."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.gate.store import GATE_BASELINE_TAG, list_runs
from flashspeech.foundation.environment import git_commit

SCRIPT = Path(".ci/regression").resolve()
CONFIG = """
name = "ci-dry"
seeds = [0]
mlflow = true
reports = true
bootstrap_resamples = 50

[[testsets]]
name = "real"
max_items = 2

[[systems]]
kind = "ground_truth"

[suites.defects]
"""


def _recipe(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.slow
@pytest.mark.skipif(git_commit() is None, reason="runs are placed in history by their commit: needs a git clone")
def test_the_ci_recipe_gates_against_the_previous_run_and_writes_the_job_summary(tmp_path):
    config = tmp_path / "ci-dry.toml"
    config.write_text(CONFIG)
    summary = tmp_path / "summary.md"
    out = tmp_path / "ci"
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'store.db'}",
        "FSB_CONFIG": str(config),
        "FSB_OUT": str(out),
        "FSB_CACHE": str(tmp_path / "cache"),
        "FSB_BENCH": f"{sys.executable} -m bench run",
        "FSB_HISTORY": f"{sys.executable} -m bench history",
        "FSB_BRANCH": "main",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    first = _recipe(env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "No baseline run qualifies" in (out / "gate.md").read_text()  # the first run on record: nothing to gate

    second = _recipe(env)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "baseline: run " in second.stdout  # the first run, chosen from the store (same commit, config, device)
    gate = (out / "gate.md").read_text()
    assert "No baseline" not in gate and "PASS" in gate.upper()
    history = (out / "history" / "history.md").read_text()
    assert history.startswith("# History: ci-dry (2 run(s))")
    text = summary.read_text()
    assert text.count("# History: ci-dry") == 2 and "Regression gate" in text
    assert (out / "history" / "history.html").is_file() and (out / "run" / "report.html").is_file()
    runs = list_runs(env["MLFLOW_TRACKING_URI"])
    assert [r.gate for r in runs] == ["no baseline", "passed"]  # the gate's outcome, tagged on each run
    assert runs[1].tags[GATE_BASELINE_TAG] == runs[0].run_id
    assert runs[1].lineage == runs[0].lineage and runs[1].lineage.lock_sha256 and runs[1].lineage.branch == "main"
