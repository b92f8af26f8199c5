"""Durations carried onto the frontend's phonemes: segment alignment and alignment by synthesis (DTW)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.testsets.align import (
    Segment,
    align,
    boundary_error_ms,
    cmu_key,
    espeak_key,
    starts_by_dtw,
    starts_from_segments,
)
from flashspeech.foundation.audio import resample
from flashspeech.text.espeak import PAUSE, Espeak, VoiceSettings


def test_keys_meet_in_one_alphabet():
    assert espeak_key("ˈɑː") == cmu_key("aa") == "ɑ"
    assert espeak_key("ɡ") == cmu_key("g") == "g"
    assert espeak_key("ɜː") == cmu_key("er") == "ɚ"
    assert cmu_key("pau") == PAUSE and cmu_key("AH1") == "ʌ"


def test_align_gives_every_source_to_one_target_in_order():
    # espeak's r-coloured vowel takes flite's vowel and its r; "k" matched; a flite extra joins its left
    target = ["k", "ɑ", "t"]
    source = ["k", "ɑ", "ɹ", "t", "h"]
    spans = align(target, source)
    assert spans == [[0], [1, 2], [3, 4]]
    assert sorted(i for sp in spans for i in sp) == list(range(len(source)))


def test_align_leaves_unmatched_targets_empty():
    assert align(["b", "ə", "n", "æ"], ["b", "n", "æ"]) == [[0], [], [1], [2]]
    with pytest.raises(ValueError, match="empty"):
        align([], ["a"])


def test_starts_from_segments():
    segments = [Segment("pau", 0.2), Segment("k", 0.3), Segment("aa", 0.5), Segment("r", 0.6), Segment("t", 0.7)]
    starts = starts_from_segments(["k", "ˈɑːɹ", "t"], segments)
    assert starts == pytest.approx([0.2, 0.3, 0.6])  # leading pause is <s>; "ɑːɹ" spans aa + r
    # a phoneme flite does not have shares its left neighbour's span
    starts = starts_from_segments(["k", "ə", "t"], [Segment("k", 0.2), Segment("t", 0.3)])
    assert starts == pytest.approx([0.0, 0.1, 0.2])


def _render(text: str, rate: int) -> tuple[np.ndarray, list[int]]:
    out = Espeak.get().synthesize(text, VoiceSettings(name="en-us", rate=rate))
    audio = resample(out.samples, out.sample_rate, 16_000)
    return audio, [round(s * 16_000 / out.sample_rate) for s in out.starts]


def test_dtw_recovers_the_boundaries_of_a_slower_rendering():
    text = "The farmer found an old coin under the barn."
    fast, fast_starts = _render(text, 190)
    slow, slow_starts = _render(text, 130)  # same phonemes, about 45 % longer
    assert len(slow) > 1.3 * len(fast)
    found = starts_by_dtw(fast, fast_starts, slow, 16_000)
    error = boundary_error_ms([s / 16_000 for s in found], [s / 16_000 for s in slow_starts])
    naive = boundary_error_ms([s / 16_000 for s in fast_starts], [s / 16_000 for s in slow_starts])
    assert error < 25.0 < naive  # DTW lands within two frames where copying the fast timings does not
    assert found == sorted(found)
