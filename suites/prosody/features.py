"""Utterance-level prosody features and F0 contours (pure functions of an F0 track and durations).

Units: F0 spread and range are in semitones (12·log2 of a frequency ratio), so they do not depend on the
speaker's register; the utterance level is the geometric mean F0 (= exp of the mean log-F0) in Hz.
Phone durations are frames at 80 Hz (12.5 ms), the FlashSpeech / synthetic-corpus convention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flashspeech.foundation.f0 import F0Track, hz_to_semitones

BOUNDARY_SYMBOLS = frozenset({"<s>", "</s>", "<pad>"})
CONTOUR_POINTS = 100  # contours are time-normalised to this many points
RANGE_PERCENTILES = (5.0, 95.0)


@dataclass(frozen=True)
class UtteranceProsody:
    """What the prosody suite measures on one utterance (F0 fields are None without voiced frames)."""

    duration_s: float
    voiced_fraction: float
    f0_mean_hz: float | None  # geometric mean over voiced frames
    f0_std_st: float | None
    f0_range_st: float | None  # 95th - 5th percentile
    phone_durations: np.ndarray | None  # frames per phone, boundary tokens dropped
    contour_st: np.ndarray | None  # voiced frames, semitones, in time order

    @property
    def f0_mean_st(self) -> float | None:
        return None if self.f0_mean_hz is None else float(hz_to_semitones(self.f0_mean_hz))

    def metrics(self) -> dict[str, float]:
        out = {"duration_s": self.duration_s, "voiced_fraction": self.voiced_fraction}
        for name in ("f0_mean_hz", "f0_std_st", "f0_range_st"):
            value = getattr(self, name)
            if value is not None:
                out[name] = float(value)
        if self.phone_durations is not None and len(self.phone_durations):
            out["phone_duration_frames"] = float(self.phone_durations.mean())
        return out


def phone_durations(durations: Sequence[int] | np.ndarray, phonemes: Sequence[str] | None = None) -> np.ndarray:
    """Frames per phone without boundary tokens.

    With `phonemes` (same length), entries whose symbol is <s>, </s> or <pad> are dropped. Without them the
    FlashSpeech layout (<s> ... </s>) is assumed and the first and last entries are dropped.
    """
    d = np.asarray(durations, dtype=np.float64).reshape(-1)
    if d.size and (not np.all(np.isfinite(d)) or (d < 0).any()):
        raise ValueError("phone durations must be finite and >= 0 frames")
    if phonemes is not None:
        if len(phonemes) != len(d):
            raise ValueError(f"got {len(phonemes)} phonemes for {len(d)} durations")
        keep = np.array([p not in BOUNDARY_SYMBOLS for p in phonemes], dtype=bool)
        return d[keep]
    return d[1:-1] if len(d) >= 2 else d[:0]


def utterance_prosody(track: F0Track, duration_s: float, phones: np.ndarray | None = None) -> UtteranceProsody:
    """Features of one utterance from its F0 track, its length and (optionally) its phone durations."""
    st = track.semitones()
    if len(st):
        lo, hi = np.percentile(st, RANGE_PERCENTILES)
        mean_hz = float(np.exp(np.mean(np.log(track.voiced_hz))))
        std, rng, contour = float(np.std(st)), float(hi - lo), st
    else:
        mean_hz = std = rng = None
        contour = None
    return UtteranceProsody(
        duration_s=float(duration_s),
        voiced_fraction=track.voiced_fraction,
        f0_mean_hz=mean_hz,
        f0_std_st=std,
        f0_range_st=rng,
        phone_durations=phones,
        contour_st=contour,
    )


def normalise_contour(contour: np.ndarray, points: int = CONTOUR_POINTS) -> np.ndarray:
    """Linear interpolation of a contour (>= 2 values) onto `points` evenly spaced positions in [0, 1]."""
    contour = np.asarray(contour, dtype=np.float64)
    if len(contour) < 2:
        raise ValueError(f"a contour needs >= 2 voiced frames, got {len(contour)}")
    return np.interp(np.linspace(0.0, 1.0, points), np.linspace(0.0, 1.0, len(contour)), contour)


def contour_distance(a: np.ndarray, b: np.ndarray, points: int = CONTOUR_POINTS) -> float:
    """RMS difference in semitones between two time-normalised voiced-frame contours."""
    diff = normalise_contour(a, points) - normalise_contour(b, points)
    return float(np.sqrt(np.mean(diff**2)))


def mean_pairwise_distance(contours: Sequence[np.ndarray], points: int = CONTOUR_POINTS) -> float:
    """Mean `contour_distance` over all unordered pairs (needs >= 2 contours)."""
    if len(contours) < 2:
        raise ValueError("need >= 2 contours")
    norm = [normalise_contour(c, points) for c in contours]
    dists = [
        float(np.sqrt(np.mean((norm[i] - norm[j]) ** 2))) for i in range(len(norm)) for j in range(i + 1, len(norm))
    ]
    return float(np.mean(dists))


MIN_CORRELATION_FRAMES = 20  # frames voiced in both contours (0.25 s) for an F0 correlation


def f0_correlation(generated: F0Track, source: F0Track) -> tuple[float | None, int]:
    """Pearson correlation of two utterances' log-F0 contours (a conversion against its source), and the frames it
    is over. Each contour is normalised over its own voiced frames (mean and variance of log-F0: the speaker's
    register and range left out, the shape kept); the generated track is mapped onto the source's frames by linear
    time scaling (frame i of n to the nearest of m), and the frames voiced in both are correlated. None when fewer
    than `MIN_CORRELATION_FRAMES` frames are voiced in both, or a contour is flat."""
    g, s = _log_f0_z(generated), _log_f0_z(source)
    n, m = len(s), len(g)
    if n == 0 or m == 0:
        return None, 0
    index = np.rint(np.arange(n) * ((m - 1) / max(n - 1, 1))).astype(int)
    g_on_s = g[index]
    both = np.isfinite(s) & np.isfinite(g_on_s)
    frames = int(both.sum())
    if frames < MIN_CORRELATION_FRAMES:
        return None, frames
    a, b = s[both] - s[both].mean(), g_on_s[both] - g_on_s[both].mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return (None, frames) if denominator == 0 else (float((a * b).sum() / denominator), frames)


def _log_f0_z(track: F0Track) -> np.ndarray:
    """Log-F0 per frame normalised over the voiced frames (NaN where unvoiced; all NaN when fewer than 2 voiced)."""
    out = np.full(len(track.f0), np.nan)
    voiced = track.voiced
    if voiced.sum() < 2:
        return out
    log_f0 = np.log(track.f0[voiced])
    std = log_f0.std()
    out[voiced] = (log_f0 - log_f0.mean()) / std if std > 0 else 0.0
    return out
