"""The trend report (`flashspeech-bench history`): Markdown for a CI job summary, HTML with one plot per metric.

Input is `bench.gate.history.history_table`: a row per (run, system, metric) with bands. The report
names every departure (the commit where a metric left its band for the worse), every run whose gate failed,
each system's latest value against its band, and the runs it covers. Plots: a metric's value per run (x: the
runs in order, labelled by commit) with its 95 % CI, the band shaded, gate failures as red lines and departures
as red triangles; timings get one panel per device model and are never drawn across devices, and a timing that is
not clean (borrowed from the cache, taken on a busy machine) is drawn hollow, off the line, and listed apart.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from bench.gate.history import CLEAN, departures
from bench.gate.store import GATE_BASELINE_TAG, StoredRun
from flashspeech.foundation.files import write_text_atomic
from reports.html import CSS, html_table
from reports.markdown import md_table
from reports.plots import figure_png


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{value:.4g}" if isinstance(value, float | int | np.floating) else str(value)


def _commit(value: object) -> str:
    return str(value)[:8] if value else "?"


def _md(frame: pd.DataFrame) -> str:
    return md_table(frame.map(_fmt) if len(frame) else frame) + "\n"


def departure_table(table: pd.DataFrame) -> pd.DataFrame:
    found = departures(table)
    return pd.DataFrame(
        {
            "system": found["system"],
            "metric": found["metric"],
            "series": found["series"],
            "commit": found["commit"].map(_commit),
            "run": found["run_id"].str[:8],
            "value": found["value"],
            "band": [f"{c:.4g} ± {h:.2g}" for c, h in zip(found["band_center"], found["band_half"], strict=True)],
        }
    )


def gate_failures(runs: Sequence[StoredRun]) -> pd.DataFrame:
    failed = [r for r in runs if r.gate == "failed"]
    return pd.DataFrame(
        {
            "run": [r.run_id[:8] for r in failed],
            "commit": [_commit(r.lineage.commit) for r in failed],
            "started": [f"{r.started:%Y-%m-%d %H:%M}" for r in failed],
            "baseline": [(r.tags.get(GATE_BASELINE_TAG) or "?")[:8] for r in failed],
        }
    )


def latest_table(table: pd.DataFrame) -> pd.DataFrame:
    """Each series' latest run: value [CI], its band and whether it is inside."""
    rows = []
    for (system, metric, series), group in table.groupby(["system", "metric", "series"], sort=True):
        last = group.sort_values("order").iloc[-1]
        ci = "" if pd.isna(last["ci_low"]) else f" [{last['ci_low']:.3g}, {last['ci_high']:.3g}]"
        band = "–" if pd.isna(last["band_center"]) else f"{last['band_center']:.4g} ± {last['band_half']:.2g}"
        status = last["left_band"] or ("inside" if band != "–" else "too few runs for a band")
        if _marked(last):
            status = f"{last['timing']}: not banded"
        rows.append([system, metric, series, f"{last['value']:.4g}{ci}", band, status, _commit(last["commit"])])
    return pd.DataFrame(rows, columns=["system", "metric", "series", "latest", "band", "status", "commit"])


def _marked(row: pd.Series) -> bool:
    """A timing that is not clean (borrowed, contended, not timed): shown apart, never in a band."""
    timing = row.get("timing")
    return isinstance(timing, str) and timing != CLEAN


def _marked_rows(frame: pd.DataFrame) -> np.ndarray:
    """`_marked` for every row of `frame` at once."""
    if "timing" not in frame:
        return np.zeros(len(frame), dtype=bool)
    timing = frame["timing"]
    return (timing.map(lambda t: isinstance(t, str)) & (timing != CLEAN)).to_numpy(dtype=bool)


def marked_timings(table: pd.DataFrame) -> pd.DataFrame:
    """The timing values that are not clean, with why: kept out of the bands and plotted hollow."""
    columns = ["system", "metric", "commit", "run", "value", "timing"]
    if table.empty or "timing" not in table:
        return pd.DataFrame(columns=columns)
    rows = table[_marked_rows(table)].sort_values("order")
    return pd.DataFrame(
        {
            "system": rows["system"],
            "metric": rows["metric"],
            "commit": rows["commit"].map(_commit),
            "run": rows["run_id"].str[:8],
            "value": rows["value"],
            "timing": rows["timing"],
        },
        columns=columns,
    )


def run_table(runs: Sequence[StoredRun]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "#": range(1, len(runs) + 1),
            "run": [r.run_id[:8] for r in runs],
            "commit": [_commit(r.lineage.commit) for r in runs],
            "branch": [r.lineage.branch or "?" for r in runs],
            "device": [r.lineage.device_model or "?" for r in runs],
            "started": [f"{r.started:%Y-%m-%d %H:%M}" for r in runs],
            "gate": [r.gate or "–" for r in runs],
        }
    )


def _title(runs: Sequence[StoredRun], config: str | None) -> str:
    name = config or ", ".join(sorted({r.lineage.config or "?" for r in runs})) or "no runs"
    return f"History: {name} ({len(runs)} run(s))"


