"""The FlashSpeech paper's published numbers (shipped as data) and the "paper view" of a run.

`reports/data/flashspeech_paper.json` holds Table 1 (LibriSpeech test-clean: RTF, Sim-O, Sim-R, WER, CMOS,
SMOS, with the ⋆/♢ RTF device marks), Table 3 (NFE 1/2/4: UTMOS, Sim-O) and Table 6 (voice conversion on the
paper's internal test set: CMOS, SMOS, Sim-O; beside our runs in `reports.paper_tables.vc_view`) of Ye et al. 2024,
arXiv:2404.14700v4, transcribed from the paper.

`paper_view(results)` puts our WER / SIM-o / SIM-r / RTF / UTMOS for FlashSpeech at each step count and for ground
truth next to the published numbers, with deltas and, per metric, whether the two are comparable and if not why
(the protocol checks of `reports.comparability`: ASR and normaliser, speaker model, MOS predictor, device, test
set). Only suites that exist in this harness and ran get rows.

UTMOS (Table 3) is set next to our `mos` value only when the mos suite's backend is `utmos`. With an offline
predictor (DistillMOS, DNSMOS) the UTMOS row keeps the published value with our column left blank and a note
naming the predictor, and the offline MOS gets its own row ("MOS (<backend>, not UTMOS)") with no published
counterpart and no delta: an offline MOS is never shown as, or subtracted from, the paper's UTMOS.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results import Results
from reports import provenance as prov
from reports.comparability import (
    CONDITIONS,
    NOT_COMPARABLE,
    Verdict,
    rtf_verdict,
    sim_verdict,
    testset_verdict,
    utmos_verdict,
    wer_verdict,
)
from reports.tables import (
    GROUND_TRUTH,
    Stat,
    fmt,
    fmt_ci,
    is_vc,
    stat,
    suites_run,
    system_kind,
    system_steps,
    systems,
)

DATA_FILE = Path(__file__).parent / "data" / "flashspeech_paper.json"


@dataclass(frozen=True)
class PaperData:
    """The published tables with their citation."""

    citation: dict[str, str]
    protocol: dict[str, Any]
    table1: pd.DataFrame
    table3: pd.DataFrame
    marks: dict[str, str]
    notes: tuple[str, ...]
    ablations: dict[str, Any]  # "table2", "table4", "table5" as published (caption, notes, rows): paper_tables
    table6: dict[str, Any] = field(default_factory=dict)  # voice conversion as published (caption, notes, rows)

    @property
    def cite(self) -> str:
        return self.citation.get("short", "FlashSpeech (arXiv:2404.14700)")


@lru_cache(maxsize=1)
def load_paper(path: Path = DATA_FILE) -> PaperData:
    """Load the published numbers (cached)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return PaperData(
        citation=raw["citation"],
        protocol=raw["protocol"],
        table1=pd.DataFrame(raw["table1"]["rows"]),
        table3=pd.DataFrame(raw["table3"]["rows"]),
        marks=raw["table1"]["marks"],
        notes=tuple(raw["table1"].get("notes", [])) + tuple(raw["table3"].get("notes", [])),
        ablations={key: raw[key] for key in ("table2", "table4", "table5")},
        table6=raw["table6"],
    )


def _row(frame: pd.DataFrame, column: str, key: Any) -> dict[str, Any] | None:
    rows = frame[frame[column] == key]
    return None if rows.empty else {k: (None if pd.isna(v) else v) for k, v in rows.iloc[0].to_dict().items()}


def published(kind: str, steps: int | None, paper: PaperData | None = None) -> dict[str, tuple[float, str]]:
    """Published metric -> (value, source) for FlashSpeech at `steps` or ground truth (empty otherwise)."""
    paper = paper or load_paper()
    out: dict[str, tuple[float, str]] = {}
    if kind == GROUND_TRUTH:
        row = _row(paper.table1, "model", "GroundTruth") or {}
        return {m: (row[m], "Table 1") for m in ("rtf", "sim_o", "sim_r", "wer") if row.get(m) is not None}
    if steps == paper.protocol.get("default_steps", 2):
        row = _row(paper.table1, "model", "FlashSpeech") or {}
        for metric in ("rtf", "sim_o", "sim_r", "wer"):
            if row.get(metric) is not None:
                mark = row.get("rtf_mark") if metric == "rtf" else None
                source = "Table 1" + (f" {mark}" if mark else "")
                out[metric] = (float(row[metric]), source)
    nfe = _row(paper.table3, "nfe", steps) if steps is not None else None
    for metric in ("sim_o", "utmos"):
        if nfe and nfe.get(metric) is not None:
            source = "Table 1 / Table 3" if metric in out else "Table 3"
            out[metric] = (float(nfe[metric]), source)
    return out


