"""The paper's prosody metric: Jensen-Shannon divergence between quantised pitch / duration distributions.

FlashSpeech (§4.2) quantises pitch and duration and compares generated with natural speech by JSD, but
gives no bins, units or pooling. Ours:

- **pitch**: voiced-frame F0 in 54 one-semitone bins with edges 50·2^(k/12) Hz, k = 0..54 (50 Hz to
  1131 Hz: covers the 50-1100 Hz extraction range); values outside fall into the end bins.
- **phone duration**: frames at 80 Hz in 1-frame bins 0, 1, ..., 60 plus one overflow bin (> 60 frames).
- **utterance duration** (its own metric, `utterance_duration_jsd`, never reported as the duration JSD):
  0.5 s bins from 0 to 30 s plus one overflow bin.
- **JSD** with base-2 logarithms, so 0 (same distribution) to 1 (disjoint supports). Counts are
  normalised to probabilities, `eps` (1e-10) is added to every bin and the result renormalised: JSD is
  finite without smoothing, the epsilon only guards the logarithms and changes results by < 1e-8.
"""

from __future__ import annotations

import math

import numpy as np

PITCH_FLOOR_HZ = 50.0
PITCH_CEIL_HZ = 1100.0
PITCH_BINS = math.ceil(12 * math.log2(PITCH_CEIL_HZ / PITCH_FLOOR_HZ))  # 54
PITCH_EDGES_HZ = PITCH_FLOOR_HZ * 2.0 ** (np.arange(PITCH_BINS + 1) / 12.0)
PHONE_MAX_FRAMES = 60  # bins 0..60, then overflow
PHONE_BINS = PHONE_MAX_FRAMES + 2
UTTERANCE_BIN_S = 0.5
UTTERANCE_MAX_S = 30.0
UTTERANCE_BINS = round(UTTERANCE_MAX_S / UTTERANCE_BIN_S) + 1
JSD_EPS = 1e-10


def pitch_counts(f0_hz: np.ndarray) -> np.ndarray:
    """Counts of voiced F0 values (Hz > 0; zeros are ignored) per one-semitone bin."""
    f0 = np.asarray(f0_hz, dtype=np.float64).reshape(-1)
    f0 = f0[np.isfinite(f0) & (f0 > 0)]
    idx = np.floor(12.0 * np.log2(f0 / PITCH_FLOOR_HZ)).astype(np.int64)
    return np.bincount(np.clip(idx, 0, PITCH_BINS - 1), minlength=PITCH_BINS)


def phone_duration_counts(frames: np.ndarray) -> np.ndarray:
    """Counts of phone durations (frames) per 1-frame bin; the last bin holds everything > 60."""
    d = np.rint(np.asarray(frames, dtype=np.float64).reshape(-1)).astype(np.int64)
    return np.bincount(np.clip(d, 0, PHONE_MAX_FRAMES + 1), minlength=PHONE_BINS)


def utterance_duration_counts(seconds: np.ndarray) -> np.ndarray:
    """Counts of utterance durations per 0.5 s bin; the last bin holds everything >= 30 s."""
    s = np.asarray(seconds, dtype=np.float64).reshape(-1)
    idx = np.floor(np.maximum(s, 0.0) / UTTERANCE_BIN_S).astype(np.int64)
    return np.bincount(np.clip(idx, 0, UTTERANCE_BINS - 1), minlength=UTTERANCE_BINS)


def jensen_shannon(p: np.ndarray, q: np.ndarray, eps: float = JSD_EPS) -> float:
    """JSD in bits (0..1) between two histograms (counts or probabilities) over the same bins."""
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    q = np.asarray(q, dtype=np.float64).reshape(-1)
    if p.shape != q.shape:
        raise ValueError(f"histograms have different bins: {p.shape} vs {q.shape}")
    if (p < 0).any() or (q < 0).any() or not (np.isfinite(p).all() and np.isfinite(q).all()):
        raise ValueError("histograms must be finite and non-negative")
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("cannot compare an empty histogram")
    p = p / p.sum() + eps
    q = q / q.sum() + eps
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)
    value = 0.5 * np.sum(p * np.log2(p / m)) + 0.5 * np.sum(q * np.log2(q / m))
    return float(min(max(value, 0.0), 1.0))
