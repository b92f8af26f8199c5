"""Sampling the latent network: sigma schedules, samplers and the plan that ties them together.

A schedule is a full grid of sigmas, strictly decreasing from where sampling starts down to a final 0.
Every sampler has one signature, `sampler(denoise, x, sigmas, noise) -> Tensor`: `denoise(x, sigma)`
evaluates the network's denoiser, `x` is the starting point at `sigmas[0]`, `sigmas` the full grid and
`noise()` a fresh standard normal tensor of x's shape (the deterministic ODE samplers never call it).

- Consistency models (multistep consistency sampling): 1 step [sigma_max, 0]; 2 steps [sigma_max, 2, 0]
  (the paper's intermediate sigma); N >= 3 steps the Karras grid of N + 1 points without its last
  (sigma_min) point, then 0 (the official code's schedule).
- Diffusion models (probability-flow ODE dx/dsigma = (x - D(x, sigma)) / sigma, Karras et al. 2022): the
  Karras grid of N points then 0 (1 step: [sigma_max, 0]), solved with Euler or Heun steps.
- Either family takes explicit sigmas instead (strictly decreasing, without the final 0, which is appended).

`plan_sampling` resolves and validates a request once into a `SamplingPlan`; `sample` runs a plan.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from flashspeech.consistency import RHO, SIGMA_MAX, SIGMA_MIN

PAPER_SIGMA_INTER = 2.0  # the paper's intermediate sigma for 2-step consistency sampling
DEFAULT_ODE_SAMPLER = "heun"

Denoiser = Callable[[Tensor, float], Tensor]
Noise = Callable[[], Tensor]
Sampler = Callable[[Denoiser, Tensor, Sequence[float], Noise], Tensor]


# -- schedules -----------------------------------------------------------------------------------------


def karras_sigmas(n: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> list[float]:
    """n points from sigma_max down to sigma_min on the Karras grid (n >= 2), without a final 0."""
    if n < 2:
        raise ValueError(f"a Karras grid needs at least 2 points, got {n}")
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return [(hi + i / (n - 1) * (lo - hi)) ** rho for i in range(n)]


def _check_steps(steps: int) -> None:
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")


def consistency_sigmas(
    steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO
) -> list[float]:
    """A consistency model's grid for `steps` evaluations, ending in 0 (steps + 1 values).

    1: [sigma_max, 0]; 2: [sigma_max, 2, 0]; N >= 3: the Karras grid of N + 1 points without its last
    (sigma_min) point, then 0.
    """
    _check_steps(steps)
    if steps == 1:
        return [float(sigma_max), 0.0]
    if steps == 2:
        return [float(sigma_max), PAPER_SIGMA_INTER, 0.0]
    return [*karras_sigmas(steps + 1, sigma_min, sigma_max, rho)[:-1], 0.0]


def ode_sigmas(steps: int, sigma_min: float = SIGMA_MIN, sigma_max: float = SIGMA_MAX, rho: float = RHO) -> list[float]:
    """A diffusion model's ODE grid for `steps` steps: the Karras grid of `steps` points, then 0
    (steps + 1 values; 1 step: [sigma_max, 0])."""
    _check_steps(steps)
    grid = [float(sigma_max)] if steps == 1 else karras_sigmas(steps, sigma_min, sigma_max, rho)
    return [*grid, 0.0]


def explicit_sigmas(sigmas: Sequence[float], lower: float, sigma_max: float = SIGMA_MAX) -> list[float]:
    """Explicit sigmas (strictly decreasing, each in (lower, sigma_max]) with the final 0 appended."""
    out = [float(s) for s in sigmas]
    if not out:
        raise ValueError("an explicit sigma schedule needs at least one sigma")
    if any(not math.isfinite(s) or s <= lower or s > sigma_max for s in out):
        raise ValueError(f"sigmas must lie in ({lower}, {sigma_max}] (the final 0 is appended), got {out}")
    if any(b >= a for a, b in itertools.pairwise(out)):
        raise ValueError(f"sigmas must strictly decrease, got {out}")
    return [*out, 0.0]


def schedule_name(family: str, steps: int) -> str:
    """The name of the grid `SCHEDULES[family](steps)`: one-step, paper-two-step or karras."""
    if steps == 1:
        return "one-step"
    return "paper-two-step" if family == "consistency" and steps == 2 else "karras"


SCHEDULES: dict[str, Callable[[int, float, float, float], list[float]]] = {
    "consistency": consistency_sigmas,
    "diffusion": ode_sigmas,
}


# -- samplers ------------------------------------------------------------------------------------------


def _check_grid(sigmas: Sequence[float]) -> None:
    if len(sigmas) < 2:
        raise ValueError(f"a sampler needs at least 2 sigmas (a start and an end), got {list(sigmas)}")


def sample_consistency(denoise: Denoiser, x: Tensor, sigmas: Sequence[float], noise: Noise) -> Tensor:
    """Multistep consistency sampling: x = f(x, sigma_i), then renoised to the next sigma as x + sigma * eps
    (plain sigma * eps, as the paper and the official code do) unless that sigma is 0.

    All renoising draws are made up front, before the first evaluation (same draws, same order, same
    result): a noise source that copies host memory to a GPU then waits for the device once, not between
    steps.
    """
    _check_grid(sigmas)
    renoise = iter([noise() for nxt in sigmas[1:] if nxt > 0])
    for sigma, nxt in itertools.pairwise(sigmas):
        x = denoise(x, sigma)
        if nxt > 0:
            x = x + next(renoise) * nxt
    return x


def _derivative(denoise: Denoiser, x: Tensor, sigma: float) -> Tensor:
    """dx/dsigma of the probability-flow ODE at (x, sigma)."""
    return (x - denoise(x, sigma)) / sigma


def sample_euler(denoise: Denoiser, x: Tensor, sigmas: Sequence[float], noise: Noise) -> Tensor:
    """First-order ODE solve along `sigmas` (descending, usually ending in 0); deterministic."""
    _check_grid(sigmas)
    for sigma, nxt in itertools.pairwise(sigmas):
        x = x + (nxt - sigma) * _derivative(denoise, x, sigma)
    return x


def sample_heun(denoise: Denoiser, x: Tensor, sigmas: Sequence[float], noise: Noise) -> Tensor:
    """Second-order (Heun) ODE solve, deterministic (Karras et al. 2022, Alg. 1 without churn).

    Each step averages the slopes at both ends of an Euler step, except a step ending at sigma 0 (the
    slope there is undefined), which stays Euler.
    """
    _check_grid(sigmas)
    for sigma, nxt in itertools.pairwise(sigmas):
        d = _derivative(denoise, x, sigma)
        euler = x + (nxt - sigma) * d
        x = euler if nxt == 0 else x + (nxt - sigma) * (d + _derivative(denoise, euler, nxt)) / 2
    return x


SAMPLERS: dict[str, Sampler] = {"consistency": sample_consistency, "euler": sample_euler, "heun": sample_heun}
ODE_SAMPLERS: tuple[str, ...] = ("euler", "heun")  # the samplers for a diffusion model


def denoiser_calls(sampler: str, sigmas: Sequence[float]) -> int:
    """Denoiser calls of `SAMPLERS[sampler]` along `sigmas`: one per step, and for heun one more per step
    that does not end at 0."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; known: {', '.join(SAMPLERS)}")
    steps = len(sigmas) - 1
    return steps + sum(nxt != 0 for nxt in sigmas[1:]) if sampler == "heun" else steps


