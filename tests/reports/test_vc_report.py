"""Voice conversion in the reports: the Table 6 layout per VC test set, the noise-level sweep, the VC section of the
Markdown and HTML reports, VC systems kept out of the TTS views, and the paper's Table 6 beside our runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.record import SystemKey
from bench.results import Results
from reports.headline import summary_table
from reports.html import render_html_string
from reports.markdown import render_markdown
from reports.paper import paper_view
from reports.paper_report import paper_report, render_paper_report
from reports.plots import build_plots
from reports.vc import VC_SWEEP, vc_notes, vc_sweep, vc_sweep_figure, vc_sweeps, vc_systems, vc_table
from tests.fixtures.images import is_png
from tests.fixtures.toy import toy_results
from tests.reports.test_reports import DISTILLMOS, WAVLM, assert_self_contained

TTS, VC = "tts-set", "vc-set"
SIM_O, SIM_SOURCE, SIM_TARGET = ("similarity", "sim_o"), ("similarity", "sim_source"), ("similarity", "sim_target")
WER, F0, MOS, RTF = ("wer", "wer_corpus"), ("prosody", "f0_corr_source"), ("mos", "mos"), ("rtf", "rtf")
# name, kind, noise level, failed generations, metric -> value; in run order, which is not the table's
VC_SYSTEMS = (
    ("flashspeech-vc@sigma2", "flashspeech_vc", 2.0, 0,
     {SIM_O: 0.38, SIM_SOURCE: 0.50, SIM_TARGET: 0.55, WER: 0.06, F0: 0.80, MOS: 3.6, RTF: 0.05}),
    ("flashspeech-vc@sigma1", "flashspeech_vc", 1.0, 0,
     {SIM_O: 0.30, SIM_SOURCE: 0.70, SIM_TARGET: 0.50, WER: 0.04, F0: 0.90, MOS: 3.5, RTF: 0.05}),
    ("flashspeech-vc@sigma4", "flashspeech_vc", 4.0, 1,
     {SIM_O: 0.45, SIM_SOURCE: 0.35, SIM_TARGET: 0.58, WER: 0.12, F0: 0.60, MOS: 3.4, RTF: 0.05}),
    ("ground_truth", "ground_truth", None, 0, {SIM_O: 0.60, SIM_SOURCE: 0.25, WER: 0.02, F0: 0.40, MOS: 4.1}),
    ("source_passthrough", "source_passthrough", None, 0,
     {SIM_O: 0.20, SIM_SOURCE: 0.99, WER: 0.03, F0: 1.00, MOS: 3.9}),
)  # fmt: skip


def vc_key(name: str, kind: str, sigma: float | None) -> SystemKey:
    if kind == "flashspeech_vc":
        series = "flashspeech-vc"
        return SystemKey(VC, name, kind, series, "consistency", steps=1, nfe=1, task="vc", noise_level=sigma)
    return SystemKey(VC, name, kind, series=name, task="vc")


def row(system: str, suite: str, metric: str, value: float, ci: float | None = 0.02) -> dict:
    low, high = (None, None) if ci is None else (value - ci, value + ci)
    return {"system": system, "suite": suite, "metric": metric, "value": value, "ci_low": low, "ci_high": high,
            "n_items": 12, "higher_is_better": None, "unit": ""}  # fmt: skip


def vc_run(sim: dict | None = None, with_vc: bool = True) -> Results:
    """The toy's FlashSpeech at 1/2/4 steps and ground truth on a TTS test set, and (`with_vc`) a VC test set with
    FlashSpeech VC at three noise levels, the source passed through and the target's own reading."""
    tts = toy_results(testsets=(TTS,))
    if not with_vc:
        return tts
    rows, systems = [], dict(tts.metadata["systems"])
    for name, kind, sigma, failed, values in VC_SYSTEMS:
        key = vc_key(name, kind, sigma)
        systems[key.label] = {**key.to_dict(), "key": key.to_dict()}
        rows += [row(key.label, suite, metric, value) for (suite, metric), value in values.items()]
        rows += [
            row(key.label, "generation", "attempted", 12, None),
            row(key.label, "generation", "failed", failed, None),
        ]
    suites = {**tts.metadata["suites"], "mos": DISTILLMOS, "prosody": {"suite": "prosody", "backend": "toy"}}
    if sim is not None:
        suites["similarity"] = sim
    testsets = {**tts.metadata["testsets"], VC: {"items": 6, "problems": []}}
    metadata = {**tts.metadata, "systems": systems, "suites": suites, "testsets": testsets}
    aggregates = pd.concat([tts.aggregates, pd.DataFrame(rows)], ignore_index=True)
    return Results(tts.items, tts.groups, aggregates, metadata)


