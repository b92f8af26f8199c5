"""The paper's ablation tables (2: adversarial training and its discriminator, 4 and 5: the prosody refinement
scale alpha for pitch and for duration) set beside our runs, cell by cell: our value with its 95 % interval, the
published one, the difference, and whether the two are comparable and why not.

A row of a table is a FlashSpeech system of a shipped config, found by its series (the config entry's name) at
the paper's default 2 steps on any test set of the runs given, the LibriSpeech set the paper's protocol accepts
first (`bench/configs/bench/paper-ablation-*.toml` name them): Table 2's `consistency-only` (consistency training
alone) and `adversarial-wavlm` (adversarial training through the WavLM-large discriminator, the trainer's
`speech_encoder = "wavlm:<path>"`); Tables 4 and 5's `pitch-alpha-<a>` / `duration-alpha-<a>`. Table 2's
Wav2Vec2-large and HuBERT-large discriminators and its "- prompt projection" variant have no counterpart in our
trainer: their rows show the published numbers only, and say so.

Table 6 (voice conversion) has a row per noise level of every FlashSpeech VC system (kind `flashspeech_vc` on a
voice conversion test set) in the runs given: our Sim-O to the target beside the published one, never comparable
(the paper's VC test set is internal and unreleased; Sim-O needs WavLM-TDNN besides). Its CMOS and SMOS are
subjective listening tests: published only, whatever MOS predictor ran. YourTTS and DDDM-VC: published only.

A cell is comparable only when its metric's protocol holds (`reports.comparability`: UTMOS22 strong, WavLM-TDNN,
HuBERT-large with the paper's normaliser), the test set is the paper's selection (its import record), and no
score of that suite failed for the system. The JSD cells are at best approximate: the paper states no bins,
pitch units or pooling for its JSD.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.record import SystemKey
from bench.results import Results
from reports import provenance as prov
from reports.comparability import (
    APPROXIMATE,
    NOT_COMPARABLE,
    Verdict,
    sim_verdict,
    testset_verdict,
    utmos_verdict,
    wer_verdict,
)
from reports.paper import failures_verdict, load_paper
from reports.tables import VC_TASK, Stat, fmt, fmt_ci, stat

PAPER_STEPS = 2


@dataclass(frozen=True)
class Metric:
    """A table column: our aggregate (suite, metric, factor to the paper's unit) and its protocol check."""

    key: str
    suite: str
    metric: str
    label: str
    factor: float
    spec: str
    verdict: Callable[[Results], Verdict]


def _jsd_verdict(results: Results) -> Verdict:
    return Verdict(APPROXIMATE, ("the paper states no bins, pitch units or pooling for its JSD",))


METRICS = {
    m.key: m
    for m in (
        Metric("utmos", "mos", "mos", "UTMOS", 1.0, ".2f", utmos_verdict),
        Metric("sim_o", "similarity", "sim_o", "Sim-O", 1.0, ".3f", sim_verdict),
        Metric("wer", "wer", "wer_corpus", "WER (%)", 100.0, ".2f", wer_verdict),
        Metric("pitch_jsd", "prosody", "pitch_jsd", "Pitch JSD", 1.0, ".4f", _jsd_verdict),
        Metric("duration_jsd", "prosody", "duration_jsd", "Duration JSD", 1.0, ".4f", _jsd_verdict),
    )
}


@dataclass(frozen=True)
class Row:
    """A published row and the series of ours that stands for it (None: no counterpart, and why)."""

    label: str
    published: dict[str, float]
    series: str | None
    missing: str = ""


@dataclass(frozen=True)
class Table:
    number: int
    title: str
    metrics: tuple[str, ...]
    rows: tuple[Row, ...]
    notes: tuple[str, ...] = ()


NO_TRAINER = "our trainer has no {what}: published numbers only"
TABLE2_SERIES = {
    "Consistency training baseline": ("consistency-only", ""),
    "+ Adversarial training (Wav2Vec2-large)": (None, NO_TRAINER.format(what="Wav2Vec2-large discriminator")),
    "+ Adversarial training (HuBERT-large)": (None, NO_TRAINER.format(what="HuBERT-large discriminator")),
    "+ Adversarial training (WavLM-large)": ("adversarial-wavlm", ""),
    "− prompt projection": (None, NO_TRAINER.format(what="discriminator without the prompt projection")),
}


def paper_tables() -> tuple[Table, ...]:
    """Tables 2, 4 and 5 (`load_paper`'s) with the series of ours each row maps to."""
    raw = load_paper().ablations
    t2 = raw["table2"]
    rows2 = tuple(
        Row(r["method"], {"utmos": r["utmos"], "sim_o": r["sim_o"]}, *TABLE2_SERIES[r["method"]]) for r in t2["rows"]
    )
    tables = [Table(2, t2["caption"], ("utmos", "sim_o"), rows2, tuple(t2["notes"]))]
    for number, stream in ((4, "pitch"), (5, "duration")):
        t = raw[f"table{number}"]
        rows = tuple(
            Row(
                f"α = {r['alpha']:g}",
                {f"{stream}_jsd": r[f"{stream}_jsd"], "wer": r["wer"]},
                f"{stream}-alpha-{r['alpha']:g}",
            )
            for r in t["rows"]
        )
        tables.append(Table(number, t["caption"], (f"{stream}_jsd", "wer"), rows, tuple(t["notes"])))
    return tuple(tables)


COLUMNS = ["row", "system", "metric", "paper", "ours", "ci_low", "ci_high", "delta", "comparable", "reason", "failed"]


@dataclass
class TableView:
    table: Table
    rows: pd.DataFrame  # COLUMNS, numbers in the paper's units
    sources: list[str]  # the runs the rows came from


def _find(runs: Sequence[Results], series: str) -> tuple[Results, SystemKey] | None:
    """The run and system of `series` at 2 steps, on a test set that is the paper's selection first."""
    found = []
    for results in runs:
        for testset in results.record.testsets:
            key = results.record.find(testset, series, PAPER_STEPS)
            if key is not None and key.task != VC_TASK:  # a voice conversion test set stands for no TTS ablation
                test = testset_verdict(prov.testset_import(results, testset))
                found.append((test.level != NOT_COMPARABLE, results, key))
    found.sort(key=lambda f: not f[0])
    return (found[0][1], found[0][2]) if found else None


def table_view(table: Table, runs: Sequence[Results]) -> TableView:
    rows, sources = [], []
    for row in table.rows:
        hit = None if row.series is None else _find(runs, row.series)
        if hit is not None:
            sources.append(f"{row.label}: {hit[1].label} (run {hit[0].record.config})")
        for key in table.metrics:
            metric, pub = METRICS[key], row.published.get(key, math.nan)
            cell = {"row": row.label, "system": "–", "metric": metric.label, "paper": pub, "ours": math.nan}
            cell.update(ci_low=math.nan, ci_high=math.nan, delta=math.nan, comparable="–", reason=row.missing, failed=0)
            if row.series is not None and hit is None:
                cell["reason"] = f"no `{row.series}` system at {PAPER_STEPS} steps in the runs given"
            if hit is not None:
                results, system = hit
                cell["system"] = system.label
                ours = stat(results, system.label, metric.suite, metric.metric)
                verdict = metric.verdict(results) + testset_verdict(prov.testset_import(results, system.testset))
                failed = failures_verdict(results, system.label, metric.suite)
                n_failed = stat(results, system.label, metric.suite, "failed")
                cell["failed"] = 0 if n_failed is None else int(n_failed.value)
                verdict = verdict if failed is None else verdict + failed
                if ours is None:
                    cell["reason"] = f"no {metric.label} in the run" + (f" ({failed.reasons[0]})" if failed else "")
                else:
                    scaled = ours.scaled(metric.factor if ours.unit != "%" else 1.0)
                    head, _, reasons = verdict.text.partition(": ")
                    cell.update(ours=scaled.value, ci_low=scaled.ci_low, ci_high=scaled.ci_high)
                    cell.update(delta=scaled.value - pub, comparable=head, reason=reasons)
            rows.append(cell)
    return TableView(table, pd.DataFrame(rows, columns=COLUMNS), sources)


def ablation_views(runs: Sequence[Results]) -> list[TableView]:
    return [table_view(t, runs) for t in paper_tables()]


def display(view: TableView) -> pd.DataFrame:
    """The view as display strings (one line per row and metric)."""
    out = []
    for _, r in view.rows.iterrows():
        metric = METRICS_BY_LABEL.get(r["metric"])
        spec = metric.spec if metric is not None else SUBJECTIVE_SPEC
        delta = "–" if not math.isfinite(r["delta"]) else format(r["delta"], "+" + spec)
        out.append(
            {
                "Row": r["row"],
                "Metric": r["metric"],
                "Paper": fmt(r["paper"], spec),
                "Ours [95 % CI]": fmt_ci(Stat(r["ours"], r["ci_low"], r["ci_high"]), spec),
                "Δ (ours − paper)": delta,
                "Comparable": r["comparable"],
                "Why / note": r["reason"],
            }
        )
    return pd.DataFrame(out)


METRICS_BY_LABEL = {m.label: m for m in METRICS.values()}


# --- Table 6: voice conversion ------------------------------------------------------------------------------------

FLASHSPEECH_VC = "flashspeech_vc"
OURS = "Ours (FlashSpeech)"
SUBJECTIVE = {"cmos": "CMOS", "smos": "SMOS"}  # listening tests: published only
SUBJECTIVE_SPEC = ".2f"
INTERNAL = "the paper's VC test set is internal and unreleased"


def table6() -> Table:
    """Table 6 as published (`load_paper`'s), its "Ours" row standing for our FlashSpeech VC systems."""
    raw = load_paper().table6
    rows = tuple(
        Row(
            r["method"],
            {k: r[k] for k in ("cmos", "smos", "sim_o")},
            FLASHSPEECH_VC if r["method"] == OURS else None,
            "" if r["method"] == OURS else "not in this harness: published numbers only",
        )
        for r in raw["rows"]
    )
    return Table(6, raw["caption"], ("cmos", "smos", "sim_o"), rows, tuple(raw["notes"]))


def _vc_systems(runs: Sequence[Results]) -> list[tuple[Results, SystemKey]]:
    """Every FlashSpeech VC system of the runs, by test set and noise level."""
    found = [
        (results, key)
        for results in runs
        for key in results.record.system_keys()
        if key.task == VC_TASK and key.kind == FLASHSPEECH_VC
    ]
    return sorted(found, key=lambda f: (f[1].testset, f[1].curve, f[1].noise_level or 0.0))


def _blank(row: str, label: str, paper: float, reason: str) -> dict[str, Any]:
    return {"row": row, "system": "–", "metric": label, "paper": paper, "ours": math.nan, "ci_low": math.nan,
            "ci_high": math.nan, "delta": math.nan, "comparable": "–", "reason": reason, "failed": 0}  # fmt: skip


def _subjective_reason(runs: Sequence[Results]) -> str:
    predictors = sorted({m.label for m in (prov.mos_predictor(r) for r in runs) if m is not None})
    mos = f" (our MOS is a predictor: {', '.join(predictors)})" if predictors else ""
    return f"subjective listening test: published only, not measured{mos}"


def vc_view(runs: Sequence[Results]) -> TableView:
    """Table 6 beside our runs: published CMOS / SMOS, and a Sim-O line per FlashSpeech VC noise level."""
    table, hits = table6(), _vc_systems(runs)
    several = len({key.testset for _, key in hits}) > 1
    rows, sources = [], []
    for row in table.rows:
        reason = row.missing
        for key, label in SUBJECTIVE.items():
            rows.append(_blank(row.label, label, row.published[key], reason or _subjective_reason(runs)))
        if row.series is None or not hits:
            why = reason or f"no `{FLASHSPEECH_VC}` system on a voice conversion test set in the runs given"
            rows.append(_blank(row.label, METRICS["sim_o"].label, row.published["sim_o"], why))
            continue
        for results, key in hits:
            level = key.name if key.noise_level is None else f"σ = {key.noise_level:g}"
            label = f"{row.label}, {level}" + (f" ({key.testset})" if several else "")
            sources.append(f"{label}: {key.label} (run {results.record.config})")
            rows.append(_vc_sim_o(results, key, label, row.published["sim_o"]))
    return TableView(table, pd.DataFrame(rows, columns=COLUMNS), sources)


def _vc_sim_o(results: Results, key: SystemKey, row: str, paper: float) -> dict[str, Any]:
    """Our Sim-O to the target beside the published one: never comparable (the test set), and why else not."""
    sim = METRICS["sim_o"]
    cell = _blank(row, sim.label, paper, "")
    cell["system"] = key.label
    verdict = Verdict(NOT_COMPARABLE, (INTERNAL,)) + sim.verdict(results)
    failed = failures_verdict(results, key.label, sim.suite)
    verdict = verdict if failed is None else verdict + failed
    n_failed = stat(results, key.label, sim.suite, "failed")
    cell["failed"] = 0 if n_failed is None else int(n_failed.value)
    ours = stat(results, key.label, sim.suite, sim.metric)
    if ours is None:
        cell["reason"] = f"no {sim.label} in the run" + (f" ({failed.reasons[0]})" if failed else "")
        return cell
    _, _, reasons = verdict.text.partition(": ")
    cell.update(ours=ours.value, ci_low=ours.ci_low, ci_high=ours.ci_high, delta=ours.value - paper)
    cell.update(comparable="no", reason=reasons)
    return cell
