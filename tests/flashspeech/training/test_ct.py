"""Consistency-training math on small hand-checked cases (the paper's consistency-training objective)."""

from __future__ import annotations

import math

import pytest
import torch

from flashspeech.training.ct import (
    adaptive_weight,
    ct_sigmas,
    curriculum_period,
    curriculum_steps,
    lognormal_interval_probs,
    loss_weight,
    pseudo_huber,
    sample_intervals,
)


def test_curriculum_matches_the_paper_and_the_code():
    assert curriculum_period(10, 1280, 600_000) == 75_000  # paper stage 1
    assert [curriculum_steps(k) for k in (0, 74_999, 75_000, 150_000, 525_000, 600_000, 10**7)] == [
        11, 11, 21, 41, 1281, 1281, 1281,
    ]  # fmt: skip
    assert curriculum_period(10, 1280, 160_000) == 20_000  # official code, K = 160k
    assert curriculum_period(10, 160, 150_000) == 30_000  # paper stage 2 (prosody refinement)
    assert [curriculum_steps(k, 10, 160, 150_000) for k in range(0, 150_001, 30_000)] == [11, 21, 41, 81, 161, 161]


def test_sigma_grid_is_ascending_karras():
    s = ct_sigmas(11)
    assert s[0].item() == pytest.approx(0.002) and s[-1].item() == pytest.approx(80.0)
    assert torch.all(s[1:] > s[:-1])
    rho = 7.0
    u = s ** (1 / rho)
    assert torch.allclose(u[1:] - u[:-1], (u[1] - u[0]).expand(10), rtol=1e-9)  # evenly spaced in sigma^(1/rho)


def test_lognormal_interval_probabilities():
    s = ct_sigmas(1281)
    p = lognormal_interval_probs(s)
    assert p.shape == (1280,) and torch.all(p > 0) and p.sum().item() == pytest.approx(1.0)
    # a normal in log-sigma centred on P_mean: the median interval sits near exp(-1.1) = 0.33 (the most
    # likely single interval is lower, because the Karras grid's intervals are wider in log-sigma there)
    i = int(torch.searchsorted(torch.cumsum(p, 0), torch.tensor(0.5, dtype=p.dtype)))
    assert math.exp(-1.1) / 1.5 < s[i].item() < math.exp(-1.1) * 1.5
    # hand case with 3 sigmas: two intervals, weights from the normal CDF in log-sigma
    s3 = torch.tensor([0.01, 1.0, 100.0], dtype=torch.float64)
    cdf = [0.5 * (1 + math.erf((math.log(v) + 1.1) / (math.sqrt(2) * 2.0))) for v in (0.01, 1.0, 100.0)]
    expected = torch.tensor([cdf[1] - cdf[0], cdf[2] - cdf[1]], dtype=torch.float64)
    assert torch.allclose(lognormal_interval_probs(s3), expected / expected.sum())


def test_interval_sampling_is_seeded_and_consistent():
    s = ct_sigmas(21)
    a = sample_intervals(s, 512, torch.Generator().manual_seed(0))
    b = sample_intervals(s, 512, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    index, lo, hi = a
    assert torch.all(hi > lo) and torch.equal(lo, s[index].float()) and int(index.max()) <= 19


def test_loss_weight():
    assert loss_weight(torch.tensor([1.0, 0.5]), torch.tensor([3.0, 0.75])).tolist() == [0.5, 4.0]


def test_pseudo_huber_hand_values_and_masking():
    x = torch.zeros(1, 1, 2)
    y = torch.tensor([[[0.04, 0.0]]])
    # element-wise: (sqrt(0.04^2 + 0.03^2) - 0.03 + 0) / 2 = 0.01
    assert pseudo_huber(x, y).item() == pytest.approx(0.01)
    assert pseudo_huber(x, y, per_sample=True).item() == pytest.approx(0.02)  # sqrt(0.0016 + 0.0009) - 0.03
    assert pseudo_huber(x, x).item() == 0.0
    # a padded frame with a huge difference changes nothing once masked
    y_pad = torch.tensor([[[0.04, 0.0, 1e3]]])
    mask = torch.tensor([[True, True, False]])
    x_pad = torch.zeros(1, 1, 3)
    assert pseudo_huber(x_pad, y_pad, mask).item() == pytest.approx(0.01)
    assert pseudo_huber(x_pad, y_pad, mask, per_sample=True).item() == pytest.approx(0.02)


def test_adaptive_weight_is_the_gradient_norm_ratio():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    a, b = torch.tensor([3.0, 4.0]), torch.tensor([0.0, 10.0])
    loss_ct, loss_adv = (w * a).sum(), (w * b).sum()  # gradients a (norm 5) and b (norm 10)
    lam = adaptive_weight(loss_ct, loss_adv, w)
    assert lam.item() == pytest.approx(0.5 * 5 / (10 + 1e-4)) and not lam.requires_grad
    assert adaptive_weight(loss_ct, loss_adv, w, scale=1.0).item() == pytest.approx(5 / (10 + 1e-4))  # paper
    zero_adv = (w * 0).sum()
    assert adaptive_weight(loss_ct, zero_adv, w).item() == pytest.approx(0.5 * 1e4)  # clamped
