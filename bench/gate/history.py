"""A metric's history across commits: one row per (run, system, metric), bands, and where a metric left its band.

A series is one system's metric over the runs of one config, oldest first; timings (RTF and the other `rtf.*`
metrics) are a separate series per device model, since a speed moves with the machine, and only clean timings (every
sample timed in that run, none while the machine was busy) make or leave a band: the others are marked. A run's
value leaves its band when it lies outside median +- half-width of the `window` runs before it (at least
`MIN_BAND_RUNS`), where the half-width is k standard deviations of a run's value, the larger of two estimates:
1.4826 * MAD of those values (robust), and what the runs' own 95 % CIs say (median half-width / 1.96), times sqrt 2
since the point and the band's runs are both noisy. A run that leaves its band in the worse direction after one that
did not starts a departure: the commit where a regression started (the band follows the new level once most of its
window is past it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bench.gate.store import StoredRun, list_runs, run_metrics
from bench.tracking import DEFAULT_EXPERIMENT

DEFAULT_METRICS = (
    "wer.wer_corpus",
    "wer.wer_mean",
    "similarity.sim_o",
    "mos.mos",
    "rtf.rtf",
    "generation.failed",
    "testset.items",  # a test set that lost items shows here, not as a better score
    "testset.failed",
)
MIN_BAND_RUNS = 3
TIMING_SUITE = "rtf"
# per run and system, how its timings were taken (the RTF suite's aggregates): a timing that is not all this run's
# on a quiet machine is marked, plotted apart and kept out of every band
TIMING_QUALITY = ("rtf.timed_here", "rtf.borrowed", "rtf.contended")
CLEAN = "clean"


@dataclass
class HistoryConfig:
    """Which runs and metrics a history covers, and how its bands are drawn."""

    config: str | None = None  # the runs of this config name (None: every config in the experiment)
    branch: str | None = None  # only this branch's runs (None: all)
    metrics: Sequence[str] = DEFAULT_METRICS
    last: int | None = None  # the most recent runs only
    window: int = 8  # runs before a point that make its band
    k: float = 3.0
    experiment: str = DEFAULT_EXPERIMENT


def higher_is_better(metric: str) -> bool | None:
    """The registered suite's direction for `<suite>.<metric>` (failures: lower is better); None when unknown."""
    suite, _, name = metric.partition(".")
    if name == "failed":
        return False
    if metric == "testset.items":
        return True
    from suites import SUITES

    registered = SUITES.get(suite)
    info = None if registered is None else {**registered.metrics, **registered.aggregate_metrics}.get(name)
    return None if info is None else info.higher_is_better


def history_table(uri: str, config: HistoryConfig) -> tuple[pd.DataFrame, list[StoredRun]]:
    """(rows, runs): one row per (run, system, metric) of the FINISHED runs, oldest first, with each run's
    commit, branch, device model and gate outcome, and the band columns of `mark_bands`."""
    runs = [r for r in list_runs(uri, config.experiment, config.config) if r.status == "FINISHED"]
    if config.branch:
        runs = [r for r in runs if r.lineage.branch == config.branch]
    if config.last:
        runs = runs[-config.last :]
    metrics = run_metrics(uri, runs, config.experiment)
    quality = timing_quality(metrics)
    metrics = metrics[metrics["metric"].isin(list(config.metrics))]
    is_timing = metrics["metric"].str.split(".").str[0] == TIMING_SUITE
    keys = list(zip(metrics["run_id"], metrics["system"], strict=True))
    timing = [quality.get(k, "not recorded") if t else None for k, t in zip(keys, is_timing, strict=True)]
    metrics = metrics.assign(timing=timing)
    info = pd.DataFrame(
        {
            "run_id": pd.Series([r.run_id for r in runs], dtype=object),  # object when empty too: merge keys match
            "order": range(len(runs)),
            "started": [r.started for r in runs],
            "commit": [r.lineage.commit for r in runs],
            "branch": [r.lineage.branch for r in runs],
            "device_model": [r.lineage.device_model for r in runs],
            "gate": [r.gate for r in runs],
            "config": [r.lineage.config for r in runs],
        }
    )
    table = info.merge(metrics, on="run_id", how="inner").sort_values(["order", "system", "metric"])
    return mark_bands(table.reset_index(drop=True), config.window, config.k), runs


