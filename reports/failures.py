"""What went wrong in a run, as report tables and cells: failed generations and scores per system and suite,
generation-defect flags, every recorded error message, test-set entries left out, and why aggregates are absent.

Failures are never hidden: `failure_total` counts them all, and `failures_cell` / `has_failures` flag them in the
headline.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from bench.results import Results
from reports.tables import Stat, fmt, is_missing, stat, suites_run, systems
from suites.defects import FLAGS as DEFECT_FLAGS


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


DEFECT_COLUMNS = (*(("defects", f) for f in ("defective", *DEFECT_FLAGS)), ("wer", "hallucination"))
DEFECTS_NOTE = (
    "Samples flagged / scored per system: the defects suite's flags, from the audio and the text (thresholds: the "
    "suite's settings in the run metadata), and the WER suite's hallucination (the ASR heard far more words than "
    "the text has). Flagged samples are still scored by every suite."
)


def defect_table(results: Results) -> pd.DataFrame:
    """Per system: samples flagged / scored by each generation-defect flag (the `defects` suite's and the WER
    suite's `hallucination`); only the columns some system has, and no rows when none has any."""
    rows = []
    for system in systems(results):
        row = {"System": system}
        for suite, flag in DEFECT_COLUMNS:
            row[flag] = _ratio(stat(results, system, suite, f"{flag}_count"), stat(results, system, suite, "scored"))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["System", *(flag for _, flag in DEFECT_COLUMNS)])
    measured = [c for c in frame.columns[1:] if (frame[c] != "–").any()]
    return frame[["System", *measured]] if measured else frame.iloc[0:0, :1]


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


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else format(value, ".3g")


def defective_cell(results: Results, system: str) -> str | None:
    """`2 / 24 defective` (the defects suite's `defective_count` / `scored`), `defective rate 0.083` when only the
    rate (`defects.defective`) was recorded, None when the suite did not run for the system."""
    count, scored = stat(results, system, "defects", "defective_count"), stat(results, system, "defects", "scored")
    if count is not None:
        return f"{_count(count.value)}{'' if scored is None else f' / {_count(scored.value)}'} defective"
    rate = stat(results, system, "defects", "defective")
    return None if rate is None else f"defective rate {fmt(rate.value, '.3g')}"


def failures_cell(results: Results, system: str) -> str:
    """`1 / 12` failed / attempted generations, then `3 failed scores (similarity 3)` when any suite's scores failed
    and `2 / 12 defective` when the defects suite ran; `–` without any."""
    failed, attempted = stat(results, system, "generation", "failed"), stat(results, system, "generation", "attempted")
    parts = [] if failed is None else [_ratio(failed, attempted)]
    scores = failed_scores(results, system)
    if scores:
        parts.append(f"{sum(scores.values())} failed scores ({', '.join(f'{s} {n}' for s, n in scores.items())})")
    defective = defective_cell(results, system)
    return ", ".join(parts + ([] if defective is None else [defective])) or "–"


def failed_scores(results: Results, system: str) -> dict[str, int]:
    """Suite -> the system's failed scores, for the suites where any failed."""
    out = {}
    for suite in suites_run(results):
        failed = stat(results, system, suite, "failed")
        if failed is not None and failed.value > 0:
            out[suite] = int(failed.value)
    return out


def has_failures(results: Results, system: str) -> bool:
    """Whether the system has any failed generation or score, or a defective sample."""
    return bool(failed_scores(results, system)) or any(
        s is not None and s.value > 0
        for s in (
            stat(results, system, "generation", "failed"),
            stat(results, system, "defects", "defective_count"),
            stat(results, system, "defects", "defective"),
        )
    )
