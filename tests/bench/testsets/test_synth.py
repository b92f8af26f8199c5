"""The synthetic corpus: alignments, determinism, caching, splits, and the espeak items built on it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from bench.testsets.corpus import HELDOUT, TRAIN, frame_durations, load_sentences, utterance_seed
from bench.testsets.embedded import espeak_items
from bench.testsets.espeak_corpus import VOICES, CorpusConfig, build_corpus, load_corpus
from flashspeech.foundation.audio import read_audio
from flashspeech.text.espeak import PAUSE
from flashspeech.text.phonemes import BOS, EOS, Frontend


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sentence_list_is_fixed():
    sentences = load_sentences()
    assert len(sentences) == 400
    assert sentences[0].id == "s0001" and sentences[-1].id == "s0400"
    assert len({s.text for s in sentences}) == 400


def test_voice_table_has_distinct_voices_and_a_heldout_split():
    config = CorpusConfig()
    assert len(config.voices) >= 16
    assert len({v.variant for v in config.voices}) == len(config.voices)
    heldout = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    assert len(heldout) == 5 and len(config.voices) - len(heldout) >= 11


def test_durations_sum_to_audio_length_within_one_frame(small_corpus):
    hop = small_corpus.config.hop
    assert len(small_corpus.utterances) == 4 * 30
    for utt in small_corpus.utterances:
        audio = read_audio(small_corpus.audio_path(utt), sample_rate=None)
        assert audio.sample_rate == 16_000
        assert len(audio.samples) == utt.n_samples
        assert abs(sum(utt.durations) - utt.n_samples / hop) <= 1.0, utt.id
        assert len(utt.durations) == len(utt.phonemes)
        assert utt.phonemes[0] == BOS and utt.phonemes[-1] == EOS
        assert min(utt.durations) >= 0


def test_alignment_follows_the_audio(small_corpus):
    """Frames labelled as pauses are much quieter than frames labelled as stressed vowels."""
    hop = small_corpus.config.hop
    pause_rms, vowel_rms = [], []
    for utt in small_corpus.utterances[:40]:
        samples = read_audio(small_corpus.audio_path(utt), sample_rate=None).samples
        frames = samples[: len(samples) // hop * hop].reshape(-1, hop)
        rms = np.sqrt((frames**2).mean(axis=1) + 1e-12)
        start = 0
        for phoneme, dur in zip(utt.phonemes, utt.durations, strict=True):
            seg = rms[start : start + dur]
            start += dur
            if len(seg) < 2:
                continue
            if phoneme in (PAUSE, BOS):
                pause_rms.append(np.median(seg))
            elif phoneme.startswith("ˈ"):
                vowel_rms.append(np.median(seg))
    assert len(pause_rms) > 20 and len(vowel_rms) > 100
    assert np.median(pause_rms) < 0.2 * np.median(vowel_rms)


def test_phonemes_match_the_text_frontend(small_corpus):
    frontend = Frontend()
    for utt in small_corpus.utterances[::7]:
        assert list(utt.phonemes[1:-1]) == frontend.phonemize(utt.text), utt.id


def test_splits_and_test_sentences(small_corpus, small_config):
    assert {u.voice for u in small_corpus.split(HELDOUT)} == {"f5", "klatt4"}
    assert {u.voice for u in small_corpus.split(TRAIN)} == {"m1", "f3"}
    tests = {u.sentence_id for u in small_corpus.utterances if u.test_sentence}
    assert tests == {f"s{i:04d}" for i in range(5, 31, 5)}


def test_utterances_differ_across_voices_and_seeds(small_corpus):
    by_id = {u.id: u for u in small_corpus.utterances}
    a, b = by_id["m1-s0001"], by_id["f3-s0001"]
    assert a.phonemes == b.phonemes
    assert _digest(small_corpus.audio_path(a)) != _digest(small_corpus.audio_path(b))
    assert utterance_seed(0, "m1", "s0001") != utterance_seed(1, "m1", "s0001")


def test_build_is_deterministic_and_independent_of_voice_subset(small_corpus, small_config, tmp_path):
    """A fresh build of one voice in another cache gives byte-identical audio and the same alignment."""
    again = build_corpus(small_config, tmp_path, voices=["f3"], progress=False)
    first = {u.id: u for u in small_corpus.utterances}
    assert len(again.utterances) == 30
    for utt in again.utterances:
        assert utt == first[utt.id]
        assert _digest(again.audio_path(utt)) == _digest(small_corpus.audio_path(first[utt.id]))


def test_another_seed_gives_other_audio(small_config, small_corpus, tmp_path):
    config = CorpusConfig(**{**small_config.__dict__, "seed": 1, "max_sentences": 3})
    other = build_corpus(config, tmp_path, voices=["m1"], progress=False)
    base = {u.id: u for u in small_corpus.utterances}
    assert other.root.name != small_corpus.root.name  # seed is part of the fingerprint
    differs = [_digest(other.audio_path(u)) != _digest(small_corpus.audio_path(base[u.id])) for u in other.utterances]
    assert all(differs)


def test_cache_is_reused_and_an_interrupted_build_resumes(small_config, tmp_path):
    config = CorpusConfig(**{**small_config.__dict__, "max_sentences": 2})
    corpus = build_corpus(config, tmp_path, progress=False)
    marker = corpus.root / "f3" / "utterances.jsonl"
    m1_audio = corpus.root / "m1" / "m1-s0001.flac"
    m1_mtime = m1_audio.stat().st_mtime_ns
    marker.unlink()  # as if the build had stopped inside voice f3
    partial = load_corpus(config, tmp_path)
    assert {u.voice for u in partial.utterances} == {"m1", "f5", "klatt4"}
    resumed = build_corpus(config, tmp_path, progress=False)
    assert marker.is_file() and len(resumed.utterances) == 8
    assert m1_audio.stat().st_mtime_ns == m1_mtime  # completed voices are not redone
    info = json.loads((corpus.root / "corpus.json").read_text())
    assert all(info["voices_built"].values())


def test_unknown_voice_is_an_error(small_config, tmp_path):
    with pytest.raises(ValueError, match="unknown voices"):
        build_corpus(small_config, tmp_path, voices=["nobody"], progress=False)
    with pytest.raises(ValueError, match="held-out voices"):
        CorpusConfig(voices=VOICES[:2], heldout=("travis",))


def test_frame_durations_edges():
    # phonemes start at samples 0, 1000, 5000 of the 22050 Hz source; 8000 samples at 16 kHz = 40 frames.
    # Starts in frames: 0, 3.63 -> 4, 18.14 -> 18. <s> gets the leading silence (none), </s> nothing.
    assert frame_durations([0, 1000, 5000], 8000, 22050, 16000, 200) == [0, 4, 14, 22, 0]
    assert frame_durations([441, 441], 8000, 22050, 16000, 200) == [2, 0, 38, 0]
    assert frame_durations([], 400, 16000, 16000, 200) == [2, 0]


def test_espeak_items_are_zero_shot_cross_sentence(small_corpus):
    items = espeak_items(small_corpus, items_per_voice=4)
    assert len(items) == 8
    by_path = {str(small_corpus.audio_path(u)): u for u in small_corpus.utterances}
    for item in items:
        target, prompt = by_path[item.target_audio], by_path[item.prompt_audio]
        assert target.split == HELDOUT and target.test_sentence
        assert prompt.voice == target.voice == item.speaker
        assert prompt.sentence_id != target.sentence_id and not prompt.test_sentence
        assert item.text == target.text and item.prompt_text == prompt.text
        assert 2.0 <= prompt.n_samples / 16000 <= 4.5
    assert espeak_items(small_corpus, items_per_voice=4) == items  # deterministic
