"""Voice conversion (VC) in a report: the paper's Table 6 layout per VC test set, and the noise-level sweep.

A VC test set's systems (key task "vc"): FlashSpeech VC at a noise level sigma (kind `flashspeech_vc`, one system
per level), the source passed through unchanged (`source_passthrough`: the floor), the target speaker's own reading
(`ground_truth`: the topline) and its codec resynthesis, and external programs.

- `vc_systems`: those systems by test set, floor first, FlashSpeech VC by noise level, topline last;
- `vc_table` / `vc_notes`: their numbers with 95 % CIs (Sim-O to the target, Sim to the source, SIM-target, WER,
  F0 correlation with the source, MOS, RTF, failures) and how to read them;
- `vc_sweep`: WER against Sim-O to the target through the noise levels, floor and topline as their own markers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.results import Results
from reports.failures import failures_cell
from reports.headline import F0_CORR, HEADLINE, MOS, SIM_SOURCE, VC_SIM_O, rtf_flags
from reports.plot_base import ERROR_BARS, Plot, ci_error_bars, figure_png
from reports.provenance import NOT_RECORDED, mos_predictor, sim_backend, wer_backend
from reports.tables import GROUND_TRUTH, Stat, fmt_ci, is_vc, short_name, stat, system_key, testset_groups
from reports.text_placement import place_labels

FLASHSPEECH_VC, PASSTHROUGH, CODEC = "flashspeech_vc", "source_passthrough", "codec_resynthesis"
RANK = {PASSTHROUGH: 0, FLASHSPEECH_VC: 1, CODEC: 3, GROUND_TRUTH: 4}  # any other kind (external): 2
VC_SWEEP = "vc_sweep"  # the sweep's plot name (its PNG: vc_sweep.png)
SIM_TARGET, WER, RTF = HEADLINE[3], HEADLINE[0], HEADLINE[5]
COLUMNS = (VC_SIM_O, SIM_SOURCE, SIM_TARGET, WER, F0_CORR, MOS, RTF)
NOISE_LABEL, FAILURES_LABEL = "Noise level σ", "Failures"
MEANING = {
    VC_SIM_O: "Sim-O: cosine to the target speaker's reference clip (the paper's Sim-O for voice conversion)",
    SIM_SOURCE: "Sim to source: cosine to the source utterance, the source speaker left in (lower is better "
    "converted; the unconverted source scores about 1)",
    SIM_TARGET: "SIM-target: cosine to the target speaker's own reading of the source text",
    WER: "WER: against the source text (the content kept)",
    F0_CORR: "F0 corr: Pearson correlation of the output's log-F0 contour with the source's, each normalised to "
    "zero mean and unit variance per utterance (the prosody kept)",
    RTF: "RTF: compute seconds per second of audio",
}
ROLES = {
    FLASHSPEECH_VC: "σ: the noise level FlashSpeech VC diffuses the source to",
    PASSTHROUGH: "source passthrough: the floor (the source unchanged, no conversion)",
    GROUND_TRUTH: "ground truth: the topline (the target speaker's own reading of the source text)",
    CODEC: "codec resynthesis: that reading through the codec",
}


def vc_systems(results: Results) -> list[tuple[str | None, list[str]]]:
    """The voice conversion systems by test set: source passthrough, FlashSpeech VC by series and noise level,
    other systems in run order, codec resynthesis, ground truth."""
    out = []
    for testset, group in testset_groups(results):
        members = [s for s in group if is_vc(results, s)]
        if members:
            out.append((testset, sorted(members, key=lambda s, g=group: _order(results, s, g))))
    return out


def _order(results: Results, system: str, group: list[str]) -> tuple[int, str, float, int]:
    key = system_key(results, system)
    rank = RANK.get(key.kind, 2)
    noise = math.inf if key.noise_level is None else key.noise_level
    return rank, key.curve if rank == 1 else "", noise, group.index(system)


def _mos_label(results: Results) -> str:
    mos = mos_predictor(results)
    return f"MOS ({mos.short if mos is not None else NOT_RECORDED}) ↑"


def vc_table(results: Results, group: Sequence[str] | None = None) -> pd.DataFrame:
    """The paper's Table 6 layout for `group` (default: every VC system): system (without its test set when all
    rows share one), noise level, each metric with its 95 % CI, failures; columns no row has are left out."""
    rows = list(group) if group is not None else [s for _, members in vc_systems(results) for s in members]
    one_testset = len({system_key(results, s).testset for s in rows}) <= 1
    columns = [c for c in COLUMNS if any(stat(results, s, c.suite, c.metric) for s in rows)]
    labels = {c: _mos_label(results) if c is MOS else c.label for c in columns}
    noise = any(system_key(results, s).noise_level is not None for s in rows)
    out = []
    for system in rows:
        level = system_key(results, system).noise_level
        row = {"System": short_name(results, system) if one_testset else system}
        if noise:
            row[NOISE_LABEL] = "–" if level is None else format(level, "g")
        for c in columns:
            cell = fmt_ci(stat(results, system, c.suite, c.metric), c.spec)
            row[labels[c]] = cell + (rtf_flags(results, system) if c is RTF and cell != "–" else "")
        row[FAILURES_LABEL] = failures_cell(results, system)
        out.append(row)
    head = ["System", *([NOISE_LABEL] if noise else []), *labels.values(), FAILURES_LABEL]
    return pd.DataFrame(out, columns=head)


def vc_notes(results: Results) -> list[str]:
    """How to read the voice conversion tables: the metrics shown, floor and topline, and what MOS stands for."""
    members = [s for _, group in vc_systems(results) for s in group]
    shown = [c for c in COLUMNS if any(stat(results, s, c.suite, c.metric) for s in members)]
    sim = sim_backend(results)
    meanings = [MEANING[c] for c in shown if c in MEANING]
    lines = ["95 % CIs in brackets. " + "; ".join(meanings) + "."] if meanings else []
    kinds = {system_key(results, s).kind for s in members}
    roles = [text for kind, text in ROLES.items() if kind in kinds]
    if roles:
        lines.append("; ".join(roles) + ".")
    if sim is not None and any(c.suite == "similarity" for c in shown):
        lines.append(f"Speaker similarity from {sim.label}.")
    mos = mos_predictor(results)
    if mos is None:
        lines.append("The paper's CMOS and SMOS are subjective listening tests: no counterpart in this run.")
    else:
        lines.append(
            f"MOS stands in for the paper's CMOS and SMOS (subjective listening tests, not run here): it is predicted "
            f"by {mos.label}, not judged by listeners."
        )
    return lines


# --- the noise-level sweep --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    """A system on the sweep's axes: corpus WER and Sim-O to the target (both with their CIs)."""

    system: str
    kind: str
    noise_level: float | None
    wer: Stat
    sim_o: Stat


