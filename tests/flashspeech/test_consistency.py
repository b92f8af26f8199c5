"""Consistency parametrisation (the schedules and samplers are tested in test_sampling)."""

from __future__ import annotations

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
