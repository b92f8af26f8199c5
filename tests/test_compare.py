"""The regression gate (`bench.compare`) on toy results: known regressions, devices, pairing, config."""

from __future__ import annotations

import sys
import types

import numpy as np
import pandas as pd
import pytest

from bench.compare import (
    VERDICTS,
    ComparisonRow,
    GateConfig,
    GateConfigError,
    GateReport,
    MetricRule,
    compare,
    device_of,
    load_results,
)
from bench.results import Results
from bench.toy import toy_results

FLASH = ("flashspeech@1", "flashspeech@2", "flashspeech@4")
SYSTEMS = (*FLASH, "ground_truth")


@pytest.fixture(scope="module")
def baseline() -> Results:
    return toy_results()


def fresh(**kwargs) -> Results:
    return toy_results(**kwargs)


def row(report: GateReport, system: str, metric: str) -> ComparisonRow:
    return next(r for r in report.rows if r.system == system and r.metric == metric)


def test_identical_results_pass_with_every_metric_unchanged(baseline):
    report = compare(baseline, fresh())
    assert report.passed and not report.failures
    measured = [r for r in report.rows if r.verdict != "missing"]
    assert {r.verdict for r in measured} == {"unchanged"}
    assert {r.metric for r in measured} == {"wer.wer", "similarity.sim_o", "rtf.rtf", "generation.failed"}
    for system in SYSTEMS:
        wer = row(report, system, "wer.wer")
        assert wer.delta == 0 and wer.ci_low == 0 and wer.ci_high == 0 and wer.n_paired == 6
    # nobody measured SIM-r: reported as missing, which does not fail the gate
    assert {row(report, s, "similarity.sim_r").verdict for s in SYSTEMS} == {"missing"}
    assert row(report, "ground_truth", "rtf.rtf").verdict == "missing"  # ground truth has no timings
    assert all(r.verdict in VERDICTS for r in report.rows)
    assert not report.systems_only["baseline"] and not report.systems_only["candidate"]
    assert report.items_only == {"baseline": {}, "candidate": {}}
    assert "PASSED" in report.to_markdown()


def test_slower_candidate_regresses_rtf_on_the_same_device(baseline):
    report = compare(baseline, fresh(rtf_scale=1.5))
    assert not report.passed
    for system in FLASH:
        rtf = row(report, system, "rtf.rtf")
        assert rtf.verdict == "regressed" and rtf.fails
        assert rtf.rel_delta == pytest.approx(0.5)
        assert rtf.ci_low > rtf.allowed > 0  # the whole CI lies beyond the +10 % margin
        assert rtf.allowed == pytest.approx(0.1 * rtf.baseline)
    assert {r.metric for r in report.failures} == {"rtf.rtf"}
    markdown = report.to_markdown()
    assert "FAILED (3 failing)" in markdown and "**regressed**" in markdown


def test_a_slowdown_within_the_relative_margin_is_unchanged(baseline):
    report = compare(baseline, fresh(rtf_scale=1.05))
    assert report.passed
    assert {row(report, s, "rtf.rtf").verdict for s in FLASH} == {"unchanged"}
    faster = compare(baseline, fresh(rtf_scale=0.5))
    assert {row(faster, s, "rtf.rtf").verdict for s in FLASH} == {"improved"} and faster.passed


def test_rtf_on_different_devices_is_not_comparable_and_does_not_gate(baseline):
    candidate = fresh(rtf_scale=1.5)
    candidate.metadata["environment"] = {"device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3"}
    report = compare(baseline, candidate)
    assert report.passed
    for system in FLASH:
        rtf = row(report, system, "rtf.rtf")
        assert rtf.verdict == "not comparable" and not rtf.fails
        assert rtf.note == "different devices (cpu vs cuda:0 (NVIDIA H100 80GB HBM3))"
    assert "not comparable: different devices (cpu vs cuda:0 (NVIDIA H100 80GB HBM3))" in report.to_markdown()
    # WER and SIM do not depend on the device
    assert row(report, "flashspeech@1", "wer.wer").verdict == "unchanged"


def test_device_identity_ignores_the_index_but_not_the_gpu_model():
    h100 = {"environment": {"device": "cuda:0", "gpu": "NVIDIA H100"}}
    assert device_of(h100)[0] == device_of({"environment": {"device": "cuda:1", "gpu": "NVIDIA H100"}})[0]
    assert device_of(h100)[0] != device_of({"environment": {"device": "cuda:0", "gpu": "NVIDIA H200"}})[0]
    assert device_of({}) == (None, "device not recorded")


def test_unrecorded_device_makes_rtf_not_comparable(baseline):
    candidate = fresh(rtf_scale=1.5)
    candidate.metadata.pop("environment")
    report = compare(baseline, candidate)
    assert report.passed and row(report, "flashspeech@2", "rtf.rtf").verdict == "not comparable"


