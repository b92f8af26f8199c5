"""The corpus format shared by the corpus builders (espeak-ng in `bench.testsets.espeak_corpus`, natural voices in
`bench.testsets.natural`): sentences, utterance records with frame-level phoneme alignments, a built corpus, and
how a builder saves and reads them.

Every utterance carries per-phoneme durations (in frames of `hop` samples), so training needs no aligner. A built
corpus lies under a cache directory named by a fingerprint of everything that shapes it, one directory per voice::

    <cache>/<builder>/<fingerprint>/
        corpus.json               # the builder's config, tool versions, vocabulary, counts
        <voice>/<voice>-<sentence>.flac
        <voice>/utterances.jsonl  # written last: a voice is complete when this exists
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np

from flashspeech.foundation.files import atomic_path, write_text_atomic

TRAIN, HELDOUT = "train", "heldout"


TEST_SENTENCE_EVERY = 10  # every n-th committed sentence is a test sentence, never trained on (both corpora)


@dataclass(frozen=True)
class Sentence:
    id: str  # "s0001": 1-based line number among the non-comment lines
    text: str


def load_sentences(path: str | Path | None = None) -> list[Sentence]:
    """The committed sentence list (or another file in the same format: one per line, '#' comments)."""
    if path is None:
        text = resources.files("bench.testsets").joinpath("assets/sentences.txt").read_text(encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [Sentence(id=f"s{i:04d}", text=t) for i, t in enumerate(lines, start=1)]


@dataclass(frozen=True)
class CorpusUtterance:
    """One synthesized utterance with its frame-level phoneme alignment."""

    id: str
    voice: str
    split: str
    sentence_id: str
    text: str
    audio: str  # path relative to the corpus root
    n_samples: int
    phonemes: tuple[str, ...]  # <s> ... </s>
    durations: tuple[int, ...]  # frames per phoneme; sums to round(n_samples / hop)
    seed: int
    test_sentence: bool
    rate: int | None = None  # the espeak-ng prosody it was spoken with (None for other synthesizers)
    pitch: int | None = None
    pitch_range: int | None = None
    durations_method: str = "events"  # "events" (espeak-ng's own), "segments" or "dtw" (bench.testsets.align)

    @property
    def n_frames(self) -> int:
        return sum(self.durations)

    def to_json(self) -> dict:
        d = asdict(self)
        d["phonemes"] = list(self.phonemes)
        d["durations"] = list(self.durations)
        return d

    @classmethod
    def from_json(cls, d: dict) -> CorpusUtterance:
        return cls(**{**d, "phonemes": tuple(d["phonemes"]), "durations": tuple(d["durations"])})


class CorpusSpec(Protocol):
    """What every corpus config (espeak-ng here, natural voices in `bench.testsets.natural`) offers."""

    sample_rate: int
    hop: int
    seed: int

    @property
    def voice_names(self) -> tuple[str, ...]: ...

    def split_of(self, voice: str) -> str: ...

    def is_test_sentence(self, sentence: Sentence) -> bool: ...

    def sentences(self) -> list[Sentence]: ...


@dataclass
class Corpus:
    """A built corpus (possibly a subset of its voices)."""

    root: Path
    config: CorpusSpec
    utterances: list[CorpusUtterance] = field(default_factory=list)

    def audio_path(self, utt: CorpusUtterance) -> Path:
        return self.root / utt.audio

    def by_voice(self, voice: str) -> list[CorpusUtterance]:
        return [u for u in self.utterances if u.voice == voice]

    def split(self, split: str) -> list[CorpusUtterance]:
        return [u for u in self.utterances if u.split == split]

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate


def utterance_seed(seed: int, voice: str, sentence_id: str) -> int:
    """A stable 31-bit seed for one utterance (independent of build order and voice subset)."""
    digest = hashlib.sha256(f"{seed}:{voice}:{sentence_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def frame_durations(starts: Sequence[int], n_samples: int, source_rate: int, sample_rate: int, hop: int) -> list[int]:
    """Frame counts for <s>, each phoneme, </s>, from phoneme start samples at `source_rate`.

    <s> covers the leading silence, each phoneme lasts until the next one starts, the last phoneme
    until the end of the audio, and </s> gets zero frames. The sum is round(n_samples / hop).
    """
    total = round(n_samples / hop)
    bounds = [min(total, max(0, round(s * sample_rate / source_rate / hop))) for s in starts]
    bounds = list(np.maximum.accumulate(bounds)) if bounds else []
    edges = [0, *bounds, total]
    return [int(b - a) for a, b in itertools.pairwise(edges)] + [0]


def default_cache_dir() -> Path:
    """$FLASHSPEECH_BENCH_CACHE, else ~/.cache/flashspeech-bench."""
    env = os.environ.get("FLASHSPEECH_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "flashspeech-bench"


def save_utterance(
    root: Path,
    config: CorpusSpec,
    voice: str,
    sentence: Sentence,
    seed: int,
    audio: np.ndarray,
    phonemes: tuple[str, ...],
    durations: Sequence[int],
    **extra: object,
) -> CorpusUtterance:
    """Write one utterance's audio under `root` and describe it (`extra`: the optional fields)."""
    utt_id = f"{voice}-{sentence.id}"
    rel = f"{voice}/{utt_id}.flac"
    write_flac(root / rel, audio, config.sample_rate)
    return CorpusUtterance(
        id=utt_id,
        voice=voice,
        split=config.split_of(voice),
        sentence_id=sentence.id,
        text=sentence.text,
        audio=rel,
        n_samples=len(audio),
        phonemes=phonemes,
        durations=tuple(durations),
        seed=seed,
        test_sentence=config.is_test_sentence(sentence),
        **extra,  # type: ignore[arg-type]
    )


def write_voice(root: Path, voice: str, utterances: Sequence[CorpusUtterance]) -> None:
    """Write a voice's utterances.jsonl: written last, it marks the voice complete."""
    lines = "".join(json.dumps(u.to_json(), ensure_ascii=False) + "\n" for u in utterances)
    write_text_atomic(root / voice / "utterances.jsonl", lines)


def write_flac(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit FLAC atomically (the corpus's audio format)."""
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, final = atomic_path(path)
    try:
        sf.write(str(tmp), audio, sample_rate, subtype="PCM_16", format="FLAC")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def read_voice(root: Path, voice: str) -> list[CorpusUtterance] | None:
    path = root / voice / "utterances.jsonl"
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as fh:
        return [CorpusUtterance.from_json(json.loads(line)) for line in fh if line.strip()]
