"""Consistency-model parametrisation and sampling schedules, as small pure functions.

f(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma), cond), with the
sigma_min shift that makes f(x, sigma_min) = x hold exactly (c_skip = 1 and c_out = 0 there).
Constants (digest §2.1): sigma_data 0.5, sigma in [0.002, 80], Karras rho 7.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0
SIGMA_DATA = 0.5
RHO = 7.0
PAPER_SIGMA_INTER = 2.0  # the paper's intermediate sigma for 2-step sampling


def c_skip(sigma: Tensor, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN) -> Tensor:
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


def c_out(sigma: Tensor, sigma_data: float = SIGMA_DATA, sigma_min: float = SIGMA_MIN) -> Tensor:
    return (sigma - sigma_min) * sigma_data / torch.sqrt(sigma**2 + sigma_data**2)


def c_in(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    return 1.0 / torch.sqrt(sigma**2 + sigma_data**2)


def c_noise(sigma: Tensor) -> Tensor:
    return torch.log(sigma) / 4.0


def karras_sigmas(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> list[float]:
    """n points from sigma_max down to sigma_min on the Karras grid (n >= 2)."""
    if n < 2:
        raise ValueError(f"a Karras grid needs at least 2 points, got {n}")
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(hi + i / (n - 1) * (lo - hi)) ** rho for i in range(n)]


def sampling_sigmas(
    steps: int | None = None,
    sigmas: Sequence[float] | None = None,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
) -> tuple[list[float], str]:
    """The sigmas at which f is evaluated, and the schedule's name.

    1 step: [sigma_max]. 2 steps: [sigma_max, 2.0] (the paper's choice). N >= 3 steps: the official code's
    schedule, the Karras grid of N + 1 points without its last (sigma_min) point. An explicit list of
    sigmas overrides `steps`; it must start anywhere in (sigma_min, sigma_max] and strictly decrease.
    """
    if sigmas is not None:
        out = [float(s) for s in sigmas]
        if not out:
            raise ValueError("an explicit sigma schedule needs at least one sigma")
        if any(not math.isfinite(s) or s <= sigma_min or s > sigma_max for s in out):
            raise ValueError(f"sigmas must lie in ({sigma_min}, {sigma_max}], got {out}")
        if any(b >= a for a, b in itertools.pairwise(out)):
            raise ValueError(f"sigmas must strictly decrease, got {out}")
        return out, "explicit"
    if steps is None or steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if steps == 1:
        return [sigma_max], "one-step"
    if steps == 2:
        return [sigma_max, PAPER_SIGMA_INTER], "paper-two-step"
    return karras_sigmas(steps + 1, sigma_min, sigma_max, rho)[:-1], "karras"


Denoiser = Callable[[Tensor, float], Tensor]


def consistency_sample(
    denoise: Denoiser,
    noise: Callable[[], Tensor],
    sigmas: Sequence[float],
    start: Tensor | None = None,
) -> Tensor:
    """Multistep consistency sampling.

    x = f(sigma_0 * eps_0, sigma_0); then for each further sigma: x = f(x + sigma * eps_i, sigma), the
    noise added as plain sigma * eps (as the paper and the official code do). `noise()` draws a fresh
    standard normal tensor of the output's shape; `denoise(x, sigma)` evaluates f. With `start`, the
    first evaluation is f(start + sigma_0 * eps_0, sigma_0): sampling from a noised latent (voice
    conversion diffuses the source latent to an intermediate sigma this way).

    All draws are made up front, before the first evaluation (same draws, same order, same result): a
    noise source that copies host memory to a GPU then waits for the device once, not between steps.
    """
    eps = [noise() for _ in sigmas]
    x = eps[0] * sigmas[0]
    x = denoise(x if start is None else start + x, sigmas[0])
    for sigma, e in zip(sigmas[1:], eps[1:], strict=True):
        x = denoise(x + e * sigma, sigma)
    return x