def comparability(results: Results) -> dict[str, Verdict]:
    """Per metric ("wer", "sim_o", "sim_r", "rtf", "utmos") of a suite that ran: its backend / device condition (the
    test set is per system)."""
    ran = set(suites_run(results))
    verdicts = {
        "wer": wer_verdict,
        "sim_o": sim_verdict,
        "sim_r": sim_verdict,
        "rtf": rtf_verdict,
        "utmos": utmos_verdict,
    }
    suite_of = {key: suite for key, suite, *_ in METRICS}
    return {key: verdict(results) for key, verdict in verdicts.items() if suite_of[key] in ran}


# metric, suite, aggregate metric, label, factor from our unit to the paper's (every suite exists in this harness)
METRICS = (
    ("wer", "wer", "wer_corpus", "WER (%)", 100.0),
    ("sim_o", "similarity", "sim_o", "SIM-o", 1.0),
    ("sim_r", "similarity", "sim_r", "SIM-r", 1.0),
    ("rtf", "rtf", "rtf", "RTF", 1.0),
    ("utmos", "mos", "mos", "UTMOS", 1.0),
)
NO_SUITE = (
    'UTMOS (Table 3): no UTMOS suite ran (the `mos` suite with backend "utmos" and a local UTMOS22 strong '
    "checkpoint), so only the published values are shown."
)


VIEW_COLUMNS = [
    "system",
    "steps",
    "metric",
    "paper",
    "source",
    "ours",
    "ci_low",
    "ci_high",
    "delta",
    "comparable",
    "reason",
    "note",
    "failed",
]


@dataclass
class PaperView:
    """`rows` has VIEW_COLUMNS (numbers in the paper's units: WER in %); `verdicts`: the backend / device
    condition per metric key; `testsets`: the test-set condition per test set of the rows' systems."""

    rows: pd.DataFrame
    verdicts: dict[str, Verdict]
    testsets: dict[str, Verdict]
    citation: str
    conditions: str = CONDITIONS
    notes: list[str] = field(default_factory=list)


def _is_paper_system(results: Results, system: str) -> bool:
    """FlashSpeech with steps or ground truth of a text-to-speech test set (voice conversion: Table 6)."""
    if is_vc(results, system):
        return False
    kind = system_kind(results, system)
    return kind == GROUND_TRUTH or (kind == "flashspeech" and system_steps(results, system) is not None)


