"""End-to-end synthesis with the tiny preset and random weights on CPU."""

from __future__ import annotations

import pytest
import torch

from bench.testsets.embedded import EMBEDDED
from bench.testsets.manifest import load_manifest
from flashspeech.codecs import MelCodec
from flashspeech.config import tiny
from flashspeech.foundation.audio import read_audio
from flashspeech.synthesis import FlashSpeech, fit_durations, item_seeds
from flashspeech.text.phonemes import BOS, EOS
from flashspeech.timing import STAGES, StageTimer


@pytest.fixture(scope="module")
def tts() -> FlashSpeech:
    codec = MelCodec()
    tts = FlashSpeech.from_config(tiny(latent_dim=codec.latent_dim), codec, seed=0)
    # The output projections start at zero (as in the official WaveNet); give them weights so that the
    # consistency models' networks really shape the output in these tests.
    torch.manual_seed(1)
    for net in (tts.model.lcm, tts.model.duration_refiner, tts.model.pitch_refiner):
        torch.nn.init.normal_(net.out_proj.weight, std=0.05)
    return tts


@pytest.fixture(scope="module")
def real_items():
    manifest = load_manifest(EMBEDDED["real"].manifest_path(None))
    items = manifest.items[:3]
    prompts = [read_audio(i.prompt_audio, 16_000).samples for i in items]
    return [i.text for i in items], prompts


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Relative error of STFT magnitudes. Griffin-Lim's phase is chaotic: a 1e-6 change of a real speech
    latent moves ~1 % of the waveform's energy (measured) while the magnitudes stay put, so compare those."""
    assert a.shape == b.shape

    def mag(x: torch.Tensor) -> torch.Tensor:
        return torch.stft(x, 1024, 200, window=torch.hann_window(1024), return_complex=True).abs()

    return float((mag(a) - mag(b)).norm() / mag(b).norm())


def test_synthesize_end_to_end_lengths_follow_durations(tts, real_items):
    texts, prompts = real_items
    out = tts.synthesize(texts, prompts, steps=2, seed=0)
    assert out.sample_rate == 16_000 and len(out.waveforms) == 3
    assert out.plan.schedule == "paper-two-step" and out.plan.sigmas == (80.0, 2.0, 0.0)
    for wav, durs, phonemes, f0, text in zip(out.waveforms, out.durations, out.phonemes, out.f0, texts, strict=True):
        assert phonemes[0] == BOS and phonemes[-1] == EOS and len(durs) == len(phonemes)
        assert phonemes[1:-1] == tts.frontend.phonemize(text)
        frames = int(durs.sum())
        assert frames >= 1 and len(f0) == frames
        assert len(wav) == tts.codec.num_samples(frames)
        assert wav.dtype == torch.float32 and torch.isfinite(wav).all()
    assert set(out.timings) == set(STAGES) and all(t > 0 for t in out.timings.values())


def test_same_seed_same_audio_different_seed_differs(tts, real_items):
    texts, prompts = real_items
    a = tts.synthesize(texts[:1], prompts[:1], seed=11)
    b = tts.synthesize(texts[:1], prompts[:1], seed=11)
    c = tts.synthesize(texts[:1], prompts[:1], seed=12)
    assert torch.equal(a.waveforms[0], b.waveforms[0])
    assert not (a.waveforms[0].shape == c.waveforms[0].shape and torch.equal(a.waveforms[0], c.waveforms[0]))