@pytest.fixture(scope="module")
def run() -> Results:
    return vc_run()


ORDER = [
    "source_passthrough",
    "flashspeech-vc@sigma1",
    "flashspeech-vc@sigma2",
    "flashspeech-vc@sigma4",
    "ground_truth",
]


def test_the_vc_table_has_the_papers_layout_with_cis_per_vc_test_set(run):
    assert vc_systems(run) == [(VC, [f"{VC}:{name}" for name in ORDER])]
    table = vc_table(run)
    assert list(table.columns) == [
        "System", "Noise level σ", "Sim-O (to target) ↑", "Sim to source ↓", "SIM-target ↑", "WER ↓",
        "F0 corr (source) ↑", "MOS (distillmos, not UTMOS) ↑", "RTF ↓", "Failures",
    ]  # fmt: skip
    assert list(table["System"]) == ORDER  # one test set: names without it
    rows = table.set_index("System")
    sigma2 = rows.loc["flashspeech-vc@sigma2"]
    assert sigma2["Noise level σ"] == "2" and sigma2["Sim-O (to target) ↑"] == "0.380 [0.360, 0.400]"
    assert (
        sigma2["Sim to source ↓"] == "0.500 [0.480, 0.520]"
        and sigma2["MOS (distillmos, not UTMOS) ↑"] == "3.60 [3.58, 3.62]"
    )
    assert sigma2["F0 corr (source) ↑"] == "0.800 [0.780, 0.820]" and sigma2["Failures"] == "0 / 12"
    assert rows.loc["flashspeech-vc@sigma4", "Failures"] == "1 / 12"
    floor = rows.loc["source_passthrough"]
    assert floor["Noise level σ"] == "–" and floor["RTF ↓"] == "–" and floor["SIM-target ↑"] == "–"
    assert floor["Sim to source ↓"] == "0.990 [0.970, 1.010]"
    notes = " ".join(vc_notes(run))
    assert "MOS stands in for the paper's CMOS and SMOS" in notes and "DistillMOS (offline, not UTMOS)" in notes
    assert "source passthrough: the floor" in notes and "Sim to source: cosine to the source utterance" in notes

    # columns no system has are left out; the short headline of a VC test set shows VC columns, a TTS one its own
    no_f0 = Results(run.items, run.groups, run.aggregates[run.aggregates["suite"] != "prosody"], run.metadata)
    assert "F0 corr (source) ↑" not in vc_table(no_f0).columns and "F0 corr" not in " ".join(vc_notes(no_f0))
    groups = dict(vc_systems(run))
    assert list(summary_table(run, groups[VC]).columns) == [
        "System", "Sim-O (to target) ↑", "Sim to source ↓", "WER ↓", "F0 corr (source) ↑", "MOS ↑", "RTF ↓",
        "Failures",
    ]  # fmt: skip
    tts = [f"{TTS}:{name}" for name in ("flashspeech@1", "flashspeech@2", "flashspeech@4", "ground_truth")]
    assert list(summary_table(run, tts).columns) == ["System", "WER ↓", "SIM-o ↑", "RTF ↓", "Failures"]


