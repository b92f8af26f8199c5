"""The adversarial vocoder objective: multi-period and multi-resolution discriminators, hinge and feature-matching
losses, and the log-mel reconstruction loss (HiFi-GAN's MPD, UnivNet's multi-resolution spectrogram
discriminator, Vocos's weighting). Sized for CPU training by default (`channels`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

Features = list[Tensor]  # one discriminator's intermediate activations (for feature matching)


def _conv_stack(convs: nn.ModuleList, post: nn.Module, x: Tensor) -> tuple[Tensor, Features]:
    """Leaky-ReLU convs then the output conv: the flattened logits and every layer's activations."""
    feats = []
    for conv in convs:
        x = F.leaky_relu(conv(x), 0.1)
        feats.append(x)
    x = post(x)
    feats.append(x)
    return x.flatten(1), feats


class PeriodDiscriminator(nn.Module):
    """The waveform folded into [B, 1, S / p, p] columns, strided 2-D convs along time (HiFi-GAN)."""

    def __init__(self, period: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.period = period
        widths = [1, *channels]
        self.convs = nn.ModuleList(
            weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1) if i < len(channels) - 1 else 1, padding=(2, 0)))
            for i, (a, b) in enumerate(itertools.pairwise(widths))
        )
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0)))

    def forward(self, wav: Tensor) -> tuple[Tensor, Features]:  # wav [B, S]
        b, s = wav.shape
        pad = (-s) % self.period
        x = F.pad(wav, (0, pad), mode="reflect" if pad < s else "constant").view(b, 1, -1, self.period)
        return _conv_stack(self.convs, self.post, x)


class ResolutionDiscriminator(nn.Module):
    """2-D convs over one STFT resolution's log-magnitude spectrogram (UnivNet / Vocos MRD)."""

    def __init__(self, n_fft: int, hop: int, channels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        self.convs = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, c, (7, 5), (2, 2), padding=(3, 2))),
                weight_norm(nn.Conv2d(c, c, (5, 3), (2, 1), padding=(2, 1))),
                weight_norm(nn.Conv2d(c, c, (5, 3), (2, 1), padding=(2, 1))),
                weight_norm(nn.Conv2d(c, c, 3, (2, 1), padding=1)),
                weight_norm(nn.Conv2d(c, c, 3, (2, 2), padding=1)),
            ]
        )
        self.post = weight_norm(nn.Conv2d(c, 1, 3, padding=1))

    def forward(self, wav: Tensor) -> tuple[Tensor, Features]:
        spec = torch.stft(wav, self.n_fft, self.hop, self.n_fft, self.window, center=True, return_complex=True)
        return _conv_stack(self.convs, self.post, spec.abs().clamp_min(1e-5).log()[:, None])  # [B, 1, F, T]


class MultiDiscriminator(nn.Module):
    """A set of sub-discriminators applied to the same waveform; returns each one's logits and features."""

    def __init__(self, discriminators: Sequence[nn.Module]) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, wav: Tensor) -> tuple[list[Tensor], list[Features]]:
        outs = [d(wav) for d in self.discriminators]
        return [o[0] for o in outs], [o[1] for o in outs]


def multi_period(periods: Sequence[int] = (2, 3, 5, 7, 11), channels: Sequence[int] = (16, 64, 128, 128)):
    return MultiDiscriminator([PeriodDiscriminator(p, channels) for p in periods])


def multi_resolution(
    resolutions: Sequence[tuple[int, int]] = ((256, 64), (512, 128), (1024, 256)), channels: int = 32
) -> MultiDiscriminator:
    return MultiDiscriminator([ResolutionDiscriminator(n_fft, hop, channels) for n_fft, hop in resolutions])


def hinge_d_loss(real: Sequence[Tensor], fake: Sequence[Tensor]) -> Tensor:
    """Discriminator hinge loss, summed over sub-discriminators: mean(relu(1 - D(x))) + mean(relu(1 + D(G(z))))."""
    return sum(F.relu(1 - r).mean() + F.relu(1 + f).mean() for r, f in zip(real, fake, strict=True))


def hinge_g_loss(fake: Sequence[Tensor]) -> Tensor:
    """Generator hinge loss, summed over sub-discriminators: mean(relu(1 - D(G(z))))."""
    return sum(F.relu(1 - f).mean() for f in fake)


def feature_matching_loss(real: Sequence[Features], fake: Sequence[Features]) -> Tensor:
    """L1 between the discriminators' activations on real and generated audio (real detached), each layer's
    mean, summed over layers and sub-discriminators."""
    return sum(F.l1_loss(f, r.detach()) for rs, fs in zip(real, fake, strict=True) for r, f in zip(rs, fs, strict=True))


def log_mel_l1(codec: nn.Module, fake: Tensor, real_log_mel: Tensor) -> Tensor:
    """Mean absolute difference of the codec's log-mel (natural log) of `fake` and the target log-mel."""
    return F.l1_loss(codec.encode(fake), real_log_mel)
