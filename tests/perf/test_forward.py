"""Micro-benchmarks (pytest-benchmark): the model's forward per step count, and the codec decoder.

`nox -s perf` runs them with timing on, saves each run under `.benchmarks/` and compares with the
previous saved run (failing on a median slowdown over 25 %). In the normal test run the benchmark
fixture is disabled, so each function runs once as a smoke test of the benchmark code.
"""

from __future__ import annotations

import pytest
import torch

from flashspeech.codecs import MelCodec
from flashspeech.config import tiny
from flashspeech.synthesis import FlashSpeech

TEXT = "The kettle whistled just before dawn, and the whole house woke up."
FRAMES = 400  # 5 s of audio at 80 frames/s: every step count makes the same length


@pytest.fixture(scope="module")
def tts() -> FlashSpeech:
    codec = MelCodec()
    return FlashSpeech.from_config(tiny(latent_dim=codec.latent_dim), codec, seed=0)


@pytest.fixture(scope="module")
def prompt() -> torch.Tensor:
    return 0.1 * torch.sin(torch.arange(3 * 16000) / 7.0)


@pytest.mark.perf
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_synthesize_tiny_per_step_count(benchmark, tts, prompt, steps):
    benchmark.group = "synthesize tiny (5 s of audio, batch 1, CPU)"
    out = benchmark(tts.synthesize, [TEXT], [prompt], steps=steps, seed=0, total_frames=[FRAMES])
    assert out.plan.steps == steps and int(out.durations[0].sum()) == FRAMES


@pytest.mark.perf
@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_consistency_sampling_only(benchmark, tts, steps):
    """The sampler's share: the LCM evaluated `steps` times on a fixed condition."""
    from flashspeech.sampling import sample

    model, cfg = tts.model, tts.config
    cond = torch.randn(1, FRAMES, cfg.hidden)
    tokens = torch.randn(1, cfg.query_tokens, cfg.hidden)
    mask = torch.ones(1, FRAMES, dtype=torch.bool)
    plan = tts.plan(steps)
    gen = torch.Generator().manual_seed(0)

    @torch.inference_mode()
    def run() -> torch.Tensor:
        def denoise(x, sigma):
            return model.denoise(x, torch.full((1,), sigma), cond, mask, tokens)

        return sample(plan, denoise, lambda: torch.randn(1, cfg.latent_dim, FRAMES, generator=gen))

    benchmark.group = "LCM sampling tiny (400 frames, batch 1, CPU)"
    out = benchmark(run)
    assert out.shape == (1, cfg.latent_dim, FRAMES)


@pytest.mark.perf
@pytest.mark.parametrize("decoder", ["griffin-lim", "vocos-tiny"])
def test_mel_codec_decode(benchmark, tts, decoder, tmp_path_factory):
    """The codec's two decoders on 5 s of audio: Griffin-Lim (32 iterations) and a neural decoder of the shipped
    vocos-tiny's shape (random weights: its cost does not depend on them)."""
    codec = tts.codec
    if decoder != "griffin-lim":
        from bench.training.recipes import load_recipe
        from flashspeech.codecs.vocos import Vocos, save_vocoder

        path = save_vocoder(Vocos(load_recipe(decoder).model), codec.describe(), tmp_path_factory.mktemp("vocos"))
        codec = codec.with_decoder(str(path))
    benchmark.group = "codec decode (5 s)"
    latent = torch.randn(1, codec.latent_dim, FRAMES) * 2.0 - 5.0
    with torch.inference_mode():
        out = benchmark(codec.decode, latent)
    assert out.shape == (1, codec.num_samples(FRAMES))
