"""Report figures as PNG bytes (matplotlib Agg canvas, no pyplot state).

- `rtf_vs_steps`: RTF against sampling steps, one line per system family (ground truth has no RTF);
- `wer_vs_steps`, `sim_o_vs_steps`: corpus WER / SIM-o against steps with 95 % CI error bars, ground truth
  as a dashed line with its CI band;
- `frontier`: speed/quality frontier, RTF (log x) against WER, one labelled point per system;
- `prosody_diversity`: per-item spread across seeds (`groups` columns `prosody.seed_*`), one box per system;
  skipped with a note when the run has none.

A figure that has no data comes back with `png=None` and a `note` saying why.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.results import Results
from reports.provenance import device, sim_backend, wer_backend
from reports.tables import GROUND_TRUTH, Stat, stat, system_family, system_kind, system_steps, systems

DPI = 110
DIVERSITY = (
    ("prosody.seed_f0_mean_std_st", "mean F0 std over seeds (st)"),
    ("prosody.seed_f0_range_std_st", "F0 range std over seeds (st)"),
    ("prosody.seed_duration_std_s", "duration std over seeds (s)"),
    ("prosody.seed_contour_dist_st", "F0 contour distance (st)"),
)


@dataclass(frozen=True)
class Plot:
    """One figure: PNG bytes, or None with the reason in `note`."""

    name: str
    title: str
    png: bytes | None
    note: str | None = None


ERROR_BARS = "error bars: 95 % bootstrap CI (resampling scheme: see the headline legend)"


def figure_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def _err(stats: list[Stat]) -> np.ndarray:
    """Asymmetric error bars (2 x n); zero where a CI is missing."""
    lows = [s.value - s.ci_low if s.has_ci else 0.0 for s in stats]
    highs = [s.ci_high - s.value if s.has_ci else 0.0 for s in stats]
    return np.maximum(np.array([lows, highs]), 0.0)


def _series(results: Results, suite: str, metric: str) -> dict[str, list[tuple[int, Stat]]]:
    """Family -> [(steps, stat)] sorted by steps, for systems with steps and a value."""
    out: dict[str, list[tuple[int, Stat]]] = {}
    for system in systems(results):
        steps, value = system_steps(results, system), stat(results, system, suite, metric)
        if steps is not None and value is not None:
            out.setdefault(system_family(results, system), []).append((steps, value))
    return {family: sorted(points, key=lambda p: p[0]) for family, points in out.items()}


def _steps_plot(
    results: Results, name: str, title: str, suite: str, metric: str, ylabel: str, reference: bool = True
) -> Plot:
    series = _series(results, suite, metric)
    if not series:
        return Plot(name, title, None, f"no {suite}.{metric} for systems with sampling steps in this run")
    fig = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    all_steps: set[int] = set()
    for family, points in series.items():
        steps, stats = [p[0] for p in points], [p[1] for p in points]
        all_steps.update(steps)
        ax.errorbar(steps, [s.value for s in stats], yerr=_err(stats), marker="o", capsize=4, label=family)
    if reference:
        for system in systems(results):
            gt = stat(results, system, suite, metric) if system_kind(results, system) == GROUND_TRUTH else None
            if gt is not None:
                ax.axhline(gt.value, color="0.35", linestyle="--", linewidth=1, label=f"{system} (no steps)")
                if gt.has_ci:
                    ax.axhspan(gt.ci_low, gt.ci_high, color="0.5", alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(all_steps), [str(s) for s in sorted(all_steps)])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Plot(name, title, figure_png(fig), ERROR_BARS)


def rtf_vs_steps(results: Results) -> Plot:
    title = f"RTF vs sampling steps ({device(results).label})"
    return _steps_plot(results, "rtf_vs_steps", title, "rtf", "rtf", "RTF (s compute / s audio)", reference=False)


def wer_vs_steps(results: Results) -> Plot:
    label = f"corpus WER [{wer_backend(results).short}]"
    return _steps_plot(results, "wer_vs_steps", "WER vs sampling steps", "wer", "wer_corpus", label)


def sim_o_vs_steps(results: Results) -> Plot:
    label = f"SIM-o [{sim_backend(results).short}]"
    return _steps_plot(results, "sim_o_vs_steps", "SIM-o vs sampling steps", "similarity", "sim_o", label)


def frontier(results: Results) -> Plot:
    """RTF (log x) against WER, one labelled point per system with both."""
    title = "Speed / quality frontier"
    points = []
    for system in systems(results):
        rtf, wer = stat(results, system, "rtf", "rtf"), stat(results, system, "wer", "wer_corpus")
        if rtf is not None and wer is not None and rtf.value > 0:
            points.append((system, rtf, wer))
    if not points:
        return Plot("frontier", title, None, "no system has both RTF and WER in this run")
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for system, rtf, wer in points:
        ax.errorbar([rtf.value], [wer.value], xerr=_err([rtf]), yerr=_err([wer]), marker="o", capsize=3)
        ax.annotate(system, (rtf.value, wer.value), textcoords="offset points", xytext=(6, 6), fontsize=8)
    for system in systems(results):
        gt = stat(results, system, "wer", "wer_corpus") if system_kind(results, system) == GROUND_TRUTH else None
        if gt is not None:
            ax.axhline(gt.value, color="0.35", linestyle="--", linewidth=1, label=f"{system} WER")
            ax.legend(fontsize=8)
    ax.set_xscale("log")
    lows = [r.ci_low if r.has_ci and r.ci_low > 0 else r.value for _, r, _ in points]
    highs = [r.ci_high if r.has_ci else r.value for _, r, _ in points]
    ax.set_xlim(min(lows) / 1.6, max(highs) * 1.6)  # at least half a decade, so ticks can be labelled
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"RTF, log scale ({device(results).label}); left is faster")
    ax.set_ylabel(f"corpus WER [{wer_backend(results).short}]; lower is better")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    return Plot("frontier", title, figure_png(fig), ERROR_BARS)


def prosody_diversity(results: Results) -> Plot:
    """Boxes of per-item diversity across seeds, one panel per available `prosody.seed_*` metric."""
    title = "Prosody diversity across seeds"
    groups = results.groups
    present = [(c, label) for c, label in DIVERSITY if c in groups.columns and groups[c].notna().any()]
    if not present or "system" not in groups.columns:
        return Plot(
            "prosody_diversity",
            title,
            None,
            "skipped: no prosody diversity columns (prosody.seed_*) in the groups table; "
            "run the prosody suite with several seeds per item",
        )
    names = [s for s in systems(results) if (groups["system"] == s).any()]
    cols = min(2, len(present))
    rows = -(-len(present) // cols)
    fig = Figure(figsize=(6.0 if cols == 1 else 8.0, 3.4 * rows), layout="constrained")
    for i, (column, label) in enumerate(present, start=1):
        ax = fig.add_subplot(rows, cols, i)
        data = [groups.loc[groups["system"] == s, column].dropna().to_numpy(dtype=float) for s in names]
        keep = [(s, d) for s, d in zip(names, data, strict=True) if d.size]
        ax.boxplot([d for _, d in keep], showmeans=True)
        ax.set_xticks(range(1, len(keep) + 1), [s for s, _ in keep])
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"{title} (higher: more diverse)")
    return Plot("prosody_diversity", title, figure_png(fig), "boxes over items; triangles are means")


PLOTS: tuple[Callable[[Results], Plot], ...] = (rtf_vs_steps, wer_vs_steps, sim_o_vs_steps, frontier, prosody_diversity)


def build_plots(results: Results) -> list[Plot]:
    """Every report figure (skipped ones with their note)."""
    return [make(results) for make in PLOTS]


def save_plots(plots: list[Plot], directory: str | Path) -> dict[str, Path]:
    """Write each rendered figure as `<name>.png`; returns name -> path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for plot in plots:
        if plot.png is not None:
            path = out / f"{plot.name}.png"
            path.write_bytes(plot.png)
            paths[plot.name] = path
    return paths
