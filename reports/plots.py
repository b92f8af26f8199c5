"""Report figures as PNG bytes (matplotlib Agg canvas, no pyplot state).

- `rtf_vs_steps`: RTF against sampling steps, one line per system family (ground truth has no RTF);
- `wer_vs_steps`, `sim_o_vs_steps`: corpus WER / SIM-o against steps with 95 % CI error bars, ground truth
  as a dashed line with its CI band;
- `frontier`: speed/quality frontier, one panel per test set: RTF (log x) against WER, a line per series through
  its step counts (small labels placed clear of each other and of the markers: `reports.text_placement`), the
  series named in a legend;
- `prosody_diversity`: per-item spread across seeds (`groups` columns `prosody.seed_*`), one panel per metric side
  by side, a horizontal box per system under its test set; skipped with a note when the run has none;
- `reports.vc.vc_sweep`: voice conversion's noise-level sweep (WER against Sim-O to the target), added only when the
  run has FlashSpeech VC systems at a noise level.

The steps and frontier figures draw text-to-speech systems only (a VC test set's systems are left out).

`Plot.wide` marks a figure meant to span the page (the HTML report shows it full width).

A figure that has no data comes back with `png=None` and a `note` saying why.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from bench.record import SystemKey
from bench.results import Results
from reports.plot_base import ERROR_BARS, Plot, ci_error_bars, figure_png
from reports.provenance import NOT_RECORDED, sim_backend, wer_backend
from reports.tables import (
    GROUND_TRUTH,
    Stat,
    is_vc,
    short_name,
    stat,
    system_family,
    system_key,
    system_kind,
    system_steps,
    systems,
    testset_groups,
)
from reports.text_placement import log_ticks, place_labels
from reports.vc import vc_sweep

DIVERSITY = (
    ("prosody.seed_f0_mean_std_st", "mean F0 std over seeds (st)"),
    ("prosody.seed_f0_range_std_st", "F0 range std over seeds (st)"),
    ("prosody.seed_duration_std_s", "duration std over seeds (s)"),
    ("prosody.seed_contour_dist_st", "F0 contour distance (st)"),
)


def _series(results: Results, suite: str, metric: str) -> dict[SystemKey, list[tuple[int, Stat]]]:
    """Family (a series on a test set) -> [(steps, stat)] sorted by steps, for the TTS systems with steps and a
    value (voice conversion has its own figure: `reports.vc`)."""
    out: dict[SystemKey, list[tuple[int, Stat]]] = {}
    for system in tts_systems(results):
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
        values = [s.value for s in stats]
        ax.errorbar(steps, values, yerr=ci_error_bars(stats), marker="o", capsize=4, label=family.label)
    if reference:
        for system in tts_systems(results):
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
    title = f"RTF vs sampling steps ({results.record.device.label})"
    return _steps_plot(results, "rtf_vs_steps", title, "rtf", "rtf", "RTF (s compute / s audio)", reference=False)


def wer_vs_steps(results: Results) -> Plot:
    label = f"corpus WER [{wer_backend(results).short}]"
    return _steps_plot(results, "wer_vs_steps", "WER vs sampling steps", "wer", "wer_corpus", label)


def sim_o_vs_steps(results: Results) -> Plot:
    sim = sim_backend(results)
    label = f"SIM-o [{sim.short if sim is not None else NOT_RECORDED}]"
    return _steps_plot(results, "sim_o_vs_steps", "SIM-o vs sampling steps", "similarity", "sim_o", label)


@dataclass(frozen=True)
class _Point:
    system: str
    series: str  # what a line connects, without the test set
    steps: int | None
    marker: str
    rtf: Stat
    wer: Stat


MARKERS = {"consistency": "o", "diffusion": "s"}  # by sampling family; "D" for systems that do not sample


def _frontier_points(results: Results) -> dict[str | None, list[_Point]]:
    """Test set -> the TTS systems with both RTF > 0 and corpus WER."""
    out: dict[str | None, list[_Point]] = {}
    for testset, group in testset_groups(results):
        for system in [s for s in group if not is_vc(results, s)]:
            rtf, wer = stat(results, system, "rtf", "rtf"), stat(results, system, "wer", "wer_corpus")
            if rtf is None or wer is None or rtf.value <= 0:
                continue
            key = system_key(results, system)
            marker = "D" if key.steps is None else MARKERS.get(str(key.family), "o")
            out.setdefault(testset, []).append(_Point(system, key.curve, key.steps, marker, rtf, wer))
    return out


def frontier_figure(results: Results) -> tuple[Figure, list[str]] | None:
    """The speed/quality frontier: one panel per test set, RTF (log x) against corpus WER with 95 % CIs, one
    line per series through its step counts (small numbers at the points), a legend naming the series and the
    ground truth's WER as a dashed line. Returns the figure and any step labels left out, or None without data."""
    panels = _frontier_points(results)
    if not panels:
        return None
    colours: dict[str, str] = {}
    cycle = [f"C{i}" for i in range(10)]
    for points in panels.values():
        for p in points:
            colours.setdefault(p.series, cycle[len(colours) % len(cycle)])
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(5.4 * ncols, 3.9 * nrows + 0.5), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles: dict[str, Line2D] = {}
    labels: dict[int, list[tuple[str, float, float, str]]] = {}
    for i, (ax, (testset, points)) in enumerate(zip(axes, panels.items(), strict=False)):
        by_series: dict[str, list[_Point]] = {}
        for p in points:
            by_series.setdefault(p.series, []).append(p)
        for series, members in by_series.items():
            members.sort(key=lambda p: (p.steps is None, p.steps or 0))
            colour = colours[series]
            xs, ys = [p.rtf.value for p in members], [p.wer.value for p in members]
            xerr, yerr = ci_error_bars([p.rtf for p in members]), ci_error_bars([p.wer for p in members])
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, alpha=0.4, elinewidth=1, capsize=2)
            ax.plot(xs, ys, "-", color=colour, linewidth=1.2, alpha=0.8)
            for p in members:
                ax.plot([p.rtf.value], [p.wer.value], p.marker, color=colour, markersize=6, zorder=3)
            handles.setdefault(series, Line2D([], [], color=colour, marker=members[0].marker, markersize=6))
            labels.setdefault(i, []).extend(
                (str(p.steps), p.rtf.value, p.wer.value, colour) for p in members if p.steps is not None
            )
        for system in dict(testset_groups(results)).get(testset, []):
            gt = stat(results, system, "wer", "wer_corpus") if system_kind(results, system) == GROUND_TRUTH else None
            if gt is not None:
                ref = ax.axhline(gt.value, color="0.35", linestyle="--", linewidth=1)
                handles.setdefault("ground truth WER (no RTF)", ref)
        ax.set_title(f"test set: {testset}" if testset else "test set not recorded" if len(panels) > 1 else "",
                     fontsize=10)  # fmt: skip
        ax.margins(x=0.08, y=0.12)
        ax.grid(alpha=0.3, which="both")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    every = [p for points in panels.values() for p in points]
    lows = [p.rtf.ci_low if p.rtf.has_ci and p.rtf.ci_low > 0 else p.rtf.value for p in every]
    highs = [p.rtf.ci_high if p.rtf.has_ci else p.rtf.value for p in every]
    for ax in axes[: len(panels)]:  # one RTF scale for every panel: the same machine timed them all
        ax.set_xscale("log")
        ax.set_xlim(min(lows) / 1.6, max(highs) * 1.6)  # at least half a decade, so ticks can be labelled
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(
            f"RTF (compute s / audio s, log scale; {results.record.device.label}): left is faster", fontsize=9
        )
    for ax in axes[: len(panels) : ncols]:
        ax.set_ylabel(f"corpus WER (fraction; {wer_backend(results).short}): lower is better", fontsize=9)
    fig.suptitle("Speed / quality frontier (numbers at the points: sampling steps)", fontsize=11)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncols=min(4, len(handles)),
               fontsize=8, frameon=False)  # fmt: skip
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    for ax in axes[: len(panels)]:
        log_ticks(ax, renderer)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")  # freeze the panels, so labels are placed where they will be drawn
    left_out = []
    for i, ax in enumerate(axes[: len(panels)]):
        left_out += place_labels(ax, labels.get(i, []), renderer)
    return fig, left_out


