"""EDM latent diffusion (the NaturalSpeech 2-style baseline), as small pure functions.

The baseline is the FlashSpeech network trained with a denoising objective and sampled by integrating the
probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022) from sigma_max to 0. Its
preconditioning is the consistency parametrisation with sigma_min = 0 (see `flashspeech.consistency`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from flashspeech.consistency import RHO, SIGMA_DATA, SIGMA_MAX, SIGMA_MIN, Denoiser, karras_sigmas

P_MEAN = -1.2  # EDM training sigma distribution: ln(sigma) ~ N(P_MEAN, P_STD^2)
P_STD = 1.2
DEFAULT_SAMPLER = "heun"


def edm_sampling_sigmas(
    steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> list[float]:
    """`steps` Karras-grid sigmas from sigma_max down to sigma_min, then a final 0 (steps + 1 values)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    grid = [float(sigma_max)] if steps == 1 else karras_sigmas(steps, sigma_min, sigma_max, rho)
    return [*grid, 0.0]


def ode_sigmas(
    steps: int | None = None,
    sigmas: Sequence[float] | None = None,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
) -> list[float]:
    """The ODE grid ending in 0: `edm_sampling_sigmas(steps)`, or explicit sigmas (without the final 0;
    they must strictly decrease within (0, sigma_max]) with 0 appended. Explicit sigmas override steps."""
    if sigmas is None:
        if steps is None:
            raise ValueError("give steps or sigmas")
        return edm_sampling_sigmas(steps, sigma_min, sigma_max, rho)
    out = [float(s) for s in sigmas]
    if not out:
        raise ValueError("an explicit sigma schedule needs at least one sigma")
    if any(not math.isfinite(s) or s <= 0 or s > sigma_max for s in out):
        raise ValueError(f"sigmas must lie in (0, {sigma_max}] (the final 0 is appended), got {out}")
    if any(b >= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"sigmas must strictly decrease, got {out}")
    return [*out, 0.0]


def edm_training_sigmas(
    batch: int, generator: torch.Generator | None = None, p_mean: float = P_MEAN, p_std: float = P_STD
) -> Tensor:
    """(batch,) float32 log-normal noise levels: sigma = exp(p_mean + p_std * n), n ~ N(0, 1)."""
    n = torch.randn(batch, generator=generator, dtype=torch.float32)
    return torch.exp(p_mean + p_std * n)


def edm_loss_weight(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2: unit-variance loss at every sigma."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def _derivative(denoise: Denoiser, x: Tensor, sigma: float) -> Tensor:
    """dx/dsigma of the probability-flow ODE at (x, sigma)."""
    return (x - denoise(x, sigma)) / sigma


def euler_sample(denoise: Denoiser, noise: Callable[[], Tensor], sigmas: Sequence[float]) -> Tensor:
    """First-order ODE solve along `sigmas` (descending, usually ending in 0), from noise() * sigmas[0]."""
    if len(sigmas) < 2:
        raise ValueError(f"an ODE solve needs at least 2 sigmas, got {list(sigmas)}")
    x = noise() * sigmas[0]
    for sigma, nxt in itertools.pairwise(sigmas):
        x = x + (nxt - sigma) * _derivative(denoise, x, sigma)
    return x


def heun_sample(denoise: Denoiser, noise: Callable[[], Tensor], sigmas: Sequence[float]) -> Tensor:
    """Second-order (Heun) ODE solve, deterministic (Karras et al. 2022, Alg. 1 without churn).

    Each step averages the slopes at both ends of an Euler step, except a step ending at sigma 0 (the
    slope there is undefined), which stays Euler.
    """
    if len(sigmas) < 2:
        raise ValueError(f"an ODE solve needs at least 2 sigmas, got {list(sigmas)}")
    x = noise() * sigmas[0]
    for sigma, nxt in itertools.pairwise(sigmas):
        d = _derivative(denoise, x, sigma)
        euler = x + (nxt - sigma) * d
        x = euler if nxt == 0 else x + (nxt - sigma) * (d + _derivative(denoise, euler, nxt)) / 2
    return x


Sampler = Callable[[Denoiser, Callable[[], Tensor], Sequence[float]], Tensor]
SAMPLERS: dict[str, Sampler] = {"euler": euler_sample, "heun": heun_sample}


def function_evaluations(sampler: str, steps: int) -> int:
    """Denoiser calls for `steps` ODE steps on a grid ending in 0 (euler: steps; heun: 2 * steps - 1)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    return steps if sampler == "euler" else 2 * steps - 1


def resolve_sampler(objective: str, sampler: str | None) -> str:
    """The sampler to use for a model trained with `objective`: "consistency" for a consistency model
    (which takes no other), a key of SAMPLERS for a diffusion model (default "heun")."""
    if objective == "consistency":
        if sampler not in (None, "consistency"):
            raise ValueError(
                f"sampler {sampler!r} needs a diffusion model; this is a consistency model (leave sampler unset)"
            )
        return "consistency"
    if objective != "diffusion":
        raise ValueError(f"unknown objective {objective!r}")
    sampler = DEFAULT_SAMPLER if sampler is None else sampler
    if sampler not in SAMPLERS:
        known = ", ".join(SAMPLERS)
        raise ValueError(f"sampler {sampler!r} is not an ODE sampler for a diffusion model; known: {known}")
    return sampler
