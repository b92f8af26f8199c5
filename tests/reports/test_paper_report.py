"""All five of the paper's tables from results directories: the cells, their comparability, the failures that make
a cell unusable, and the `report` command that re-renders them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.cli import main
from bench.results import Results
from reports.paper_report import paper_report, render_paper_report
from tests.fixtures.toy import toy_results
from tests.reports.test_reports import HUBERT, UTMOS, WAVLM, paper_protocol, with_mos

LS = "librispeech-test-clean"
ABLATION = (
    ("consistency-only@2", 2, 0.06),
    ("adversarial-wavlm@2", 2, 0.04),
    *((f"{stream}-alpha-{a}@2", 2, 0.03) for stream in ("pitch", "duration") for a in ("0", "0.2", "1")),
    ("ground_truth", None, 0.02),
)


def with_jsd(results: Results, values: dict[str, float]) -> Results:
    rows = [
        {"system": s, "suite": "prosody", "metric": m, "value": v, "ci_low": v - 0.01, "ci_high": v + 0.01,
         "n_items": 6, "higher_is_better": False, "unit": "bits"}
        for s, v in values.items() for m in ("pitch_jsd", "duration_jsd")
    ]  # fmt: skip
    return Results(results.items, results.groups, pd.concat([results.aggregates, pd.DataFrame(rows)]), results.metadata)


def runs() -> tuple[Results, Results]:
    main_run = with_mos(paper_protocol(toy_results(), HUBERT, WAVLM), UTMOS, {f"{LS}:flashspeech@2": 3.9})
    ablation = paper_protocol(toy_results(systems=ABLATION), HUBERT, WAVLM)
    ablation = with_mos(ablation, UTMOS, {f"{LS}:consistency-only@2": 3.5, f"{LS}:adversarial-wavlm@2": 3.8})
    alpha = {f"{LS}:{s}-alpha-{a}@2": 0.05 + 0.01 * i for i, s in enumerate(("pitch", "duration")) for a in ("0", "1")}
    return main_run, with_jsd(ablation, alpha)


def test_the_paper_report_has_all_five_tables_with_our_values_and_verdicts() -> None:
    main_run, ablation = runs()
    report = paper_report(main_run, [ablation])
    assert [v.table.number for v in report.ablations] == [2, 4, 5]
    t2 = report.ablations[0].rows.set_index(["row", "metric"])
    base = t2.loc[("Consistency training baseline", "UTMOS")]
    assert base["ours"] == 3.5 and base["paper"] == 3.62 and base["comparable"] == "yes"
    assert base["delta"] == 3.5 - 3.62
    wavlm = t2.loc[("+ Adversarial training (WavLM-large)", "Sim-O")]
    assert wavlm["system"] == f"{LS}:adversarial-wavlm@2" and wavlm["comparable"] == "yes"
    hubert = t2.loc[("+ Adversarial training (HuBERT-large)", "UTMOS")]
    assert pd.isna(hubert["ours"]) and "no HuBERT-large discriminator" in hubert["reason"]
    t4 = report.ablations[1].rows.set_index(["row", "metric"])
    assert t4.loc[("α = 0", "Pitch JSD"), "comparable"] == "approximately"
    assert "no bins" in t4.loc[("α = 0", "Pitch JSD"), "reason"]
    assert t4.loc[("α = 1", "WER (%)"), "paper"] == 3.7

    md = render_paper_report(report)
    for title in ("Tables 1 and 3", "Table 2: discriminator design", "Table 4: the prosody", "Table 5: the prosody"):
        assert title in md
    assert "| Consistency training baseline | UTMOS | 3.62 | 3.50 [3.40, 3.60] | -0.12 | yes |" in md
    assert report.counts["yes"] > 0
    # the toy's flashspeech@4 lost one similarity score: its cell is shown, and listed as not the paper's protocol
    assert report.unusable() == [f"Table 1 / 3 {LS}:flashspeech@4 SIM-o: 1 failed score(s) of its suite"]


def test_failed_scores_make_a_cell_not_comparable_and_the_report_says_so() -> None:
    main_run, ablation = runs()
    agg = ablation.aggregates
    failed = (
        (agg["system"] == f"{LS}:adversarial-wavlm@2") & (agg["suite"] == "similarity") & (agg["metric"] == "failed")
    )
    agg.loc[failed, "value"] = 3.0
    report = paper_report(main_run, [ablation])
    cell = report.ablations[0].rows.set_index(["row", "metric"]).loc[("+ Adversarial training (WavLM-large)", "Sim-O")]
    assert cell["comparable"] == "no" and "3 of 12 similarity scores failed" in cell["reason"]
    assert "Table 2 + Adversarial training (WavLM-large) Sim-O: 3 failed score(s) of its suite" in report.unusable()
    # Table 1: a system whose similarity scores failed is not comparable either (toy flashspeech@4 lost one)
    rows = report.main.rows.set_index(["system", "metric"])
    assert rows.loc[(f"{LS}:flashspeech@4", "SIM-o"), "comparable"] == "no"


def test_the_report_command_rerenders_from_results_directories(tmp_path: Path, capsys) -> None:
    main_run, ablation = runs()
    first, second = main_run.save(tmp_path / "paper"), ablation.save(tmp_path / "alpha")
    out = tmp_path / "PAPER.md"
    assert main(["report", str(first), str(second), "--paper", str(out)]) == 0
    assert (tmp_path / "paper" / "report.md").is_file() and (tmp_path / "alpha" / "report.html").is_file()
    text = out.read_text()
    assert "Table 2: discriminator design" in text and "Table 5" in text
    assert "cells with a value of ours, by comparability" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_the_headline_counts_failed_scores_not_only_failed_generations() -> None:
    from reports.failures import failures_cell

    results = toy_results()
    assert failures_cell(results, "flashspeech@4") == "0 / 12, 1 failed scores (similarity 1)"
    assert failures_cell(results, "flashspeech@2") == "0 / 12"