# -- the plan ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingPlan:
    """How a model is sampled: its family (consistency, diffusion), the sampler (a key of SAMPLERS), the
    schedule's name (one-step, paper-two-step, karras, explicit) and the full sigma grid ending in 0."""

    family: str
    sampler: str
    schedule: str
    sigmas: tuple[float, ...]

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    @property
    def nfe(self) -> int:
        """Denoiser calls: consistency and euler one per step, heun 2 * steps - 1 (the step to 0 is Euler)."""
        return denoiser_calls(self.sampler, self.sigmas)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary: family, sampler, schedule, steps, nfe, sigmas."""
        return {
            "family": self.family,
            "sampler": self.sampler,
            "schedule": self.schedule,
            "steps": self.steps,
            "nfe": self.nfe,
            "sigmas": list(self.sigmas),
        }


def _resolve_sampler(objective: str, sampler: str | None) -> str:
    """The sampler for a model trained with `objective`: "consistency" for a consistency model (which takes
    no other), an ODE sampler for a diffusion model (default heun)."""
    if objective == "consistency":
        if sampler not in (None, "consistency"):
            raise ValueError(
                f"sampler {sampler!r} needs a diffusion model; this is a consistency model (leave sampler unset)"
            )
        return "consistency"
    if objective != "diffusion":
        raise ValueError(f"unknown objective {objective!r}")
    sampler = DEFAULT_ODE_SAMPLER if sampler is None else sampler
    if sampler not in ODE_SAMPLERS:
        known = ", ".join(ODE_SAMPLERS)
        raise ValueError(f"sampler {sampler!r} is not an ODE sampler for a diffusion model; known: {known}")
    return sampler


def plan_sampling(
    objective: str,
    steps: int | None = None,
    sampler: str | None = None,
    sigmas: Sequence[float] | None = None,
    sigma_min: float = SIGMA_MIN,
    sigma_max: float = SIGMA_MAX,
    rho: float = RHO,
) -> SamplingPlan:
    """Resolve and validate how a model trained with `objective` ("consistency" or "diffusion") is sampled.

    A consistency model takes no sampler but "consistency"; a diffusion model takes "euler" or "heun"
    (default). Explicit `sigmas` (strictly decreasing, without the final 0; within (sigma_min, sigma_max]
    for a consistency model, (0, sigma_max] for a diffusion model) override `steps`.
    """
    name = _resolve_sampler(objective, sampler)
    if sigmas is not None:
        lower = sigma_min if objective == "consistency" else 0.0
        return SamplingPlan(objective, name, "explicit", tuple(explicit_sigmas(sigmas, lower, sigma_max)))
    if steps is None:
        raise ValueError("give steps or sigmas")
    grid = SCHEDULES[objective](steps, sigma_min, sigma_max, rho)
    return SamplingPlan(objective, name, schedule_name(objective, steps), tuple(grid))


def sample(plan: SamplingPlan, denoise: Denoiser, noise: Noise, start: Tensor | None = None) -> Tensor:
    """Run `plan`: x = noise() * sigma_0 (plus `start`, a latent to sample from once noised to sigma_0, as
    voice conversion does), then the plan's sampler along its sigmas."""
    x = noise() * plan.sigmas[0]
    if start is not None:
        x = start + x
    return SAMPLERS[plan.sampler](denoise, x, plan.sigmas, noise)
