"""Training data sources: anything that yields `TrainingUtterance`s (audio + aligned phonemes).

A source only lists utterances; `bench.training.featurize` turns them into cached codec latents and F0.
Sources: the synthetic corpus (durations from the synthesizer's own phoneme events) and LibriTTS-style
directories with TextGrid alignments (`bench.training.libritts`).
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


def synthetic_utterances(
    split: str = "train", *, sentences: str = "train", cache_dir: str | Path | None = None
) -> list[TrainingUtterance]:
    """The synthetic corpus's utterances of one voice split (built on demand). `sentences`: "train" (the
    test sentences left out: what training sees), "test" (only the test sentences) or "all"."""
    from bench.testsets.synth import CorpusConfig, build_corpus

    if sentences not in ("train", "test", "all"):
        raise ValueError(f"sentences must be 'train', 'test' or 'all', got {sentences!r}")

    config = CorpusConfig()
    voices = [v.name for v in config.voices if config.split_of(v.name) == split]
    corpus = build_corpus(config, cache_dir, voices=voices, progress=True)
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
