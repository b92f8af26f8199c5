"""The anchor of the "anchored" parametrisation: a conditional Gaussian estimate of the latent.

From the frame condition c (B, T, H) it predicts a mean mu(c) and a per-element std s(c) (B, D, T). The
denoiser is then preconditioned around them (`FlashSpeechModel.denoise`):

    D(x, sigma) = mu + c_skip(sigma; s) (x - mu) + c_out(sigma; s) F(c_in(sigma; s) (x - mu), ...)

With F = 0 this is the Wiener (posterior-mean) denoiser of a latent distributed N(mu, s^2): it uses the noisy
input exactly as much as the conditioning leaves room for. At initialisation mu = 0 and s = sigma_data, which
is the paper's EDM preconditioning.

Trained by `anchor_loss`: squared error of mu, and the Gaussian likelihood of s given the (detached)
residual, so that learning the scale never slows down learning the mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AnchorHead(nn.Module):
    """LayerNorm -> `layers` residual conv + GELU blocks -> 1x1 conv to (mu, raw scale); masked."""

    def __init__(self, cond_dim: int, latent_dim: int, layers: int, kernel: int, sigma_data: float, min_scale: float):
        super().__init__()
        if not 0.0 < min_scale < sigma_data:
            raise ValueError(f"anchor_min_scale must be in (0, sigma_data={sigma_data}), got {min_scale}")
        self.min_scale = min_scale
        self.norm = nn.LayerNorm(cond_dim)
        self.convs = nn.ModuleList(nn.Conv1d(cond_dim, cond_dim, kernel, padding=kernel // 2) for _ in range(layers))
        self.out = nn.Conv1d(cond_dim, 2 * latent_dim, 1)
        nn.init.zeros_(self.out.weight)
        with torch.no_grad():  # mu = 0, s = sigma_data: the EDM preconditioning until the head has learnt
            self.out.bias.zero_()
            self.out.bias[latent_dim:] = math.log(math.expm1(sigma_data - min_scale))

    def forward(self, cond: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """cond (B, T, H), mask (B, T) -> mu (B, D, T) zero on padding, s (B, D, T) >= min_scale."""
        m = mask.unsqueeze(1).to(cond.dtype)
        h = self.norm(cond).transpose(1, 2) * m
        for conv in self.convs:
            h = (h + F.gelu(conv(h))) * m
        mean, raw = self.out(h).chunk(2, dim=1)
        return mean * m, self.min_scale + F.softplus(raw)


def anchor_loss(mean: Tensor, scale: Tensor, x0: Tensor, mask: Tensor, sigma_data: float) -> Tensor:
    """Masked mean of (x0 - mu)^2 / sigma_data^2 plus the Gaussian negative log-likelihood of the detached
    residual under s: 0.5 (r^2 / s^2) + log s (minimised by s = |r| in expectation)."""
    m = mask.unsqueeze(1).expand_as(x0).to(x0.dtype)
    n = m.sum().clamp_min(1.0)
    residual = x0 - mean
    mse = ((residual**2) * m).sum() / n / sigma_data**2
    nll = ((0.5 * (residual.detach() / scale) ** 2 + torch.log(scale)) * m).sum() / n
    return mse + nll
