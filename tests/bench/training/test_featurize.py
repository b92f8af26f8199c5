"""The training feature cache: latents, fitted durations and F0 per utterance; resumable; problems by id."""

from __future__ import annotations

import numpy as np
import soundfile as sf
import torch

from bench.training.featurize import build_features
from bench.training.sources import TrainingUtterance
from flashspeech.codecs.mel import MelCodec


def _utterance(tmp_path, name: str, seconds: float, durations: tuple[int, ...]) -> TrainingUtterance:
    sr = 16_000
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * 150.0 * t) * (t > 0.1)  # a 150 Hz voice after 0.1 s of silence
    path = tmp_path / f"{name}.wav"
    sf.write(path, wav.astype(np.float32), sr)
    phonemes = ("<s>", "h", "ə", "l", "oʊ", "</s>")
    return TrainingUtterance(name, "spk", path, "hello", phonemes, durations)


def test_features_are_cached_fitted_and_problems_named(tmp_path):
    codec = MelCodec()
    good = _utterance(tmp_path, "good", 0.5, (8, 10, 10, 6, 6, 0))  # 40 frames = round(8000 / 200)
    bad = _utterance(tmp_path, "bad", 0.5, (1, 1, 1, 1, 1, 0))  # 5 frames for 40 frames of audio
    missing = TrainingUtterance("gone", "spk", tmp_path / "gone.wav", "x", ("<s>", "h", "</s>"), (1, 1, 0))
    fs = build_features([good, bad, missing], codec, tmp_path / "cache", workers=1, progress=False)
    assert [i.id for i in fs.items] == ["good"]
    assert len(fs.problems) == 2
    assert any(p.startswith("bad:") and "durations sum to 5" in p for p in fs.problems)
    assert any(p.startswith("gone:") for p in fs.problems)
    item = fs.items[0]
    assert item.latent.dtype == torch.float16 and item.latent.shape == (100, codec.num_frames(8000))
    assert int(item.durations.sum()) == item.n_frames == len(item.f0)
    voiced = item.f0[item.f0 > 0]
    assert len(voiced) > 0.6 * item.n_frames and abs(float(voiced.median()) - 150.0) < 5.0
    assert float(item.f0[:4].max()) == 0.0  # silence is unvoiced
    # a second build computes nothing new and loads the same tensors
    stamp = {p: p.stat().st_mtime_ns for p in fs.root.glob("*.pt")}
    again = build_features([good], codec, tmp_path / "cache", workers=1, progress=False)
    assert torch.equal(again.items[0].latent, item.latent)
    assert {p: p.stat().st_mtime_ns for p in fs.root.glob("*.pt")} == stamp


def test_shards_build_apart_and_stream_together(tmp_path):
    """Two shards built separately (as two processes or machines would) index every utterance once; the
    streamed items load from disk and equal the in-memory ones; the trainer reads lengths from the index."""
    from bench.training.featurize import StreamedFeatures

    codec = MelCodec()
    utts = [_utterance(tmp_path, f"u{i}", 0.5, (8, 10, 10, 6, 6, 0)) for i in range(5)]
    cache = tmp_path / "cache"
    first = build_features(utts, codec, cache, workers=1, progress=False, shard=(0, 2))
    second = build_features(utts, codec, cache, workers=1, progress=False, shard=(1, 2))
    assert [i.id for i in first.items] == ["u0", "u2", "u4"] and [i.id for i in second.items] == ["u1", "u3"]
    assert sorted(p.name for p in first.root.glob("index-*.jsonl")) == ["index-0-of-2.jsonl", "index-1-of-2.jsonl"]
    streamed = build_features(utts, codec, cache, workers=1, progress=False, stream=True)
    assert isinstance(streamed.items, StreamedFeatures) and len(streamed.items) == 5
    assert streamed.items.lengths == [40] * 5 and streamed.speakers == ["spk"]
    # only this call's utterances stream, though the cache holds the others' features too
    fewer = build_features(utts[:3], codec, cache, workers=1, progress=False, stream=True)
    assert [row.id for row in fewer.items.rows] == ["u0", "u1", "u2"]
    in_memory = build_features(utts, codec, cache, workers=1, progress=False)
    for a, b in zip(streamed.items, in_memory.items, strict=True):
        assert a.id == b.id and torch.equal(a.latent, b.latent)
    import pytest

    with pytest.raises(ValueError, match="shard 2/2"):
        build_features(utts, codec, cache, shard=(2, 2))


def test_featurize_command_builds_one_shard(tmp_path, monkeypatch, capsys):
    from bench.cli import main
    from bench.training import recipes

    utts = [_utterance(tmp_path, f"u{i}", 0.5, (8, 10, 10, 6, 6, 0)) for i in range(4)]
    monkeypatch.setattr(recipes, "corpus_utterances", lambda source, split, cache_dir=None: utts)
    args = ["data", "featurize", "--config", "tiny", "--set", 'data="synthetic"', "--cache-dir", str(tmp_path)]
    assert main([*args, "--shard", "1/2"]) == 0
    assert "shard 1/2 of synthetic: 2 utterances" in capsys.readouterr().out
    assert main([*args, "--shard", "2/2"]) == 2


def test_training_on_streamed_features_equals_training_in_memory(tmp_path):
    from flashspeech.config import tiny
    from flashspeech.model import FlashSpeechModel
    from flashspeech.training.trainer import TrainConfig, Trainer

    codec = MelCodec()
    utts = [_utterance(tmp_path, f"u{i}", 0.5, (8, 10, 10, 6, 6, 0)) for i in range(4)]
    cfg = TrainConfig(steps=2, warmup=0, batch_frames=80)
    weights = []
    for stream in (False, True):
        items = build_features(utts, codec, tmp_path / "cache", workers=1, progress=False, stream=stream).items
        torch.manual_seed(0)
        trainer = Trainer(FlashSpeechModel(tiny(codec.latent_dim)), items, cfg, tmp_path / f"run-{stream}")
        trainer.run(progress=False)
        weights.append(trainer.model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
