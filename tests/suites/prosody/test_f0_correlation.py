"""`f0_correlation`: how much of a source's intonation a conversion kept, register and range left out."""

from __future__ import annotations

import numpy as np

from flashspeech.foundation.f0 import F0Track
from suites.prosody.features import MIN_CORRELATION_FRAMES, f0_correlation

PERIOD = 0.0125


def track(hz: np.ndarray) -> F0Track:
    return F0Track(np.asarray(hz, dtype=float), PERIOD)


def test_the_same_shape_in_another_register_and_tempo_correlates_fully():
    t = np.linspace(0, 1, 200)
    source = 120 * 2 ** (np.sin(2 * np.pi * 1.5 * t) / 6)  # a male rise and fall
    source[:10] = 0  # unvoiced edges
    source[-10:] = 0
    slower = np.interp(np.linspace(0, 1, 260), t, source)  # the same contour, 30 % longer
    higher = np.where(slower > 0, 1.9 * slower**1.2, 0.0)  # a female register, a wider range
    r, frames = f0_correlation(track(higher), track(source))
    assert r is not None and r > 0.99 and frames >= 170
    inverted = np.where(slower > 0, 120 * 2 ** (-np.sin(2 * np.pi * 1.5 * np.linspace(0, 1, 260)) / 6), 0.0)
    r_inv, _ = f0_correlation(track(inverted), track(source))
    assert r_inv is not None and r_inv < -0.95


def test_too_few_frames_voiced_in_both_or_a_flat_contour_give_none():
    source = np.full(100, 150.0)
    source[::2] = 0
    generated = np.zeros(100)
    generated[::2] = 180.0  # voiced exactly where the source is not
    assert f0_correlation(track(generated), track(source)) == (None, 0)
    short = np.zeros(100)
    short[: MIN_CORRELATION_FRAMES - 1] = 150.0 + np.arange(MIN_CORRELATION_FRAMES - 1)
    assert f0_correlation(track(short), track(short))[0] is None
    flat = np.full(100, 150.0)
    assert f0_correlation(track(flat), track(150 + np.arange(100.0)))[0] is None
    assert f0_correlation(track(np.zeros(0)), track(flat)) == (None, 0)
