"""Stage-2 adversarial consistency training: a frozen speech-model encoder + a prompt-conditioned conv head.

The design of the paper's §3.3.2 and the official code: all hidden states of a frozen speech
language model are stacked along channels (WavLM-large: 25 x 1024 = 25 600), the prompt conditions the head by
projection, `F ⊙ mean_t(F_prompt) / sqrt(C)`, and a trainable head of five weight-normed Conv1d layers
(C->256 k1, 256->512 k5, 512->1024 k5, 1024->1024 k5, 1024->1 k3, LeakyReLU 0.1 after the three k5 layers)
gives per-frame logits. Fake and real latents of a batch are cropped to the batch's shortest item
(`crop_to_shortest`; the paper crops waveforms to the minimum length in a minibatch).

The frozen encoders that produce the stacked hidden states live in `flashspeech.training.speech_encoders`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

if TYPE_CHECKING:
    pass

PAPER_WIDTHS: tuple[int, int, int, int] = (256, 512, 1024, 1024)
TINY_WIDTHS: tuple[int, int, int, int] = (64, 128, 128, 128)  # for CPU training
LEAKY_SLOPE = 0.1
LOSS_KINDS = ("lsgan", "log")


# --------------------------------------------------------------------------------------------- head + losses


class Discriminator(nn.Module):
    """Prompt-conditioned head: (B, C, T') features + (B, C, Tp) prompt features -> per-frame logits (B, T').

    Head input `F ⊙ mean_t(F_prompt) / sqrt(C)` (projection conditioning; the mean over the valid prompt
    frames), then five weight-normed convs C->w0 (k1), w0->w1 (k5), w1->w2 (k5), w2->w3 (k5), w3->1 (k3),
    LeakyReLU 0.1 after the three k5 convs, 'same' padding so T' is kept.
    """

    def __init__(self, channels: int, widths: Sequence[int] = PAPER_WIDTHS) -> None:
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths needs 4 entries, got {tuple(widths)}")
        self.channels = int(channels)
        self.widths = tuple(int(w) for w in widths)
        ins = (self.channels, *self.widths)
        outs = (*self.widths, 1)
        kernels = (1, 5, 5, 5, 3)
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv1d(i, o, k, padding=k // 2)) for i, o, k in zip(ins, outs, kernels, strict=True)
        )

    def condition(self, features: Tensor, prompt_features: Tensor, prompt_mask: Tensor | None = None) -> Tensor:
        """The head input F ⊙ mean_t(F_prompt) / sqrt(C); `prompt_mask` (B, Tp) is True on valid frames."""
        if prompt_mask is None:
            mean = prompt_features.mean(dim=-1, keepdim=True)
        else:
            m = prompt_mask[:, None, :].to(prompt_features.dtype)
            mean = (prompt_features * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp_min(1.0)
        return features * mean / math.sqrt(self.channels)

    def head(self, x: Tensor) -> Tensor:
        """Head input (B, C, T') -> logits (B, T')."""
        last = len(self.convs) - 1
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if 0 < i < last:
                x = F.leaky_relu(x, LEAKY_SLOPE)
        return x.flatten(1)

    def forward(self, features: Tensor, prompt_features: Tensor, prompt_mask: Tensor | None = None) -> Tensor:
        return self.head(self.condition(features, prompt_features, prompt_mask))


def _check_kind(kind: str) -> None:
    if kind not in LOSS_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}: expected one of {LOSS_KINDS}")


def generator_loss(fake_logits: Tensor, kind: str = "lsgan") -> Tensor:
    """lsgan (official code): mean((1 - D(fake))^2); log (paper Eq. 15, non-saturating): mean(softplus(-D(fake)))."""
    _check_kind(kind)
    if kind == "lsgan":
        return (1.0 - fake_logits).square().mean()
    return F.softplus(-fake_logits).mean()


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, kind: str = "lsgan") -> Tensor:
    """lsgan: mean((1 - D(real))^2) + mean(D(fake)^2); log: mean(softplus(-D(real))) + mean(softplus(D(fake)))."""
    _check_kind(kind)
    if kind == "lsgan":
        return (1.0 - real_logits).square().mean() + fake_logits.square().mean()
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def crop_to_shortest(latents: Sequence[Tensor] | Tensor, lengths: Tensor | Sequence[int] | None = None) -> Tensor:
    """Crop a batch to its shortest item along time: a list of (D, T_i) -> (B, D, min T_i); or a padded
    (B, D, T) with valid `lengths` (B,) -> (B, D, min(lengths)); a padded batch without lengths is returned."""
    if isinstance(latents, Tensor):
        if lengths is None:
            return latents
        shortest = int(torch.as_tensor(lengths).min())
        if shortest < 1 or shortest > latents.shape[-1]:
            raise ValueError(f"shortest length {shortest} out of range for {latents.shape[-1]} frames")
        return latents[..., :shortest]
    if not latents:
        raise ValueError("empty batch")
    shortest = min(int(x.shape[-1]) for x in latents)
    if lengths is not None:
        shortest = min(shortest, int(torch.as_tensor(lengths).min()))
    return torch.stack([x[..., :shortest] for x in latents])