def test_vc_systems_stay_out_of_the_tts_views(run):
    view = paper_view(run)
    assert not any(s.startswith(f"{VC}:") for s in view.rows["system"])
    assert set(view.rows["system"]) == {
        f"{TTS}:{n}" for n in ("flashspeech@1", "flashspeech@2", "flashspeech@4", "ground_truth")
    }
    # the steps and frontier figures of the run are those of its TTS test set alone, byte for byte
    tts_only = {p.name: p.png for p in build_plots(vc_run(with_vc=False))}
    mixed = {p.name: p.png for p in build_plots(run)}
    for name in ("rtf_vs_steps", "wer_vs_steps", "sim_o_vs_steps", "frontier"):
        assert is_png(mixed[name]) and mixed[name] == tts_only[name], name
    assert VC_SWEEP in mixed and VC_SWEEP not in tts_only


def test_the_sweep_draws_each_series_through_its_noise_levels_with_floor_and_topline(run):
    (sweep,) = vc_sweeps(run)
    assert sweep.testset == VC and list(sweep.series) == ["flashspeech-vc"]
    points = sweep.series["flashspeech-vc"]
    assert [p.noise_level for p in points] == [1.0, 2.0, 4.0]
    assert [(p.wer.value, p.sim_o.value) for p in points] == [(0.04, 0.30), (0.06, 0.38), (0.12, 0.45)]
    assert sorted(p.kind for p in sweep.references) == ["ground_truth", "source_passthrough"]
    fig, left_out = vc_sweep_figure(run)
    (ax,) = [a for a in fig.axes if a.get_visible()]
    (line,) = [ln for ln in ax.get_lines() if ln.get_label() == "flashspeech-vc"]
    assert list(line.get_xdata()) == [0.04, 0.06, 0.12] and list(line.get_ydata()) == [0.30, 0.38, 0.45]
    texts = {t.get_text() for t in ax.texts}
    assert {"σ=1", "σ=2", "σ=4"} - set(left_out) <= texts
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert {"source passthrough (floor)", "ground truth (topline)", "flashspeech-vc"} <= legend
    plot = vc_sweep(run)
    assert plot is not None and plot.name == VC_SWEEP and is_png(plot.png)
    # no VC system at a noise level: no sweep at all; one without WER: a note, no figure
    assert vc_sweep(vc_run(with_vc=False)) is None
    no_wer = Results(run.items, run.groups, run.aggregates[run.aggregates["suite"] != "wer"], run.metadata)
    skipped = vc_sweep(no_wer)
    assert skipped is not None and skipped.png is None and "both WER and Sim-O" in skipped.note


def test_markdown_and_html_have_a_vc_section_only_with_vc_rows(run, tmp_path):
    images = {"frontier": "frontier.png", VC_SWEEP: "vc_sweep.png"}
    md = render_markdown(run, images=images)
    section = md[md.index("## Voice conversion") : md.index("## Failures")]
    assert "| flashspeech-vc@sigma2 | 2 | 0.380 [0.360, 0.400] | 0.500 [0.480, 0.520] |" in section
    assert "![vc_sweep](vc_sweep.png)" in section and "| Ours (FlashSpeech) | 0.00 | 3.50 | 0.35 |" in section
    figures = md[md.index("## Figures") : md.index("## Provenance")]
    assert "![frontier](frontier.png)" in figures and "vc_sweep" not in figures
    paper_part = md[md.index("## Paper view") : md.index("## Figures")]
    assert f"{VC}:" not in paper_part
    assert "Voice conversion" in render_markdown(Results.load(run.save(tmp_path / "run")))  # keys survive a reload

    html = render_html_string(run, build_plots(run), {}, 0)
    assert_self_contained(html)
    assert '<a href="#vc">Voice conversion</a>' in html and '<section id="vc">' in html
    vc_part = html[html.index('<section id="vc">') : html.index('<section id="figures">')]
    assert 'id="fig-vc_sweep"' in vc_part and "data:image/png;base64," in vc_part and "0.380 [0.360, 0.400]" in vc_part
    figures_part = html[html.index('<section id="figures">') : html.index('<section id="audio">')]
    assert "fig-vc_sweep" not in figures_part and "fig-frontier" in figures_part
    # the headline: the TTS test set's table, then the VC test set's own (its columns differ)
    assert 'id="headline-table"' in html and 'id="headline-table-2"' in html
    assert html.index("Sim to source ↓") > html.index('id="headline-table-2"')

    tts_only = vc_run(with_vc=False)
    md = render_markdown(tts_only, images={"frontier": "frontier.png"})
    assert "Voice conversion" not in md and "Table 6" not in md and "![frontier](frontier.png)" in md
    html = render_html_string(tts_only, build_plots(tts_only), {}, 0)
    assert 'id="vc"' not in html and "Voice conversion" not in html and "headline-table-2" not in html


