"""The natural-voice corpus: every engine renders, durations fit the audio, and a rebuild gives the same bytes."""

from __future__ import annotations

import shutil

import pytest

from bench.testsets.corpus import HELDOUT, TRAIN
from bench.testsets.natural import NATURAL_HELDOUT, NaturalConfig, build_natural_corpus, export_sets

needs_flite = pytest.mark.skipif(shutil.which("flite") is None, reason="needs Debian's `flite` program")
VOICES = ["flite-slt", "piper-joe", "hibari-heart"]  # one voice per engine


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    config = NaturalConfig(max_sentences=3)
    first = build_natural_corpus(config, tmp_path_factory.mktemp("a"), voices=VOICES, progress=False)
    second = build_natural_corpus(config, tmp_path_factory.mktemp("b"), voices=VOICES, progress=False)
    return first, second


@pytest.mark.slow
@needs_flite
def test_every_engine_renders_aligned_audio(built):
    corpus, _ = built
    assert [u.voice for u in corpus.utterances] == [v for v in VOICES for _ in range(3)]
    for utt in corpus.utterances:
        assert utt.phonemes[0] == "<s>" and utt.phonemes[-1] == "</s>"
        assert len(utt.phonemes) == len(utt.durations)
        assert abs(sum(utt.durations) - utt.n_samples / 200) <= 1
        assert utt.durations_method == ("segments" if utt.voice.startswith("flite") else "dtw")
        assert utt.split == (HELDOUT if utt.voice in NATURAL_HELDOUT else TRAIN)
        assert 1.0 < utt.n_samples / 16_000 < 15.0
        # no speech phoneme swallows the utterance: alignment went wrong if one does
        assert max(utt.durations[1:-1]) < 0.5 * sum(utt.durations)


@pytest.mark.slow
@needs_flite
def test_rebuild_writes_the_same_bytes(built):
    first, second = built
    assert first.root.name == second.root.name  # same fingerprint
    assert [u.to_json() for u in first.utterances] == [u.to_json() for u in second.utterances]
    for a, b in zip(first.utterances, second.utterances, strict=True):
        assert first.audio_path(a).read_bytes() == second.audio_path(b).read_bytes(), a.id


def test_export_needs_enough_prompt_candidates(tmp_path):
    class Empty:
        config = NaturalConfig()
        utterances = ()
        root = tmp_path

        def by_voice(self, voice):
            return []

    with pytest.raises(ValueError, match="is not built"):
        export_sets(Empty(), tmp_path)  # type: ignore[arg-type]
