"""A random-weight convolutional codec with the paper codec's shape, for timing the decoder stage only.

FlashSpeech decodes with a DAC-style convolutional codec (16 kHz, hop 200 = 80 frames/s, 256-d latent;
encoder base width 64, decoder width 1024, periodic "snake" activations). No trained weights exist here, so
this builds that architecture with random (seeded) weights: its cost is the paper decoder's, its audio is
noise. Registered as codec type "conv"; the speed benchmark decodes with it.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from flashspeech.codecs.base import CODECS, Codec

RATES = (5, 5, 4, 2)  # decoder upsampling, 80 -> 16000 samples/s; the encoder downsamples in reverse


class Snake(nn.Module):
    """x + sin^2(a x) / a with a learned per-channel frequency a."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        return x + torch.sin(self.alpha * x).pow(2) / (self.alpha + 1e-9)


class ResUnit(nn.Module):
    """snake -> dilated conv k7 -> snake -> conv k1, plus the input (length-preserving)."""

    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.net = nn.Sequential(
            Snake(channels),
            nn.Conv1d(channels, channels, 7, dilation=dilation, padding=3 * dilation),
            Snake(channels),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def _units(channels: int) -> list[nn.Module]:
    return [ResUnit(channels, d) for d in (1, 3, 9)]


def _down(c_in: int, c_out: int, stride: int) -> nn.Conv1d:
    """Strided conv: exactly L / stride frames for L a multiple of stride."""
    return nn.Conv1d(c_in, c_out, 2 * stride, stride=stride, padding=math.ceil(stride / 2))


def _up(c_in: int, c_out: int, stride: int) -> nn.ConvTranspose1d:
    """Transposed conv: exactly L * stride samples (output_padding fixes odd strides)."""
    pad = math.ceil(stride / 2)
    return nn.ConvTranspose1d(c_in, c_out, 2 * stride, stride=stride, padding=pad, output_padding=stride % 2)


@CODECS.register
class ConvCodec(Codec):
    """DAC-style encoder/decoder at 16 kHz, hop prod(RATES) = 200; random weights (seeded)."""

    type_name = "conv"

    def __init__(self, latent_dim: int = 256, enc_width: int = 64, dec_width: int = 1024, seed: int = 0):
        super().__init__(16_000, math.prod(RATES), latent_dim)
        self.enc_width, self.dec_width, self.seed = enc_width, dec_width, seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            enc: list[nn.Module] = [nn.Conv1d(1, enc_width, 7, padding=3)]
            c = enc_width
            for stride in reversed(RATES):
                enc += [*_units(c), Snake(c), _down(c, 2 * c, stride)]
                c *= 2
            enc += [Snake(c), nn.Conv1d(c, latent_dim, 3, padding=1)]
            dec: list[nn.Module] = [nn.Conv1d(latent_dim, dec_width, 7, padding=3)]
            c = dec_width
            for stride in RATES:
                dec += [Snake(c), _up(c, c // 2, stride), *_units(c // 2)]
                c //= 2
            dec += [Snake(c), nn.Conv1d(c, 1, 7, padding=3), nn.Tanh()]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)

    @property
    def _dtype(self) -> torch.dtype:
        return self.decoder[0].weight.dtype

    def encode(self, wav: Tensor) -> Tensor:
        wav = self._as_batch(wav)
        frames = self.num_frames(wav.shape[-1])
        wav = nn.functional.pad(wav, (0, frames * self.hop_length - wav.shape[-1]))
        return self.encoder(wav[:, None, :].to(self._dtype)).float()

    def decode(self, latent: Tensor) -> Tensor:
        latent = torch.as_tensor(latent).to(self.device, self._dtype)
        if latent.dim() != 3 or latent.shape[1] != self.latent_dim:
            raise ValueError(f"expected a latent [B, {self.latent_dim}, T], got shape {tuple(latent.shape)}")
        return self.decoder(latent)[:, 0, :].float()

    def describe(self) -> dict[str, Any]:
        return {
            "type": self.type_name,
            "latent_dim": self.latent_dim,
            "enc_width": self.enc_width,
            "dec_width": self.dec_width,
            "seed": self.seed,
            "latent_mean": self.latent_mean,
            "latent_scale": self.latent_scale,
        }
