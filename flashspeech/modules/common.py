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


def interleaved_sinusoidal_positions(length: int, dim: int, device: torch.device | None = None) -> Tensor:
    """(length, dim) the other common layout of the sinusoidal table (the official FlashSpeech encoders'):
    channel c of position p is sin (c even) or cos (c odd) of p * 10000^(-2 floor(c/2) / dim). Row 0 is
    [0, 1, 0, 1, ...]."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    pairs = torch.arange(dim, device=device) // 2 * 2
    args = pos * torch.exp(pairs.float() * (-math.log(10_000.0) / dim))[None, :]
    return torch.where(torch.arange(dim, device=device) % 2 == 0, torch.sin(args), torch.cos(args))


def sinusoid_frequencies(
    half: int, divisor: int | None = None, max_period: float = 10_000.0, device: torch.device | None = None
) -> Tensor:
    """(half,) frequencies max_period^(-i / divisor), i = 0 .. half - 1; `divisor` defaults to `half` (ours;
    the official FlashSpeech noise embedding uses half - 1)."""
    divisor = half if divisor is None else divisor
    if divisor <= 0:
        raise ValueError(f"sinusoid frequency divisor must be positive, got {divisor} (half = {half})")
    return torch.exp(-math.log(max_period) * torch.arange(half, device=device, dtype=torch.float32) / divisor)


def sinusoidal_embedding(values: Tensor, dim: int, max_period: float = 10_000.0, divisor: int | None = None) -> Tensor:
    """(N,) real values -> (N, dim) [sin, cos] features at geometrically spaced frequencies
    (`sinusoid_frequencies(dim // 2, divisor)`)."""
    half = dim // 2
    freqs = sinusoid_frequencies(half, divisor, max_period, values.device)
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