def timing_quality(metrics: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(run_id, system) -> CLEAN when every timing was taken in that run on a quiet machine, else what was not:
    "borrowed" (some from cached generations), "contended" (the machine was busy), "not timed"."""
    wanted = metrics[metrics["metric"].isin(TIMING_QUALITY)]
    out: dict[tuple[str, str], str] = {}
    for key, group in wanted.groupby(["run_id", "system"]):
        counts = dict(zip(group["metric"], group["value"], strict=True))
        if not counts.get("rtf.timed_here"):
            out[key] = "not timed"
        elif counts.get("rtf.borrowed"):
            out[key] = "borrowed"
        elif counts.get("rtf.contended"):
            out[key] = "contended"
        else:
            out[key] = CLEAN
    return out


def series_key(metric: str, device_model: str | None) -> str:
    """Timings are one series per device model; every other metric one series across devices."""
    return f"{device_model}" if metric.split(".", 1)[0] == TIMING_SUITE else "all devices"


def mark_bands(table: pd.DataFrame, window: int = 8, k: float = 3.0) -> pd.DataFrame:
    """Add band_center, band_half, left_band ("worse" | "better" | "outside": direction unknown | None) and
    departure (bool: the row starts a run of worse values) per row. A timing that is not clean (`timing`:
    borrowed, contended, not timed) gets no band, is never a departure and is left out of later bands."""
    table = table.copy()
    if "timing" not in table:
        table["timing"] = None
    for column, default in (("band_center", np.nan), ("band_half", np.nan), ("left_band", None)):
        table[column] = default
    table["departure"] = False
    table["series"] = [series_key(m, d) for m, d in zip(table["metric"], table["device_model"], strict=True)]
    if table.empty:
        return table
    for (_, metric, _), rows in table.groupby(["system", "metric", "series"], sort=False):
        direction = higher_is_better(metric)
        rows = rows.sort_values("order")
        rows = rows[rows["timing"].isna() | (rows["timing"] == CLEAN)]  # marked timings: plotted apart, not banded
        streak = False
        for position, index in enumerate(rows.index):
            before = rows.iloc[max(0, position - window) : position]
            if len(before) < MIN_BAND_RUNS:
                continue
            values = before["value"].to_numpy(dtype=float)
            center = float(np.median(values))
            mad = float(np.median(np.abs(values - center))) * 1.4826
            widths = (before["ci_high"] - before["ci_low"]).to_numpy(dtype=float) / 2
            ci_half = float(np.nanmedian(widths)) if np.isfinite(widths).any() else 0.0
            half = k * max(mad, math.sqrt(2) * ci_half / 1.96, 1e-12 * max(1.0, abs(center)))
            value = float(table.at[index, "value"])
            table.at[index, "band_center"], table.at[index, "band_half"] = center, half
            if math.isfinite(value) and abs(value - center) > half:
                worse = (value < center) if direction else (value > center)
                table.at[index, "left_band"] = "worse" if direction is not None and worse else "better"
                if direction is None:
                    table.at[index, "left_band"] = "outside"
            bad = table.at[index, "left_band"] in ("worse", "outside")
            if bad and not streak:
                table.at[index, "departure"] = True
            streak = bool(bad)
    return table


def departures(table: pd.DataFrame) -> pd.DataFrame:
    """The runs that started a departure (see `mark_bands`), oldest first: system, metric, series, commit,
    run_id, started, value and the band it left."""
    columns = ["system", "metric", "series", "commit", "run_id", "started", "value", "band_center", "band_half"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    return table[table["departure"]].sort_values("order")[columns].reset_index(drop=True)