def test_table_6_sets_our_sim_o_per_noise_level_beside_the_published_one_never_comparable(run):
    report = paper_report(vc_run(sim=WAVLM))
    assert report.vc is not None and report.vc.table.number == 6
    rows = report.vc.rows.set_index(["row", "metric"])
    sigma2 = rows.loc[("Ours (FlashSpeech), σ = 2", "Sim-O")]
    assert sigma2["paper"] == 0.35 and sigma2["ours"] == 0.38 and sigma2["delta"] == pytest.approx(0.03)
    assert sigma2["comparable"] == "no" and sigma2["reason"] == "the paper's VC test set is internal and unreleased"
    assert sigma2["system"] == f"{VC}:flashspeech-vc@sigma2"
    assert [r for r, m in rows.index if m == "Sim-O" and r.startswith("Ours")] == [
        f"Ours (FlashSpeech), σ = {s}" for s in (1, 2, 4)
    ]
    cmos = rows.loc[("Ours (FlashSpeech)", "CMOS")]
    assert cmos["paper"] == 0.00 and math.isnan(cmos["ours"]) and cmos["comparable"] == "–"
    assert "subjective listening test" in cmos["reason"] and "DistillMOS (offline, not UTMOS)" in cmos["reason"]
    assert rows.loc[("DDDM-VC", "SMOS"), "paper"] == 3.43 and math.isnan(rows.loc[("DDDM-VC", "SMOS"), "ours"])
    assert "published numbers only" in rows.loc[("YourTTS", "Sim-O"), "reason"]
    md = render_paper_report(report)
    assert "## Table 6: zero-shot voice conversion" in md
    assert "| Ours (FlashSpeech), σ = 2 | Sim-O | 0.350 | 0.380 [0.360, 0.400] | +0.030 | no |" in md
    assert "| YourTTS | CMOS | -0.16 | – | – | – |" in md and "internal and unreleased" in md
    assert "## Table 6" not in render_paper_report(report, (1, 2, 3, 4, 5))

    # the toy's similarity backend is not WavLM-TDNN: that reason too
    toy_sim = paper_report(run).vc.rows.set_index(["row", "metric"]).loc[("Ours (FlashSpeech), σ = 1", "Sim-O")]
    assert "internal and unreleased" in toy_sim["reason"] and "not WavLM-TDNN" in toy_sim["reason"]
    # no FlashSpeech VC in the runs: the published numbers only, and why
    empty = paper_report(vc_run(with_vc=False)).vc.rows.set_index(["row", "metric"])
    assert empty["ours"].isna().all() and list(empty["paper"]) == [-0.16, 3.26, 0.23, -0.28, 3.43, 0.28, 0.0, 3.5, 0.35]
    assert "no `flashspeech_vc` system" in empty.loc[("Ours (FlashSpeech)", "Sim-O"), "reason"]
