"""Training recipes: shipped recipes parse, stages run in order and resume, validation on held-out items."""

from __future__ import annotations

import json

import pytest
import torch

from tests.flashspeech.training.test_trainer import make_items


def test_shipped_recipes_parse():
    from bench.training.recipes import load_recipe

    paper = load_recipe("tiny-paper")
    assert [s.name for s in paper.stages] == ["consistency", "adversarial", "refinement"]
    assert paper.stages[0].init is None and not paper.export
    assert paper.stages[1].init == "consistency" and paper.stages[1].train.fixed_sigmas == 321
    recipe = load_recipe("tiny")  # the shipped checkpoint's: adversarial stage from the diffusion baseline
    assert [s.name for s in recipe.stages] == ["adversarial", "refinement"]
    first = recipe.stages[0]
    assert (first.init, first.convert_objective, first.train.fixed_sigmas) == ("pretrained:diffusion-tiny", True, 321)
    assert recipe.stages[1].init == "adversarial"
    assert load_recipe("tiny-diffusion").stages[0].train.stage == "diffusion"
    paper_scale = load_recipe("paper")  # the paper's schedule: 600 k + 50 k + 150 k steps, 20 k frames per GPU
    assert [(s.name, s.train.steps) for s in paper_scale.stages] == [
        ("consistency", 600_000), ("adversarial", 50_000), ("refinement", 150_000)
    ]  # fmt: skip
    first, adversarial = paper_scale.stages[0].train, paper_scale.stages[1].train
    assert first.batch_frames == 20_000 and first.lr_at(600_000) == pytest.approx(3e-4 * 50 / 620, rel=1e-3)
    assert adversarial.lr_at(0) == pytest.approx(first.lr_at(600_000), rel=1e-2)
    code = load_recipe("paper-code")
    assert [s.train.schedule for s in code.stages] == ["cosine", "constant", "cosine"]
    assert code.stages[0].train.precision == "fp16" and code.stages[1].train.lr == 8e-5
    changed = load_recipe("tiny", ["stages.0.steps=7"])
    assert changed.stages[0].train.steps == 7
    from bench.config import ConfigError

    with pytest.raises(ConfigError, match=r"^bogus: unknown key of a training recipe \(known: "):
        from bench.training.recipes import Recipe

        Recipe.from_dict({"name": "x", "bogus": 1})


def test_recipe_runs_stages_in_order_exports_and_skips_finished_ones(tmp_path, monkeypatch):
    from bench.training import recipes as run_mod
    from bench.training.featurize import FeatureSet
    from bench.training.recipes import Recipe
    from flashspeech.checkpoint import read_description
    from flashspeech.synthesis import FlashSpeech

    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None, **kw: (features, []))
    recipe = Recipe.from_dict(
        {
            "name": "toy",
            "export": str(tmp_path / "shipped"),
            "stages": [
                {"name": "ct", "stage": "consistency", "steps": 2, "batch_frames": 400, "warmup": 0},
                {
                    "name": "refine",
                    "stage": "refinement",
                    "init": "ct",
                    "steps": 2,
                    "batch_frames": 400,
                    "s1": 160,
                    "snapshot_every": 1,
                },
            ],
        }
    )
    last = run_mod.run_recipe(recipe, tmp_path / "out", mlflow_curves=False)
    assert last == tmp_path / "out" / "refine" / "checkpoint"
    snapshots = tmp_path / "out" / "refine" / "snapshots"
    assert sorted(p.name for p in snapshots.iterdir()) == ["step-1", "step-2"]
    midway = read_description(snapshots / "step-1")["metadata"]["training"]
    assert [(h["stage"], h["steps"], h.get("snapshot")) for h in midway] == [("ct", 2, None), ("refine", 1, True)]
    at_end = FlashSpeech.from_pretrained(snapshots / "step-2").model.state_dict()  # strict load
    final = FlashSpeech.from_pretrained(last).model.state_dict()  # once: not once per tensor (44 s before)
    assert all(torch.equal(v, final[k]) for k, v in at_end.items())
    history = read_description(last)["metadata"]["training"]
    assert [h["stage"] for h in history] == ["ct", "refine"] and history[0]["steps"] == 2
    shipped = read_description(tmp_path / "shipped")
    assert shipped["metadata"]["weights_dtype"] == "torch.float16"
    full, half = FlashSpeech.from_pretrained(last), FlashSpeech.from_pretrained(tmp_path / "shipped")
    for (k, a), (_, b) in zip(full.model.state_dict().items(), half.model.state_dict().items(), strict=True):
        assert torch.allclose(a, b, rtol=1e-2, atol=1e-3), k
    # the refinement stage changed only the refiners of the consistency stage's weights
    ct = FlashSpeech.from_pretrained(tmp_path / "out" / "ct" / "checkpoint").model.state_dict()
    assert torch.equal(ct["lcm.in_proj.weight"], full.model.state_dict()["lcm.in_proj.weight"])
    # a second run skips both finished stages
    stamp = (last / "model.safetensors").stat().st_mtime_ns
    run_mod.run_recipe(recipe, tmp_path / "out", mlflow_curves=False)
    assert (last / "model.safetensors").stat().st_mtime_ns == stamp