def frontier(results: Results) -> Plot:
    """The speed/quality frontier as a PNG (see `frontier_figure`)."""
    title = "Speed / quality frontier"
    made = frontier_figure(results)
    if made is None:
        return Plot("frontier", title, None, "no system has both RTF and WER in this run")
    fig, left_out = made
    note = ERROR_BARS + (f"; step labels left out where points coincide: {', '.join(left_out)}" if left_out else "")
    return Plot("frontier", title, figure_png(fig), note, wide=fig.get_figwidth() > 8)


def _unit(label: str) -> tuple[str, str]:
    """`"mean F0 std over seeds (st)"` -> ("mean F0 std over seeds", "semitones (st)")."""
    title, _, unit = label.rpartition(" (")
    unit = unit.rstrip(")")
    return title, {"st": "semitones (st)", "s": "seconds (s)"}.get(unit, unit)


def prosody_diversity_figure(results: Results) -> Figure | None:
    """Per-item diversity across seeds: one panel per available `prosody.seed_*` metric, side by side with a
    shared system axis; horizontal boxes, systems grouped under their test set. None without data."""
    groups = results.groups
    present = [(c, label) for c, label in DIVERSITY if c in groups.columns and groups[c].notna().any()]
    if not present or "system" not in groups.columns:
        return None
    rows: list[tuple[str, str | None]] = []  # (tick label, system or None for a test-set heading)
    sets = testset_groups(results)
    measured = set(groups.loc[groups[[c for c, _ in present]].notna().any(axis=1), "system"])
    for testset, members in sets:
        shown = [s for s in members if s in measured]
        if not shown:
            continue
        if testset is not None or len(sets) > 1:
            rows.append(("test set not recorded" if testset is None else f"test set: {testset}", None))
        rows += [(short_name(results, s), s) for s in shown]
    if not rows:
        return None
    height = 0.24 * len(rows) + 1.6
    fig = Figure(figsize=(1.8 + 2.3 * len(present), height), layout="constrained")
    axes = fig.subplots(1, len(present), sharey=True, squeeze=False)[0]
    positions = list(range(len(rows)))
    for ax, (column, label) in zip(axes, present, strict=True):
        data, where = [], []
        for y, (_, system) in zip(positions, rows, strict=True):
            values = groups.loc[groups["system"] == system, column].dropna().to_numpy(dtype=float)
            if system is not None and values.size:
                data.append(values)
                where.append(y)
        if data:
            ax.boxplot(data, positions=where, orientation="horizontal", showmeans=True, widths=0.6,
                       flierprops={"markersize": 3}, meanprops={"markersize": 4})  # fmt: skip
        title, unit = _unit(label)
        ax.set_title(textwrap.fill(title, 24), fontsize=9)
        ax.set_xlabel(unit, fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_yticks(positions, [text for text, _ in rows])
    axes[0].set_ylim(len(rows) - 0.5, -0.5)  # first row on top
    axes[0].tick_params(axis="y", labelsize=8)
    for tick, (_, system) in zip(axes[0].get_yticklabels(), rows, strict=True):
        if system is None:
            tick.set_fontweight("bold")
    for ax in axes:
        ax.tick_params(axis="y", length=0)
        for y, (_, system) in zip(positions, rows, strict=True):
            if system is None and y:
                ax.axhline(y - 0.5, color="0.6", linewidth=0.8)
    fig.suptitle("Prosody diversity across seeds (higher: more diverse)", fontsize=11)
    return fig


def prosody_diversity(results: Results) -> Plot:
    """Boxes of per-item diversity across seeds (see `prosody_diversity_figure`); skipped with a note without data."""
    title = "Prosody diversity across seeds"
    fig = prosody_diversity_figure(results)
    if fig is None:
        return Plot(
            "prosody_diversity",
            title,
            None,
            "skipped: no prosody diversity columns (prosody.seed_*) in the groups table; "
            "run the prosody suite with several seeds per item",
        )
    note = "boxes over items; triangles are means"
    return Plot("prosody_diversity", title, figure_png(fig), note, wide=fig.get_figwidth() > 8)


PLOTS: tuple[Callable[[Results], Plot], ...] = (rtf_vs_steps, wer_vs_steps, sim_o_vs_steps, frontier, prosody_diversity)


def build_plots(results: Results) -> list[Plot]:
    """Every report figure (skipped ones with their note); the voice conversion sweep only when the run has one."""
    sweep = vc_sweep(results)
    return [make(results) for make in PLOTS] + ([] if sweep is None else [sweep])


def tts_systems(results: Results) -> list[str]:
    """The systems of text-to-speech test sets (`systems` order): what the steps plots draw."""
    return [s for s in systems(results) if not is_vc(results, s)]


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
