"""Held-out validation curves: what they measure, that they learn, and that they leave training alone."""

from __future__ import annotations

import json

import pytest
import torch

from flashspeech.config import tiny
from flashspeech.model import FlashSpeechModel
from flashspeech.training.trainer import Trainer
from flashspeech.training.validation import metric_name, validate, validation_batches
from tests.flashspeech.training.test_trainer import make_items, make_trainer


def test_validation_is_the_masked_denoising_mse_and_repeats_exactly():
    torch.manual_seed(0)
    model = FlashSpeechModel(tiny())
    batches = validation_batches(make_items(4, seed=3), batch_frames=400)
    a = validate(model, batches, sigmas=(80.0, 0.3))
    assert set(a) == {
        "val_mse_sigma80",
        "val_mse_sigma0.3",
        "val_passthrough_sigma0.5",
        "val_loss_duration",
        "val_loss_pitch",
    }
    assert a == validate(model, batches, sigmas=(80.0, 0.3))  # same noise, eval mode: identical
    assert model.training  # the mode is restored
    # untrained: F = 0, so D(x0 + sigma n) = c_skip (x0 + sigma n): at sigma 80 about c_skip^2 sigma^2 + x0^2
    latent = torch.cat(
        [b.latent[:, :, : int(b.frame_mask[i].sum())][i].flatten() for b in batches for i in range(len(b.ids))]
    )
    assert 0.5 * float((latent**2).mean()) < a["val_mse_sigma80"] < 3.0
    assert a["val_mse_sigma0.3"] < 0.3**2 * 1.2  # c_skip ~ 0.74, so the noise is shrunk, never amplified
    assert a["val_passthrough_sigma0.5"] == pytest.approx(1.0, rel=0.03)  # F = 0: exactly c_skip x (up to sampling)


def test_passthrough_is_zero_for_a_denoiser_that_removes_the_noise(monkeypatch):
    torch.manual_seed(0)
    model = FlashSpeechModel(tiny())
    batches = validation_batches(make_items(3, seed=4), batch_frames=400)
    monkeypatch.setattr(model, "denoise", lambda x, sigma, cond, mask, tokens: torch.zeros_like(x))
    assert validate(model, batches, sigmas=(80.0,))["val_passthrough_sigma0.5"] == 0.0


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
