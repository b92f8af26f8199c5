"""The headline tables of a report and their notes.

- `headline_table`: every headline metric with its 95 % CI, the JSD columns with their counts and floors, RTF with
  its timing flags; `jsd_notes` and `timing_warnings` say how to read them;
- `summary_table`: the short headline for one test set's systems, point values of a few key metrics (WER, SIM-o,
  MOS, RTF; on a voice conversion test set Sim-O to the target, Sim to the source, WER, F0 correlation with the
  source, MOS, RTF) and the failures.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.results import Results
from reports.failures import failures_cell
from reports.tables import Stat, fmt, fmt_ci, is_vc, short_name, stat, system_key, system_steps, systems


@dataclass(frozen=True)
class Column:
    """A headline metric: where it lives in the aggregates and how to print it."""

    suite: str
    metric: str
    label: str
    spec: str = ".3f"
    higher_is_better: bool | None = None


HEADLINE = (
    Column("wer", "wer_corpus", "WER ↓", ".3f", False),
    Column("similarity", "sim_o", "SIM-o ↑", ".3f", True),
    Column("similarity", "sim_r", "SIM-r ↑", ".3f", True),
    Column("similarity", "sim_target", "SIM-target ↑", ".3f", True),
    Column("similarity", "spk_id_acc", "spk-ID acc ↑", ".3f", True),
    Column("rtf", "rtf", "RTF ↓", ".3g", False),
    Column("prosody", "pitch_jsd", "pitch JSD ↓", ".4f", False),
    Column("prosody", "duration_jsd", "phone-duration JSD ↓", ".4f", False),
    Column("prosody", "utterance_duration_jsd", "utterance-length JSD ↓", ".4f", False),
)
JSD_METRICS = ("pitch_jsd", "duration_jsd", "utterance_duration_jsd")  # shown with their floors and counts


def headline_columns(results: Results) -> list[Column]:
    """The headline metrics that at least one system has."""
    return [c for c in HEADLINE if any(stat(results, s, c.suite, c.metric) for s in systems(results))]


def headline_table(results: Results, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Systems x key metrics as strings `value [ci_low, ci_high]`; `labels` overrides column labels."""
    labels = labels or {}
    columns = headline_columns(results)
    rows = []
    for system in systems(results):
        steps = system_steps(results, system)
        attempted = stat(results, system, "generation", "attempted")
        row = {
            "System": system,
            "Steps": "–" if steps is None else str(steps),
            "Samples": "–" if attempted is None else str(int(attempted.value)),
        }
        for c in columns:
            cell = fmt_ci(stat(results, system, c.suite, c.metric), c.spec)
            if c.suite == "prosody" and c.metric in JSD_METRICS and cell != "–":
                cell += _jsd_suffix(results, system, c.metric, c.spec)
            if c.suite == "rtf" and c.metric == "rtf":
                cell += rtf_flags(results, system)
            row[labels.get(f"{c.suite}.{c.metric}", c.label)] = cell
        rows.append(row)
    return pd.DataFrame(rows)


def rtf_flags(results: Results, system: str) -> str:
    """` ⚠ contended 3/40` when samples were timed while other processes competed for the CPU, and
    ` (12 cached, not timed here)` when timings of cached generations were left out; "" otherwise."""
    contended, timed = stat(results, system, "rtf", "contended"), stat(results, system, "rtf", "timed_here")
    borrowed = stat(results, system, "rtf", "borrowed")
    flags = ""
    if contended is not None and contended.value > 0:
        flags += f" ⚠ contended {int(contended.value)}/{int(timed.value) if timed else '?'}"
    if borrowed is not None and borrowed.value > 0:
        flags += f" ({int(borrowed.value)} cached, not timed here)"
    return flags


def timing_warnings(results: Results) -> list[str]:
    """Report warnings about RTF: samples timed under CPU competition, and timings left out as borrowed."""
    contended, borrowed = [], []
    for system in systems(results):
        c, b = stat(results, system, "rtf", "contended"), stat(results, system, "rtf", "borrowed")
        if c is not None and c.value > 0:
            contended.append(f"{system} ({int(c.value)})")
        if b is not None and b.value > 0:
            borrowed.append(f"{system} ({int(b.value)})")
    lines = []
    if contended:
        lines.append(
            "RTF measured while other processes competed for the CPU (samples flagged ⚠ contended): "
            f"{', '.join(contended)}. Such timings are not this system's speed and are never gated; rerun on a "
            "quiet machine (items.csv: contended, timed_at)."
        )
    if borrowed:
        lines.append(
            "Timings of generations reused from the cache are an earlier run's and are left out of RTF: "
            f"{', '.join(borrowed)}. `run --retime` times them anew."
        )
    return lines


