"""A throwaway git history and synthetic benchmark runs logged to a real MLflow store at chosen commits."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from bench.record import Device, RunRecord, evaluator_digest
from bench.results import Results
from bench.tracking import log_results
from tests.fixtures.toy import toy_results

DEVICE = "cpu:AMD EPYC 9B14"


@dataclass
class History:
    """A repo with `main` commits (oldest first) and one commit on a side branch."""

    repo: Path
    main: list[str]
    side: str


def _git(repo: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env)
    return out.stdout.strip()


@pytest.fixture
def history(tmp_path) -> History:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    main = []
    for k in range(8):
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"c{k}")
        main.append(_git(repo, "rev-parse", "HEAD"))
    _git(repo, "checkout", "-q", "-b", "side", main[3])
    _git(repo, "commit", "-q", "--allow-empty", "-m", "side")
    side = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    return History(repo, main, side)


def synthetic_results(
    commit: str,
    seed: int,
    wer: float = 0.10,
    *,
    config: str = "nightly",
    branch: str = "main",
    lock: str = "lock-a",
    device_model: str = DEVICE,
    evaluator: str = "whisper-a",
) -> Results:
    """Toy results (FlashSpeech at 1 step with WER `wer`, ground truth at 0.05) with a run's lineage metadata."""
    results = toy_results(n_items=48, seed=seed, systems=(("flashspeech@1", 1, wer), ("ground_truth", None, 0.05)))
    items = results.items  # two items per speaker: 24 clusters, enough for the gate's paired bootstrap
    items["speaker"] = "spk" + (items["item_id"].str.removeprefix("item-").astype(int) // 2).astype(str)
    timed = items["rtf.rtf"].notna()  # each sample timed alone, in this run, on a quiet machine
    items["batch_id"] = (items["system"] + "/" + items["item_id"] + "/" + items["seed"].astype(str)).where(timed)
    items["timing_source"] = np.where(timed, "this run", None)
    items["contended"] = np.where(timed, False, None)
    kind, model = device_model.split(":", 1)
    meta = results.metadata
    meta["run"] = {
        **(meta.get("run") or {}),
        "name": config,
        "git_commit": commit,
        "branch": branch,
        "lock_sha256": lock,
        "timing_context": {"device": kind, "cpu": model if kind == "cpu" else "AMD EPYC 9B14"},
    }
    meta["environment"] = {**(meta.get("environment") or {}), "device": kind}
    if kind == "cuda":
        meta["environment"]["gpu"] = model
    meta["evaluators"] = {"wer": {"digest": evaluator, "parts": {}}, "similarity": {"digest": "sim", "parts": {}}}
    # the typed record, as the runner writes it next to the fields above
    provenance = replace(results.record.provenance, commit=commit, branch=branch, lock_sha256=lock)
    provenance = replace(provenance, evaluator=evaluator_digest(meta["evaluators"]))
    meta["record"] = RunRecord(config, Device(kind, model=model, torch="toy"), provenance).metadata()
    return results


def log_synthetic(uri: str, out: Path, commit: str, seed: int, **kwargs) -> str:
    """Log one synthetic run to `uri`; returns its MLflow run id."""
    results = synthetic_results(commit, seed, **kwargs)
    return log_results(results, output_dir=out, uri=uri).run_id