def test_pretrained_names_resolve_to_shipped_checkpoints():
    from flashspeech.checkpoint import CheckpointError, resolve_checkpoint

    with pytest.raises(CheckpointError, match="no shipped checkpoint"):
        resolve_checkpoint("pretrained:does-not-exist")
    assert str(resolve_checkpoint("some/dir")) == "some/dir"


def test_a_stage_can_start_from_the_other_objective_only_when_asked(tmp_path, monkeypatch):
    """Consistency tuning from the diffusion baseline: same network, weights loaded strictly."""
    from bench.config import ConfigError
    from bench.training import recipes as run_mod
    from bench.training.featurize import FeatureSet
    from bench.training.recipes import Recipe
    from flashspeech.synthesis import FlashSpeech

    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None, **kw: (features, []))
    edm = {"name": "edm", "stage": "diffusion", "steps": 2, "batch_frames": 400, "warmup": 0}
    ct = {"name": "ct", "stage": "consistency", "init": "edm", "steps": 1, "batch_frames": 400, "warmup": 0}
    with pytest.raises(ConfigError, match="convert_objective"):
        run_mod.run_recipe(Recipe.from_dict({"name": "toy", "stages": [edm, ct]}), tmp_path / "a", mlflow_curves=False)
    # the failed attempt left the finished diffusion stage in place; the converted stage starts from it
    recipe = Recipe.from_dict({"name": "toy", "stages": [edm, {**ct, "convert_objective": True}]})
    last = run_mod.run_recipe(recipe, tmp_path / "a", mlflow_curves=False)
    tuned = FlashSpeech.from_pretrained(last).model
    source = FlashSpeech.from_pretrained(tmp_path / "a" / "edm" / "checkpoint").model
    assert source.cfg.objective == "diffusion" and tuned.cfg.objective == "consistency"
    assert tuned.cfg.name == "tiny"
    changed = [k for k, v in source.state_dict().items() if not torch.equal(v, tuned.state_dict()[k])]
    assert changed and set(source.state_dict()) == set(tuned.state_dict())  # trained on, same keys