def _jsd_suffix(results: Results, system: str, metric: str, spec: str) -> str:
    """` (n=40; floor 0.0100 @20)`: the utterances per side and the ground truth's split-half floor."""
    items, floor = stat(results, system, "prosody", "jsd_items"), stat(results, system, "prosody", f"{metric}_floor")
    half = stat(results, system, "prosody", "jsd_floor_items")
    parts = [] if items is None else [f"n={int(items.value)}"]
    parts.append(
        "no floor"
        if floor is None
        else f"floor {fmt(floor.value, spec)}" + ("" if half is None else f" @{int(half.value)}")
    )
    return f" ({'; '.join(parts)})"


def jsd_notes(results: Results) -> list[str]:
    """How to read the JSD columns, and a warning when the systems' JSDs compare different counts."""
    shown = [s for s in systems(results) if any(stat(results, s, "prosody", m) for m in JSD_METRICS)]
    if not shown:
        return []
    lines = [
        "JSD (bits, generated vs ground truth, lower is closer): n = utterances per side, compared seed by seed. "
        "Floor = the ground truth's own split-half JSD at @ items per half: pure sampling bias, which falls about "
        "as 1/n (an identical distribution at n per side gives about half the floor). Phone-duration JSD is the "
        "paper's; utterance-length JSD (0.5 s bins) is a different, coarser measure."
    ]
    by_testset: dict[str, dict[str, Stat]] = {}  # systems are compared within a test set
    for system in shown:
        count = stat(results, system, "prosody", "jsd_items")
        if count is not None:
            by_testset.setdefault(system_key(results, system).testset, {})[system] = count
    for counts in by_testset.values():
        if len({int(c.value) for c in counts.values()}) > 1:
            listed = ", ".join(f"{s} {int(c.value)}" for s, c in counts.items())
            lines.append(
                f"The JSDs compare different numbers of utterances ({listed}): their sampling bias differs, so "
                "compare each with its own floor rather than with each other."
            )
    return lines


# --- the short headline: a few key numbers per system, grouped by test set ------------------------------------

MOS = Column("mos", "mos", "MOS ↑", ".2f", True)
SUMMARY = (HEADLINE[0], HEADLINE[1], MOS, HEADLINE[5])  # WER, SIM-o, MOS, RTF: values only, no CIs
VC_SIM_O = Column("similarity", "sim_o", "Sim-O (to target) ↑", ".3f", True)
SIM_SOURCE = Column("similarity", "sim_source", "Sim to source ↓", ".3f", False)
F0_CORR = Column("prosody", "f0_corr_source", "F0 corr (source) ↑", ".3f", True)
VC_SUMMARY = (VC_SIM_O, SIM_SOURCE, HEADLINE[0], F0_CORR, MOS, HEADLINE[5])  # on a voice conversion test set
FAILURES_LABEL = "Failures"
SUMMARY_NOTE = (
    "Point values; failures: failed / attempted generations (and defective / scored samples when the defects suite "
    "ran). 95 % CIs, every other metric and how each is measured: Full results"
)


def summary_columns(results: Results, vc: bool = False) -> list[Column]:
    """The short headline's metrics that at least one system of the run's text-to-speech (`vc`: voice conversion)
    test sets has (MOS only when a `mos` suite ran)."""
    pool = [s for s in systems(results) if is_vc(results, s) == vc]
    return [c for c in (VC_SUMMARY if vc else SUMMARY) if any(stat(results, s, c.suite, c.metric) for s in pool)]


def summary_table(results: Results, group: list[str]) -> pd.DataFrame:
    """The short headline for `group`'s systems: name (without the test-set prefix), WER, SIM-o, MOS, RTF as plain
    values (RTF with its timing flags) and failures, or a voice conversion test set's `VC_SUMMARY`; CIs and every
    other metric are in `headline_table` (and the voice conversion table: `reports.vc`)."""
    columns = summary_columns(results, vc=bool(group) and all(is_vc(results, s) for s in group))
    rows = []
    for system in group:
        row = {"System": short_name(results, system)}
        for c in columns:
            value = stat(results, system, c.suite, c.metric)
            cell = fmt(None if value is None else value.value, c.spec)
            if c.suite == "rtf" and c.metric == "rtf" and value is not None:
                cell += rtf_flags(results, system)
            row[c.label] = cell
        row[FAILURES_LABEL] = failures_cell(results, system)
        rows.append(row)
    return pd.DataFrame(rows, columns=["System", *[c.label for c in columns], FAILURES_LABEL])
