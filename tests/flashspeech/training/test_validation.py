"""Held-out validation curves: what they measure, that they learn, and that they leave training alone."""

from __future__ import annotations

import json

import pytest
import torch

from flashspeech.config import tiny
from flashspeech.model import FlashSpeechModel
from flashspeech.training.trainer import Trainer
from flashspeech.training.validation import DenoiserHealth, metric_name, mse_rise, validate, validation_batches
from tests.flashspeech.training.test_trainer import make_items, make_trainer


def test_validation_is_the_masked_denoising_mse_and_repeats_exactly():
    torch.manual_seed(0)
    model = FlashSpeechModel(tiny())
    batches = validation_batches(make_items(4, seed=3), batch_frames=400)
    a = validate(model, batches, sigmas=(80.0, 0.3), gain_sigmas=(0.5,))
    assert set(a) == {
        "val_mse_sigma80",
        "val_mse_sigma0.3",
        "val_mse_rise",
        "val_gain_sigma0.5",
        "val_wiener_gain_sigma0.5",
        "val_gate_saturation",
        "val_anchor_mse",
        "val_anchor_scale",
        "val_loss_duration",
        "val_loss_pitch",
    }
    assert a == validate(model, batches, sigmas=(80.0, 0.3), gain_sigmas=(0.5,))  # same noise: identical
    assert model.training  # the mode is restored
    # untrained: F = 0 and the anchor is (0, sigma_data), so D(x0 + sigma n) = c_skip (x0 + sigma n):
    # at sigma 80 about c_skip^2 sigma^2 + x0^2, and the gain is exactly c_skip
    latent = torch.cat(
        [b.latent[:, :, : int(b.frame_mask[i].sum())][i].flatten() for b in batches for i in range(len(b.ids))]
    )
    assert 0.5 * float((latent**2).mean()) < a["val_mse_sigma80"] < 3.0
    assert a["val_mse_sigma0.3"] < 0.3**2 * 1.2  # c_skip ~ 0.74, so the noise is shrunk, never amplified
    assert a["val_gain_sigma0.5"] == pytest.approx(0.25 / (0.25 + (0.5 - 0.002) ** 2), rel=1e-3)
    assert a["val_anchor_scale"] == pytest.approx(0.5, rel=1e-4) and a["val_anchor_mse"] > 0
    assert a["val_gate_saturation"] < 0.05  # fresh FiLM layers start as the identity


def test_an_ideal_denoiser_has_the_wiener_gain_and_no_error_rise():
    """On x0 ~ N(mu, v) with mu known, D = mu + v / (v + sigma^2) (x - mu) is optimal: its gain is the
    Wiener gain, and its error v sigma^2 / (v + sigma^2) falls with sigma."""
    v, mu = 0.04, torch.randn(3, 5, 40, generator=torch.Generator().manual_seed(0))
    x0 = mu + v**0.5 * torch.randn(3, 5, 40, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(3, 40, dtype=torch.bool)
    health = DenoiserHealth(sigmas=(80.0, 1.0, 0.1), gain_sigmas=(1.0, 0.1))
    health.add(lambda x, sigma: mu + v / (v + sigma**2) * (x - mu), x0, mask)
    m = health.metrics()
    assert m["val_mse_rise"] == 0.0
    for sigma in (1.0, 0.1):
        assert m[f"val_gain_sigma{sigma:g}"] == pytest.approx(v / (v + sigma**2), rel=1e-4)
        assert m[f"val_wiener_gain_sigma{sigma:g}"] == pytest.approx(v / (v + sigma**2), rel=0.2)
        assert m[f"val_mse_sigma{sigma:g}"] == pytest.approx(v * sigma**2 / (v + sigma**2), rel=0.2)
    # a conditional-mean predictor with EDM's skip (sigma_data 0.5) that passes the noise through: its error
    # v + c_skip^2 sigma^2 rises from ~v at sigma 80 to v + 0.04 at sigma 1, and its gain is c_skip
    blind = DenoiserHealth(sigmas=(80.0, 1.0, 0.1), gain_sigmas=(1.0,))
    blind.add(lambda x, sigma: mu + 0.25 / (0.25 + sigma**2) * (x - x0), x0, mask)
    assert blind.metrics()["val_mse_rise"] == pytest.approx(0.04, rel=0.1)
    assert blind.metrics()["val_gain_sigma1"] == pytest.approx(0.2, rel=1e-4)


def test_mse_rise_is_the_largest_increase_towards_small_sigma():
    assert mse_rise({80.0: 0.05, 1.0: 0.04, 0.1: 0.01}) == 0.0
    assert mse_rise({80.0: 0.05, 1.0: 0.07, 0.5: 0.06, 0.1: 0.01}) == pytest.approx(0.02)


def test_validation_batches_are_fixed_by_their_seed():
    items = make_items(5, seed=3)
    a, b = validation_batches(items, 400, seed=1), validation_batches(items, 400, seed=1)
    assert [x.ids for x in a] == [y.ids for y in b]
    assert all(torch.equal(x.prompt, y.prompt) and torch.equal(x.latent, y.latent) for x, y in zip(a, b, strict=True))
    assert sorted(i for x in a for i in x.ids) == sorted(item.id for item in items)  # every item, once


def test_trainer_logs_validation_that_improves_and_does_not_perturb_training(tmp_path):
    held_out = validation_batches(make_items(4, seed=7), batch_frames=400)
    plain = make_trainer(tmp_path / "plain", steps=30)
    plain.run(progress=False)
    torch.manual_seed(0)
    watched = Trainer(
        FlashSpeechModel(tiny()),
        make_items(),
        plain.config.__class__(
            **{**plain.config.to_dict(), "validate_every": 15, "disc_widths": (256, 512, 1024, 1024)}
        ),
        tmp_path / "watched",
        validation=held_out,
    )
    watched.run(progress=False)
    for (k, a), (_, b) in zip(plain.model.state_dict().items(), watched.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), k  # validating did not change a single weight of the run
    rows = [json.loads(x) for x in (tmp_path / "watched" / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if metric_name(80.0) in r]
    assert [r["step"] for r in val] == [0, 15, 30]
    assert val[-1]["val_loss_duration"] < val[0]["val_loss_duration"]
    assert watched.last_validation == {k: v for k, v in val[-1].items() if k != "step"}
