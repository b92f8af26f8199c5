"""`--gate auto`: the baseline is the nearest comparable main-branch ancestor in a real MLflow store."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.gate.baseline import auto_baseline, find_tagged
from bench.gate.margins import noise_margins
from bench.gate.rules import GateConfig
from bench.gate.store import GATE_TAG, list_runs, tag_run
from bench.lineage import Lineage
from tests.bench.regression.conftest import DEVICE, log_synthetic, synthetic_results


def test_lineage_reads_the_metadata_and_round_trips_through_tags():
    meta = synthetic_results("abc1234", seed=0).metadata
    lineage = Lineage.of(meta)
    assert (lineage.config, lineage.commit, lineage.branch, lineage.lock_sha256) == (
        "nightly",
        "abc1234",
        "main",
        "lock-a",
    )
    assert lineage.device_model == DEVICE and lineage.evaluator and len(lineage.evaluator) == 16
    assert Lineage.from_tags(lineage.tags()) == lineage
    # read through the typed record; a run written before the record has the same lineage from its legacy fields
    assert Lineage.of({k: v for k, v in meta.items() if k != "record"}) == lineage
    other = Lineage.of(synthetic_results("abc1234", seed=0, evaluator="whisper-b", device_model="cuda:H200").metadata)
    assert lineage.mismatch(other) == ["evaluator", "device_model"]
    assert lineage.mismatch(Lineage()) == ["config", "lock_sha256", "evaluator", "device_model"]


@pytest.fixture
def store(tmp_path, history):
    """Runs at main commits 1..6 and the side commit; only 2 and 3 are comparable baselines for commit 7."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "out"
    c = history.main
    ids = {
        "c1-other-lock": log_synthetic(uri, out, c[1], 1, lock="lock-b"),
        "c2": log_synthetic(uri, out, c[2], 2),
        "c3": log_synthetic(uri, out, c[3], 3),
        "c4-gate-failed": log_synthetic(uri, out, c[4], 4),
        "c5-other-device": log_synthetic(uri, out, c[5], 5, device_model="cuda:NVIDIA H200"),
        "c6-other-evaluator": log_synthetic(uri, out, c[6], 6, evaluator="whisper-large"),
        "c6-feature-branch": log_synthetic(uri, out, c[6], 7, branch="feature"),
        "side-not-ancestor": log_synthetic(uri, out, history.side, 8),
        "other-config": log_synthetic(uri, out, c[6], 9, config="smoke"),
    }
    tag_run(uri, ids["c4-gate-failed"], {GATE_TAG: "failed"})
    return uri, ids


def test_auto_picks_the_nearest_comparable_ancestor_and_says_why_others_were_skipped(store, history):
    uri, ids = store
    candidate = synthetic_results(history.main[7], seed=10).metadata
    choice = auto_baseline(candidate, uri, repo=history.repo)
    assert choice.run is not None and choice.run.run_id == ids["c3"] and choice.distance == 4
    assert [r.run_id for r in choice.eligible] == [ids["c3"], ids["c2"]]
    why = {run.run_id: reason for run, reason in choice.skipped}
    assert "lock_sha256" in why[ids["c1-other-lock"]]
    assert why[ids["c4-gate-failed"]].startswith("its own gate failed")
    assert "device_model" in why[ids["c5-other-device"]]
    assert "evaluator" in why[ids["c6-other-evaluator"]]
    assert "branch feature" in why[ids["c6-feature-branch"]]
    assert "not an ancestor" in why[ids["side-not-ancestor"]]
    assert ids["other-config"] not in why  # another config's runs are never looked at
    assert "baseline: run " + ids["c3"][:8] in choice.describe()


def test_auto_finds_nothing_for_a_new_device_and_the_candidate_is_never_its_own_baseline(store, history):
    uri, ids = store
    candidate = synthetic_results(history.main[7], seed=10, device_model="cuda:NVIDIA B200").metadata
    assert auto_baseline(candidate, uri, repo=history.repo).run is None
    same = synthetic_results(history.main[3], seed=3).metadata
    assert auto_baseline(same, uri, repo=history.repo, exclude=[ids["c3"]]).run.run_id == ids["c2"]


def test_compare_auto_and_tag_refs_from_the_command_line(store, history, tmp_path, capsys):
    uri, ids = store
    candidate = synthetic_results(history.main[7], seed=3).save(tmp_path / "candidate")
    common = ["--tracking-uri", uri, "--git-repo", str(history.repo)]
    assert main(["compare", "auto", str(candidate), *common]) == 0
    out = capsys.readouterr().out
    assert f"baseline: run {ids['c3'][:8]}" in out and "Regression gate" in out
    regressed = synthetic_results(history.main[7], seed=3, wer=0.5).save(tmp_path / "regressed")
    assert main(["compare", "auto", str(regressed), *common]) == 3
    tag = f"tag:commit={history.main[2][:10]},branch=main"
    assert find_tagged(uri, tag).run_id == ids["c2"]
    assert main(["compare", tag, str(candidate), *common]) == 0
    lonely = synthetic_results(history.main[7], seed=3, config="new-config").save(tmp_path / "lonely")
    assert main(["compare", "auto", str(lonely), *common]) == 0
    assert main(["compare", "auto", str(lonely), *common, "--require-baseline"]) == 3
    assert "No baseline run qualifies" in capsys.readouterr().out


def test_noise_margins_widen_to_the_spread_of_recent_baselines(tmp_path, history):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for k, wer in enumerate((0.05, 0.15, 0.10, 0.20)):  # a noisy system: WER sd ~0.065 across runs
        log_synthetic(uri, tmp_path / "out", history.main[k], k, wer=wer)
    candidate = synthetic_results(history.main[7], seed=11).metadata
    choice = auto_baseline(candidate, uri, repo=history.repo)
    gate = GateConfig()
    lines = noise_margins(gate, choice, uri, runs=4)
    rule = next(r for r in gate.rules if r.metric == "wer.wer")
    assert rule.allowed_abs > 0.1 and "4 baseline runs" in gate.margin_notes["wer.wer"]
    assert any(line.startswith("wer.wer:") for line in lines)
    few = GateConfig()
    noise_margins(few, choice, uri, runs=2)
    assert next(r for r in few.rules if r.metric == "wer.wer").allowed_abs == 0.01
    assert "3 needed" in few.margin_notes["wer.wer"]
    assert len(list_runs(uri)) == 4


def test_an_accepted_run_becomes_a_baseline_although_its_gate_failed(store, history, capsys):
    uri, ids = store
    candidate = synthetic_results(history.main[7], seed=10).metadata
    assert auto_baseline(candidate, uri, repo=history.repo).run.run_id == ids["c3"]
    assert main(["accept", ids["c4-gate-failed"], "--tracking-uri", uri, "--reason", "WER for speed, PR 12"]) == 0
    assert "accepted run " + ids["c4-gate-failed"][:8] in capsys.readouterr().out
    choice = auto_baseline(candidate, uri, repo=history.repo)
    assert choice.run.run_id == ids["c4-gate-failed"] and choice.run.accepted == "WER for speed, PR 12"
    # by tag, too; an unknown run id is an error naming it
    assert main(["accept", f"tag:commit={history.main[2][:10]}", "--tracking-uri", uri, "--reason", "x"]) == 0
    with pytest.raises(LookupError, match="no benchmark run with that id"):
        main(["accept", "0" * 32, "--tracking-uri", uri, "--reason", "x"])