def test_batch_equals_items_alone(tts, real_items):
    texts, prompts = real_items
    batch = tts.synthesize(texts, prompts, steps=4, seed=[5, 6, 7])
    for i in range(3):
        alone = tts.synthesize([texts[i]], [prompts[i]], steps=4, seed=[5 + i])
        assert torch.equal(batch.durations[i], alone.durations[0])
        torch.testing.assert_close(batch.f0[i], alone.f0[0], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(batch.latents[i], alone.latents[0], atol=1e-4, rtol=1e-4)
        assert _relative_error(batch.waveforms[i], alone.waveforms[0]) < 3e-2


def test_padding_another_item_does_not_change_this_one(tts, real_items):
    texts, prompts = real_items
    short = tts.synthesize([texts[0], "Hi."], [prompts[0], prompts[1][:8000]], seed=[1, 2])
    long = tts.synthesize([texts[0], texts[2] + " " + texts[2]], [prompts[0], prompts[2]], seed=[1, 2])
    assert torch.equal(short.durations[0], long.durations[0])
    torch.testing.assert_close(short.latents[0], long.latents[0], atol=1e-4, rtol=1e-4)
    assert _relative_error(short.waveforms[0], long.waveforms[0]) < 3e-2


def test_schedules_alpha_and_forced_length(tts, real_items):
    texts, prompts = real_items
    one = tts.synthesize(texts[:1], prompts[:1], steps=1)
    assert one.plan.sigmas == (80.0, 0.0) and one.plan.nfe == 1
    four = tts.synthesize(texts[:1], prompts[:1], steps=4)
    assert four.plan.schedule == "karras" and four.plan.steps == 4 and len(four.plan.sigmas) == 5
    explicit = tts.synthesize(texts[:1], prompts[:1], sigmas=[80.0, 5.0, 0.5])
    assert explicit.plan.schedule == "explicit" and explicit.plan.sigmas == (80.0, 5.0, 0.5, 0.0)
    no_refine = tts.synthesize(texts[:1], prompts[:1], alpha=0.0)
    refined = tts.synthesize(texts[:1], prompts[:1], alpha=1.0)
    assert not torch.equal(no_refine.f0[0][:10], refined.f0[0][:10]) or not torch.equal(
        no_refine.durations[0], refined.durations[0]
    )
    forced = tts.synthesize(texts[:2], prompts[:2], total_frames=[160, 240])
    assert [int(d.sum()) for d in forced.durations] == [160, 240]
    assert [len(w) for w in forced.waveforms] == [tts.codec.num_samples(160), tts.codec.num_samples(240)]


def test_a_plan_gives_the_same_audio_as_its_steps(tts, real_items):
    texts, prompts = real_items
    plan = tts.plan(steps=4)
    assert plan == tts.plan(4, "consistency") and (plan.family, plan.sampler, plan.nfe) == ("consistency",) * 2 + (4,)
    assert tts.plan().schedule == "paper-two-step"  # the default, as for synthesize
    planned = tts.synthesize(texts[:1], prompts[:1], plan=plan, seed=9)
    stepped = tts.synthesize(texts[:1], prompts[:1], steps=4, seed=9)
    assert planned.plan == stepped.plan == plan and torch.equal(planned.waveforms[0], stepped.waveforms[0])
    with pytest.raises(ValueError, match="either a plan or steps / sampler / sigmas"):
        tts.synthesize(texts[:1], prompts[:1], plan=plan, sigmas=[80.0])


def test_timer_accumulates_without_changing_results(tts, real_items):
    texts, prompts = real_items
    timer = StageTimer(sync=True)
    a = tts.synthesize(texts[:1], prompts[:1], seed=3, timer=timer)
    b = tts.synthesize(texts[:1], prompts[:1], seed=3, timer=timer)
    assert torch.equal(a.waveforms[0], b.waveforms[0])
    assert all(len(timer.records[s]) == 2 for s in STAGES)


def test_bad_inputs_are_clear_errors(tts, real_items):
    texts, prompts = real_items
    with pytest.raises(ValueError, match="2 texts but 1 prompts"):
        tts.synthesize(texts[:2], prompts[:1])
    with pytest.raises(ValueError, match="prompt 0: expected a non-empty 1-D waveform"):
        tts.synthesize(texts[:1], [torch.zeros(2, 100)])
    with pytest.raises(ValueError, match="no phonemes"):
        tts.synthesize(["..."], prompts[:1])
    with pytest.raises(ValueError, match="got 1 seeds for 2 items"):
        item_seeds([1], 2)


def test_fit_durations_hits_the_target_exactly():
    d = torch.tensor([0, 3, 5, 2])
    for target in (1, 7, 10, 33):
        out = fit_durations(d, target)
        assert int(out.sum()) == target and out[0] == 0 and (out >= 0).all()
    assert fit_durations(d, 10).tolist() == [0, 3, 5, 2]  # already right: unchanged
    assert fit_durations(d, 20).tolist() == [0, 6, 10, 4]
    assert fit_durations(torch.zeros(3, dtype=torch.long), 4).tolist() == [2, 1, 1]


@pytest.mark.gpu
def test_cuda_matches_cpu(tts, real_items):
    """Noise is drawn on the CPU, so the same seed gives the same durations and near-identical latents."""
    texts, prompts = real_items
    cpu = tts.synthesize(texts[:2], prompts[:2], seed=4)
    gpu_tts = FlashSpeech(tts.model, tts.codec, tts.vocab).to("cuda")
    try:
        gpu = gpu_tts.synthesize(texts[:2], prompts[:2], seed=4)
    finally:
        tts.to("cpu")
    for i in range(2):
        assert torch.equal(cpu.durations[i], gpu.durations[i])
        torch.testing.assert_close(cpu.latents[i], gpu.latents[i], atol=1e-3, rtol=1e-3)
