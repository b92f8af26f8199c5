"""Sampling: sigma schedules, the consistency / Euler / Heun samplers, and the sampling plan."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from flashspeech import consistency as cm
from flashspeech import sampling as sm

# -- schedules -----------------------------------------------------------------------------------------


def test_karras_grid():
    assert sm.karras_sigmas(3)[1] == pytest.approx(2.5152, abs=1e-4)  # the rho = 7 midpoint
    grid = sm.karras_sigmas(11)
    assert len(grid) == 11 and grid[0] == pytest.approx(80.0) and grid[-1] == pytest.approx(0.002)
    assert all(a > b for a, b in itertools.pairwise(grid))
    assert sm.karras_sigmas(3, sigma_min=0.5, sigma_max=10.0, rho=1.0) == [10.0, 5.25, 0.5]
    with pytest.raises(ValueError, match="at least 2 points"):
        sm.karras_sigmas(1)


def test_consistency_schedules_match_the_documented_values():
    assert sm.consistency_sigmas(1) == [80.0, 0.0]
    assert sm.consistency_sigmas(2) == [80.0, 2.0, 0.0]  # the paper's two-step schedule
    four = sm.consistency_sigmas(4)
    assert len(four) == 5 and four[0] == pytest.approx(80.0) and four[-1] == 0.0
    assert four[1:-1] == pytest.approx([17.53, 2.5152, 0.170], abs=5e-3)  # the official code's grid
    assert four[:-1] == sm.karras_sigmas(5)[:-1]
    assert sm.consistency_sigmas(3)[1:-1] == pytest.approx([9.72, 0.470], abs=5e-3)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sm.consistency_sigmas(0)


def test_ode_grid_is_karras_then_zero():
    for steps in (2, 4, 18):
        grid = sm.ode_sigmas(steps)
        assert len(grid) == steps + 1 and grid[-1] == 0.0
        assert grid[0] == pytest.approx(80.0) and grid[-2] == pytest.approx(0.002)
        assert all(a > b for a, b in itertools.pairwise(grid))
        assert grid[:-1] == sm.karras_sigmas(steps)
    assert sm.ode_sigmas(3)[1] == pytest.approx(2.5152, abs=1e-4)  # the rho = 7 midpoint
    assert sm.ode_sigmas(1) == [80.0, 0.0]
    assert sm.ode_sigmas(2, sigma_min=0.5, sigma_max=10.0, rho=1.0) == [10.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="steps must be >= 1"):
        sm.ode_sigmas(0)


def test_explicit_sigmas_get_a_final_zero_and_are_validated():
    assert sm.explicit_sigmas([80, 10, 1], lower=cm.SIGMA_MIN) == [80.0, 10.0, 1.0, 0.0]
    # a consistency model's sigmas lie in (sigma_min, sigma_max]
    for bad in ([], [10, 20], [100.0], [0.001], [float("nan")]):
        with pytest.raises(ValueError):
            sm.explicit_sigmas(bad, lower=cm.SIGMA_MIN)
    # a diffusion model's in (0, sigma_max]; the final 0 is never given
    assert sm.explicit_sigmas([0.001], lower=0.0) == [0.001, 0.0]
    for bad in ([], [1, 2], [100.0], [5.0, 0.0], [float("nan")]):
        with pytest.raises(ValueError):
            sm.explicit_sigmas(bad, lower=0.0)


# -- samplers ------------------------------------------------------------------------------------------


def _recording(calls: list[float], denoiser):
    def denoise(x, sigma):
        calls.append(sigma)
        return denoiser(x, sigma)

    return denoise


def _no_noise() -> torch.Tensor:
    raise AssertionError("a deterministic sampler drew noise")


def test_consistency_sampler_renoises_with_plain_sigma_eps():
    calls = []
    draws = iter([torch.full((2,), 10.0), torch.full((2,), 100.0)])

    def denoise(x, sigma):
        calls.append((x.clone(), sigma))
        return torch.zeros_like(x) + 0.5

    out = sm.sample_consistency(denoise, torch.full((2,), 80.0), [80.0, 2.0, 0.5, 0.0], lambda: next(draws))
    assert [s for _, s in calls] == [80.0, 2.0, 0.5]
    assert torch.equal(calls[0][0], torch.full((2,), 80.0))  # the start
    assert torch.equal(calls[1][0], torch.full((2,), 0.5 + 2.0 * 10.0))  # x + sigma * eps
    assert torch.equal(calls[2][0], torch.full((2,), 0.5 + 0.5 * 100.0))
    assert torch.equal(out, torch.full((2,), 0.5))


def test_consistency_sampler_draws_all_noise_before_the_first_evaluation():
    events: list[str] = []

    def noise():
        events.append("draw")
        return torch.ones(2)

    def denoise(x, sigma):
        events.append("denoise")
        return x

    sm.sample_consistency(denoise, torch.zeros(2), sm.consistency_sigmas(4), noise)
    assert events == ["draw"] * 3 + ["denoise"] * 4  # no draw for the final 0


def test_sample_draws_the_start_then_the_renoising_in_order():
    """`sample` draws the start first: the same draws, in the same order, as one up-front batch of draws."""
    eps = [torch.full((2,), float(i + 1)) for i in range(3)]
    draws = iter(eps)
    calls: list[torch.Tensor] = []

    def denoise(x, sigma):
        calls.append(x.clone())
        return torch.zeros_like(x)

    plan = sm.plan_sampling("consistency", sigmas=[80.0, 2.0, 0.5])
    start = torch.full((2,), 0.25)
    sm.sample(plan, denoise, lambda: next(draws), start=start)
    assert torch.equal(calls[0], start + eps[0] * 80.0)
    assert torch.equal(calls[1], eps[1] * 2.0) and torch.equal(calls[2], eps[2] * 0.5)


@pytest.mark.parametrize("name", ["euler", "heun"])
def test_zero_denoiser_makes_x_scale_with_sigma(name):
    eps = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = sm.SAMPLERS[name]
    out = sampler(lambda x, s: torch.zeros_like(x), eps * 80.0, [80.0, 10.0, 1.0], _no_noise)
    torch.testing.assert_close(out, eps * 1.0)
    zero = sampler(lambda x, s: torch.zeros_like(x), eps * 80.0, [80.0, 10.0, 0.0], _no_noise)
    assert torch.equal(zero, torch.zeros_like(eps))


def test_calls_match_denoiser_calls():
    grid = sm.ode_sigmas(4)
    for name in sm.SAMPLERS:
        calls: list[float] = []
        sm.SAMPLERS[name](_recording(calls, lambda x, s: 0.5 * x), torch.ones(2), grid, lambda: torch.ones(2))
        assert len(calls) == sm.denoiser_calls(name, grid)
        assert 0.0 not in calls  # the slope at sigma 0 is never needed, nor f at 0
    calls = []
    sm.sample_heun(_recording(calls, lambda x, s: 0.5 * x), torch.ones(2), grid, _no_noise)
    assert calls == [grid[0], grid[1], grid[1], grid[2], grid[2], grid[3], grid[3]]
    eight = sm.ode_sigmas(8)
    assert sm.denoiser_calls("euler", eight) == 8 and sm.denoiser_calls("heun", eight) == 15
    assert sm.denoiser_calls("consistency", sm.consistency_sigmas(8)) == 8
    assert sm.denoiser_calls("heun", [80.0, 10.0, 1.0]) == 4  # no step ends at 0: every step is Heun
    with pytest.raises(ValueError, match="unknown sampler"):
        sm.denoiser_calls("dpm", grid)


def test_heun_solves_the_gaussian_ode_better_than_euler():
    """Data N(0, sd^2): the ideal denoiser is x sd^2 / (s^2 + sd^2), and the flow maps x_T at sigma_max to
    x_T sd / sqrt(sigma_max^2 + sd^2) at 0. Heun is second order, Euler first order."""
    sd = cm.SIGMA_DATA
    eps = torch.linspace(-3.0, 3.0, 7, dtype=torch.float64)

    def ideal(x, sigma):
        return x * sd**2 / (sigma**2 + sd**2)

    exact = eps * 80.0 * sd / math.sqrt(80.0**2 + sd**2)

    def error(name: str, steps: int) -> float:
        out = sm.SAMPLERS[name](ideal, eps * 80.0, sm.ode_sigmas(steps), _no_noise)
        return float((out - exact).abs().max() / exact.abs().max())

    # the empirical order of convergence: doubling the steps halves Euler's error, quarters Heun's
    assert 1.7 < error("euler", 40) / error("euler", 80) < 2.3
    assert 3.4 < error("heun", 40) / error("heun", 80) < 4.6
    for steps in (18, 40):  # EDM's 18 steps and more
        assert error("heun", steps) < error("euler", steps) / 2.5
        assert error("heun", steps) < error("euler", 2 * steps - 1) / 1.3  # also at equal function evaluations
    assert error("heun", 40) < 0.015


def test_samplers_need_two_sigmas():
    for sampler in sm.SAMPLERS.values():
        with pytest.raises(ValueError, match="at least 2 sigmas"):
            sampler(lambda x, s: x, torch.ones(1), [80.0], lambda: torch.ones(1))


# -- the plan ------------------------------------------------------------------------------------------


def test_consistency_plans():
    one = sm.plan_sampling("consistency", steps=1)
    assert (one.family, one.sampler, one.schedule) == ("consistency", "consistency", "one-step")
    assert one.sigmas == (80.0, 0.0) and one.steps == 1 and one.nfe == 1
    two = sm.plan_sampling("consistency", steps=2, sampler="consistency")
    assert (two.schedule, two.sigmas, two.steps, two.nfe) == ("paper-two-step", (80.0, 2.0, 0.0), 2, 2)
    four = sm.plan_sampling("consistency", steps=4)
    assert four.schedule == "karras" and four.sigmas == tuple(sm.consistency_sigmas(4)) and four.nfe == 4
    explicit = sm.plan_sampling("consistency", steps=4, sigmas=[80, 5, 0.5])  # explicit sigmas win over steps
    assert (explicit.schedule, explicit.sigmas, explicit.steps) == ("explicit", (80.0, 5.0, 0.5, 0.0), 3)
    narrow = sm.plan_sampling("consistency", steps=3, sigma_min=0.5, sigma_max=10.0, rho=1.0)
    assert narrow.sigmas == pytest.approx((10.0, 20.5 / 3, 11.0 / 3, 0.0))  # the config's range and rho


def test_diffusion_plans():
    heun = sm.plan_sampling("diffusion", steps=4)
    assert (heun.family, heun.sampler, heun.schedule) == ("diffusion", "heun", "karras")
    assert heun.sigmas == tuple(sm.ode_sigmas(4)) and heun.steps == 4 and heun.nfe == 7
    euler = sm.plan_sampling("diffusion", steps=8, sampler="euler")
    assert (euler.steps, euler.nfe) == (8, 8)
    assert sm.plan_sampling("diffusion", steps=8).nfe == 15  # heun: 2 * steps - 1, the last step stays Euler
    one = sm.plan_sampling("diffusion", steps=1)
    assert (one.schedule, one.sigmas, one.nfe) == ("one-step", (80.0, 0.0), 1)
    explicit = sm.plan_sampling("diffusion", sigmas=[80.0, 1.0], sampler="euler")
    assert (explicit.schedule, explicit.sigmas) == ("explicit", (80.0, 1.0, 0.0))
    assert sm.plan_sampling("diffusion", sigmas=[0.001]).sigmas == (0.001, 0.0)  # below a consistency sigma_min


def test_plan_describes_itself_as_json():
    plan = sm.plan_sampling("diffusion", steps=3, sampler="euler")
    described = plan.describe()
    assert described == {
        "family": "diffusion",
        "sampler": "euler",
        "schedule": "karras",
        "steps": 3,
        "nfe": 3,
        "sigmas": list(plan.sigmas),
    }
    assert json.loads(json.dumps(described)) == described
    assert sm.plan_sampling("consistency", steps=2).describe()["sigmas"] == [80.0, 2.0, 0.0]
    with pytest.raises(AttributeError):
        plan.sampler = "heun"  # frozen
    assert plan == sm.plan_sampling("diffusion", steps=3, sampler="euler") and hash(plan)


def test_plan_errors_are_clear():
    with pytest.raises(ValueError, match="sampler 'heun' needs a diffusion model"):
        sm.plan_sampling("consistency", steps=2, sampler="heun")
    with pytest.raises(ValueError, match="'consistency' is not an ODE sampler"):
        sm.plan_sampling("diffusion", steps=2, sampler="consistency")
    with pytest.raises(ValueError, match=r"'dpm' is not an ODE sampler.*euler, heun"):
        sm.plan_sampling("diffusion", steps=2, sampler="dpm")
    with pytest.raises(ValueError, match="unknown objective 'flow'"):
        sm.plan_sampling("flow", steps=2)
    with pytest.raises(ValueError, match="give steps or sigmas"):
        sm.plan_sampling("diffusion")
    for objective in ("consistency", "diffusion"):
        with pytest.raises(ValueError, match="steps must be >= 1"):
            sm.plan_sampling(objective, steps=0)
        with pytest.raises(ValueError, match="strictly decrease"):
            sm.plan_sampling(objective, sigmas=[1.0, 5.0])
        with pytest.raises(ValueError, match="at least one sigma"):
            sm.plan_sampling(objective, sigmas=[])
    with pytest.raises(ValueError, match=r"must lie in \(0.002, 80.0\]"):
        sm.plan_sampling("consistency", sigmas=[0.001])


@pytest.mark.parametrize(
    ("objective", "sampler"), [("consistency", None), ("diffusion", "euler"), ("diffusion", "heun")]
)
def test_sample_runs_the_plan(objective, sampler):
    """`sample` starts from noise() * sigma_0 and calls the denoiser plan.nfe times at the plan's sigmas."""
    plan = sm.plan_sampling(objective, steps=3, sampler=sampler)
    gen = torch.Generator().manual_seed(0)
    calls: list[float] = []
    out = sm.sample(plan, _recording(calls, lambda x, s: 0.5 * x), lambda: torch.randn(4, generator=gen))
    assert len(calls) == plan.nfe and calls[0] == plan.sigmas[0] and set(calls) <= set(plan.sigmas[:-1])
    gen.manual_seed(0)
    x = torch.randn(4, generator=gen) * plan.sigmas[0]
    expected = sm.SAMPLERS[plan.sampler](lambda x, s: 0.5 * x, x, plan.sigmas, lambda: torch.randn(4, generator=gen))
    assert torch.equal(out, expected)
