"""Masks, positional and noise-level embeddings, length regulation."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def lengths_to_mask(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """(B,) lengths -> (B, T) bool mask, True on valid positions."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over time of (B, T, C) at valid positions -> (B, C)."""
    w = mask.to(x.dtype).unsqueeze(-1)
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(length, dim) sinusoidal position encoding."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    return sinusoidal_embedding(pos[:, 0], dim)


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """(N,) real values -> (N, dim) [sin, cos] features at geometrically spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=values.device, dtype=torch.float32) / half)
    args = values.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    if dim % 2:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


def length_regulate(x: Tensor, durations: Tensor, phone_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Repeat phone features (B, P, C) by integer frame durations (B, P) -> frames (B, T, C) and their mask."""
    durations = durations.clamp_min(0) * phone_mask.long()
    totals = durations.sum(1)
    max_len = max(int(totals.max()), 1)
    frames = x.new_zeros(x.shape[0], max_len, x.shape[2])
    for b in range(x.shape[0]):
        expanded = torch.repeat_interleave(x[b], durations[b], dim=0)
        frames[b, : expanded.shape[0]] = expanded
    return frames, lengths_to_mask(totals, max_len)
