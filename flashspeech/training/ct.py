"""Consistency-training math as small pure functions.

- iCT curriculum: N(k) = min(s0 * 2^floor(k / K'), s1) + 1, K' = floor(K / (log2 floor(s1 / s0) + 1)).
- The Karras grid of N(k) sigmas, ascending from sigma_min to sigma_max, and the official code's log-normal
  distribution over its intervals: P(i) ∝ erf((ln s_{i+1} - P_mean) / (√2 P_std)) - erf((ln s_i - P_mean) /
  (√2 P_std)), P_mean -1.1, P_std 2.0.
- Pseudo-Huber distance with a = 0.03: element-wise as in the official code (default) or over each
  sample's whole vector as in the paper; padded frames are masked (the official code does not mask).
- The loss weight λ(σ_i) = 1 / (σ_{i+1} - σ_i).
- The adversarial loss's adaptive weight (VQGAN-style gradient-norm ratio at one layer): the official code
  adds 1e-4 to the denominator, clamps to [0, 1e4], detaches and scales by 0.5; the paper has no 0.5.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from flashspeech.consistency import RHO, SIGMA_MAX, SIGMA_MIN
from flashspeech.sampling import karras_sigmas

P_MEAN, P_STD = -1.1, 2.0
HUBER_C = 0.03


def curriculum_period(s0: int, s1: int, total_steps: int) -> int:
    """K' = floor(K / (log2 floor(s1 / s0) + 1)): the steps between doublings of the discretisation."""
    return max(1, math.floor(total_steps / (math.log2(math.floor(s1 / s0)) + 1)))


def curriculum_steps(k: int, s0: int = 10, s1: int = 1280, total_steps: int = 600_000) -> int:
    """N(k): the number of sigmas at training step k (paper stage 1: 11, 21, ... 1281 every 75k steps)."""
    return min(s0 * 2 ** math.floor(k / curriculum_period(s0, s1, total_steps)), s1) + 1


def ct_sigmas(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> Tensor:
    """The N Karras sigmas in ascending order (sigma_1 = sigma_min ... sigma_N = sigma_max), float64."""
    return torch.tensor(karras_sigmas(n, sigma_min, sigma_max, rho)[::-1], dtype=torch.float64)


def lognormal_interval_probs(sigmas: Tensor, p_mean: float = P_MEAN, p_std: float = P_STD) -> Tensor:
    """Probability of training on interval (sigma_i, sigma_{i+1}) for each of the N - 1 intervals."""
    cdf = torch.erf((torch.log(sigmas) - p_mean) / (math.sqrt(2.0) * p_std))
    weights = cdf[1:] - cdf[:-1]
    return weights / weights.sum()


def sample_intervals(
    sigmas: Tensor, batch: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Per sample: interval index i, sigma_i and sigma_{i+1} (float32), drawn log-normally."""
    index = torch.multinomial(lognormal_interval_probs(sigmas), batch, replacement=True, generator=generator)
    return index, sigmas[index].float(), sigmas[index + 1].float()


def loss_weight(sigma_i: Tensor, sigma_next: Tensor) -> Tensor:
    """λ(σ_i) = 1 / (σ_{i+1} - σ_i)."""
    return 1.0 / (sigma_next - sigma_i)


def pseudo_huber(
    x: Tensor, y: Tensor, mask: Tensor | None = None, c: float = HUBER_C, per_sample: bool = False
) -> Tensor:
    """Pseudo-Huber distance per batch item, (B,).

    x, y: (B, D, T); mask: (B, T) bool, True on valid frames. Element-wise (default, the official code):
    mean over valid elements of sqrt((x - y)^2 + c^2) - c. per_sample (the paper): sqrt(||x - y||^2 + c^2) - c
    over each item's valid elements.
    """
    m = torch.ones_like(x[:, :1, :], dtype=torch.bool) if mask is None else mask[:, None, :]
    m = m.expand_as(x).to(x.dtype)
    diff2 = (x - y) ** 2 * m
    if per_sample:
        return torch.sqrt(diff2.flatten(1).sum(1) + c**2) - c
    elementwise = (torch.sqrt(diff2 + c**2) - c) * m
    return elementwise.flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1.0)


def adaptive_weight(
    loss_ct: Tensor,
    loss_adv: Tensor,
    layer_weight: Tensor,
    eps: float = 1e-4,
    max_weight: float = 1e4,
    scale: float = 0.5,
) -> Tensor:
    """λ_adv = scale * clamp(‖∇_w L_ct‖ / (‖∇_w L_adv‖ + eps), 0, max_weight), detached.

    `layer_weight` is the last layer's weight (the official code: the LCM's last residual block out-conv).
    """
    g_ct = torch.autograd.grad(loss_ct, layer_weight, retain_graph=True)[0]
    g_adv = torch.autograd.grad(loss_adv, layer_weight, retain_graph=True)[0]
    ratio = g_ct.norm() / (g_adv.norm() + eps)
    return (scale * torch.clamp(ratio, 0.0, max_weight)).detach()