@dataclass(frozen=True)
class Sweep:
    """One VC test set's panel: each series' points by noise level, and the floor and topline systems."""

    testset: str | None
    series: dict[str, tuple[SweepPoint, ...]]
    references: tuple[SweepPoint, ...]

    @property
    def empty(self) -> bool:
        """No series point to draw (the floor and topline alone make no sweep)."""
        return not self.series


# kind -> marker, size, colour, legend label
REFERENCE_STYLE = {
    PASSTHROUGH: ("v", 9, "0.5", "source passthrough (floor)"),
    GROUND_TRUTH: ("*", 14, "0.1", "ground truth (topline)"),
}


def vc_sweeps(results: Results) -> list[Sweep]:
    """Per VC test set with a system at a noise level: the points of the systems that have both WER and Sim-O."""
    out = []
    for testset, group in vc_systems(results):
        if not any(system_key(results, s).noise_level is not None for s in group):
            continue
        series: dict[str, list[SweepPoint]] = {}
        references = []
        for system in group:
            key = system_key(results, system)
            wer, sim = stat(results, system, "wer", "wer_corpus"), stat(results, system, "similarity", "sim_o")
            if wer is None or sim is None:
                continue
            point = SweepPoint(system, key.kind, key.noise_level, wer, sim)
            if key.noise_level is not None:
                series.setdefault(key.curve, []).append(point)
            elif key.kind in REFERENCE_STYLE:
                references.append(point)
        ordered = {name: tuple(sorted(points, key=lambda p: p.noise_level or 0.0)) for name, points in series.items()}
        out.append(Sweep(testset, ordered, tuple(references)))
    return out