def render_markdown(
    table: pd.DataFrame, runs: Sequence[StoredRun], config: str | None = None, branch: str | None = None
) -> str:
    parts = [f"# {_title(runs, config)}\n"]
    if not runs:
        scope = f"config {config}" if config else "any config"
        parts.append(f"No runs of {scope}{f' on branch {branch}' if branch else ''} in this MLflow store.\n")
        return "".join(parts)
    found = departure_table(table)
    if len(found):
        latest = found.iloc[-1]
        parts.append(
            f"**{len(found)} departure(s)**; latest: {latest['system']} {latest['metric']} at commit "
            f"{latest['commit']}.\n"
        )
    else:
        parts.append("No metric left its band.\n")
    parts += ["\n## Where a metric left its band (worse)\n\n", _md(found)]
    parts += ["\n## Runs whose gate failed\n\n", _md(gate_failures(runs))]
    parts += ["\n## Latest run against its band\n\n", _md(latest_table(table))]
    marked = marked_timings(table)
    if len(marked):
        parts += [
            "\n## Timings kept out of the bands\n\n",
            "Not all of the run's own, or taken while the machine was busy: plotted hollow, never a departure.\n\n",
            _md(marked),
        ]
    parts += ["\n## Runs (oldest first)\n\n", _md(run_table(runs))]
    parts.append(
        "\nBand: median of the runs before ± k sd, sd = max(1.4826 · MAD, √2 · median CI half-width / 1.96); "
        "timings per device model.\n"
    )
    return "".join(parts)


def metric_figure(table: pd.DataFrame, metric: str, runs: Sequence[StoredRun]) -> Figure | None:
    rows = table[table["metric"] == metric]
    if rows.empty:
        return None
    panels = sorted(rows["series"].unique())
    fig = Figure(figsize=(7.5, 2.8 * len(panels)))
    labels = [_commit(r.lineage.commit) for r in runs]
    failed = [i for i, r in enumerate(runs) if r.gate == "failed"]
    for n, series in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, n + 1)
        for system, group in rows[rows["series"] == series].groupby("system", sort=True):
            group = group.sort_values("order")
            x, y = group["order"].to_numpy(), group["value"].to_numpy(dtype=float)
            low = np.maximum(y - group["ci_low"].fillna(group["value"]).to_numpy(dtype=float), 0)
            high = np.maximum(group["ci_high"].fillna(group["value"]).to_numpy(dtype=float) - y, 0)
            clean = ~_marked_rows(group)
            yc = np.where(clean, y, np.nan)  # marked timings are not joined to the clean line
            line = ax.errorbar(x, yc, yerr=[low, high], marker="o", ms=3, capsize=2, label=str(system))
            if (~clean).any():
                ax.plot(x[~clean], y[~clean], "o", mfc="none", mec="#667085", ms=6, label=f"{system} (not clean)")
            banded = group["band_center"].notna().to_numpy()
            if banded.any():
                c = group["band_center"].to_numpy(dtype=float)[banded]
                h = group["band_half"].to_numpy(dtype=float)[banded]
                ax.fill_between(x[banded], c - h, c + h, alpha=0.15, color=line[0].get_color(), linewidth=0)
            dep = group["departure"].to_numpy(dtype=bool)
            ax.plot(x[dep], y[dep], "v", color="#b42318", ms=9, zorder=5)
        for i in failed:
            ax.axvline(i, color="#b42318", alpha=0.4, linewidth=1)
        ax.set_title(f"{metric}: {series}", fontsize=9)
        ax.set_xticks(range(len(labels)), labels, rotation=60, fontsize=6)
        ax.tick_params(axis="y", labelsize=7)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    return fig


def render_html(table: pd.DataFrame, runs: Sequence[StoredRun], config: str | None = None) -> str:
    title = _title(runs, config)
    figures = []
    for metric in dict.fromkeys(table["metric"]) if len(table) else []:
        fig = metric_figure(table, metric, runs)
        if fig is not None:
            src = "data:image/png;base64," + base64.b64encode(figure_png(fig)).decode("ascii")
            figures.append(
                f'<figure class="wide"><img src="{src}" alt="{escape(metric)}">'
                f"<figcaption>{escape(metric)}: 95 % CI bars, band shaded, "
                "departures ▼, failed gates red lines, timings not clean hollow grey</figcaption></figure>"
            )
    sections = [
        ("Where a metric left its band (worse)", html_table(departure_table(table))),
        ("Runs whose gate failed", html_table(gate_failures(runs))),
        ("Latest run against its band", html_table(latest_table(table))),
        ("Timings kept out of the bands", html_table(marked_timings(table))),
        ("Plots", f'<div class="figs">{"".join(figures)}</div>' if figures else '<p class="muted">(no data)</p>'),
        ("Runs (oldest first)", html_table(run_table(runs))),
    ]
    body = "".join(f"<section><h2>{escape(h)}</h2>{content}</section>" for h, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main><header><h1>{escape(title)}</h1></header>{body}</main></body></html>\n"
    )


def write_history(
    table: pd.DataFrame,
    runs: Sequence[StoredRun],
    out_dir: str | Path,
    config: str | None = None,
    branch: str | None = None,
) -> dict[str, Path]:
    """Write history.md, history.html and history.csv (the table) into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": write_text_atomic(out / "history.md", render_markdown(table, runs, config, branch)),
        "html": write_text_atomic(out / "history.html", render_html(table, runs, config)),
        "csv": write_text_atomic(
            out / "history.csv", table.drop(columns=["series"], errors="ignore").to_csv(index=False)
        ),
    }
    return paths
