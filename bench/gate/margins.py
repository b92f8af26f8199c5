"""Noise-aware gate margins: each rule's allowed regression widened to the spread of recent baseline runs.

Rule: for every gating rule that is not a count, take the metric's value in each of the last N baseline runs
(same config, lock, evaluator and device model as the candidate; at least `MIN_RUNS`), per system; its sample
standard deviation s. A relative rule (timings) gets allowed_rel = max(configured, k * s / |mean|), an
absolute rule allowed_abs = max(configured, k * s), both the largest over systems. Fewer runs leave the
configured margins, and the report says so. k = 3 by default: two runs of one unchanged system then differ by
more than the margin about 3 % of the time for normally distributed noise (the difference has sd s * sqrt 2).
"""

from __future__ import annotations

import math

import pandas as pd

from bench.gate.baseline import BaselineChoice
from bench.gate.rules import GateConfig
from bench.gate.store import run_metrics

MIN_RUNS = 3
DEFAULT_K = 3.0


def noise_margins(config: GateConfig, choice: BaselineChoice, uri: str, runs: int, k: float = DEFAULT_K) -> list[str]:
    """Widen `config`'s margins from the spread of the `runs` nearest qualifying baseline runs (`--noise-runs`)."""
    return apply_history_noise(config, run_metrics(uri, choice.eligible[:runs]), k)


def apply_history_noise(config: GateConfig, history: pd.DataFrame, k: float = DEFAULT_K) -> list[str]:
    """Widen `config`'s margins from `history` (`store.run_metrics` of the baseline runs); returns one line per
    rule saying what was set (also kept in `config.margin_notes`, which the gate report shows)."""
    runs = history["run_id"].nunique() if len(history) else 0
    lines = []
    for rule in config.rules:
        if rule.test == "count" or rule.name == "failed":
            continue
        rows = history[history["metric"] == rule.metric]
        if rows.empty:  # a rule on an items column ("wer.wer") reads its mean's aggregate ("wer.wer_mean")
            rows = history[history["metric"] == f"{rule.metric}_mean"]
        relative = rule.allowed_rel is not None and rule.same_device  # timings: a fraction of the baseline
        spread = 0.0
        for _, values in rows.groupby("system")["value"]:
            values = values.dropna()
            if len(values) < MIN_RUNS:
                continue
            sd = float(values.std(ddof=1))
            mean = float(values.mean())
            scale = (abs(mean) if mean else 0.0) if relative else 1.0  # relative: sd as a fraction of the mean
            spread = max(spread, k * sd / scale if scale else math.inf)
        counted = rows.groupby("system")["value"].count().max() if len(rows) else 0
        if not counted or counted < MIN_RUNS:
            note = f"margin as configured: {int(counted or 0)} baseline run(s) with {rule.metric}, {MIN_RUNS} needed"
        elif relative:
            rule.allowed_rel = max(rule.allowed_rel, spread)
            spread_text = f"k={k:g} x sd over {counted} baseline runs: {100 * spread:.1f} %"
            note = f"margin {100 * rule.allowed_rel:.1f} % ({spread_text})"
        else:
            configured = rule.allowed_abs or 0.0
            rule.allowed_abs = max(configured, spread)
            note = f"margin {rule.allowed_abs:.4g} (k={k:g} x sd over {counted} baseline runs: {spread:.4g})"
        config.margin_notes[rule.metric] = note
        lines.append(f"{rule.metric}: {note}")
    if not runs:
        lines.insert(0, "no baseline runs in the store: margins as configured")
    return lines
