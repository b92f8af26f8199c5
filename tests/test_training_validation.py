"""Held-out validation curves: what they measure, that they learn, and that they leave training alone."""

from __future__ import annotations

import json

import pytest
import torch
from test_training_loop import make_items, make_trainer  # tests/ is on sys.path (rootdir conftest)

from flashspeech.config import tiny
from flashspeech.model import FlashSpeechModel
from flashspeech.training.trainer import Trainer
from flashspeech.training.validation import metric_name, validate, validation_batches


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


def test_recipe_validates_on_held_out_items_and_records_the_last_values(tmp_path, monkeypatch):
    from bench.training import run as run_mod
    from bench.training.features import FeatureSet
    from bench.training.run import Recipe, validation_items
    from flashspeech.checkpoint import read_description

    assert validation_items(Recipe(name="x", validation="none"), codec=None) == []
    assert validation_items(Recipe(name="x", data="libritts:/nowhere"), codec=None) == []  # auto: synthetic only
    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None: (features, []))
    monkeypatch.setattr(run_mod, "validation_items", lambda recipe, codec, cache_dir=None: make_items(3, seed=9))
    stage = {"name": "ct", "stage": "consistency", "steps": 4, "batch_frames": 400, "warmup": 0, "validate_every": 2}
    last = run_mod.run_recipe(
        Recipe.from_dict({"name": "toy", "stages": [stage]}), tmp_path / "out", mlflow_curves=False
    )
    entry = read_description(last)["metadata"]["training"][0]
    assert set(entry["validation"]) >= {"val_mse_sigma80", "val_loss_pitch"}
    rows = [json.loads(x) for x in (tmp_path / "out" / "ct" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_mse_sigma80" in r] == [0, 2, 4]


def test_model_card_draws_the_validation_curves_of_runs_that_have_them(tmp_path):
    from bench.training.model_card import plot_validation_curves, validation_curves
    from reports.plots import is_png

    run = tmp_path / "ct"
    run.mkdir()
    rows = [{"step": 0, "val_mse_sigma80": 0.25}, {"step": 10, "loss": 1.0}, {"step": 250, "val_mse_sigma80": 0.1}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "no-val").mkdir()
    (tmp_path / "no-val" / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 1.0}) + "\n")
    curves = validation_curves({"ct": run, "no-val": tmp_path / "no-val", "absent": tmp_path / "nowhere"})
    assert curves == {"ct": [(0, 0.25), (250, 0.1)]}
    assert validation_curves({"tuned": (run, 3500)}) == {"tuned": [(3500, 0.25), (3750, 0.1)]}
    out = plot_validation_curves(curves, tmp_path / "curves.png")
    assert is_png(out.read_bytes())


def test_stages_with_different_batch_sizes_validate_on_the_same_batches(tmp_path, monkeypatch):
    """The refinement stage freezes the latent model, so its step-0 validation must repeat the previous
    stage's last one even though the two stages batch their training data differently."""
    from bench.training import run as run_mod
    from bench.training.features import FeatureSet
    from bench.training.run import Recipe

    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None: (features, []))
    monkeypatch.setattr(run_mod, "validation_items", lambda recipe, codec, cache_dir=None: make_items(5, seed=9))
    stages = [
        {"name": "ct", "stage": "consistency", "steps": 2, "batch_frames": 400, "warmup": 0, "validate_every": 2},
        {
            "name": "refine",
            "stage": "refinement",
            "init": "ct",
            "steps": 2,
            "batch_frames": 60,
            "s1": 160,
            "validate_every": 2,
        },
    ]
    recipe = Recipe.from_dict({"name": "toy", "validation_batch_frames": 100, "stages": stages})
    run_mod.run_recipe(recipe, tmp_path / "out", mlflow_curves=False)

    def val_rows(stage):
        lines = (tmp_path / "out" / stage / "metrics.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if "val_mse_sigma80" in r]

    ct_last, refine_first = val_rows("ct")[-1], val_rows("refine")[0]
    for key in ("val_mse_sigma80", "val_mse_sigma0.3"):
        assert abs(ct_last[key] - refine_first[key]) < 1e-6, key


def test_synthetic_sentence_selection_is_checked():
    from bench.training.sources import synthetic_utterances

    with pytest.raises(ValueError, match="sentences must be"):
        synthetic_utterances("train", sentences="held-out")
