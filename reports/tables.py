"""Reading `Results` for reports: systems with their kind, steps, family and test set, aggregate values with CIs,
and number formatting.

Everything here tolerates results loaded back from CSV (NaN for None, floats for integer steps) and
metadata with missing keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.record import SystemKey
from bench.results import Results

GROUND_TRUTH = "ground_truth"
VC_TASK = "vc"  # a voice conversion test set's systems (`SystemKey.task`)


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
    """Systems by test set, in run order, then any others found in the tables; ground truth last."""
    ordered = list(results.record.systems)
    found: set[str] = set()
    for frame in (results.items, results.aggregates):
        if "system" in frame.columns:
            found.update(str(s) for s in frame["system"].dropna().unique())
    names = ordered + sorted(found - set(ordered))

    def key(s: str) -> tuple[str, bool, int]:
        k = system_key(results, s)
        return (k.testset, k.kind == GROUND_TRUTH, names.index(s))

    return sorted(names, key=key)


def system_key(results: Results, system: str) -> SystemKey:
    """The system's typed key (test set, name, series, kind, sampling) from the run record; a system found only in
    the tables stands for itself (no test set, kind unknown)."""
    key = results.record.key(system)
    if key is not None:
        return key
    return SystemKey(testset="", name=system, kind=GROUND_TRUTH if system == GROUND_TRUTH else "unknown")


def system_meta(results: Results, system: str) -> dict[str, Any]:
    """The system's recorded description (its config, checkpoint, provenance note), for what is not its key."""
    meta = (results.metadata.get("systems") or {}).get(system)
    return meta if isinstance(meta, dict) else {}


def system_steps(results: Results, system: str) -> int | None:
    """Sampling steps; None for systems without steps."""
    return system_key(results, system).steps


def system_kind(results: Results, system: str) -> str:
    """The system's kind ("flashspeech", "ground_truth", ...)."""
    return system_key(results, system).kind


def is_vc(results: Results, system: str) -> bool:
    """Whether the system ran on a voice conversion test set (its key's task is "vc")."""
    return system_key(results, system).task == VC_TASK


def system_family(results: Results, system: str) -> SystemKey:
    """What a steps curve connects: the systems of one series (config entry) on one test set, as a key with no
    sampling (the system alone when it has no series)."""
    key = system_key(results, system)
    return SystemKey(testset=key.testset, name=key.curve, kind=key.kind, series=key.curve)


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


def suites_run(results: Results) -> list[str]:
    """Suites with aggregate rows, in a stable order (metadata order first)."""
    agg = results.aggregates
    present = [] if agg.empty else [s for s in agg["suite"].dropna().unique() if s != "generation"]
    ordered = [s for s in (results.metadata.get("suites") or {}) if s in present]
    return ordered + sorted(set(present) - set(ordered))


def system_testset(results: Results, system: str) -> str | None:
    """The system's test set, or None when not recorded."""
    return system_key(results, system).testset or None


def testset_groups(results: Results) -> list[tuple[str | None, list[str]]]:
    """Systems grouped by test set, in `systems()` order; one group with key None for systems without one."""
    groups: dict[str | None, list[str]] = {}
    for system in systems(results):
        groups.setdefault(system_testset(results, system), []).append(system)
    return list(groups.items())


def short_name(results: Results, system: str) -> str:
    """The system's name without its test set (shown under its test set's heading)."""
    return system_key(results, system).name