def paper_view(results: Results) -> PaperView:
    """Our FlashSpeech (per step count) and ground-truth numbers next to the paper's, with deltas."""
    paper, verdicts = load_paper(), comparability(results)
    ran = set(suites_run(results))
    mos = prov.mos_predictor(results) if "mos" in ran else None
    rows, testsets = [], {}
    for system in [s for s in systems(results) if _is_paper_system(results, s)]:
        kind, steps = system_kind(results, system), system_steps(results, system)
        pub = published(kind, steps, paper)
        name = results.record.key(system).testset if results.record.key(system) else None
        testsets[name or "not recorded"] = test = testset_verdict(prov.testset_import(results, name))
        for key, suite, metric, label, factor in METRICS:
            if suite not in ran:
                continue
            ours_raw = stat(results, system, suite, metric)
            ours = None if ours_raw is None else ours_raw.scaled(factor if ours_raw.unit != "%" else 1.0)
            if key not in pub and ours is None:
                continue
            if key == "rtf" and kind == GROUND_TRUTH:
                continue
            verdict = verdicts[key] + test
            failed_scores = failures_verdict(results, system, suite)
            verdict = verdict if failed_scores is None else verdict + failed_scores
            if key == "utmos" and mos is not None and not mos.is_utmos:
                rows += _offline_mos_rows(system, steps, pub.get(key), ours, mos)
                continue
            row = _view_row(system, steps, key, label, pub.get(key), ours, verdict)
            failed, scored = stat(results, system, suite, "failed"), stat(results, system, suite, "items")
            row["failed"] = 0 if failed is None else int(failed.value)
            if ours is None and pub.get(key) and failed is not None and failed.value > 0:
                total = "" if scored is None else f" of {int(scored.value)}"
                row["note"] = f"no value: {int(failed.value)}{total} {suite} scores failed (see Failures)"
            rows.append(row)
    frame = pd.DataFrame(rows, columns=VIEW_COLUMNS)
    notes = [f"{mark} {text}" for mark, text in paper.marks.items()] + list(paper.notes)
    missing = sorted({label for key, suite, _, label, _ in METRICS if suite not in ran and key != "utmos"})
    notes.insert(0, _utmos_note(mos))
    if missing:
        notes.insert(0, f"Not measured in this run (suite not run): {', '.join(missing)} (see the published tables).")
    return PaperView(rows=frame, verdicts=verdicts, testsets=testsets, citation=paper.cite, notes=notes)


def failures_verdict(results: Results, system: str, suite: str) -> Verdict | None:
    """Not comparable when any of the system's scores of `suite` failed (a mean over the rest is not the paper's
    number): None when none failed."""
    failed, items = stat(results, system, suite, "failed"), stat(results, system, suite, "items")
    if failed is None or failed.value <= 0:
        return None
    total = "" if items is None else f" of {int(items.value)}"
    return Verdict(NOT_COMPARABLE, (f"{int(failed.value)}{total} {suite} scores failed",))


def _offline_mos_rows(
    system: str, steps: int | None, pub: tuple[float, str] | None, ours: Stat | None, mos: prov.MosPredictor
) -> list[dict[str, Any]]:
    """An offline predictor's MOS: the UTMOS row keeps only the published value (ours blank), and the offline
    value gets its own row without a published counterpart or a delta."""
    rows = []
    if pub is not None:
        row = _view_row(system, steps, "utmos", "UTMOS", pub, None, None)
        row["note"] = f"no UTMOS in this run: its MOS is {mos.label}" + ("" if ours is None else " (next row)")
        rows.append(row)
    if ours is not None:
        row = _view_row(system, steps, "mos", f"MOS ({mos.short})", None, ours, None)
        reason = f"{mos.label} is not the paper's UTMOS22 strong"
        row.update(comparable="no", reason=reason, note="offline predictor, not the paper's UTMOS: no published value")
        rows.append(row)
    return rows


def _utmos_note(mos: prov.MosPredictor | None) -> str:
    """Where the UTMOS rows' numbers come from (or why ours are absent)."""
    if mos is None:
        return NO_SUITE
    if mos.is_utmos:
        digest = f", checkpoint sha256 {mos.weights_sha256[:12]}…" if mos.weights_sha256 else ""
        return f"UTMOS (Table 3): ours from the mos suite's utmos backend ({mos.label}{digest})."
    return (
        f"UTMOS (Table 3): this run's MOS comes from {mos.label}, not the paper's UTMOS22 strong: the UTMOS rows "
        "show only the published values, and the offline MOS is on its own row, with no published counterpart and "
        "no delta."
    )


def _view_row(
    system: str,
    steps: int | None,
    key: str,
    label: str,
    pub: tuple[float, str] | None,
    ours: Stat | None,
    verdict: Verdict | None,
) -> dict[str, Any]:
    value, source = pub if pub else (math.nan, "")
    row = {
        "system": system,
        "steps": steps,
        "metric": label,
        "paper": value,
        "source": source,
        "ours": math.nan if ours is None else ours.value,
        "ci_low": math.nan if ours is None else ours.ci_low,
        "ci_high": math.nan if ours is None else ours.ci_high,
        "delta": math.nan if ours is None or pub is None else ours.value - value,
        "comparable": "–",
        "reason": "",
        "note": "",
        "failed": 0,
    }
    if pub is None:
        row["note"] = "not published" + ("" if steps is None else f" for {steps} step" + ("s" if steps != 1 else ""))
    elif ours is None:
        row["note"] = "no value in this run"
    elif verdict is None:
        row.update(comparable="no", reason="no protocol check for this metric")
    else:
        head, _, reasons = verdict.text.partition(": ")
        row.update(comparable=head, reason=reasons)
    return row