def test_clearly_higher_wer_regresses(baseline):
    candidate = fresh()
    candidate.items["wer.wer"] += 0.2
    report = compare(baseline, candidate)
    assert not report.passed
    for system in SYSTEMS:
        wer = row(report, system, "wer.wer")
        assert wer.verdict == "regressed" and wer.delta == pytest.approx(0.2)
        assert wer.ci_low == pytest.approx(0.2) and wer.allowed == 0.01
    assert {r.metric for r in report.failures} == {"wer.wer"}


def test_noise_level_changes_within_the_margin_do_not_regress(baseline):
    shifted, noisy = fresh(), fresh()
    shifted.items["wer.wer"] += 0.005  # half the +0.01 margin, on every item
    rng = np.random.default_rng(1)
    noisy.items["similarity.sim_o"] += rng.normal(0, 0.003, len(noisy.items))
    for candidate in (shifted, noisy):
        report = compare(baseline, candidate)
        assert report.passed
        assert all(r.verdict in ("unchanged", "missing") for r in report.rows)


def test_lower_similarity_regresses_and_higher_improves(baseline):
    worse, better = fresh(), fresh()
    worse.items["similarity.sim_o"] -= 0.05
    better.items["similarity.sim_o"] += 0.05
    assert row(compare(baseline, worse), "flashspeech@2", "similarity.sim_o").verdict == "regressed"
    improved = compare(baseline, better)
    assert improved.passed and row(improved, "flashspeech@2", "similarity.sim_o").verdict == "improved"


def test_extra_failed_generations_regress(baseline):
    candidate = fresh()
    failing = (candidate.items["system"] == "flashspeech@2") & (candidate.items["item_id"] == "item-03")
    candidate.items.loc[failing, "status"] = "failed"
    candidate.items.loc[failing, ["wer.wer", "similarity.sim_o", "rtf.rtf"]] = np.nan
    report = compare(baseline, candidate)
    failed = row(report, "flashspeech@2", "generation.failed")
    assert (failed.baseline, failed.candidate, failed.verdict) == (0, 2, "regressed")
    assert not report.passed and [r.metric for r in report.failures] == ["generation.failed"]
    assert row(report, "flashspeech@2", "wer.wer").n_paired == 5  # the failed item is not paired
    # and the other way round: the baseline's failure fixed in the candidate is an improvement
    reverse = compare(candidate, baseline)
    assert row(reverse, "flashspeech@2", "generation.failed").verdict == "improved" and reverse.passed


def test_score_failures_gate_when_asked(baseline):
    candidate = fresh()
    scored = candidate.items["status"] == "ok"
    candidate.items["wer.error"] = candidate.items["wer.error"].astype(object)
    candidate.items.loc[scored & (candidate.items["item_id"] == "item-02"), "wer.error"] = "ValueError: asr"
    config = GateConfig.from_dict({"metrics": {"wer.failed": {}}})
    assert config.rules[-1] == MetricRule("wer.failed", test="count")
    report = compare(baseline, candidate, config)
    assert row(report, "flashspeech@4", "wer.failed").verdict == "regressed" and not report.passed


def test_systems_and_items_on_one_side_only_are_reported(baseline):
    candidate = fresh()
    items = candidate.items
    items = items[items["system"] != "ground_truth"]  # dropped system
    items = items[~((items["system"] == "flashspeech@2") & (items["item_id"] == "item-05"))]  # dropped item
    extra = items[items["system"] == "flashspeech@4"].assign(system="flashspeech@8")  # new system
    extra_item = items[(items["system"] == "flashspeech@1") & (items["item_id"] == "item-05")]
    candidate.items = pd.concat([items, extra, extra_item.assign(item_id="item-99")], ignore_index=True)
    report = compare(baseline, candidate)
    assert report.systems_only == {"baseline": ["ground_truth"], "candidate": ["flashspeech@8"]}
    assert report.items_only == {
        "baseline": {"flashspeech@2": ["item-05"]},
        "candidate": {"flashspeech@1": ["item-99"]},
    }
    assert row(report, "flashspeech@2", "wer.wer").n_paired == 5
    assert row(report, "ground_truth", "(all)").verdict == "missing"
    assert row(report, "flashspeech@8", "(all)").note == "system only in the candidate"
    assert not report.passed and [(r.system, r.fails) for r in report.failures] == [("ground_truth", True)]
    markdown = report.to_markdown()
    assert "Systems only in the baseline: ground_truth" in markdown
    assert "flashspeech@2: 1 item(s) only in the baseline: item-05" in markdown
    assert compare(baseline, candidate, GateConfig(fail_on_missing=False)).passed


def test_a_metric_the_candidate_stopped_measuring_fails(baseline):
    candidate = fresh()
    candidate.items = candidate.items.drop(columns=["similarity.sim_o"])
    report = compare(baseline, candidate)
    sim = row(report, "flashspeech@1", "similarity.sim_o")
    assert (sim.verdict, sim.note, sim.fails) == ("missing", "not measured in the candidate", True)
    new = compare(candidate, baseline)
    assert row(new, "flashspeech@1", "similarity.sim_o").note == "new in the candidate (no baseline)" and new.passed


