"""The synthetic multi-speaker corpus: espeak-ng voices reading a fixed sentence list.

Every utterance carries per-phoneme durations (in 80 Hz frames) taken from the synthesizer's own phoneme
events, so training needs no aligner. The corpus is deterministic (per-utterance seeds, isolated
synthesis), cached on disk under a fingerprint of everything that shapes it, built voice by voice
(an interrupted build resumes), and split into training voices and held-out voices that training
never sees (zero-shot evaluation). The record format and its save/read helpers are `bench.testsets.corpus`.

Layout of a built corpus::

    <cache>/synth/<fingerprint>/
        corpus.json               # config, espeak-ng version, vocabulary, counts
        <voice>/<voice>-<sentence>.flac
        <voice>/utterances.jsonl  # written last: a voice is complete when this exists
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.testsets.corpus import (
    HELDOUT,
    TEST_SENTENCE_EVERY,
    TRAIN,
    Corpus,
    CorpusUtterance,
    Sentence,
    default_cache_dir,
    frame_durations,
    load_sentences,
    read_voice,
    save_utterance,
    utterance_seed,
    write_voice,
)
from flashspeech.foundation import hashing
from flashspeech.foundation.audio import resample
from flashspeech.foundation.files import write_text_atomic
from flashspeech.text.espeak import Espeak, IsolatedSynthesizer, VoiceSettings
from flashspeech.text.phonemes import BOS, EOS, PhonemeVocab

CORPUS_FORMAT = 1


@dataclass(frozen=True)
class SynthVoice:
    """A corpus speaker: an espeak-ng en-us voice variant with its own base prosody."""

    name: str
    variant: str
    rate: int  # words per minute
    pitch: int  # 0-99
    pitch_range: int  # 0-99

    @property
    def espeak_name(self) -> str:
        return f"en-us+{self.variant}"


# 17 variants that a speaker encoder (resemblyzer) separates (pairwise centroid cosine < 0.90 in the
# offline-assets survey), each with its own rate and pitch to spread them further.
VOICES: tuple[SynthVoice, ...] = (
    SynthVoice("m1", "m1", 165, 40, 45),
    SynthVoice("m2", "m2", 180, 35, 55),
    SynthVoice("m7", "m7", 160, 45, 40),
    SynthVoice("m8", "m8", 175, 38, 60),
    SynthVoice("f1", "f1", 170, 60, 55),
    SynthVoice("f3", "f3", 185, 65, 50),
    SynthVoice("f5", "f5", 150, 72, 70),
    SynthVoice("klatt", "klatt", 175, 45, 50),
    SynthVoice("klatt4", "klatt4", 165, 55, 45),
    SynthVoice("alex", "Alex", 180, 42, 50),
    SynthVoice("annie", "Annie", 170, 62, 55),
    SynthVoice("andy", "Andy", 175, 40, 60),
    SynthVoice("belinda", "belinda", 165, 60, 45),
    SynthVoice("grandma", "grandma", 150, 55, 50),
    SynthVoice("michael", "Michael", 170, 35, 50),
    SynthVoice("steph", "steph", 185, 60, 60),
    SynthVoice("travis", "travis", 175, 45, 55),
)
# Held out from training: two female, two male, one klatt-family voice.
HELDOUT_VOICES: tuple[str, ...] = ("f5", "m8", "klatt4", "annie", "travis")


@dataclass(frozen=True)
class CorpusConfig:
    """Everything that shapes the corpus; its fingerprint names the cache directory."""

    voices: tuple[SynthVoice, ...] = VOICES
    heldout: tuple[str, ...] = HELDOUT_VOICES
    sample_rate: int = 16_000
    hop: int = 200  # 80 frames/s, FlashSpeech's frame rate
    seed: int = 0
    rate_jitter: float = 0.08  # per-utterance relative spread of speaking rate
    pitch_jitter: int = 6  # per-utterance spread of base pitch (espeak units)
    range_jitter: int = 10  # per-utterance spread of pitch range
    test_sentence_every: int = TEST_SENTENCE_EVERY  # every n-th sentence is a test sentence (never trained on)
    max_sentences: int | None = None  # first n sentences only (tests)
    sentences_path: str | None = None  # None: the committed list

    def __post_init__(self) -> None:
        names = [v.name for v in self.voices]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate voice names in {names}")
        unknown = set(self.heldout) - set(names)
        if unknown:
            raise ValueError(f"held-out voices {sorted(unknown)} are not among the corpus voices {names}")

    def sentences(self) -> list[Sentence]:
        sentences = load_sentences(self.sentences_path)
        return sentences[: self.max_sentences] if self.max_sentences else sentences

    @property
    def voice_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.voices)

    def split_of(self, voice: str) -> str:
        return HELDOUT if voice in self.heldout else TRAIN

    def is_test_sentence(self, sentence: Sentence) -> bool:
        return int(sentence.id[1:]) % self.test_sentence_every == 0

    def fingerprint(self) -> str:
        payload = {
            "format": CORPUS_FORMAT,
            "config": asdict(self),
            "sentences": [asdict(s) for s in self.sentences()],
            "espeak": Espeak.get().version,
            "vocab": PhonemeVocab.load().fingerprint,
        }
        return hashing.fingerprint(payload, 16)


def corpus_root(config: CorpusConfig, cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "synth" / config.fingerprint()


def _jittered(voice: SynthVoice, config: CorpusConfig, seed: int) -> VoiceSettings:
    rng = np.random.default_rng(seed)
    rate = round(voice.rate * (1.0 + rng.uniform(-config.rate_jitter, config.rate_jitter)))
    pitch = int(np.clip(voice.pitch + rng.integers(-config.pitch_jitter, config.pitch_jitter + 1), 0, 99))
    prange = int(np.clip(voice.pitch_range + rng.integers(-config.range_jitter, config.range_jitter + 1), 0, 99))
    return VoiceSettings(name=voice.espeak_name, rate=rate, pitch=pitch, pitch_range=prange)


def _synthesize_voice(
    voice: SynthVoice, config: CorpusConfig, root: Path, synth: IsolatedSynthesizer, vocab: PhonemeVocab, bar
) -> list[CorpusUtterance]:
    out_dir = root / voice.name
    out_dir.mkdir(parents=True, exist_ok=True)
    utterances = []
    for sentence in config.sentences():
        seed = utterance_seed(config.seed, voice.name, sentence.id)
        settings = _jittered(voice, config, seed)
        result = synth.synthesize(sentence.text, settings, seed=seed)
        audio = resample(result.samples, result.sample_rate, config.sample_rate)
        audio = np.clip(audio, -1.0, 1.0)
        phonemes = (BOS, *result.phonemes, EOS)
        vocab.encode(phonemes)  # a symbol outside the vocabulary is a corpus bug: fail loudly here
        durations = frame_durations(result.starts, len(audio), result.sample_rate, config.sample_rate, config.hop)
        utterances.append(
            save_utterance(
                root,
                config,
                voice.name,
                sentence,
                seed,
                audio,
                phonemes,
                durations,
                rate=settings.rate,
                pitch=settings.pitch,
                pitch_range=settings.pitch_range,
            )
        )
        if bar is not None:
            bar.update(1)
    write_voice(root, voice.name, utterances)
    return utterances


def build_corpus(
    config: CorpusConfig | None = None,
    cache_dir: str | Path | None = None,
    *,
    voices: Iterable[str] | None = None,
    force: bool = False,
    progress: bool = True,
    workers: int | None = None,
) -> Corpus:
    """Build (or reuse) the corpus for `voices` (default: all). Completed voices are never redone.

    Voices are synthesized in parallel by `workers` synthesizer processes (default: up to 2 per the
    CPU count); the result does not depend on the number of workers.
    """
    config = config or CorpusConfig()
    root = corpus_root(config, cache_dir)
    if force and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    wanted = [v.name for v in config.voices] if voices is None else list(voices)
    by_name = {v.name: v for v in config.voices}
    missing_names = [n for n in wanted if n not in by_name]
    if missing_names:
        raise ValueError(f"unknown voices {missing_names}; the corpus has {sorted(by_name)}")

    done = {name: read_voice(root, name) for name in wanted}
    todo = [name for name, utts in done.items() if utts is None]
    if todo:
        from tqdm.auto import tqdm

        vocab = PhonemeVocab.load()
        total = len(todo) * len(config.sentences())
        n_workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(todo)))
        queue = list(todo)
        lock = threading.Lock()

        def work() -> None:
            with IsolatedSynthesizer() as synth:
                while True:
                    with lock:
                        if not queue:
                            return
                        name = queue.pop(0)
                    done[name] = _synthesize_voice(by_name[name], config, root, synth, vocab, bar)

        with (
            tqdm(total=total, desc="synthesizing corpus", unit="utt", disable=not progress) as bar,
            ThreadPoolExecutor(n_workers) as pool,
        ):
            for future in [pool.submit(work) for _ in range(n_workers)]:
                future.result()
    _write_corpus_info(root, config)
    utterances = [u for name in wanted for u in done[name] or []]
    return Corpus(root=root, config=config, utterances=utterances)


def load_corpus(config: CorpusConfig | None = None, cache_dir: str | Path | None = None) -> Corpus:
    """The voices of the corpus that are already built (no synthesis)."""
    config = config or CorpusConfig()
    root = corpus_root(config, cache_dir)
    utterances = []
    for voice in config.voices:
        utterances.extend(read_voice(root, voice.name) or [])
    return Corpus(root=root, config=config, utterances=utterances)


def _write_corpus_info(root: Path, config: CorpusConfig) -> None:
    built = {v.name: (root / v.name / "utterances.jsonl").is_file() for v in config.voices}
    info = {
        "format": CORPUS_FORMAT,
        "fingerprint": root.name,
        "espeak_ng": Espeak.get().version,
        "vocab": PhonemeVocab.load().fingerprint,
        "config": asdict(config),
        "voices_built": built,
    }
    write_text_atomic(root / "corpus.json", json.dumps(info, indent=1, ensure_ascii=False) + "\n")