def vc_sweep_figure(results: Results) -> tuple[Figure, list[str]] | None:
    """One panel per VC test set: corpus WER (x) against Sim-O to the target (y) with 95 % CIs, a line per series
    through its noise levels (σ at the points), the floor and topline as their own markers. Returns the figure and
    the σ labels left out where points coincide, or None when no panel has a point."""
    panels = [s for s in vc_sweeps(results) if not s.empty]
    if not panels:
        return None
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(5.4 * ncols, 3.9 * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    labels: list[list[tuple[str, float, float, str]]] = []
    for ax, sweep in zip(axes, panels, strict=False):
        texts = []
        for i, (series, points) in enumerate(sweep.series.items()):
            colour = f"C{i % 10}"
            xs, ys = [p.wer.value for p in points], [p.sim_o.value for p in points]
            xerr, yerr = ci_error_bars([p.wer for p in points]), ci_error_bars([p.sim_o for p in points])
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, alpha=0.4, elinewidth=1, capsize=2)
            ax.plot(xs, ys, "-o", color=colour, markersize=6, label=series, zorder=3)
            texts += [(f"σ={p.noise_level:g}", p.wer.value, p.sim_o.value, colour) for p in points]
        for p in sweep.references:
            marker, size, colour, name = REFERENCE_STYLE[p.kind]
            xerr, yerr = ci_error_bars([p.wer]), ci_error_bars([p.sim_o])
            ax.errorbar([p.wer.value], [p.sim_o.value], xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, alpha=0.5,
                        elinewidth=1, capsize=2)  # fmt: skip
            ax.plot([p.wer.value], [p.sim_o.value], marker, color=colour, markersize=size, label=name, zorder=4)
        labels.append(texts)
        ax.set_title(f"test set: {sweep.testset}" if sweep.testset else "test set not recorded", fontsize=10)
        ax.margins(x=0.12, y=0.12)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_xlabel(f"corpus WER against the source text ({wer_backend(results).short}): lower is better", fontsize=9)
    sim = sim_backend(results)
    for ax in axes[: len(panels) : ncols]:  # the first column's: a long label would run into the title
        ax.set_ylabel(f"Sim-O to the target ({sim.short if sim else NOT_RECORDED})\nhigher is better", fontsize=9)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle("Voice conversion: noise-level sweep (σ at the points)", fontsize=11)
    FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    fig.set_layout_engine("none")  # freeze the panels, so labels are placed where they will be drawn
    left_out = []
    for ax, texts in zip(axes, labels, strict=False):
        left_out += place_labels(ax, texts, renderer)
    return fig, left_out


def vc_sweep(results: Results) -> Plot | None:
    """The sweep as a PNG (see `vc_sweep_figure`); None when no VC system has a noise level, and a note instead of
    a figure when none of them has both WER and Sim-O."""
    if not vc_sweeps(results):
        return None
    title = "Voice conversion: noise-level sweep"
    made = vc_sweep_figure(results)
    if made is None:
        return Plot(VC_SWEEP, title, None, "no voice conversion system has both WER and Sim-O in this run")
    fig, left_out = made
    note = ERROR_BARS + (f"; σ labels left out where points coincide: {', '.join(left_out)}" if left_out else "")
    return Plot(VC_SWEEP, title, figure_png(fig), note, wide=fig.get_figwidth() > 8)
