"""The regression gate (`bench.gate.compare`) on toy results: known regressions, devices, pairing, config."""

from __future__ import annotations

import copy
import functools
import sys
import types
from dataclasses import asdict, fields

import numpy as np
import pandas as pd
import pytest

from bench.gate.compare import VERDICTS, ComparisonRow, GateReport, compare, load_results, timing_device
from bench.gate.rules import GateConfig, GateConfigError, MetricRule
from bench.gate.run import GateOptions, GateOutcome, check_baseline, gate
from bench.gate.significance import ShiftTest
from bench.record import Device, RunRecord
from bench.results import Results
from suites.base import ItemScore, evaluator_fingerprint
from suites.rtf import RtfSuite
from suites.wer.suite import WerSuite
from tests.fixtures.toy import toy_results

FLASH = ("flashspeech@1", "flashspeech@2", "flashspeech@4")
SYSTEMS = (*FLASH, "ground_truth")
N_ITEMS = 48  # two items per speaker: 24 speaker clusters, above the default min_paired (20)
SUITE_FAILURES = ("wer.failed", "similarity.failed", "rtf.failed")  # a failure rule per suite in the results


@functools.cache
def _toy(n_items: int, rtf_scale: float) -> Results:
    """Toy results with 2 items per speaker and timing provenance: each sample timed alone, in this run."""
    results = toy_results(n_items=n_items, rtf_scale=rtf_scale)
    items = results.items
    items["speaker"] = "spk" + (number(items) // 2).astype(str)
    timed = items["rtf.rtf"].notna()
    items["batch_id"] = (items["system"] + "/" + items["item_id"] + "/" + items["seed"].astype(str)).where(timed)
    items["timing_source"] = np.where(timed, "this run", None)
    items["contended"] = np.where(timed, False, None)
    return results


def fresh(n_items: int = N_ITEMS, rtf_scale: float = 1.0) -> Results:
    toy = _toy(n_items, rtf_scale)
    return Results(toy.items.copy(), toy.groups.copy(), toy.aggregates.copy(), copy.deepcopy(toy.metadata))


def number(items: pd.DataFrame) -> pd.Series:
    """The toy item's index: item-07 -> 7."""
    return items["item_id"].str[5:].astype(int)


@pytest.fixture(scope="module")
def baseline() -> Results:
    return fresh()


def on_device(results: Results, name: str, model: str | None = None) -> Results:
    """Record `results` as generated and timed on `name` (its model: a GPU's name, a CPU's model)."""
    results.metadata["record"]["device"] = Device(name, model=model, torch="toy").to_dict()
    return results


def row(report: GateReport, system: str, metric: str) -> ComparisonRow:
    return next(r for r in report.rows if r.system == system and r.metric == metric)


def to_frame(report: GateReport) -> pd.DataFrame:
    """The report's rows as a table, one column per `ComparisonRow` field."""
    return pd.DataFrame([asdict(r) for r in report.rows], columns=[f.name for f in fields(ComparisonRow)])


def test_identical_results_pass_with_every_metric_unchanged(baseline):
    report = compare(baseline, fresh())
    assert report.passed and not report.failures
    measured = [r for r in report.rows if r.verdict != "missing"]
    assert {r.verdict for r in measured} == {"unchanged"}
    expected = {"wer.wer", "wer.wer_corpus", "similarity.sim_o", "rtf.rtf", "generation.failed", *SUITE_FAILURES}
    assert {r.metric for r in measured} == expected
    for system in SYSTEMS:
        wer = row(report, system, "wer.wer")
        assert wer.delta == 0 and wer.ci_low == 0 and wer.ci_high == 0 and wer.n_paired == N_ITEMS
        assert wer.n_clusters == N_ITEMS // 2 and wer.p_value == 1.0
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
        assert rtf.ci_low > rtf.allowed > 0  # the whole CI lies beyond the margin
        # two CPU-timed runs: the CPU noise floor (40 %) instead of the rule's 10 %, and the row says so
        assert rtf.allowed == pytest.approx(0.4 * rtf.baseline) and "the CPU noise floor" in rtf.note
    assert {r.metric for r in report.failures} == {"rtf.rtf"}
    markdown = report.to_markdown()
    assert "FAILED (3 failing)" in markdown and "**regressed**" in markdown


def test_the_cpu_timing_floor_applies_to_cpu_pairs_only_and_can_be_turned_off(baseline):
    slower = fresh(rtf_scale=1.3)
    assert row(compare(baseline, slower), "flashspeech@1", "rtf.rtf").verdict == "unchanged"  # within 40 %
    plain = row(compare(baseline, slower, GateConfig(cpu_timing_rel=None)), "flashspeech@1", "rtf.rtf")
    assert plain.verdict == "regressed" and plain.allowed == pytest.approx(0.1 * plain.baseline)
    gpu_b, gpu_c = fresh(), fresh(rtf_scale=1.3)
    for results in (gpu_b, gpu_c):
        on_device(results, "cuda:0", "NVIDIA H100 80GB HBM3")
    assert row(compare(gpu_b, gpu_c), "flashspeech@1", "rtf.rtf").verdict == "regressed"  # GPUs: the rule's 10 %
    with pytest.raises(GateConfigError, match="cpu_timing_rel"):
        GateConfig.from_dict({"cpu_timing_rel": "40 %"})


def test_a_slowdown_within_the_relative_margin_is_unchanged(baseline):
    report = compare(baseline, fresh(rtf_scale=1.05))
    assert report.passed
    assert {row(report, s, "rtf.rtf").verdict for s in FLASH} == {"unchanged"}
    faster = compare(baseline, fresh(rtf_scale=0.5))
    assert {row(faster, s, "rtf.rtf").verdict for s in FLASH} == {"improved"} and faster.passed


def test_rtf_on_different_devices_is_not_comparable_and_fails_closed_unless_allowed(baseline):
    candidate = fresh(rtf_scale=1.5)
    on_device(candidate, "cuda:0", "NVIDIA H100 80GB HBM3")
    report = compare(baseline, candidate)
    assert not report.passed and {r.metric for r in report.failures} == {"rtf.rtf"}
    for system in FLASH:
        rtf = row(report, system, "rtf.rtf")
        assert rtf.verdict == "not comparable" and rtf.fails
        assert rtf.note.startswith("different devices (cpu vs cuda:0 (NVIDIA H100 80GB HBM3)); a gating metric")
    assert "not comparable**: different devices (cpu vs cuda:0 (NVIDIA H100 80GB HBM3))" in report.to_markdown()
    assert "--allow-incomparable" in report.to_markdown()
    # WER and SIM do not depend on the device
    assert row(report, "flashspeech@1", "wer.wer").verdict == "unchanged"
    # an explicit allowance passes, and says so
    allowed = compare(baseline, candidate, GateConfig(allow_incomparable=["rtf.rtf"]))
    assert allowed.passed and "allowed (--allow-incomparable)" in row(allowed, "flashspeech@1", "rtf.rtf").note
    assert compare(baseline, candidate, GateConfig(allow_incomparable=["*"])).passed


def test_timing_device_ignores_the_index_but_not_the_gpu_model_and_cpu_runs_compare_across_cpu_models():
    h100 = Device("cuda:0", model="NVIDIA H100", torch="2")
    assert timing_device(h100) == timing_device(Device("cuda:1", model="NVIDIA H100", torch="2")) == "cuda|NVIDIA H100"
    assert timing_device(h100) != timing_device(Device("cuda:0", model="NVIDIA H200", torch="2"))
    epyc, xeon = Device("cpu", model="AMD EPYC 7B13", torch="2"), Device("cpu", model="Intel Xeon", torch="2")
    assert timing_device(epyc) == timing_device(xeon) == "cpu|" and epyc.identity != xeon.identity
    assert timing_device(RunRecord.of({}).device) is None  # not recorded
    # a run written before the typed record: its environment's device
    legacy = RunRecord.of({"environment": {"device": "cuda:1", "gpu": "NVIDIA H100", "torch": "2"}}).device
    assert timing_device(legacy) == timing_device(h100)


def test_unrecorded_device_makes_rtf_not_comparable(baseline):
    candidate = fresh(rtf_scale=1.5)
    for written in ("environment", "record"):  # a run that recorded no device
        candidate.metadata.pop(written)
    report = compare(baseline, candidate)
    assert not report.passed and row(report, "flashspeech@2", "rtf.rtf").verdict == "not comparable"
    assert {r.metric for r in report.failures} == {"rtf.rtf"}


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
    assert row(report, "flashspeech@2", "wer.wer").n_paired == N_ITEMS - 1  # the failed item is not paired
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


def flagged(results: Results, metric: str, ids: dict[str, list[str]]) -> Results:
    """A 0/1 flag column `metric` for every scored sample: 1 for the listed item ids (both seeds) of each system;
    a defects suite gets its error column and its recorded evaluator."""
    items = results.items
    suite = metric.split(".")[0]
    scored = (items["status"] == "ok") & items.reindex(columns=[f"{suite}.error"]).iloc[:, 0].isna()
    items[metric] = np.where(scored, 0.0, np.nan)
    for system, listed in ids.items():
        items.loc[scored & (items["system"] == system) & items["item_id"].isin(listed), metric] = 1.0
    if suite == "defects":
        items["defects.error"] = None
        results.metadata["suites"]["defects"] = {"suite": "defects", "thresholds": {"long_silence_s": 1.0}}
    return results


def test_more_defective_samples_fail_the_gate(baseline):
    base = flagged(fresh(), "defects.defective", {"flashspeech@2": ["item-01"], "flashspeech@4": ["item-02"]})
    more = {"flashspeech@2": ["item-01", "item-04", "item-07"], "flashspeech@4": ["item-02"]}
    cand = flagged(fresh(), "defects.defective", more)
    report = compare(base, cand)
    defective = row(report, "flashspeech@2", "defects.defective")
    assert (defective.baseline, defective.candidate, defective.delta) == (2, 6, 4)  # two seeds per item
    assert (defective.test, defective.verdict, defective.allowed) == ("count", "regressed", 0)
    assert defective.fails and defective.note == f"over {2 * N_ITEMS} samples scored in both"
    assert row(report, "flashspeech@4", "defects.defective").verdict == "unchanged"
    assert row(report, "flashspeech@1", "defects.defective").n_paired == N_ITEMS  # its failed generation: not scored
    assert not report.passed and [r.metric for r in report.failures] == ["defects.defective"]
    assert row(report, "flashspeech@2", "defects.failed").verdict == "unchanged"  # the suite's own failure rule
    assert report.comparisons == 15  # counted, outside the Holm family
    reverse = compare(cand, base)
    assert reverse.passed and row(reverse, "flashspeech@2", "defects.defective").verdict == "improved"
    margin = GateConfig.from_dict({"metrics": {"defects.defective": {"allowed_abs": 4}}})
    assert compare(base, cand, margin).passed
    assert compare(base, cand, GateConfig.from_dict({"metrics": {"defects.defective": False}})).passed
    # a run without the defects suite: reported as not measured, never failing
    assert compare(baseline, fresh()).passed
    assert row(compare(baseline, fresh()), "flashspeech@2", "defects.defective").verdict == "missing"


def test_new_asr_hallucinations_fail_the_gate(baseline):
    base = flagged(fresh(), "wer.hallucination", {})
    cand = flagged(fresh(), "wer.hallucination", {"flashspeech@1": ["item-05"]})
    report = compare(base, cand)
    hallucination = row(report, "flashspeech@1", "wer.hallucination")
    assert (hallucination.baseline, hallucination.candidate, hallucination.verdict) == (0, 2, "regressed")
    assert not report.passed and [r.metric for r in report.failures] == ["wer.hallucination"]
    assert GateConfig().rules[-1] == MetricRule("wer.hallucination", test="count", allowed_abs=0.0)
    with pytest.raises(GateConfigError, match="flags"):
        MetricRule("wer.insertions", test="count")
    with pytest.raises(GateConfigError, match="not a ratio"):
        MetricRule("defects.defective", test="count", numerator=("defective",), denominator="scored")


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
    assert row(report, "flashspeech@2", "wer.wer").n_paired == N_ITEMS - 1
    assert row(report, "ground_truth", "(all)").verdict == "missing"
    assert row(report, "flashspeech@8", "(all)").note == "system only in the candidate"
    # a lost system and a lost item fail (a shrunken test set must not pass as "better")
    lost = row(report, "flashspeech@2", "testset.items")
    assert (lost.verdict, lost.baseline, lost.candidate, lost.fails) == ("regressed", N_ITEMS, N_ITEMS - 1, True)
    assert "1 item(s) of the baseline missing in the candidate: item-05" in lost.note
    failures = [(r.system, r.metric) for r in report.failures]
    assert not report.passed and failures == [("flashspeech@2", "testset.items"), ("ground_truth", "(all)")]
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
    first, again = to_frame(compare(baseline, candidate)), to_frame(compare(baseline, candidate))
    pd.testing.assert_frame_equal(first, again)
    other = to_frame(compare(baseline, candidate, GateConfig(seed=1)))
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
    assert metrics == [
        *("wer.wer", "wer.wer_corpus", "similarity.sim_o", "rtf.rtf", "generation.failed"),
        *("defects.defective", "wer.hallucination", "rtf.rtfx"),
    ]
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
    frame = to_frame(compare(baseline, fresh()))
    assert len(frame) == len(SYSTEMS) * (len(GateConfig().rules) + len(SUITE_FAILURES))
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


def test_ratio_rules_read_the_ratios_the_suites_declare():
    rules = {r.metric: r for r in GateConfig().rules}
    for suite, name in ((WerSuite, "wer_corpus"), (RtfSuite, "rtf")):
        ratio = suite.ratios[name]
        rule = rules[f"{suite.name}.{name}"]
        assert (rule.numerator, rule.denominator) == (ratio.numerator, ratio.denominator)
        assert rule.columns() == ([f"{suite.name}.{c}" for c in ratio.numerator], f"{suite.name}.{ratio.denominator}")
    # the suites' aggregates are the declared ratios of their rows' sums
    rows = [
        {"wer": 0.5, "substitutions": 1.0, "deletions": 0.0, "insertions": 1.0, "ref_words": 4.0, "hyp_words": 5.0},
        {"wer": 0.1, "substitutions": 0.0, "deletions": 1.0, "insertions": 0.0, "ref_words": 10.0, "hyp_words": 9.0},
    ]
    scores = [ItemScore("wer", "s", f"i{k}", 0, metrics=r) for k, r in enumerate(rows)]
    wer = WerSuite.__new__(WerSuite)  # no backend: only `aggregate`
    assert wer.aggregate(scores)["wer_corpus"] == WerSuite.ratios["wer_corpus"].of(rows) == 3 / 14
    timed = [{"time_s": 0.3, "audio_s": 1.0, "rtf": 0.3}, {"time_s": 0.5, "audio_s": 2.0, "rtf": 0.25}]
    scores = [ItemScore("rtf", "s", f"i{k}", 0, metrics=r) for k, r in enumerate(timed)]
    assert RtfSuite().aggregate(scores)["rtf"] == RtfSuite.ratios["rtf"].of(timed) == 0.8 / 3.0


def test_one_gate_resolves_compares_emits_and_tags(tmp_path, baseline, monkeypatch):
    """`run --gate` and `compare` both call `bench.gate.run.gate`: a results directory as the baseline, the report
    emitted to its file and the CI summary; no store: nothing is tagged."""
    baseline.save(tmp_path / "base")
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    options = GateOptions(report_path=str(tmp_path / "gate.md"), candidate_label="this run")
    outcome = gate(fresh(rtf_scale=1.5), str(tmp_path / "base"), options)
    assert outcome.baseline == str(tmp_path / "base") and outcome.passed is False and outcome.exit_status() == 3
    assert outcome.report.candidate_label == "this run"
    assert (tmp_path / "gate.md").read_text() == summary.read_text() == outcome.report.to_markdown() + "\n"
    assert GateOutcome(None).exit_status() == 0 and GateOutcome(None).exit_status(require_baseline=True) == 3
    with pytest.raises(ValueError, match="needs a tracking store"):
        gate(baseline, "auto", GateOptions())
    with pytest.raises(FileNotFoundError):
        check_baseline(str(tmp_path / "nowhere"))
    check_baseline("auto")


def test_items_the_candidate_cannot_score_fail_the_gate_by_default():
    """60 items; the candidate's 10 hardest come out empty and cannot be scored: WER over the rest is unchanged."""
    base, candidate = fresh(n_items=60), fresh(n_items=60)
    items = candidate.items
    hardest = number(items).ge(50) & items["status"].eq("ok")
    items["wer.error"] = items["wer.error"].astype(object)
    items.loc[hardest, "wer.error"] = "ValueError: generated audio is empty"
    items.loc[hardest, [c for c in items.columns if c.startswith("wer.") and c != "wer.error"]] = np.nan
    report = compare(base, candidate)
    assert not report.passed
    for system in SYSTEMS:
        failed = row(report, system, "wer.failed")
        assert (failed.verdict, failed.fails, failed.candidate - failed.baseline) == ("regressed", True, 20)
        assert row(report, system, "wer.wer").verdict == "unchanged"  # all the old gate looked at
    assert {r.metric for r in report.failures} == {"wer.failed"}


def test_every_suite_with_an_error_column_gets_a_failure_rule():
    base, candidate = fresh(), fresh()
    for results in (base, candidate):
        results.metadata["suites"]["prosody"] = {"suite": "prosody", "backend": "toy"}
        results.items["prosody.error"] = None
        results.items["prosody.f0_rmse"] = np.where(results.items["status"] == "ok", 1.0, np.nan)
    items = candidate.items
    items.loc[(items["system"] == "flashspeech@2") & (number(items) == 7) & (items["seed"] == 0), "prosody.error"] = (
        "ValueError: no voiced frames"
    )
    report = compare(base, candidate)
    prosody = row(report, "flashspeech@2", "prosody.failed")
    assert (prosody.baseline, prosody.candidate, prosody.verdict, prosody.fails) == (0, 1, "regressed", True)
    assert [r.metric for r in report.failures] == ["prosody.failed"]
    # a failure rule is dropped, relaxed or made non-gating like any other rule
    assert compare(base, candidate, GateConfig.from_dict({"metrics": {"prosody.failed": False}})).passed
    assert compare(base, candidate, GateConfig.from_dict({"metrics": {"prosody.failed": {"allowed_abs": 1}}})).passed
    assert compare(base, candidate, GateConfig.from_dict({"metrics": {"prosody.failed": {"gate": False}}})).passed
    without = compare(base, candidate, GateConfig(failure_rules=False))
    assert {r.metric for r in without.rows if r.metric.endswith(".failed")} == {"generation.failed"}


def _move_word_errors(results: Results) -> None:
    """The candidate truncates long utterances (3 more deleted words on each of the 24 longest items) and gets the
    short ones right: the mean of per-item WERs hardly moves (a short item weighs as much as a long one), the
    corpus WER of the reports rises."""
    items = results.items
    scored = items["wer.wer"].notna()
    long_items = number(items) >= N_ITEMS // 2
    items.loc[scored & long_items, "wer.deletions"] += 3
    items.loc[scored & ~long_items, "wer.substitutions"] = 0
    errors = items[["wer.substitutions", "wer.deletions", "wer.insertions"]].sum(axis=1)
    items.loc[scored, "wer.wer"] = errors[scored] / items.loc[scored, "wer.ref_words"]


def test_corpus_wer_gates_with_a_paired_ratio_bootstrap():
    base, candidate = fresh(), fresh()
    for results in (base, candidate):  # each speaker reads a short item i and a long item i + 24
        results.items["speaker"] = "spk" + (number(results.items) % (N_ITEMS // 2)).astype(str)
    _move_word_errors(candidate)
    report = compare(base, candidate)
    agg = base.aggregates.set_index(["system", "suite", "metric"])["value"]
    for system in SYSTEMS:
        corpus = row(report, system, "wer.wer_corpus")
        assert corpus.baseline == pytest.approx(agg[(system, "wer", "wer_corpus")])  # the reports' statistic
        assert corpus.verdict == "regressed" and corpus.ci_low > corpus.allowed == 0.01 and corpus.fails
    for system in FLASH:  # the mean of per-item WERs alone let it through
        mean = row(report, system, "wer.wer")
        assert mean.verdict == "unchanged" and abs(mean.delta) < 0.01
    assert {(r.system, r.metric) for r in report.failures} == {
        *((s, "wer.wer_corpus") for s in SYSTEMS),
        ("ground_truth", "wer.wer"),
    }


def test_rtf_gates_on_the_reports_statistic(baseline):
    report = compare(baseline, fresh(rtf_scale=1.5))
    agg = baseline.aggregates.set_index(["system", "suite", "metric"])["value"]
    for system in FLASH:
        rtf = row(report, system, "rtf.rtf")
        assert rtf.baseline == pytest.approx(agg[(system, "rtf", "rtf")])  # Σ time / Σ audio, not a mean of ratios
        assert rtf.candidate == pytest.approx(1.5 * rtf.baseline) and rtf.n_clusters == N_ITEMS


def test_timings_without_provenance_are_not_comparable(baseline):
    candidate = fresh(rtf_scale=1.5)
    candidate.items = candidate.items.drop(columns=["batch_id", "timing_source", "contended"])
    report = compare(baseline, candidate)
    assert not report.passed and {r.metric for r in report.failures} == {"rtf.rtf"}  # fails closed
    for system in FLASH:
        rtf = row(report, system, "rtf.rtf")
        assert rtf.verdict == "not comparable" and rtf.note.startswith("timing provenance not recorded (candidate);")
    # results from before the runner recorded provenance (the columns empty): the same
    old = compare(toy_results(), toy_results(rtf_scale=1.5))
    assert row(old, "flashspeech@1", "rtf.rtf").note.startswith("timing provenance not recorded (baseline, candidate)")


def test_borrowed_and_contended_timings_never_gate(baseline):
    cached = fresh(rtf_scale=1.5)
    cached.items.loc[cached.items["rtf.rtf"].notna(), "timing_source"] = "cache"
    report = compare(baseline, cached)
    rtf = row(report, "flashspeech@2", "rtf.rtf")
    # nothing of this run's speed to compare: the gating RTF row fails closed, unless explicitly allowed
    assert not report.passed and rtf.verdict == "not comparable" and rtf.fails
    assert rtf.note.startswith("no timing left to compare; excluded: candidate 96 (96 from the cache)")
    assert compare(baseline, cached, GateConfig(allow_incomparable=["rtf.rtf"])).passed
    # slow only while the machine was busy: those samples are left out, the rest are as fast as before
    busy = fresh()
    items = busy.items
    seed0 = items["rtf.rtf"].notna() & (items["seed"] == 0)
    items.loc[seed0, ["rtf.time_s", "rtf.rtf"]] *= 3
    items.loc[seed0, "contended"] = True
    report = compare(baseline, busy)
    assert report.passed
    for system in FLASH:
        rtf = row(report, system, "rtf.rtf")
        assert rtf.verdict == "unchanged" and rtf.delta == 0 and rtf.n_paired == N_ITEMS
        assert rtf.note.startswith("excluded: candidate") and "contended" in rtf.note


def test_samples_timed_in_one_batch_are_resampled_together():
    base, candidate = fresh(), fresh(rtf_scale=1.5)
    for results in (base, candidate):
        items = results.items
        timed = items["rtf.rtf"].notna()
        batch = items["system"] + "#" + (number(items) // 4).astype(str) + "/" + items["seed"].astype(str)
        items.loc[timed, "batch_id"] = batch[timed]
    report = compare(base, candidate)
    rtf = row(report, "flashspeech@1", "rtf.rtf")
    # 12 batch clusters < min_paired: the sign-flip test swaps whole batches (exact over 2^12 swaps)
    assert (rtf.verdict, rtf.n_paired, rtf.n_clusters) == ("regressed", N_ITEMS, N_ITEMS // 4)
    assert "paired sign-flip test over 12 batch clusters (exact over all 2^12 label swaps)" in rtf.note
    assert rtf.p_raw == pytest.approx(2 * 2.0**-12)
    assert row(report, "flashspeech@1", "wer.wer").n_clusters == N_ITEMS // 2  # quality metrics: speakers
    few = row(compare(base, candidate, GateConfig(min_flip_units=13)), "flashspeech@1", "rtf.rtf")
    assert (few.verdict, few.fails) == ("not comparable", True)
    assert few.note.startswith("only 12 batch clusters (at least 13 needed to test)")


def test_few_speakers_use_the_sign_flip_test_over_items():
    """10 speakers (< min_paired 20), 48 items: a paired sign-flip test over the items (Monte Carlo above 16
    items), conditional on this test set's voices (said in the note); too few items is not comparable and fails."""
    base, candidate = fresh(), fresh()
    candidate.items["wer.wer"] += 0.2
    for results in (base, candidate):
        results.items["speaker"] = "spk" + (number(results.items) % 10).astype(str)
    report = compare(base, candidate)
    wer = row(report, "flashspeech@1", "wer.wer")
    assert (wer.verdict, wer.n_paired, wer.n_clusters, wer.fails) == ("regressed", N_ITEMS, 10, True)
    assert "sign-flip test over 48 items (10000 random label swaps)" in wer.note and "not for new ones" in wer.note
    same = row(compare(base, fresh()), "flashspeech@1", "wer.wer")
    assert same.verdict == "unchanged"
    few = row(compare(base, candidate, GateConfig(min_flip_units=N_ITEMS + 1)), "flashspeech@1", "wer.wer")
    assert (few.verdict, few.fails) == ("not comparable", True)
    assert few.note.startswith(f"only {N_ITEMS} items (at least {N_ITEMS + 1} needed to test)")
    with pytest.raises(GateConfigError):
        GateConfig.from_dict({"min_paired": 1})


def test_texts_read_by_several_speakers_join_their_clusters():
    base, candidate = fresh(), fresh()
    for results in (base, candidate):  # item i and item i + 24 read the same text (speakers i // 2, 12 + i // 2)
        results.items["text"] = "sentence " + (number(results.items) % (N_ITEMS // 2)).astype(str)
    wer = row(compare(base, candidate), "flashspeech@4", "wer.wer")
    assert (wer.verdict, wer.n_clusters) == ("unchanged", N_ITEMS // 4)
    assert "sign-flip test over 48 items" in wer.note


def test_holm_adjusts_over_every_gating_comparison(baseline):
    """A borderline WER rise on one system: significant alone, not once the family of comparisons is counted."""
    candidate = fresh()
    items = candidate.items
    mine = items["system"] == "flashspeech@2"
    noise = np.random.default_rng(7).normal(0, 0.035, mine.sum())
    items.loc[mine, "wer.wer"] += 0.022 + noise
    report = compare(baseline, candidate)
    assert report.comparisons == 15  # WER, corpus WER, SIM-o for 4 systems; RTF for 3
    wer = row(report, "flashspeech@2", "wer.wer")
    assert wer.p_raw < 0.05 < wer.p_value and wer.p_value == pytest.approx(15 * wer.p_raw)
    assert wer.ci_low > wer.allowed  # the unadjusted interval alone would call it a regression
    # beyond the margin but not significant after Holm: reported as worse, never as unchanged, and not failing
    assert wer.verdict == "worse (not significant)" and not wer.fails and report.passed
    assert "Holm-adjusted over 15 comparisons, family-wise α = 0.05" in report.to_markdown()
    alone = GateConfig(rules=[MetricRule("wer.wer", allowed_abs=0.01)], failure_rules=False)
    base, cand = fresh(), candidate
    for results in (base, cand):
        results.items = results.items[results.items["system"] == "flashspeech@2"]
    just_one = compare(base, cand, alone)
    assert just_one.comparisons == 1 and row(just_one, "flashspeech@2", "wer.wer").verdict == "regressed"


def test_mann_whitney_reports_the_hodges_lehmann_shift_with_its_moses_interval(baseline):
    config = GateConfig.from_dict({"metrics": {"wer.wer": {"test": "mannwhitney"}}})
    candidate = fresh()
    candidate.items["wer.wer"] += np.random.default_rng(5).normal(0.05, 0.02, len(candidate.items))
    report = compare(baseline, candidate, config)

    def per_item(results: Results) -> np.ndarray:
        items = results.items[(results.items["system"] == "flashspeech@2") & results.items["wer.error"].isna()]
        return items.dropna(subset=["wer.wer"]).groupby("item_id")["wer.wer"].mean().to_numpy()

    wer, test = row(report, "flashspeech@2", "wer.wer"), ShiftTest.of(per_item(baseline), per_item(candidate))
    assert wer.delta == pytest.approx(test.shift) and (wer.ci_low, wer.ci_high) == pytest.approx(test.ci(0.95))
    assert wer.effect_size == pytest.approx(test.rank_biserial) and wer.effect_size > 0.5
    assert wer.p_raw == pytest.approx(2 * test.p_greater(0.01))
    assert wer.verdict == "regressed" and wer.ci_low > wer.allowed
    assert "r = +" in report.to_markdown()
    with pytest.raises(GateConfigError):
        MetricRule("wer.wer_corpus", numerator=("substitutions",), denominator="ref_words", test="mannwhitney")


def test_evaluator_fingerprint_keeps_what_changes_scores():
    description = {
        "suite": "wer",
        "backend": "whisper",
        "model_path": "/cache/tiny.en.pt",
        "sha256": "ab" * 32,
        "device": "cpu",
        "batch_size": 8,
        "decoding": {"temperature": 0.0, "fp16": False},
        "embedder": {"weights": "/site-packages/pretrained.pt", "weights_sha256": "cd" * 32, "device": "cpu"},
        "environment": {"torch_threads": 2},
    }
    fingerprint = evaluator_fingerprint(description)
    parts = fingerprint["parts"]
    assert parts == {
        "suite": "wer",
        "backend": "whisper",
        "sha256": "ab" * 32,
        "decoding.temperature": 0.0,
        "decoding.fp16": False,
        "embedder.weights_sha256": "cd" * 32,
    }
    assert len(fingerprint["digest"]) == 16
    moved = {**description, "model_path": "/elsewhere/tiny.en.pt", "device": "cuda:0", "batch_size": 64}
    assert evaluator_fingerprint(moved)["digest"] == fingerprint["digest"]
    assert evaluator_fingerprint({**description, "sha256": "ef" * 32})["digest"] != fingerprint["digest"]
    assert evaluator_fingerprint({**description, "decoding": {"temperature": 0.2, "fp16": False}}) != fingerprint
    # a path is all that identifies a file without a checksum: it stays
    assert "checkpoint" in evaluator_fingerprint({"backend": "wavlm-tdnn", "checkpoint": "/m/wavlm.pth"})["parts"]


def test_a_changed_evaluator_is_not_comparable_and_fails(baseline):
    base, candidate = fresh(), fresh()
    base.metadata["suites"]["wer"]["sha256"] = "abc123" * 10
    candidate.metadata["suites"]["wer"].update(sha256="def456" * 10, device="cuda:0", batch_size=32)
    report = compare(base, candidate)
    assert not report.passed
    for system in SYSTEMS:
        for metric in ("wer.wer", "wer.wer_corpus", "wer.failed"):
            r = row(report, system, metric)
            assert (r.verdict, r.fails) == ("not comparable", True)
            assert r.note.startswith("evaluator changed: wer: sha256 differs (abc123ab… vs def456de…)")
        assert row(report, system, "similarity.sim_o").verdict == "unchanged"
    assert {r.metric for r in report.failures} == {"wer.wer", "wer.wer_corpus", "wer.failed"}
    allowed = compare(base, candidate, GateConfig.from_dict({"allow_evaluator_change": True}))
    wer = row(allowed, "flashspeech@1", "wer.wer")
    assert allowed.passed and wer.verdict == "unchanged" and wer.note.startswith("evaluator changed (allowed)")
    # only volatile keys differ (device, batch size): the same evaluator
    candidate.metadata["suites"]["wer"]["sha256"] = "abc123" * 10
    assert compare(base, candidate).passed
    candidate.metadata["suites"].pop("wer")
    unrecorded = row(compare(base, candidate), "flashspeech@1", "wer.wer")
    assert unrecorded.verdict == "not comparable" and unrecorded.note.startswith(
        "evaluator not recorded in the candidate"
    )
