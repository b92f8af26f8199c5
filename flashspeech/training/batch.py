"""Padded training batches with the paper's in-context prompt split."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from flashspeech.modules.common import lengths_to_mask
from flashspeech.training.data import apply_split, prompt_split


class TrainingItem(Protocol):
    """What a batch is made of: one utterance's features, as a training recipe extracts them from its corpus."""

    id: str
    phonemes: Tensor  # (P,) long
    durations: Tensor  # (P,) long, sums to T
    latent: Tensor  # (D, T) normalised codec latent
    f0: Tensor  # (T,) Hz


@dataclass
class Batch:
    """Target (prompt span removed) and prompt of each item, padded; masks True on valid positions."""

    ids: list[str]
    phonemes: Tensor  # (B, P)
    phone_mask: Tensor  # (B, P)
    durations: Tensor  # (B, P)
    latent: Tensor  # (B, D, T)
    frame_mask: Tensor  # (B, T)
    f0: Tensor  # (B, T)
    prompt: Tensor  # (B, D, Tp)
    prompt_mask: Tensor  # (B, Tp)

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.ids, *(getattr(self, f).to(device) for f in _TENSORS))

    @property
    def frames(self) -> int:
        return int(self.frame_mask.sum())


_TENSORS = ("phonemes", "phone_mask", "durations", "latent", "frame_mask", "f0", "prompt", "prompt_mask")


def _pad(seqs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    lengths = torch.tensor([s.shape[-1] for s in seqs])
    out = seqs[0].new_zeros((len(seqs), *seqs[0].shape[:-1], int(lengths.max())))
    for i, s in enumerate(seqs):
        out[i, ..., : s.shape[-1]] = s
    return out, lengths_to_mask(lengths)


def collate(items: Sequence[TrainingItem], rng: random.Random, split: bool = True) -> Batch:
    """Split each item into prompt and target (a random 10-50 % phoneme span is the prompt), then pad.

    With `split=False` the whole utterance is the target and also its own prompt (for tests and
    inspection only: training on it teaches the model to copy).
    """
    targets = []
    for item in items:
        latent = item.latent.float()
        if split:
            s = prompt_split(item.durations.tolist(), rng)
            targets.append(apply_split(item.phonemes, item.durations, latent, item.f0.float(), s))
        else:
            targets.append((item.phonemes, item.durations, latent, item.f0.float(), latent))
    phonemes, phone_mask = _pad([t[0] for t in targets])
    durations, _ = _pad([t[1] for t in targets])
    latent, frame_mask = _pad([t[2] for t in targets])
    f0, _ = _pad([t[3] for t in targets])
    prompt, prompt_mask = _pad([t[4] for t in targets])
    return Batch([i.id for i in items], phonemes, phone_mask, durations, latent, frame_mask, f0, prompt, prompt_mask)
