"""Training-data helpers as small pure functions.

- `prompt_split`: the paper's in-context scheme: a random contiguous span of 10-50 % of an utterance's
  phonemes is the prompt; its frames are cut out and the rest (before + after, concatenated) is the target,
  with the span's phonemes, durations and pitch removed from the target.
- `fit_to_frames`: durations from the corpus sum to round(S / hop) but a codec gives its own frame count
  (the mel codec: ceil(S / hop)); the last phoneme absorbs the difference.
- `frame_budget_batches`: batches of similar lengths whose padded size (items x longest) stays within a
  frame budget, deterministic given the seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PromptSplit:
    """Phoneme span [start, stop) used as the prompt, and its frames [frame_start, frame_stop)."""

    start: int
    stop: int
    frame_start: int
    frame_stop: int


def prompt_split(
    durations: Sequence[int], rng: random.Random, min_frac: float = 0.1, max_frac: float = 0.5
) -> PromptSplit:
    """Choose the prompt span among the inner phonemes (never <s> at 0 or </s> at the end)."""
    inner = len(durations) - 2
    if inner < 2:
        raise ValueError(f"need at least 2 phonemes between <s> and </s> to split, got {inner}")
    shortest = max(1, math.ceil(min_frac * inner))
    longest = max(shortest, min(inner - 1, math.floor(max_frac * inner)))
    length = rng.randint(shortest, longest)
    start = rng.randint(1, inner - length + 1)
    edges = [0]
    for d in durations:
        edges.append(edges[-1] + int(d))
    return PromptSplit(start, start + length, edges[start], edges[start + length])


def apply_split(
    phonemes: Tensor, durations: Tensor, latent: Tensor, f0: Tensor, split: PromptSplit
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """(target phonemes, target durations, target latent (D, T'), target f0 (T',), prompt latent (D, Tp))."""
    keep = torch.ones(len(phonemes), dtype=torch.bool)
    keep[split.start : split.stop] = False
    frames = torch.ones(latent.shape[-1], dtype=torch.bool)
    frames[split.frame_start : split.frame_stop] = False
    prompt = latent[:, split.frame_start : split.frame_stop]
    return phonemes[keep], durations[keep], latent[:, frames], f0[frames], prompt


def fit_to_frames(durations: Sequence[int], n_frames: int) -> list[int]:
    """Durations adjusted to sum to `n_frames` by changing the last phoneme(s), never below zero."""
    out = [int(d) for d in durations]
    diff = n_frames - sum(out)
    i = len(out) - 1
    while diff != 0 and i >= 0:
        change = diff if diff > 0 else max(diff, -out[i])
        out[i] += change
        diff -= change
        i -= 1
    if diff != 0:
        raise ValueError(f"cannot fit durations summing to {sum(durations)} into {n_frames} frames")
    return out


def frame_budget_batches(lengths: Sequence[int], max_frames: int, seed: int = 0) -> list[list[int]]:
    """Index batches: similar lengths together, len(batch) * max(length) <= max_frames, order shuffled."""
    if any(n > max_frames for n in lengths):
        too_long = [i for i, n in enumerate(lengths) if n > max_frames]
        raise ValueError(f"items {too_long[:10]} are longer than the frame budget {max_frames}")
    rng = random.Random(seed)
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], rng.random()))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * lengths[i] > max_frames:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches
