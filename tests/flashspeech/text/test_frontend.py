"""The text frontend and the versioned phoneme vocabulary."""

from __future__ import annotations

import json

import pytest

from bench.testsets.corpus import load_sentences
from flashspeech.text.espeak import PAUSE, Espeak, VoiceSettings
from flashspeech.text.phonemes import BOS, EOS, SPECIALS, Frontend, FrontendError, PhonemeVocab, build_inventory

# Pinned: changing the vocabulary silently would break every checkpoint trained on it.
VOCAB_V1_FINGERPRINT = "e19848391206"


@pytest.fixture(scope="module")
def frontend() -> Frontend:
    return Frontend()


def test_vocab_is_stable_and_versioned():
    vocab = PhonemeVocab.load()
    assert vocab.version == 1
    assert vocab.fingerprint.startswith(VOCAB_V1_FINGERPRINT)
    assert vocab.symbols[: len(SPECIALS)] == SPECIALS
    assert vocab.pad_id == 0 and vocab.id("<pad>") == 0
    assert vocab.espeak_version == Espeak.get().version


def test_vocab_json_round_trip_and_tamper_check(tmp_path):
    vocab = PhonemeVocab.load()
    path = tmp_path / "v.json"
    path.write_text(json.dumps(vocab.to_json(), ensure_ascii=False), encoding="utf-8")
    assert PhonemeVocab.load(path) == vocab
    data = vocab.to_json()
    data["symbols"] = [*data["symbols"][:-2], data["symbols"][-1], data["symbols"][-2]]  # swap two ids
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ValueError, match="fingerprint"):
        PhonemeVocab.load(path)


def test_phonemize_known_words(frontend):
    assert frontend.phonemize("cat") == ["k", "ˈæ", "t", PAUSE]
    phonemes = frontend.phonemize("The quick brown fox.")
    assert phonemes[:2] == ["ð", "ə"]
    assert "ˈaʊ" in phonemes and "ˈɑː" in phonemes


def test_numbers_and_abbreviations_are_spoken(frontend):
    # "Dr." and "25" expand to words: many more phonemes than characters would suggest
    phonemes = frontend.phonemize("Dr. Lee paid 25.")
    assert phonemes[:4] == ["d", "ˈɑː", "k", "t"]
    assert phonemes[-10:-1] == ["t", "w", "ˈɛ", "n", "t", "i", "f", "ˈaɪ", "v"]


def test_encode_wraps_in_bos_eos(frontend):
    ids = frontend.encode("Hello there.")
    vocab = frontend.vocab
    assert ids[0] == vocab.id(BOS) and ids[-1] == vocab.id(EOS)
    assert vocab.decode(ids[1:-1]) == frontend.phonemize("Hello there.")


@pytest.mark.parametrize("text", ["", "   ", "...", "?!", "\n"])
def test_text_without_phonemes_is_a_clear_error(frontend, text):
    with pytest.raises(FrontendError, match=r"no phonemes|nothing to phonemize"):
        frontend.encode(text)


def test_unknown_symbol_policy():
    vocab = PhonemeVocab.load()
    with pytest.raises(FrontendError, match="not in vocabulary"):
        vocab.encode(["k", "☃"])
    assert vocab.encode(["k", "☃"], unknown="unk") == [vocab.id("k"), vocab.id("<unk>")]


def test_every_sentence_of_the_corpus_encodes(frontend):
    for sentence in load_sentences():
        ids = frontend.encode(sentence.text)  # raises on any symbol outside the vocabulary
        assert len(ids) > 4, sentence


def test_phoneme_sequence_does_not_depend_on_voice_or_rate():
    engine = Espeak.get()
    text = "By 7:30, Mrs. Ortiz had counted 1,250 jars of honey!"
    reference = engine.synthesize(text, VoiceSettings()).phonemes
    for name in ("en-us+f3", "en-us+klatt4", "en-us+Annie", "en-us+m7"):
        for rate in (140, 200):
            got = engine.synthesize(text, VoiceSettings(name=name, rate=rate, pitch=70)).phonemes
            assert got == reference, (name, rate)


def test_build_inventory_adds_stress_variants():
    inventory = build_inventory([["k", "ˈæ", "t"], ["ɪ", PAUSE]])
    assert inventory == sorted(["k", "t", "ɪ", "æ", "ˈæ", "ˌæ"])
    vocab = PhonemeVocab.load()
    assert all(s in vocab for s in ("ˈæ", "ˌæ", "æ", "ˈoʊ", "ˌoʊ", "oʊ"))
