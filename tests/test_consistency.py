"""Consistency parametrisation and sampling schedules."""

from __future__ import annotations

import itertools

import pytest
import torch

from flashspeech import consistency as cm


def test_boundary_condition_is_exact():
    sigma = torch.tensor(cm.SIGMA_MIN)
    assert cm.c_skip(sigma).item() == 1.0
    assert cm.c_out(sigma).item() == 0.0
    x = torch.randn(3, 4, 5)
    F = torch.randn(3, 4, 5) * 1e6  # whatever the network says
    f = cm.c_skip(sigma) * x + cm.c_out(sigma) * F
    assert torch.equal(f, x)


def test_preconditioning_values():
    sigma = torch.tensor([0.5, 80.0])
    sd, smin = cm.SIGMA_DATA, cm.SIGMA_MIN
    torch.testing.assert_close(cm.c_skip(sigma), sd**2 / ((sigma - smin) ** 2 + sd**2))
    torch.testing.assert_close(cm.c_out(sigma), (sigma - smin) * sd / torch.sqrt(sigma**2 + sd**2))
    torch.testing.assert_close(cm.c_in(sigma), 1 / torch.sqrt(sigma**2 + sd**2))
    torch.testing.assert_close(cm.c_noise(sigma), torch.log(sigma) / 4)
    # at large sigma the output is almost all network, scaled to sigma_data
    assert cm.c_skip(torch.tensor(80.0)) < 1e-4 and abs(cm.c_out(torch.tensor(80.0)) - 0.5) < 1e-3


def test_schedules_match_the_documented_values():
    assert cm.sampling_sigmas(1) == ([80.0], "one-step")
    assert cm.sampling_sigmas(2) == ([80.0, 2.0], "paper-two-step")
    sigmas, name = cm.sampling_sigmas(4)
    assert name == "karras" and sigmas[0] == pytest.approx(80.0)
    assert sigmas[1:] == pytest.approx([17.53, 2.5152, 0.170], abs=5e-3)  # digest §3, official code
    three, _ = cm.sampling_sigmas(3)
    assert three[1:] == pytest.approx([9.72, 0.470], abs=5e-3)
    # the code's own 2-step grid point, for reference: the Karras midpoint
    assert cm.karras_sigmas(3)[1] == pytest.approx(2.5152, abs=1e-4)
    grid = cm.karras_sigmas(11)
    assert grid[0] == pytest.approx(80.0) and grid[-1] == pytest.approx(0.002)
    assert all(a > b for a, b in itertools.pairwise(grid))


def test_explicit_sigmas_are_validated():
    assert cm.sampling_sigmas(sigmas=[80, 10, 1]) == ([80.0, 10.0, 1.0], "explicit")
    for bad in ([], [10, 20], [100.0], [0.001], [float("nan")]):
        with pytest.raises(ValueError):
            cm.sampling_sigmas(sigmas=bad)
    with pytest.raises(ValueError):
        cm.sampling_sigmas(0)


def test_consistency_sample_renoises_with_plain_sigma_eps():
    calls = []
    draws = iter([torch.full((2,), 1.0), torch.full((2,), 10.0), torch.full((2,), 100.0)])

    def denoise(x, sigma):
        calls.append((x.clone(), sigma))
        return torch.zeros_like(x) + 0.5

    out = cm.consistency_sample(denoise, lambda: next(draws), [80.0, 2.0, 0.5])
    assert [s for _, s in calls] == [80.0, 2.0, 0.5]
    assert torch.equal(calls[0][0], torch.full((2,), 80.0))  # sigma_max * eps
    assert torch.equal(calls[1][0], torch.full((2,), 0.5 + 2.0 * 10.0))  # x + sigma * eps
    assert torch.equal(calls[2][0], torch.full((2,), 0.5 + 0.5 * 100.0))
    assert torch.equal(out, torch.full((2,), 0.5))