def test_the_bootstrap_is_deterministic_given_the_seed(baseline):
    candidate = fresh()
    candidate.items["wer.wer"] += np.random.default_rng(3).normal(0, 0.02, len(candidate.items))
    first, again = compare(baseline, candidate).to_frame(), compare(baseline, candidate).to_frame()
    pd.testing.assert_frame_equal(first, again)
    other = compare(baseline, candidate, GateConfig(seed=1)).to_frame()
    wer = first["metric"] == "wer.wer"
    assert not np.allclose(first.loc[wer, "ci_low"], other.loc[wer, "ci_low"])
    assert np.allclose(first.loc[wer, "delta"], other.loc[wer, "delta"])


def test_mann_whitney_option(baseline):
    config = GateConfig.from_dict({"metrics": {"wer.wer": {"test": "mannwhitney"}}})
    worse = fresh()
    worse.items["wer.wer"] += 0.2
    report = compare(baseline, worse, config)
    for system in SYSTEMS:
        wer = row(report, system, "wer.wer")
        assert wer.test == "mannwhitney" and wer.verdict == "regressed" and wer.p_value < 0.05
    same = compare(baseline, fresh(), config)
    assert same.passed and row(same, "flashspeech@1", "wer.wer").p_value > 0.05
    assert "p = " in report.to_markdown()


def test_direction_comes_from_the_results_unless_overridden(baseline):
    candidate = fresh()
    candidate.items["wer.wer"] += 0.2
    report = compare(baseline, candidate)
    assert row(report, "flashspeech@1", "wer.wer").higher_is_better is False  # from the suite registry
    assert row(report, "flashspeech@1", "similarity.sim_o").higher_is_better is True  # from the aggregates
    flipped = GateConfig.from_dict({"metrics": {"wer.wer": {"higher_is_better": True}}})
    assert row(compare(baseline, candidate, flipped), "flashspeech@1", "wer.wer").verdict == "improved"


def test_gate_config_from_toml(tmp_path):
    path = tmp_path / "gate.toml"
    path.write_text(
        '[gate]\nalpha = 0.01\nresamples = 500\n\n[gate.metrics."wer.wer"]\nallowed_abs = 0.02\n\n'
        '[gate.metrics."rtf.rtfx"]\nallowed_rel = 0.2\nsame_device = true\ngate = false\n\n'
        '[gate.metrics]\n"similarity.sim_r" = false\n',
        encoding="utf-8",
    )
    config = GateConfig.from_toml(path)
    assert (config.alpha, config.resamples) == (0.01, 500)
    metrics = [r.metric for r in config.rules]
    assert metrics == ["wer.wer", "similarity.sim_o", "rtf.rtf", "generation.failed", "rtf.rtfx"]
    assert config.rules[0].allowed_abs == 0.02 and config.rules[0].test == "bootstrap"
    assert config.rules[-1].gate is False
    assert [r.metric for r in GateConfig.from_dict({"defaults": False}).rules] == []
    for bad in ({"alpah": 0.1}, {"metrics": {"wer.wer": {"treshold": 1}}}, {"alpha": 2}):
        with pytest.raises(GateConfigError):
            GateConfig.from_dict(bad)
    with pytest.raises(GateConfigError):
        MetricRule("wer.wer", test="count")
    with pytest.raises(GateConfigError):
        MetricRule("wer.wer", allowed_abs=-0.01)


def test_non_gating_rule_is_reported_but_never_fails(baseline):
    config = GateConfig(rules=[MetricRule("rtf.rtf", allowed_rel=0.1, same_device=True, gate=False)])
    report = compare(baseline, fresh(rtf_scale=1.5), config)
    assert report.passed and row(report, "flashspeech@1", "rtf.rtf").verdict == "regressed"
    assert "(not gating)" in report.to_markdown()


def test_to_frame_has_one_row_per_system_and_metric(baseline):
    frame = compare(baseline, fresh()).to_frame()
    assert len(frame) == len(SYSTEMS) * 5
    assert {"system", "metric", "baseline", "candidate", "delta", "ci_low", "ci_high", "p_value", "n_paired"} <= set(
        frame.columns
    )
    assert {"verdict", "fails", "allowed", "note"} <= set(frame.columns)


def test_load_results_from_a_directory_and_from_mlflow(tmp_path, baseline, monkeypatch):
    baseline.save(tmp_path / "base")
    fresh(rtf_scale=1.5).save(tmp_path / "cand")
    loaded = load_results(tmp_path / "base")
    assert compare(baseline, loaded).passed
    assert not compare(loaded, load_results(str(tmp_path / "cand"))).passed  # RTF regression survives the CSVs
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "nowhere")
    calls = []
    fake = types.ModuleType("bench.tracking")
    fake.load_run_results = lambda run_id, uri=None: calls.append((run_id, uri)) or baseline
    monkeypatch.setitem(sys.modules, "bench.tracking", fake)
    assert load_results("0123abcd" * 4, uri="sqlite:///mlflow.db") is baseline
    assert calls == [("0123abcd" * 4, "sqlite:///mlflow.db")]
