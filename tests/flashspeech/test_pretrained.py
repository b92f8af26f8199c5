"""The shipped checkpoints load strictly and are trained: held-out voices, compared with random weights.

Items: the held-out voices f5 and klatt4 of the small test corpus (their audio is byte-identical to the
full corpus's), prompted with one sentence and asked to say a test sentence (s0010, s0020, s0030: never
trained on by any voice). Both checkpoints predict each utterance's length within 25 % of the ground
truth's (random weights: off by 38 %). Both are understood and clone the prompt's voice; measured
(2026-12-02, the anchored retraining) with Whisper tiny.en, corpus WER against 1.0 for random weights (which
Whisper hears as silence), and resemblyzer SIM-o: FlashSpeech at 2 steps 0.35 and 0.69, the diffusion
baseline at 16 Heun steps stopped at sigma 0.3 (the model card's setting) 0.55 and 0.69; every sample is
nearer its own prompt's voice than the other held-out voice's. The bounds sit well inside those numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flashspeech.checkpoint import read_description
from flashspeech.codecs.mel import MelCodec
from flashspeech.config import preset
from flashspeech.foundation.audio import read_audio
from flashspeech.synthesis import FlashSpeech

HELDOUT = ("f5", "klatt4")
TEST_SENTENCES = ("s0010", "s0020", "s0030")


@pytest.fixture(scope="module")
def heldout_items(small_corpus):
    items = []
    for voice in HELDOUT:
        utts = {u.sentence_id: u for u in small_corpus.by_voice(voice)}
        prompt = read_audio(small_corpus.audio_path(utts["s0001"]), 16_000).samples[: 3 * 16_000]
        for sid in TEST_SENTENCES:
            items.append((utts[sid].text, prompt, utts[sid].n_frames))
    return items


def _length_error(out, items) -> float:
    """Mean relative error of the predicted number of frames against the ground-truth utterance's."""
    return float(np.mean([abs(int(d.sum()) - n) / n for d, (_, _, n) in zip(out.durations, items, strict=True)]))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "random_preset", "kwargs"),
    [
        ("flashspeech-tiny", "tiny", {"steps": 2}),
        ("diffusion-tiny", "tiny-diffusion", {"steps": 16, "sampler": "heun", "alpha": 0.0}),
    ],
)
def test_shipped_checkpoint_is_trained(name, random_preset, kwargs, heldout_items):
    description = read_description(f"pretrained:{name}")
    assert description["metadata"]["training"], "a shipped checkpoint records how it was trained"
    trained = FlashSpeech.from_pretrained(f"pretrained:{name}")  # strict, sha256-checked
    random = FlashSpeech.from_config(preset(random_preset), MelCodec(), seed=0)
    texts, prompts = [t for t, _, _ in heldout_items], [p for _, p, _ in heldout_items]
    lengths = {}
    for label, tts in (("trained", trained), ("random", random)):
        out = tts.synthesize(texts, prompts, seed=0, **kwargs)
        assert all(torch.isfinite(w).all() for w in out.waveforms), label
        lengths[label] = _length_error(out, heldout_items)
    assert lengths["trained"] < 0.25 < lengths["random"], lengths


def _corpus_wer(out, items, asr) -> float:
    """Corpus WER of the outputs (Whisper tiny.en, whisper normaliser)."""
    from suites.wer.normalize import whisper_normalize
    from suites.wer.scoring import count_words

    errors = words = 0
    for (text, _, _), hyp in zip(items, asr.transcribe([w.numpy() for w in out.waveforms]), strict=True):
        counts = count_words(whisper_normalize(text), whisper_normalize(hyp))
        errors, words = errors + counts.errors, words + counts.ref_words
    return errors / words


# (checkpoint, random preset, (steps, sampler, sigma_min), other options, WER bound, SIM-o bound); the
# diffusion baseline as the model card samples it: Heun, the ODE stopped at sigma 0.3, no prosody refinement
UNDERSTOOD = [
    ("flashspeech-tiny", "tiny", (2, None, None), {}, 0.6, 0.6),
    ("diffusion-tiny", "tiny-diffusion", (16, "heun", 0.3), {"alpha": 0.0}, 0.8, 0.6),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "random_preset", "sampling", "options", "max_wer", "min_sim"), UNDERSTOOD)
def test_shipped_checkpoint_is_understood_and_sounds_like_the_prompt(
    name, random_preset, sampling, options, max_wer, min_sim, heldout_items
):
    pytest.importorskip("resemblyzer")
    from suites.similarity.backends import ResemblyzerBackend
    from suites.wer.whisper_backend import WhisperBackend

    asr = WhisperBackend()
    asr.load()
    texts, prompts = [t for t, _, _ in heldout_items], [p for _, p, _ in heldout_items]
    steps, sampler, sigma_min = sampling
    out = {}
    for label, tts in (
        ("trained", FlashSpeech.from_pretrained(f"pretrained:{name}")),
        ("random", FlashSpeech.from_config(preset(random_preset), MelCodec(), seed=0)),
    ):
        plan = tts.plan(steps, sampler, sigma_min=sigma_min)
        out[label] = tts.synthesize(texts, prompts, seed=0, plan=plan, **options)
    trained = out["trained"]
    wer = {label: _corpus_wer(o, heldout_items, asr) for label, o in out.items()}

    encoder = ResemblyzerBackend("cpu")
    generated = encoder.embed([w.numpy() for w in trained.waveforms])
    voices = encoder.embed([prompts[0], prompts[len(TEST_SENTENCES)]])  # one prompt per held-out voice
    sims = generated @ voices.T  # (items, voices)
    own = torch.tensor([0] * len(TEST_SENTENCES) + [1] * len(TEST_SENTENCES))
    sim_o = sims[torch.arange(len(own)), own]
    assert wer["trained"] < max_wer < 0.95 < wer["random"], wer
    assert sim_o.mean() > min_sim, (float(sim_o.mean()), sims)
    assert bool((sims.argmax(1) == own).all()), sims  # each sample is nearer its own prompt's voice