def test_recipe_validates_on_held_out_items_and_records_the_last_values(tmp_path, monkeypatch):
    from bench.training import recipes as run_mod
    from bench.training.featurize import FeatureSet
    from bench.training.recipes import Recipe, validation_items
    from flashspeech.checkpoint import read_description

    assert validation_items(Recipe(name="x", validation="none"), codec=None) == []
    assert validation_items(Recipe(name="x", data="libritts:/nowhere"), codec=None) == []  # auto: synthetic only
    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None, **kw: (features, []))
    monkeypatch.setattr(run_mod, "validation_items", lambda recipe, codec, cache_dir=None: make_items(3, seed=9))
    stage = {"name": "ct", "stage": "consistency", "steps": 4, "batch_frames": 400, "warmup": 0, "validate_every": 2}
    last = run_mod.run_recipe(
        Recipe.from_dict({"name": "toy", "stages": [stage]}), tmp_path / "out", mlflow_curves=False
    )
    entry = read_description(last)["metadata"]["training"][0]
    assert set(entry["validation"]) >= {"val_mse_sigma80", "val_loss_pitch"}
    rows = [json.loads(x) for x in (tmp_path / "out" / "ct" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val_mse_sigma80" in r] == [0, 2, 4]


def test_stages_with_different_batch_sizes_validate_on_the_same_batches(tmp_path, monkeypatch):
    """The refinement stage freezes the latent model, so its step-0 validation must repeat the previous
    stage's last one even though the two stages batch their training data differently."""
    from bench.training import recipes as run_mod
    from bench.training.featurize import FeatureSet
    from bench.training.recipes import Recipe

    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None, **kw: (features, []))
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


def test_natural_sentence_selection_is_checked():
    from bench.training.sources import natural_utterances

    with pytest.raises(ValueError, match="sentences must be"):
        natural_utterances("train", sentences="held-out")


def test_data_sources_join_with_plus_and_validate_on_each_corpus(monkeypatch):
    from bench.config import ConfigError
    from bench.training import recipes as run_mod

    calls = []

    def fake(source, sentences, cache_dir=None):
        calls.append((source, sentences))
        return []

    monkeypatch.setattr(run_mod, "corpus_utterances", fake)
    monkeypatch.setattr("bench.training.featurize.build_features", lambda utts, codec, cache_dir=None, **kw: _Built())
    run_mod.training_items("synthetic+natural", codec=None)
    assert calls == [("synthetic", "train"), ("natural", "train")]
    calls.clear()
    recipe = run_mod.Recipe.from_dict({"name": "toy", "data": "natural+synthetic", "stages": [{"name": "ct"}]})
    assert run_mod.validation_items(recipe, codec=None) == []
    assert calls == [("natural", "test"), ("synthetic", "test")]
    with pytest.raises(ConfigError, match="unknown data source 'espeak'"):
        run_mod.training_items("synthetic+espeak", codec=None)


class _Built:
    def __init__(self) -> None:
        self.items: list = []
        self.problems: list[str] = []


def test_recipe_model_overrides_and_exported_validation_curves(tmp_path, monkeypatch):
    from bench.config import ConfigError
    from bench.training import recipes as run_mod
    from bench.training.featurize import FeatureSet
    from bench.training.recipes import Recipe
    from flashspeech.synthesis import FlashSpeech

    features = FeatureSet(items=make_items(), problems=[], root=tmp_path)
    monkeypatch.setattr(run_mod, "training_items", lambda data, codec, cache_dir=None, **kw: (features, []))
    stage = {"name": "ct", "stage": "consistency", "steps": 2, "batch_frames": 400, "warmup": 0, "validate_every": 1}
    recipe = Recipe.from_dict(
        {
            "name": "toy",
            "validation": "libritts:held-out",  # any source: training_items is replaced above
            "export": str(tmp_path / "shipped"),
            "model": {"consistency": {"parametrisation": "edm"}},
            "stages": [stage],
        }
    )
    run_mod.run_recipe(recipe, tmp_path / "out", mlflow_curves=False)
    shipped = FlashSpeech.from_pretrained(tmp_path / "shipped")
    assert shipped.model.cfg.consistency.parametrisation == "edm" and shipped.model.anchor is None
    rows = [json.loads(line) for line in (tmp_path / "shipped" / "validation-ct.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2] and all("val_mse_sigma80" in r for r in rows)
    bad = Recipe.from_dict({"name": "bad", "model": {"consistency": {"sigma_dta": 0.2}}, "stages": [stage]})
    with pytest.raises(ConfigError, match="sigma_dta"):
        run_mod.run_recipe(bad, tmp_path / "bad", mlflow_curves=False)
