"""Reading `Results` for reports: systems and their steps, aggregate values with CIs, failures, errors.

Everything here tolerates results loaded back from CSV (NaN for None, floats for integer steps) and
metadata with missing keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.results import Results

GROUND_TRUTH = "ground_truth"


@dataclass(frozen=True)
class Stat:
    """One aggregate: value with its 95 % CI (NaN when the run gave none)."""

    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    n_items: int | None = None
    unit: str = ""

    def scaled(self, factor: float) -> Stat:
        return Stat(self.value * factor, self.ci_low * factor, self.ci_high * factor, self.n_items, self.unit)

    @property
    def has_ci(self) -> bool:
        return math.isfinite(self.ci_low) and math.isfinite(self.ci_high)


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


def is_missing(value: Any) -> bool:
    """None, NaN, pandas NA or an empty string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def fmt(value: float | None, spec: str = ".3f") -> str:
    """A number, or an en dash when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    return format(value, spec)


def fmt_ci(stat: Stat | None, spec: str = ".3f") -> str:
    """`0.071 [0.036, 0.105]`; `0.071 [no CI]` without an interval; `–` when absent."""
    if stat is None or not math.isfinite(stat.value):
        return "–"
    if not stat.has_ci:
        return f"{format(stat.value, spec)} [no CI]"
    return f"{format(stat.value, spec)} [{format(stat.ci_low, spec)}, {format(stat.ci_high, spec)}]"


def systems(results: Results) -> list[str]:
    """Systems by test set, in metadata order, then any others found in the tables; ground truth last."""
    ordered = list((results.metadata.get("systems") or {}).keys())
    found: set[str] = set()
    for frame in (results.items, results.aggregates):
        if "system" in frame.columns:
            found.update(str(s) for s in frame["system"].dropna().unique())
    names = ordered + sorted(found - set(ordered))

    def key(s: str) -> tuple[str, bool, int]:
        testset = system_meta(results, s).get("testset")
        return ("" if is_missing(testset) else str(testset), system_kind(results, s) == GROUND_TRUTH, names.index(s))

    return sorted(names, key=key)


def system_meta(results: Results, system: str) -> dict[str, Any]:
    meta = (results.metadata.get("systems") or {}).get(system)
    return meta if isinstance(meta, dict) else {}


def _item_value(results: Results, system: str, column: str) -> Any:
    items = results.items
    if column not in items.columns or "system" not in items.columns:
        return None
    values = items.loc[items["system"] == system, column].dropna()
    return values.iloc[0] if len(values) else None


def system_steps(results: Results, system: str) -> int | None:
    """Sampling steps from the metadata, else from the items table; None for systems without steps."""
    steps = system_meta(results, system).get("steps")
    if is_missing(steps):
        steps = _item_value(results, system, "steps")
    return None if is_missing(steps) else int(float(steps))


def system_kind(results: Results, system: str) -> str:
    """The system's kind ("flashspeech", "ground_truth", ...) from metadata or the items table."""
    kind = system_meta(results, system).get("kind")
    if is_missing(kind):
        kind = _item_value(results, system, "kind")
    if is_missing(kind):
        return GROUND_TRUTH if system == GROUND_TRUTH else "unknown"
    return str(kind)


def system_family(results: Results, system: str) -> str:
    """What a steps curve connects: the system's `series` (its config entry, recorded in the metadata with its
    sampling plan), else the system alone."""
    series = system_meta(results, system).get("series")
    if is_missing(series):
        return system
    testset = system_meta(results, system).get("testset")
    return f"{testset}:{series}" if testset else str(series)


