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