SPECS = {"WER (%)": ".2f", "SIM-o": ".3f", "SIM-r": ".3f", "RTF": ".3g", "UTMOS": ".2f"}


def _spec(metric: str) -> str:
    return SPECS.get(metric, ".2f" if metric.startswith("MOS") else ".3f")


def view_table(view: PaperView) -> pd.DataFrame:
    """The paper view as display strings (for Markdown and HTML)."""
    out = []
    for _, r in view.rows.iterrows():
        spec = _spec(str(r["metric"]))
        ours = Stat(r["ours"], r["ci_low"], r["ci_high"])
        delta = "–" if not math.isfinite(r["delta"]) else format(r["delta"], "+" + spec)
        out.append(
            {
                "System": r["system"],
                "Steps": "–" if r["steps"] is None or pd.isna(r["steps"]) else str(int(r["steps"])),
                "Metric": r["metric"],
                "Paper": fmt(r["paper"], spec) + (f" ({r['source']})" if r["source"] else ""),
                "Ours [95 % CI]": fmt_ci(ours, spec),
                "Δ (ours − paper)": delta,
                "Comparable": r["comparable"],
                "Note": r["note"],
            }
        )
    return pd.DataFrame(out)


def verdict_lines(view: PaperView) -> list[str]:
    """One line per metric group and per test set: comparable or not, and why."""
    labels = {"wer": "WER", "sim_o": "SIM-o / SIM-r", "rtf": "RTF", "utmos": "UTMOS"}
    pairs = [(label, view.verdicts[key]) for key, label in labels.items() if key in view.verdicts]
    pairs += [(f"Test set {name}", verdict) for name, verdict in view.testsets.items()]
    lines = []
    for label, verdict in pairs:
        reasons = "; ".join(verdict.reasons)
        lines.append(f"{label}: {verdict.level}" + (f" ({reasons})" if reasons else ""))
    return lines


def published_tables(paper: PaperData | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1 and Table 3 as display strings (RTF with its device mark)."""
    paper = paper or load_paper()
    t1 = []
    for _, r in paper.table1.iterrows():
        mark = r.get("rtf_mark")
        rtf = fmt(_num(r.get("rtf")), ".2f") + (str(mark) if isinstance(mark, str) else "")
        row = {"Model": r["model"], "Data": r["data"] if isinstance(r["data"], str) else "–", "RTF ↓": rtf}
        for key, label, spec in (
            ("sim_o", "Sim-O ↑", ".2f"),
            ("sim_r", "Sim-R ↑", ".2f"),
            ("wer", "WER (%) ↓", ".1f"),
            ("cmos", "CMOS ↑", ".2f"),
            ("smos", "SMOS ↑", ".2f"),
        ):
            row[label] = fmt(_num(r.get(key)), spec)
        t1.append(row)
    t3 = [
        {"NFE": str(int(r["nfe"])), "UTMOS ↑": fmt(_num(r["utmos"]), ".2f"), "Sim-O ↑": fmt(_num(r["sim_o"]), ".2f")}
        for _, r in paper.table3.iterrows()
    ]
    return pd.DataFrame(t1), pd.DataFrame(t3)


def published_table6(paper: PaperData | None = None) -> pd.DataFrame:
    """Table 6 (voice conversion on the paper's internal test set) as display strings."""
    paper = paper or load_paper()
    rows = paper.table6.get("rows", [])
    labels = (("cmos", "CMOS ↑"), ("smos", "SMOS ↑"), ("sim_o", "Sim-O ↑"))
    return pd.DataFrame(
        [{"Method": r["method"], **{label: fmt(_num(r.get(key)), ".2f") for key, label in labels}} for r in rows]
    )


def _num(value: Any) -> float:
    return math.nan if value is None or pd.isna(value) else float(value)
