"""What every report figure shares: the `Plot` record, PNG rendering (matplotlib Agg canvas, no pyplot state) and
95 % CI error bars."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from reports.tables import Stat

DPI = 110
ERROR_BARS = "error bars: 95 % bootstrap CI (resampling scheme: see the headline legend)"


@dataclass(frozen=True)
class Plot:
    """One figure: PNG bytes, or None with the reason in `note`."""

    name: str
    title: str
    png: bytes | None
    note: str | None = None
    wide: bool = False  # wider than half the HTML page: shown across its full width


def figure_png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return buf.getvalue()


def ci_error_bars(stats: Sequence[Stat]) -> np.ndarray:
    """Asymmetric error bars (2 x n); zero where a CI is missing."""
    lows = [s.value - s.ci_low if s.has_ci else 0.0 for s in stats]
    highs = [s.ci_high - s.value if s.has_ci else 0.0 for s in stats]
    return np.maximum(np.array([lows, highs]), 0.0)