def stat(results: Results, system: str, suite: str, metric: str) -> Stat | None:
    """An aggregate row as a `Stat`, or None when the run has no finite value for it."""
    agg = results.aggregates
    if agg.empty:
        return None
    rows = agg[(agg["system"] == system) & (agg["suite"] == suite) & (agg["metric"] == metric)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    value = _float(row.get("value"))
    if not math.isfinite(value):
        return None
    n_items = row.get("n_items")
    return Stat(
        value=value,
        ci_low=_float(row.get("ci_low")),
        ci_high=_float(row.get("ci_high")),
        n_items=None if is_missing(n_items) else int(n_items),
        unit="" if is_missing(row.get("unit")) else str(row.get("unit")),
    )


def _float(value: Any) -> float:
    try:
        return math.nan if is_missing(value) else float(value)
    except (TypeError, ValueError):
        return math.nan


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


def absent_notes(results: Results) -> list[str]:
    """Why aggregates are absent (results.json's aggregate_notes): per system, the metrics sharing a reason."""
    lines = []
    for system, table in (results.metadata.get("aggregate_notes") or {}).items():
        by_reason: dict[str, list[str]] = {}
        for metric, why in table.items():
            by_reason.setdefault(str(why), []).append(metric)
        lines += [f"{system}: {', '.join(metrics)} absent: {why}" for why, metrics in by_reason.items()]
    return lines


def testset_problems(results: Results) -> list[str]:
    """Every test-set entry left out of the run, with its line, item and field (results.json: testsets)."""
    out = []
    for info in (results.metadata.get("testsets") or {}).values():
        out += [str(p) for p in (info or {}).get("problems") or []]
    return out


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
            testset = system_meta(results, system).get("testset")
            by_testset.setdefault("" if is_missing(testset) else str(testset), {})[system] = count
    for counts in by_testset.values():
        if len({int(c.value) for c in counts.values()}) > 1:
            listed = ", ".join(f"{s} {int(c.value)}" for s, c in counts.items())
            lines.append(
                f"The JSDs compare different numbers of utterances ({listed}): their sampling bias differs, so "
                "compare each with its own floor rather than with each other."
            )
    return lines


def suites_run(results: Results) -> list[str]:
    """Suites with aggregate rows, in a stable order (metadata order first)."""
    agg = results.aggregates
    present = [] if agg.empty else [s for s in agg["suite"].dropna().unique() if s != "generation"]
    ordered = [s for s in (results.metadata.get("suites") or {}) if s in present]
    return ordered + sorted(set(present) - set(ordered))


def failure_table(results: Results) -> pd.DataFrame:
    """Per system: failed generations and failed scores per suite, as `failed / total` strings."""
    rows = []
    for system in systems(results):
        failed = stat(results, system, "generation", "failed")
        attempted = stat(results, system, "generation", "attempted")
        row = {"System": system, "generation": _ratio(failed, attempted)}
        for suite in suites_run(results):
            row[suite] = _ratio(stat(results, system, suite, "failed"), stat(results, system, suite, "items"))
        rows.append(row)
    return pd.DataFrame(rows)


def _ratio(failed: Stat | None, total: Stat | None) -> str:
    if failed is None:
        return "–"
    return f"{int(failed.value)} / {int(total.value)}" if total is not None else str(int(failed.value))


def failure_total(results: Results) -> int:
    """All failed generations and scores of the run, plus the test-set entries left out (counted once, not once
    per system as the aggregates' `testset.failed` rows are)."""
    agg = results.aggregates
    if agg.empty:
        return len(testset_problems(results))
    failed = agg[(agg["metric"] == "failed") & (agg["suite"] != "testset")]["value"]
    return int(pd.to_numeric(failed, errors="coerce").fillna(0).sum()) + len(testset_problems(results))


def error_rows(results: Results) -> pd.DataFrame:
    """Every recorded error: generation failures and per-suite score failures (items and groups)."""
    rows = []
    items = results.items
    if "status" in items.columns:
        for _, r in items[items["status"] == "failed"].iterrows():
            rows.append(_error_row(r, "generation", r.get("error")))
    for frame in (items, results.groups):
        for column in [c for c in frame.columns if c.endswith(".error")]:
            for _, r in frame[frame[column].notna()].iterrows():
                if not is_missing(r[column]):
                    rows.append(_error_row(r, column[: -len(".error")], r[column]))
    return pd.DataFrame(rows, columns=["system", "item_id", "seed", "stage", "error"])


def _error_row(row: pd.Series, stage: str, error: Any) -> dict[str, Any]:
    seed = row.get("seed")
    return {
        "system": row.get("system"),
        "item_id": row.get("item_id"),
        "seed": "all" if is_missing(seed) else str(int(float(seed))),
        "stage": stage,
        "error": "(no message)" if is_missing(error) else str(error),
    }
