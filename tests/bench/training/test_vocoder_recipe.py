"""The vocoder recipe through the CLI: `train --config` trains, validates, logs to MLflow, exports a decoder that
loads strictly into the codec, skips a finished run and resumes an interrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench.config import ConfigError
from bench.training.sources import TrainingUtterance
from bench.training.vocoder import VocoderRecipe

pytestmark = pytest.mark.usefixtures("one_thread")

NATURAL = Path("bench/testsets/assets/natural/flite-slt")
RECIPE = """
kind = "vocoder"
name = "toy-vocoder"
data = "natural"
export = "{export}"
[model]
dim = 32
intermediate = 64
layers = 2
[train]
steps = 3
gan_start = 1
batch_size = 2
segment_frames = 16
periods = [2, 3]
mpd_channels = [8, 16]
resolutions = [[256, 64]]
mrd_channels = 8
validate_every = 2
checkpoint_every = 1
log_every = 1
"""


def fake_utterances(recipe, sentences, cache_dir):  # type: ignore[no-untyped-def]
    clips = sorted(NATURAL.glob("*.flac"))
    chosen = clips[:3] if sentences == "train" else clips[3:5]
    return [TrainingUtterance(p.stem, "flite-slt", p, "text", ("<s>",), (1,)) for p in chosen]


def test_shipped_vocoder_recipe_and_its_errors():
    from bench.training.recipes import load_recipe

    recipe = load_recipe("vocos-tiny")
    assert isinstance(recipe, VocoderRecipe) and recipe.data == "synthetic+natural"
    assert (recipe.model.dim, recipe.model.layers) == (256, 8) and recipe.export == "runs/train/vocos-tiny/export"
    assert load_recipe("vocos-tiny", ["train.steps=5"]).train.steps == 5
    with pytest.raises(ConfigError, match=r"^kind: unknown recipe kind 'gan'"):
        load_recipe("vocos-tiny", ["kind=gan"])
    with pytest.raises(ConfigError, match=r"^bogus: unknown key of a vocoder recipe"):
        VocoderRecipe.from_dict({"name": "x", "bogus": 1})
    with pytest.raises(ConfigError, match=r"^data: unknown source 'real'"):
        VocoderRecipe.from_dict({"name": "x", "data": "natural+real"})
    with pytest.raises(ConfigError, match=r"^train\.lr: expected a number"):
        VocoderRecipe.from_dict({"name": "x", "train": {"lr": "fast"}})


def test_train_cli_exports_a_strict_decoder_skips_when_done_and_resumes(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from bench.training import vocoder as recipe_mod
    from flashspeech.codecs import MelCodec
    from flashspeech.codecs.vocos import load_vocoder
    from flashspeech.training.vocoder import VocoderTrainer

    monkeypatch.setattr(recipe_mod, "_utterances", fake_utterances)
    export = tmp_path / "shipped"
    config = tmp_path / "toy.toml"
    config.write_text(RECIPE.format(export=export))
    out, cache = tmp_path / "run", tmp_path / "cache"
    args = ["train", "--config", str(config), "--output-dir", str(out), "--cache-dir", str(cache)]

    real_step = VocoderTrainer.train_step

    def interrupted(self):  # type: ignore[no-untyped-def]
        if self.step == 2:
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(VocoderTrainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert not (out / "vocoder" / "checkpoint").exists()
    assert torch.load(out / "vocoder" / "state.pt", weights_only=False)["step"] == 2
    monkeypatch.setattr(VocoderTrainer, "train_step", real_step)

    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "resuming at step 2" in printed and "training audio: 3 utterances, 1 speakers" in printed
    assert "validation: 2 held-out utterances" in printed
    rows = [json.loads(line) for line in (out / "vocoder" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss_mel" in r] == [1, 2, 3]
    val = [r for r in rows if "val_mel_l1" in r]
    assert [r["step"] for r in val] == [0, 2, 3] and all(r["val_mel_l1_griffin_lim"] > 0 for r in val)
    assert len(list((cache / "vocoder-audio").glob("*.pt"))) == 2  # train and held-out audio, read once

    _, description = load_vocoder(export)
    assert description["metadata"]["weights_dtype"] == "torch.float16"
    history = description["metadata"]["training"]
    assert history["steps"] == 3 and history["utterances"] == 3 and history["validation"]["val_mel_l1"] > 0
    assert [json.loads(line)["step"] for line in (export / "validation.jsonl").read_text().splitlines()] == [0, 2, 3]
    codec = MelCodec(decoder=str(export))
    assert codec.decode(torch.randn(1, 100, 5) - 5).shape == (1, 1000)

    import mlflow

    from bench.tracking import tracking_uri

    client = mlflow.MlflowClient(tracking_uri(out, None))
    runs = client.search_runs([client.get_experiment_by_name("flashspeech-bench-training").experiment_id])
    assert {r.info.status for r in runs} == {"KILLED", "FINISHED"}

    assert main(args) == 0  # finished: skipped
    assert "vocoder: done" in capsys.readouterr().out
