"""Voice conversion and speech editing entry points (tiny preset, random weights)."""

from __future__ import annotations

import pytest
import torch

from flashspeech.codecs import MelCodec
from flashspeech.config import tiny
from flashspeech.editing import convert_voice, edit_speech, source_durations
from flashspeech.foundation.audio import read_audio
from flashspeech.synthesis import FlashSpeech

REAL = "bench/testsets/assets/real"


@pytest.fixture(scope="module")
def tts() -> FlashSpeech:
    codec = MelCodec(n_iter=8)
    tts = FlashSpeech.from_config(tiny(latent_dim=codec.latent_dim), codec, seed=0)
    torch.manual_seed(1)
    torch.nn.init.normal_(tts.model.lcm.out_proj.weight, std=0.05)
    return tts


@pytest.fixture(scope="module")
def clips():
    source = torch.from_numpy(read_audio(f"{REAL}/librivox_0880.wav").samples)
    target = torch.from_numpy(read_audio(f"{REAL}/cards_005.wav").samples)
    return source, target


SOURCE_TEXT = "He was not an ill disposed young man."


def test_voice_conversion_keeps_source_timing(tts, clips):
    source, target = clips
    n_frames = tts.codec.num_frames(len(source))
    durs = source_durations(tts, SOURCE_TEXT, source)
    assert int(durs.sum()) == n_frames and len(durs) == len(tts.frontend.encode(SOURCE_TEXT))
    out = convert_voice(tts, source, SOURCE_TEXT, target, seed=1)
    assert torch.equal(out.durations[0], durs)
    assert out.latents[0].shape == (tts.codec.latent_dim, n_frames)
    assert out.plan.schedule == "explicit" and out.plan.sigmas == (2.0, 0.0) and out.plan.nfe == 1
    assert len(out.waveforms[0]) == tts.codec.num_samples(n_frames)


def test_voice_conversion_starts_from_the_source(tts, clips):
    """At a tiny sigma the output latent stays next to the source latent; at sigma 80 it does not."""
    source, target = clips
    z = tts.codec.normalize(tts.codec.encode(source[None]))[0]
    near = convert_voice(tts, source, SOURCE_TEXT, target, sigmas=[0.01], seed=1).latents[0]
    far = convert_voice(tts, source, SOURCE_TEXT, target, sigmas=[80.0], seed=1).latents[0]
    assert (near - z).abs().mean() < 0.05
    assert (far - z).abs().mean() > 10 * (near - z).abs().mean()


def test_voice_conversion_rejects_mismatched_durations(tts, clips):
    source, target = clips
    n = len(tts.frontend.encode(SOURCE_TEXT))
    with pytest.raises(ValueError, match="durations sum to"):
        convert_voice(tts, source, SOURCE_TEXT, target, durations=torch.ones(n, dtype=torch.long))


def test_edit_speech_replaces_only_the_span(tts, clips):
    source, _ = clips
    sr = tts.sample_rate
    out = edit_speech(tts, source, (1.0, 1.8), "very kind", seed=2, crossfade_ms=10)
    fade = round(0.010 * sr)
    start, end = out.span_samples
    assert (start, end) == (16000, 28800)
    assert len(out.waveform) == len(source) - (end - start) + len(out.generated) - 2 * fade
    assert torch.equal(out.waveform[: start - fade], source[: start - fade])  # untouched before the span
    tail = len(source) - end - fade
    assert torch.equal(out.waveform[-tail:], source[-tail:])  # untouched after it
    with pytest.raises(ValueError, match="not inside the audio"):
        edit_speech(tts, source, (2.0, 99.0), "x")
