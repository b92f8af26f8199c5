"""Placing text on a drawn matplotlib axes so that nothing collides, working on display-space boxes and paths.

- `place_labels`: each short label next to its data point, clear of the other labels, of every marker and of the
  axes' edge, preferring a spot no plotted line or error bar crosses; a label set away from its point gets a thin
  leader line, and one with no free spot is left out (and named);
- `log_ticks`: a log x axis labelled as densely as its tick labels allow without touching.

Both measure text with the figure's renderer, so call them once the axes' limits and position are final.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.collections import LineCollection
from matplotlib.path import Path as MplPath
from matplotlib.text import Annotation
from matplotlib.ticker import FuncFormatter, LogLocator
from matplotlib.transforms import Bbox

LABEL_OFFSETS = (5.0, 9.0, 14.0, 20.0)  # points from the marker, nearest first; beyond 9 with a leader line
LABEL_SIZE = 8
DIRECTIONS = ((1, 1), (-1, 1), (1, -1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))


def _overlaps(box: Bbox, others: list[Bbox], pad: float = 1.0) -> bool:
    grown = box.expanded(1.0, 1.0).padded(pad)
    return any(grown.overlaps(o) for o in others)


def _candidates() -> list[tuple[tuple[float, float], str, str]]:
    """Label offsets (points) with their alignment, nearest first."""
    out = []
    for distance in LABEL_OFFSETS:
        for dx, dy in DIRECTIONS:
            norm = (dx * dx + dy * dy) ** 0.5
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            out.append(((distance * dx / norm, distance * dy / norm), ha, va))
    return out


def place_labels(ax: Axes, labels: list[tuple[str, float, float, str]], renderer: RendererBase) -> list[str]:
    """Put each (text, x, y, colour) label next to its data point without touching another label, a marker or the
    axes' edge: the nearest free spot, preferring one no plotted line crosses; a label placed away from its point
    gets a thin leader line. Call it once the axes' limits and position are final. Returns the texts that found no
    free spot (left out)."""
    ppp = ax.figure.dpi / 72.0  # pixels per point
    frame = ax.get_window_extent(renderer).padded(-2.0)
    markers = [
        Bbox.from_bounds(px - size / 2, py - size / 2, size, size)
        for line in ax.get_lines()
        if line.get_marker() not in ("None", "", " ", None)
        for size in [(line.get_markersize() + 2) * ppp]
        for px, py in line.get_transform().transform(line.get_xydata())
    ]
    lines = [MplPath(line.get_transform().transform(line.get_xydata())) for line in ax.get_lines()]
    lines += [  # error bars
        MplPath(bars.get_transform().transform(segment))
        for bars in ax.collections
        if isinstance(bars, LineCollection)
        for segment in bars.get_segments()
    ]
    placed: list[Bbox] = []
    left_out = []
    for text, x, y, colour in labels:
        best: tuple[float, tuple[float, float], str, str] | None = None
        for rank, (offset, ha, va) in enumerate(_candidates()):
            probe = Annotation(
                text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=LABEL_SIZE
            )
            probe.set_figure(ax.figure)
            probe.axes = ax
            box = probe.get_window_extent(renderer)
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if not inside or _overlaps(box, placed, pad=3.0) or _overlaps(box, markers):
                continue
            crossings = sum(len(path.vertices) > 1 and path.intersects_bbox(box, filled=True) for path in lines)
            if best is None or rank + 100.0 * crossings < best[0]:
                best = (rank + 100.0 * crossings, offset, ha, va)
            if not crossings:
                break
        if best is None:
            left_out.append(text)
            continue
        _, offset, ha, va = best
        far = max(map(abs, offset)) > 9
        leader = {"arrowstyle": "-", "color": colour, "lw": 0.6, "linestyle": (0, (2, 1)), "shrinkA": 0, "shrinkB": 3}
        label = ax.annotate(
            text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=LABEL_SIZE, color=colour,
            arrowprops=leader if far else None,
        )  # fmt: skip
        placed.append(label.get_window_extent(renderer))
    return left_out


def log_ticks(ax: Axes, renderer: RendererBase) -> None:
    """Label the log x axis as densely as its tick labels allow without touching."""
    for subs in ((1.0, 2.0, 3.0, 5.0), (1.0, 2.0, 5.0), (1.0, 3.0), (1.0,)):
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_visible() and t.get_text()]
        if not any(_overlaps(a, boxes[i + 1 :], pad=2.0) for i, a in enumerate(boxes)):
            return
