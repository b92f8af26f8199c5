"""Reports: Markdown, paper data and paper view, PNG figures, self-contained HTML, and a real headless browser."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.record import Device
from bench.results import Results, aggregates_table
from bench.testsets.provenance import PAPER_SELECTION, ImportRecord, SourceRecord
from flashspeech.foundation.audio import write_wav
from reports import write_reports
from reports.html import render_html
from reports.markdown import render_markdown
from reports.paper import load_paper, paper_view, published, verdict_lines
from reports.plots import build_plots, prosody_diversity
from suites.base import ItemScore
from suites.defects import FLAGS, DefectsSuite
from suites.wer import WerSuite
from tests.fixtures.images import PNG_SIGNATURE
from tests.fixtures.toy import toy_results

CHROMIUM = Path("/usr/bin/chromium")
SYSTEMS = ("flashspeech@1", "flashspeech@2", "flashspeech@4", "ground_truth")
SR = 16_000


@pytest.fixture(scope="module")
def toy() -> Results:
    return toy_results()


def with_audio(results: Results, root: Path, seconds: float = 0.4) -> Results:
    """Write a small real WAV for every audio_path of the toy items under `root`; metadata points there."""
    t = np.arange(int(SR * seconds)) / SR
    for i, path in enumerate(results.items["audio_path"].dropna()):
        write_wav(root / path, 0.2 * np.sin(2 * np.pi * (180 + 10 * i) * t), SR)
    results.metadata["output_dir"] = str(root)
    return results


def paper_protocol(
    results: Results,
    wer: dict,
    sim: dict,
    device: str = "cuda",
    testset: str = "librispeech-test-clean",
    gpu: str | None = "Tesla V100-SXM2-32GB",
):
    """The toy results shaped like a runner's: systems named `<testset>:<system>`, environment, test sets."""
    rename = {name: f"{testset}:{name}" for name in results.metadata["systems"]}
    md = {**results.metadata, "suites": {**results.metadata["suites"], "wer": wer, "similarity": sim}}
    md["systems"] = {
        rename[k]: {**v, "testset": testset, "key": {**v["key"], "testset": testset}}
        for k, v in results.metadata["systems"].items()
    }
    md["environment"] = {"device": device, "gpu": gpu if device.startswith("cuda") else None, "torch": "2.11"}
    model = gpu if device.startswith("cuda") else None
    md["record"] = {**md["record"], "device": Device(device, model=model, torch="2.11").to_dict()}
    md["config"] = {"testsets": [{"name": testset, "manifest": f"{testset}.jsonl", "max_items": None}]}
    md["testsets"] = {testset: {"items": 6, "problems": [], "import": paper_record(testset), "items_sha256": "ab"}}
    tables = [t.assign(system=t["system"].map(rename)) for t in (results.items, results.groups, results.aggregates)]
    return Results(*tables, metadata=md)


def paper_record(testset: str, items: int = 6, **changes) -> dict:
    """An import record of `items` items made as the paper's protocol says (a LibriSpeech tree named `testset`)."""
    subset = "test-clean" if testset == "librispeech-test-clean" else testset
    source = SourceRecord(f"/data/LibriSpeech/{subset}", subset, 2620, 40, "0" * 64)
    record = ImportRecord(
        "librispeech",
        source,
        PAPER_SELECTION,
        10 * items,
        2.2,
        items,
        6,
        0,
        "LibriSpeech transcripts",
        items_sha256="ab",
    )
    return replace(record, **changes).to_dict()


HUBERT = {"suite": "wer", "backend": "hubert", "model": "hubert-large-ls960-ft", "normalizer": "seedtts"}
WAVLM = {
    "suite": "similarity",
    "backend": "wavlm-tdnn",
    "label": "WavLM-TDNN (UniSpeech)",
    "comparable_to_papers": True,
}
RESEMBLYZER = {
    "suite": "similarity",
    "backend": "resemblyzer",
    "label": "resemblyzer (GE2E d-vector, not WavLM-TDNN)",
    "comparable_to_papers": False,
}


def table_row(markdown: str, first_cell: str, after: str) -> list[str]:
    """Cells of the first Markdown table row starting with `first_cell` after the heading `after`."""
    section = markdown[markdown.index(after) :]
    line = next(line for line in section.splitlines() if line.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip("|").split("|")]


# --- Markdown ---------------------------------------------------------------------------------------------


