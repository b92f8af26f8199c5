"""Training data sources: anything that yields `TrainingUtterance`s (audio + aligned phonemes).

A source only lists utterances; `bench.training.featurize` turns them into cached codec latents and F0.
Sources: the espeak-ng corpus (durations from the synthesizer's own phoneme events), the natural-voice
corpus (flite segments or DTW, see `bench.testsets.align`) and LibriTTS-style directories with TextGrid
alignments (`bench.training.libritts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TrainingUtterance:
    """One training utterance: its audio file and its phonemes with frame durations at the codec's hop.

    phonemes: vocabulary symbols, `<s>` ... `</s>` included; durations: frames per phoneme (same length),
    summing to about round(n_samples / hop) (the feature cache fits them to the codec's exact frame count).
    """

    id: str
    speaker: str
    audio: Path
    text: str
    phonemes: tuple[str, ...]
    durations: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.phonemes) != len(self.durations):
            raise ValueError(f"{self.id}: {len(self.phonemes)} phonemes but {len(self.durations)} durations")
        if any(d < 0 for d in self.durations):
            raise ValueError(f"{self.id}: negative phoneme duration in {self.durations}")


def _check_sentences(sentences: str) -> None:
    if sentences not in ("train", "test", "all"):
        raise ValueError(f"sentences must be 'train', 'test' or 'all', got {sentences!r}")


def _from_corpus(corpus, sentences: str) -> list[TrainingUtterance]:  # type: ignore[no-untyped-def]
    return [
        TrainingUtterance(
            id=u.id,
            speaker=u.voice,
            audio=corpus.audio_path(u),
            text=u.text,
            phonemes=u.phonemes,
            durations=u.durations,
        )
        for u in corpus.utterances
        if sentences == "all" or u.test_sentence == (sentences == "test")
    ]


def natural_utterances(
    split: str = "train", *, sentences: str = "train", cache_dir: str | Path | None = None
) -> list[TrainingUtterance]:
    """The natural-voice corpus's utterances of one voice split (built on demand: needs flite and the
    [voices] extra); `sentences` as for `synthetic_utterances`."""
    from bench.testsets.natural import NaturalConfig, build_natural_corpus

    _check_sentences(sentences)
    config = NaturalConfig()
    voices = [v for v in config.voice_names if config.split_of(v) == split]
    return _from_corpus(build_natural_corpus(config, cache_dir, voices=voices, progress=True), sentences)


def synthetic_utterances(
    split: str = "train", *, sentences: str = "train", cache_dir: str | Path | None = None
) -> list[TrainingUtterance]:
    """The synthetic corpus's utterances of one voice split (built on demand). `sentences`: "train" (the
    test sentences left out: what training sees), "test" (only the test sentences) or "all"."""
    from bench.testsets.espeak_corpus import CorpusConfig, build_corpus

    _check_sentences(sentences)
    config = CorpusConfig()
    voices = [v.name for v in config.voices if config.split_of(v.name) == split]
    return _from_corpus(build_corpus(config, cache_dir, voices=voices, progress=True), sentences)


CORPUS_SOURCES = ("synthetic", "natural")


def corpus_utterances(source: str, sentences: str, cache_dir: str | Path | None = None) -> list[TrainingUtterance]:
    """The training voices' utterances of a corpus source ("synthetic" or "natural")."""
    load = {"synthetic": synthetic_utterances, "natural": natural_utterances}[source]
    return load("train", sentences=sentences, cache_dir=cache_dir)
