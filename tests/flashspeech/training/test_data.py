"""Training-data helpers: the prompt/target split, frame fitting, frame-budget batches."""

from __future__ import annotations

import random

import pytest
import torch

from flashspeech.training.data import apply_split, fit_to_frames, frame_budget_batches, prompt_split


def test_prompt_span_is_10_to_50_percent_of_inner_phonemes():
    durations = [3] + [2] * 20 + [0]  # <s>, 20 phonemes, </s>
    rng = random.Random(0)
    lengths = set()
    for _ in range(500):
        s = prompt_split(durations, rng)
        assert 1 <= s.start < s.stop <= 21  # never <s> (0) or </s> (21)
        assert 2 <= s.stop - s.start <= 10  # 10 % .. 50 % of 20
        assert (s.frame_start, s.frame_stop) == (3 + 2 * (s.start - 1), 3 + 2 * (s.stop - 1))
        lengths.add(s.stop - s.start)
    assert lengths == set(range(2, 11))
    assert prompt_split(durations, random.Random(5)) == prompt_split(durations, random.Random(5))
    with pytest.raises(ValueError, match="at least 2 phonemes"):
        prompt_split([1, 4, 0], rng)


def test_apply_split_removes_the_span_from_the_target():
    phonemes = torch.tensor([2, 10, 11, 12, 13, 3])
    durations = torch.tensor([1, 2, 3, 2, 1, 0])
    latent = torch.arange(9, dtype=torch.float32).repeat(2, 1)  # frame t holds value t
    f0 = torch.arange(9, dtype=torch.float32) * 10
    split = prompt_split(durations.tolist(), random.Random(1))
    tp, td, tl, tf, prompt = apply_split(phonemes, durations, latent, f0, split)
    assert prompt[0].tolist() == list(range(split.frame_start, split.frame_stop))
    assert tl.shape[-1] == 9 - prompt.shape[-1] == int(td.sum()) == len(tf)
    assert set(tl[0].tolist()).isdisjoint(prompt[0].tolist())
    assert len(tp) == len(td) == 6 - (split.stop - split.start) and tp[0] == 2 and tp[-1] == 3


def test_fit_to_frames():
    assert fit_to_frames([0, 3, 4, 0], 8) == [0, 3, 4, 1]  # ceil vs round: one more frame
    assert fit_to_frames([0, 3, 4, 1], 7) == [0, 3, 4, 0]
    assert fit_to_frames([0, 3, 1, 0], 2) == [0, 2, 0, 0]  # takes from earlier phonemes, never negative
    with pytest.raises(ValueError):
        fit_to_frames([0, 1], -1)


def test_frame_budget_batches_cover_everything_within_budget():
    rng = random.Random(0)
    lengths = [rng.randint(50, 900) for _ in range(300)]
    batches = frame_budget_batches(lengths, max_frames=4000, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(300))
    assert all(len(b) * max(lengths[i] for i in b) <= 4000 for b in batches)
    assert frame_budget_batches(lengths, 4000, seed=1) == batches
    assert frame_budget_batches(lengths, 4000, seed=2) != batches
    with pytest.raises(ValueError, match="longer than the frame budget"):
        frame_budget_batches([10, 5000], 4000)