def test_markdown_headline_failures_provenance(toy):
    md = render_markdown(toy)
    for system in SYSTEMS:
        assert f"| {system} |" in md
    assert "0.071 [0.039, 0.108]" in md  # flashspeech@1 corpus WER with its bootstrap CI (items within the 2 speakers)
    assert len(re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", md)) >= 8
    header = table_row(md, "System", "## Failures")
    fs1, fs4 = table_row(md, "flashspeech@1", "## Failures"), table_row(md, "flashspeech@4", "## Failures")
    assert fs1[header.index("generation")] == "1 / 12"
    assert fs4[header.index("similarity")] == "1 / 12"
    assert fs4[header.index("generation")] == "0 / 12"
    assert "RuntimeError: boom" in md and "AudioRejected: too short" in md
    provenance = md[md.index("## Provenance") :]
    assert "0" * 40 in provenance and "| Device | cpu |" in provenance and "| torch | toy |" in provenance
    assert "WER backend" in provenance and "SIM backend" in provenance


def test_markdown_resemblyzer_caveat(toy):
    md = render_markdown(paper_protocol(toy, HUBERT, RESEMBLYZER))
    assert "NOT WavLM-TDNN" in md
    assert "resemblyzer (GE2E d-vector, not WavLM-TDNN)" in md
    # a resemblyzer run mislabelled upstream still never reads as WavLM-TDNN
    wrong = {**RESEMBLYZER, "label": "WavLM-TDNN", "comparable_to_papers": True}
    md = render_markdown(paper_protocol(toy, HUBERT, wrong))
    assert "| SIM backend | resemblyzer (GE2E d-vector, not WavLM-TDNN)" in md
    assert "SIM-o / SIM-r: not comparable" in md


def test_markdown_without_paper_view_and_with_images(toy):
    md = render_markdown(toy, paper_view=False, images={"frontier": "frontier.png"})
    assert "Paper view" not in md and "![frontier](frontier.png)" in md


def test_markdown_after_save_and_load(toy, tmp_path):
    loaded = Results.load(toy.save(tmp_path / "run"))
    md = render_markdown(loaded)
    assert "0.071 [0.039, 0.108]" in md and "RuntimeError: boom" in md


# --- paper data and paper view ----------------------------------------------------------------------------


def test_paper_data_matches_published_values():
    paper = load_paper()
    fs = paper.table1.set_index("model").loc["FlashSpeech"]
    assert (fs["rtf"], fs["wer"], fs["sim_o"], fs["sim_r"], fs["rtf_mark"]) == (0.02, 2.7, 0.52, 0.57, "⋆")
    assert paper.table1.set_index("model").loc["GroundTruth", "sim_o"] == 0.68
    assert paper.table1.set_index("model").loc["VALL-E (reproduce)", "rtf_mark"] == "♢"
    nfe = paper.table3.set_index("nfe")
    assert nfe.loc[2, "utmos"] == 4.00 and nfe.loc[1, "sim_o"] == 0.51 and nfe.loc[4, "utmos"] == 3.91
    assert "2404.14700" in paper.cite
    assert published("flashspeech", 2)["wer"] == (2.7, "Table 1")
    assert published("flashspeech", 1) == {"sim_o": (0.51, "Table 3"), "utmos": (3.99, "Table 3")}
    assert published("ground_truth", None)["wer"][0] == 1.9
    t6 = {r["method"]: (r["cmos"], r["smos"], r["sim_o"]) for r in paper.table6["rows"]}
    assert t6 == {
        "YourTTS": (-0.16, 3.26, 0.23),
        "DDDM-VC": (-0.28, 3.43, 0.28),
        "Ours (FlashSpeech)": (0.00, 3.50, 0.35),
    }


def test_paper_view_toy_is_not_comparable_and_says_why(toy):
    view = paper_view(toy)
    assert set(view.rows["system"]) == set(SYSTEMS)
    assert not any(v.comparable for v in view.verdicts.values())
    lines = " ".join(verdict_lines(view))
    assert "'toy'" in lines and "not a GPU" in lines and "no import record" in lines
    rows = view.rows.set_index(["system", "metric"])
    wer2 = rows.loc[("flashspeech@2", "WER (%)")]
    assert wer2["paper"] == 2.7 and wer2["comparable"] == "no"
    assert wer2["delta"] == pytest.approx(wer2["ours"] - 2.7) and wer2["ours"] == pytest.approx(100 / 15)
    assert rows.loc[("flashspeech@1", "WER (%)"), "note"] == "not published for 1 step"
    assert rows.loc[("flashspeech@2", "SIM-r"), "note"] == "no value in this run"
    assert ("ground_truth", "RTF") not in rows.index


def test_paper_view_comparable_under_the_paper_protocol(toy):
    results = paper_protocol(toy, HUBERT, WAVLM)
    view = paper_view(results)
    assert {k: v.level for k, v in view.verdicts.items()} == dict.fromkeys(
        ("wer", "sim_o", "sim_r", "rtf"), "comparable"
    )
    assert [v.level for v in view.testsets.values()] == ["comparable"]
    wer2 = view.rows.set_index(["system", "metric"]).loc[("librispeech-test-clean:flashspeech@2", "WER (%)")]
    assert wer2["comparable"] == "yes" and wer2["paper"] == 2.7
    assert "| Test sets | librispeech-test-clean / librispeech-test-clean.jsonl (6 items) |" in render_markdown(results)

    whisper = {"suite": "wer", "backend": "whisper", "model": "tiny.en"}
    view = paper_view(paper_protocol(toy, whisper, WAVLM, device="cpu", testset="smoke"))
    assert view.verdicts["wer"].level == "approximate" and "tiny.en" in view.verdicts["wer"].text
    assert not view.verdicts["rtf"].comparable and "not a GPU" in view.verdicts["rtf"].text
    assert not view.testsets["smoke"].comparable
    assert set(view.rows["comparable"]) <= {"no", "–"}


def test_paper_view_names_the_device_class_and_checks_the_normaliser(toy):
    view = paper_view(paper_protocol(toy, HUBERT, WAVLM))
    assert view.verdicts["rtf"].text == "yes: measured on Tesla V100-SXM2-32GB, the paper's device class (one V100)"
    h200 = paper_view(paper_protocol(toy, HUBERT, WAVLM, gpu="NVIDIA H200"))
    assert not h200.verdicts["rtf"].comparable
    assert "NVIDIA H200 vs the paper's V100: not the same device class" in h200.verdicts["rtf"].text
    rtf2 = h200.rows.set_index(["system", "metric"]).loc[("librispeech-test-clean:flashspeech@2", "RTF")]
    assert rtf2["comparable"] == "no" and "not the same device class" in rtf2["reason"]
    assert "RTF: not comparable (NVIDIA H200 vs the paper's V100" in " ".join(verdict_lines(h200))
    unnamed = paper_view(paper_protocol(toy, HUBERT, WAVLM, gpu=None))
    assert not unnamed.verdicts["rtf"].comparable and "GPU model not recorded" in unnamed.verdicts["rtf"].text

    # the WER verdict checks the normaliser as well as the ASR
    whisper_norm = paper_view(paper_protocol(toy, {**HUBERT, "normalizer": "whisper"}, WAVLM))
    assert whisper_norm.verdicts["wer"].level == "approximate"
    assert "WER normaliser 'whisper', not 'seedtts'" in whisper_norm.verdicts["wer"].text
    unrecorded = {k: v for k, v in HUBERT.items() if k != "normalizer"}
    assert "normaliser not recorded" in paper_view(paper_protocol(toy, unrecorded, WAVLM)).verdicts["wer"].text
    assert "'seedtts'" in view.conditions and "V100" in view.conditions


def test_paper_view_rows_only_for_suites_that_exist_and_ran(toy):
    import suites  # noqa: F401  (registers every suite)
    from reports.paper import METRICS
    from suites.base import SUITES

    assert {suite for _, suite, *_ in METRICS} <= set(SUITES)  # no row for a suite this harness does not have
    agg = toy.aggregates[toy.aggregates["suite"] != "similarity"]
    suites_meta = {k: v for k, v in toy.metadata["suites"].items() if k != "similarity"}
    no_sim = Results(toy.items, toy.groups, agg, {**toy.metadata, "suites": suites_meta})
    view = paper_view(no_sim)
    assert set(view.rows["metric"]) == {"WER (%)", "RTF"}
    assert set(view.verdicts) == {"wer", "rtf"} and not any("SIM" in line for line in verdict_lines(view))
    assert "Not measured in this run (suite not run): SIM-o, SIM-r (see the published tables)." in view.notes
    assert any("no UTMOS suite" in note for note in view.notes)
    md = render_markdown(no_sim)
    paper_part = md[md.index("## Paper view") : md.index("## Provenance")]
    assert "SIM-o / SIM-r:" not in paper_part and "| SIM-o |" not in paper_part


# --- MOS: the predictor is named wherever MOS shows; an offline MOS is never set against the paper's UTMOS ------

DISTILLMOS = {
    "suite": "mos",
    "backend": "distillmos",
    "predictor": "DistillMOS (offline, not UTMOS)",
    "paper_comparable": False,
    "weights_sha256": "b18b3ac60227" + "0" * 52,
}
UTMOS = {
    "suite": "mos",
    "backend": "utmos",
    "predictor": "UTMOS22 strong (SpeechMOS utmos22_strong, the FlashSpeech paper's predictor)",
    "paper_comparable": True,
    "checkpoint": {"path": "/models/utmos/utmos22_strong_step7459_v1.pt", "sha256": "9a" * 32},
}


def with_mos(results: Results, meta: dict, values: dict[str, float]) -> Results:
    """`mos` aggregate rows (value with a CI, item and failure counts) and the suite's metadata."""
    rows = []
    for system, value in values.items():
        for metric, v, lo, hi in (
            ("mos", value, value - 0.1, value + 0.1),
            ("items", 12, None, None),
            ("failed", 0, None, None),
        ):
            rows.append(
                {"system": system, "suite": "mos", "metric": metric, "value": v, "ci_low": lo, "ci_high": hi,
                 "n_items": 12, "higher_is_better": True if metric == "mos" else None, "unit": "MOS 1-5"}
            )  # fmt: skip
    aggregates = pd.concat([results.aggregates, pd.DataFrame(rows)], ignore_index=True)
    metadata = {**results.metadata, "suites": {**results.metadata["suites"], "mos": meta}}
    return Results(results.items, results.groups, aggregates, metadata)


def test_offline_mos_is_labelled_and_never_set_against_the_papers_utmos(toy, tmp_path):
    results = with_mos(toy, DISTILLMOS, {"flashspeech@1": 3.1, "flashspeech@2": 3.4, "ground_truth": 4.2})
    md = render_markdown(results)
    warning = next(line for line in md.splitlines() if line.startswith("> **Warning:** MOS"))
    assert "DistillMOS (offline, not UTMOS)" in warning and "NOT the paper's UTMOS (UTMOS22 strong)" in warning
    legend = "- MOS: mean predicted mean opinion score (1-5, higher is better) per utterance from DistillMOS"
    assert legend + " (offline, not UTMOS)." in md
    assert "| MOS predictor | DistillMOS (offline, not UTMOS) (weights sha256 b18b3ac60227…)" in md
    view = paper_view(results)
    assert view.verdicts["utmos"].level == "not comparable"
    assert "UTMOS: not comparable (MOS from DistillMOS (offline, not UTMOS)" in " ".join(verdict_lines(view))
    rows = view.rows.set_index(["system", "metric"])
    utmos2 = rows.loc[("flashspeech@2", "UTMOS")]
    assert utmos2["paper"] == 4.00 and np.isnan(utmos2["ours"]) and np.isnan(utmos2["delta"])  # ours left blank
    assert "no UTMOS in this run: its MOS is DistillMOS (offline, not UTMOS)" in utmos2["note"]
    offline2 = rows.loc[("flashspeech@2", "MOS (distillmos, not UTMOS)")]
    assert offline2["ours"] == 3.4 and np.isnan(offline2["paper"]) and np.isnan(offline2["delta"])
    assert offline2["comparable"] == "no" and "not the paper's UTMOS" in offline2["note"]
    assert rows.loc[("ground_truth", "MOS (distillmos, not UTMOS)"), "ours"] == 4.2
    assert ("ground_truth", "UTMOS") not in rows.index  # nothing published for ground truth
    assert not any(n.startswith("Not measured") and "UTMOS" in n for n in view.notes)
    assert any("this run's MOS comes from DistillMOS (offline, not UTMOS)" in n for n in view.notes)
    paper_part = md[md.index("## Paper view") : md.index("## Provenance")]
    assert "| MOS (distillmos, not UTMOS) | – | 3.40 [3.30, 3.50] | – | no |" in paper_part
    html = render_html(results, tmp_path).read_text(encoding="utf-8")
    assert "NOT the paper&#x27;s UTMOS" in html and "MOS (distillmos, not UTMOS)" in html
    # an offline backend recorded with a UTMOS-like label still reads as offline, not UTMOS
    wrong = with_mos(toy, {"backend": "dnsmos", "predictor": "UTMOS", "paper_comparable": True}, {"flashspeech@2": 3.0})
    md = render_markdown(wrong)
    assert "| MOS predictor | dnsmos (offline, not UTMOS)" in md and "DNSMOS P.835" in md
    assert paper_view(wrong).verdicts["utmos"].level == "not comparable"


def test_utmos_backend_is_set_next_to_the_papers_utmos(toy):
    results = with_mos(paper_protocol(toy, HUBERT, WAVLM), UTMOS, {"librispeech-test-clean:flashspeech@2": 3.9})
    view = paper_view(results)
    assert view.verdicts["utmos"].level == "comparable"
    utmos2 = view.rows.set_index(["system", "metric"]).loc[("librispeech-test-clean:flashspeech@2", "UTMOS")]
    assert utmos2["ours"] == 3.9 and utmos2["paper"] == 4.00 and utmos2["delta"] == pytest.approx(-0.1)
    assert utmos2["comparable"] == "yes"
    assert any("ours from the mos suite's utmos backend" in n and "9a9a9a9a9a9a" in n for n in view.notes)
    assert not any("no UTMOS suite" in n for n in view.notes)
    md = render_markdown(results)
    assert "NOT the paper's UTMOS" not in md and "| MOS predictor | UTMOS22 strong (SpeechMOS" in md
    assert "per utterance from UTMOS22 strong (SpeechMOS utmos22_strong" in md


# --- prosody JSDs in the headline ---------------------------------------------------------------------------


def with_prosody(results: Results, items: dict[str, int]) -> Results:
    """Prosody aggregate rows for some systems: JSDs with floors, measured at `items` utterances per side."""
    rows = []
    for system, n in items.items():
        values = {
            "pitch_jsd": 0.05,
            "pitch_jsd_floor": 0.02,
            "duration_jsd": float("nan"),
            "utterance_duration_jsd": 0.09,
            "utterance_duration_jsd_floor": 0.08,
            "jsd_items": n,
            "jsd_floor_items": n // 2,
        }
        for metric, value in values.items():
            rows.append(
                {"system": system, "suite": "prosody", "metric": metric, "value": value, "ci_low": float("nan"),
                 "ci_high": float("nan"), "n_items": n, "higher_is_better": False, "unit": "bits"}
            )  # fmt: skip
    aggregates = pd.concat([results.aggregates, pd.DataFrame(rows)], ignore_index=True)
    return Results(results.items, results.groups, aggregates, results.metadata)


def test_headline_labels_each_jsd_with_its_count_and_floor(toy, tmp_path):
    results = with_prosody(toy, {"flashspeech@2": 12, "ground_truth": 12})
    md = render_markdown(results)
    header = table_row(md, "System", "## Full results")
    assert "pitch JSD ↓" in header and "utterance-length JSD ↓" in header
    assert "duration JSD ↓" not in header and "phone-duration JSD ↓" not in header  # NaN for every system
    fs2 = table_row(md, "flashspeech@2", "## Full results")
    assert fs2[header.index("pitch JSD ↓")] == "0.0500 [no CI] (n=12; floor 0.0200 @6)"
    assert fs2[header.index("utterance-length JSD ↓")] == "0.0900 [no CI] (n=12; floor 0.0800 @6)"
    assert "split-half JSD" in md and "different numbers of utterances" not in md
    uneven = with_prosody(toy, {"flashspeech@2": 12, "ground_truth": 9})
    md = render_markdown(uneven)
    assert "The JSDs compare different numbers of utterances (flashspeech@2 12, ground_truth 9)" in md
    html = render_html(uneven, tmp_path).read_text(encoding="utf-8")
    assert "different numbers of utterances" in html and "(n=9; floor 0.0200 @4)" in html
    loaded = Results.load(uneven.save(tmp_path / "run"))
    assert "(n=9; floor 0.0200 @4)" in render_markdown(loaded)


# --- figures ------------------------------------------------------------------------------------------------


def test_plots_are_valid_pngs(toy, tmp_path):
    plots = {p.name: p for p in build_plots(toy)}
    for name in ("rtf_vs_steps", "wer_vs_steps", "sim_o_vs_steps", "frontier"):
        png = plots[name].png
        assert png is not None and png.startswith(PNG_SIGNATURE) and len(png) > 5_000, name
    skipped = plots["prosody_diversity"]
    assert skipped.png is None and "skipped" in skipped.note


def test_prosody_diversity_plot_when_groups_have_it(toy):
    rng = np.random.default_rng(0)
    groups = pd.DataFrame(
        {"system": s, "item_id": f"item-{i}", "prosody.seed_f0_mean_std_st": rng.uniform(0.1, 1.0)}
        for s in SYSTEMS[:3]
        for i in range(5)
    )
    plot = prosody_diversity(Results(toy.items, groups, toy.aggregates, toy.metadata))
    assert plot.png is not None and plot.png.startswith(PNG_SIGNATURE) and len(plot.png) > 5_000


# --- HTML -----------------------------------------------------------------------------------------------------


def assert_self_contained(text: str) -> None:
    assert "http://" not in text and "https://" not in text
    for attr in re.findall(r'\b(?:src|href)="([^"]*)"', text):
        assert attr.startswith(("data:", "#")), attr


def test_html_is_self_contained_with_audio(tmp_path):
    results = with_audio(toy_results(), tmp_path / "run")
    path = render_html(results, tmp_path / "report", audio_per_system=3)
    text = path.read_text(encoding="utf-8")
    assert_self_contained(text)
    assert text.count("<audio controls") == 3 * len(SYSTEMS)
    assert text.count('src="data:audio/flac;base64,') == 3 * len(SYSTEMS)  # embedded as 16-bit FLAC
    assert text.count('src="data:image/png;base64,') == 4
    assert "RuntimeError: boom" in text and "AudioRejected: too short" in text
    assert '<table class="headline' in text and "Paper view" in text and "0.071 [0.039, 0.108]" in text
    assert "skipped: no prosody diversity" in text


def test_html_notes_missing_audio(toy, tmp_path):
    text = render_html(toy, tmp_path, audio_per_system=2).read_text(encoding="utf-8")
    assert "<audio" not in text and text.count("audio file not found") == 2 * len(SYSTEMS)
    assert_self_contained(text)


def with_defects(results: Results) -> Results:
    """The toy run plus a defects suite (flashspeech@1: 2 of its 12 samples defective, one of them clipped too)
    and WER rows with one hallucination for flashspeech@2, aggregated by the real suite classes."""
    rows = []
    for system in SYSTEMS:
        for i in range(12):
            flags = dict.fromkeys(FLAGS, 0.0)
            if system == "flashspeech@1" and i < 2:
                flags.update(long_silence=1.0, clipping=float(i == 0))
            rows.append(
                ItemScore("defects", system, f"item-{i // 2:02d}", i % 2, {**flags, "defective": max(flags.values())})
            )
    wer = [
        ItemScore("wer", "flashspeech@2", f"item-{i // 2:02d}", i % 2, {"wer": 0.0, "substitutions": 0,
                  "deletions": 0, "insertions": 0, "ref_words": 5, "hyp_words": 5, "hallucination": float(i == 3)})
        for i in range(12)
    ]  # fmt: skip
    table = aggregates_table([DefectsSuite(), WerSuite()], {"defects": rows, "wer": wer}, resamples=50)
    extra = table[(table["suite"] == "defects") | table["metric"].str.startswith("hallucination")]
    aggregates = pd.concat([results.aggregates, extra], ignore_index=True)
    return Results(results.items, results.groups, aggregates, results.metadata)


def test_generation_defects_table_in_markdown_and_html(toy, tmp_path):
    assert "Generation defects" not in render_markdown(toy)  # not measured: no table
    assert "Generation defects" not in render_html(toy, tmp_path / "plain", audio_per_system=0).read_text("utf-8")
    results = with_defects(toy_results())
    md = render_markdown(results)
    section = md[md.index("## Failures") : md.index("## Paper view")]
    assert "### Generation defects" in section
    header = table_row(md, "System", "### Generation defects")
    assert header == ["System", "defective", *FLAGS, "hallucination"]
    fs1 = table_row(md, "flashspeech@1", "### Generation defects")
    assert fs1[header.index("defective")] == "2 / 12" and fs1[header.index("long_silence")] == "2 / 12"
    assert fs1[header.index("clipping")] == "1 / 12" and fs1[header.index("noise_tail")] == "0 / 12"
    assert fs1[header.index("hallucination")] == "–"  # the toy's WER rows predate the flag
    fs2 = table_row(md, "flashspeech@2", "### Generation defects")
    assert fs2[header.index("defective")] == "0 / 12" and fs2[header.index("hallucination")] == "1 / 12"
    html = render_html(results, tmp_path / "report", audio_per_system=0).read_text(encoding="utf-8")
    failures = html[html.index('<section id="failures">') : html.index('<section id="paper">')]
    assert '<h3 id="defects">Generation defects</h3>' in failures
    assert "<td>flashspeech@1</td><td>2 / 12</td><td>2 / 12</td><td>0 / 12</td>" in failures


def test_write_reports(tmp_path):
    results = with_audio(toy_results(), tmp_path / "run")
    paths = write_reports(results, tmp_path / "out")
    assert set(paths) == {"markdown", "html", "rtf_vs_steps", "wer_vs_steps", "sim_o_vs_steps", "frontier"}
    assert all(p.is_file() for p in paths.values())
    assert "![frontier](frontier.png)" in paths["markdown"].read_text(encoding="utf-8")
    assert paths["frontier"].read_bytes().startswith(PNG_SIGNATURE)


# --- a real headless browser -----------------------------------------------------------------------------------

PROBE = """<script>
(function () {
  var errors = [];
  window.addEventListener("error", function (e) { errors.push(String(e.message || e.target && e.target.tagName)); },
                          true);
  var origError = console.error;
  console.error = function () { errors.push([].join.call(arguments, " ")); origError.apply(console, arguments); };
  function done() {
    var b = document.body, imgs = Array.from(document.images), auds = Array.from(document.querySelectorAll("audio"));
    b.setAttribute("data-images", imgs.length);
    b.setAttribute("data-images-loaded", imgs.every(function (i) { return i.complete && i.naturalWidth > 0; }));
    b.setAttribute("data-audio", auds.length);
    var audioOk = auds.every(function (a) { return !a.error && a.readyState >= 1 && a.duration > 0; });
    b.setAttribute("data-audio-ok", audioOk);
    b.setAttribute("data-console-errors", errors.length);
    b.setAttribute("data-checked", "yes");
  }
  window.addEventListener("load", function () {
    var tries = 0;
    (function poll() {
      var auds = Array.from(document.querySelectorAll("audio"));
      if (tries++ > 50 || auds.every(function (a) { return a.error || a.readyState >= 1; })) { done(); }
      else { setTimeout(poll, 100); }
    })();
  });
})();
</script>"""

BROWSER_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    command = [str(CHROMIUM), *BROWSER_FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=50, check=False)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    results = with_audio(toy_results(), tmp_path / "run")
    report = render_html(results, tmp_path / "report")
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1), encoding="utf-8")

    run = chromium(tmp_path, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    assert run.returncode == 0, run.stderr[-2000:]
    body = re.search(r"<body[^>]*>", run.stdout)
    assert body is not None, run.stdout[:500]
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(0)))
    assert attrs.get("data-checked") == "yes", attrs
    assert attrs["data-images"] == "4" and attrs["data-images-loaded"] == "true", attrs
    assert attrs["data-audio"] == str(3 * len(SYSTEMS)) and attrs["data-audio-ok"] == "true", attrs
    assert attrs["data-console-errors"] == "0", attrs
    assert '<table class="headline' in run.stdout and "flashspeech@4" in run.stdout
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    assert "DEMUXER_ERROR" not in run.stderr

    shot = tmp_path / "report.png"
    run = chromium(tmp_path, "--window-size=1280,2400", f"--screenshot={shot}", report.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert shot.read_bytes().startswith(PNG_SIGNATURE) and shot.stat().st_size > 50_000


def test_untrained_systems_are_flagged_first():
    from reports.markdown import render_markdown

    results = toy_results()
    assert "untrained" not in render_markdown(results)
    results.metadata["systems"]["flashspeech@1"]["trained"] = False
    results.metadata["systems"]["flashspeech@1"]["checkpoint"] = "random:tiny"
    text = render_markdown(results)
    warning = next(line for line in text.splitlines() if "untrained" in line)
    assert warning.startswith("> **Warning:** flashspeech@1: random (untrained) weights (random:tiny)")
    assert text.index("untrained") < text.index("## Headline")


# --- timings, absent numbers, test-set problems ------------------------------------------------------------


def _rtf_results(contended: list[bool], borrowed: list[bool]) -> Results:
    """One system's RTF rows with the given timing provenance, aggregated by the real suite."""
    from bench.results import aggregates_table
    from suites.base import ItemScore
    from suites.rtf import RtfSuite

    rows = [
        ItemScore(
            "rtf",
            "t:fs@2",
            f"i{k}",
            0,
            {"time_s": 0.1, "audio_s": 2.0, "rtf": 0.05},
            {"timing_source": "cache" if b else "this run", "contended": c, "measured_at": "2026-12-01T10:00:00"},
        )
        for k, (c, b) in enumerate(zip(contended, borrowed, strict=True))
    ]
    suite = RtfSuite()
    agg = aggregates_table([suite], {"rtf": rows}, resamples=100)
    notes = suite.aggregate_notes(rows)
    metadata = {
        "aggregate_notes": {"t:fs@2": {f"rtf.{m}": why for m, why in notes.items()}},
        "testsets": {"t": {"items": 4, "problems": ["set.jsonl:3 item 'x' field 'text': empty text"]}},
    }
    items = pd.DataFrame({"system": ["t:fs@2"] * len(rows), "item_id": [r.item_id for r in rows], "status": "ok"})
    return Results(items, pd.DataFrame(columns=["system", "item_id"]), agg, metadata)


def test_contended_and_borrowed_timings_are_flagged():
    md = render_markdown(_rtf_results([True, False, False, False], [False, False, False, True]), paper_view=False)
    row = table_row(md, "t:fs@2", "## Full results")
    assert "⚠ contended 1/3" in row[-1] and "(1 cached, not timed here)" in row[-1]
    headline, header = table_row(md, "t:fs@2", "## Headline"), table_row(md, "System", "## Headline")
    assert "⚠ contended 1/3" in headline[header.index("RTF ↓")]  # the short headline keeps the flags
    assert "competed for the CPU" in md and "never gated" in md and "--retime" in md
    assert "1 test-set problem(s)" in md and "field 'text': empty text" in md
    quiet = render_markdown(_rtf_results([False] * 4, [False] * 4), paper_view=False)
    assert "⚠" not in quiet and "competed" not in quiet


def test_absent_rtf_says_why_once_per_reason():
    md = render_markdown(_rtf_results([False] * 3, [True] * 3), paper_view=False)
    lines = [line for line in md.splitlines() if "absent:" in line]
    assert len(lines) == 1 and "rtf.rtf, rtf.rtfx" in lines[0] and "cached generations" in lines[0]
    from reports.html import render_html_string

    html = render_html_string(_rtf_results([False] * 3, [True] * 3), [], {})
    assert "Absent numbers" in html and "Test-set problems (1" in html


def test_an_unfingerprinted_external_system_is_a_report_warning():
    from bench.systems.external import UNFINGERPRINTED_NOTE
    from reports.provenance import report_warnings

    results = toy_results()
    results.metadata["systems"] = {
        "smoke:mine": {"kind": "external", "provenance_note": UNFINGERPRINTED_NOTE},
        "smoke:fingerprinted": {"kind": "external", "provenance_note": None},
    }
    warnings = report_warnings(results)
    assert f"smoke:mine: {UNFINGERPRINTED_NOTE}" in warnings
    assert not any("fingerprinted" in w for w in warnings)


def test_a_run_without_the_similarity_suite_has_no_similarity_caveat_and_the_cli_headline_shows_mos():
    from dataclasses import replace

    from bench.cli.commands import _headline
    from reports.comparability import sim_verdict
    from reports.provenance import metric_legend, provenance, report_warnings, sim_backend

    results = toy_results()
    agg = results.aggregates
    mos = agg[agg["suite"] == "wer"].assign(suite="mos", metric="mos", value=3.5)
    no_sim = replace(
        results,
        aggregates=pd.concat([agg[agg["suite"] != "similarity"], mos.drop_duplicates("system")], ignore_index=True),
        metadata={
            **results.metadata,
            "suites": {k: v for k, v in results.metadata["suites"].items() if k != "similarity"},
        },
    )
    assert sim_backend(no_sim) is None and sim_backend(results) is not None
    assert not any("similarity" in w.lower() for w in report_warnings(no_sim))
    assert "SIM backend" not in dict(provenance(no_sim)) and "SIM backend" in dict(provenance(results))
    assert not any(line.startswith("SIM-o") for line in metric_legend(no_sim))
    assert sim_verdict(no_sim).reasons == ("no similarity suite ran",)
    headline = _headline(no_sim)
    assert "mos.mos" in headline and "wer.wer_corpus" in headline and "similarity" not in headline
