"""The embedded test sets that `nox -s bench` and the tests run on, with no downloads.

- ``smoke``: unseen natural voices (flite awb, hibari heart; never trained on) reading test sentences
  (never trained on), each prompted by another sentence of the same voice: zero-shot, cross-sentence.
- ``smoke-seen``: the natural corpus's training voices reading the test sentences (seen voices, unseen
  sentences). Both natural sets are committed (``assets/natural``, see `bench.testsets.natural`).
- ``gate`` / ``gate-seen``: the same two splits, larger (40 items each: every test sentence once), for the
  nightly config's regression gate; committed beside the smoke sets.
- ``espeak``: the espeak-ng corpus's held-out voices, the same way (synthesized on first use from the
  espeakng-loader wheel; what the bundled tiny models were trained on).
- ``real``: real human speech from Debian's pocketsphinx-testdata (committed under
  ``bench/testsets/assets/real``), prompted by another utterance of the same speaker.
- ``vc`` / ``vc-seen``: voice conversion (task ``vc``) between the committed natural voices, to the unseen and to the
  training voices (`bench.testsets.vc_sets`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bench.testsets.corpus import HELDOUT, Corpus
from bench.testsets.espeak_corpus import CorpusConfig, build_corpus, corpus_root
from bench.testsets.items import cross_sentence_items
from bench.testsets.manifest import Manifest, load_manifest, write_manifest
from bench.testsets.natural import NATURAL_SETS, natural_assets_dir
from bench.testsets.vc_sets import VC_SETS
from flashspeech.foundation.audio import audio_info
from suites.item import EvalItem

ESPEAK_VERSION = 3  # bump when espeak_items changes what it writes
ESPEAK_ITEMS_PER_VOICE = 8


@dataclass(frozen=True)
class EmbeddedSet:
    name: str
    description: str
    manifest_path: Callable[[Path | None], Path]
    build: Callable[[Path | None, bool], Path]


def _real_manifest_path(cache_dir: Path | None = None) -> Path:
    return Path(str(resources.files("bench.testsets").joinpath("assets/real/real.jsonl")))


def _build_real(cache_dir: Path | None = None, progress: bool = True) -> Path:
    return _real_manifest_path(cache_dir)


def espeak_items(corpus: Corpus, items_per_voice: int = ESPEAK_ITEMS_PER_VOICE, seed: int = 0) -> list[EvalItem]:
    """The `espeak` set: the espeak-ng corpus's held-out voices reading test sentences."""
    heldout = [v for v in corpus.config.voice_names if corpus.config.split_of(v) == HELDOUT]
    return cross_sentence_items(corpus, heldout, items_per_voice, prefix="espeak", seed=seed)


def _espeak_manifest_path(cache_dir: Path | None = None) -> Path:
    return corpus_root(CorpusConfig(), cache_dir) / "manifests" / f"espeak-v{ESPEAK_VERSION}.jsonl"


def _build_espeak(cache_dir: Path | None = None, progress: bool = True) -> Path:
    path = _espeak_manifest_path(cache_dir)
    if path.is_file():
        return path
    config = CorpusConfig()
    heldout = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    corpus = build_corpus(config, cache_dir, voices=heldout, progress=progress)
    return write_manifest(espeak_items(corpus), path)


def _committed(name: str, description: str) -> EmbeddedSet:
    """A set committed beside the natural clips (`<name>.jsonl` in the natural assets)."""

    def path(cache_dir: Path | None = None) -> Path:
        return natural_assets_dir() / f"{name}.jsonl"

    return EmbeddedSet(name, description, manifest_path=path, build=lambda cache, progress=True: path())


EMBEDDED: dict[str, EmbeddedSet] = {
    **{spec.name: _committed(spec.name, spec.description) for spec in NATURAL_SETS},
    **{spec.name: _committed(spec.name, spec.description) for spec in VC_SETS},
    "espeak": EmbeddedSet(
        name="espeak",
        description="held-out synthetic espeak-ng voices, test sentences (synthesized on first use)",
        manifest_path=_espeak_manifest_path,
        build=_build_espeak,
    ),
    "real": EmbeddedSet(
        name="real",
        description="real speech (pocketsphinx-testdata: LibriVox reader, cards, CMU), cross-sentence",
        manifest_path=_real_manifest_path,
        build=_build_real,
    ),
}


def embedded_manifest(name: str, cache_dir: str | Path | None = None, *, progress: bool = True) -> Manifest:
    """Load an embedded test set, building it first if needed (the espeak set synthesizes its voices)."""
    if name not in EMBEDDED:
        raise KeyError(f"no embedded test set {name!r}; known: {', '.join(EMBEDDED)}")
    cache = Path(cache_dir) if cache_dir else None
    return load_manifest(EMBEDDED[name].build(cache, progress), name=name)


@dataclass(frozen=True)
class TestSetSummary:
    name: str
    description: str
    built: bool
    items: int | None = None
    speakers: int | None = None
    target_seconds: float | None = None  # total duration of the ground-truth targets
    prompt_seconds: float | None = None
    problems: int | None = None
    path: str | None = None

    __test__ = False  # not a pytest class


def summarize(manifest: Manifest) -> tuple[int, float, float]:
    """Speakers, total target seconds, total prompt seconds of a manifest."""
    target = sum(audio_info(i.target_audio).duration for i in manifest.items if i.target_audio)
    prompt = 0.0
    for item in manifest.items:
        info = audio_info(item.prompt_audio)
        prompt += item.prompt_duration_s or (info.duration - item.prompt_offset_s)
    return len({i.speaker for i in manifest.items}), target, prompt


def list_embedded(cache_dir: str | Path | None = None) -> list[TestSetSummary]:
    """What each embedded set holds; sets not built yet are listed as such (nothing is synthesized)."""
    cache = Path(cache_dir) if cache_dir else None
    rows = []
    for spec in EMBEDDED.values():
        path = spec.manifest_path(cache)
        if not path.is_file():
            rows.append(TestSetSummary(spec.name, spec.description, built=False, path=str(path)))
            continue
        manifest = load_manifest(path, name=spec.name)
        speakers, target_s, prompt_s = summarize(manifest)
        rows.append(
            TestSetSummary(
                spec.name,
                spec.description,
                built=True,
                items=len(manifest),
                speakers=speakers,
                target_seconds=target_s,
                prompt_seconds=prompt_s,
                problems=len(manifest.problems),
                path=str(path),
            )
        )
    return rows


@dataclass(frozen=True)
class CorpusTier:
    """A source of speech the embedded sets and training draw on."""

    name: str
    description: str
    train_voices: tuple[str, ...]
    heldout_voices: tuple[str, ...]
    licence: str
    test_sets: tuple[str, ...]
    utterances: int | None = None  # built in the cache (None: not built here)
    hours: float | None = None
    build: str = ""  # how to build it


ESPEAK_LICENCE = "espeak-ng: GPL-3.0 (espeakng-loader wheel); the audio is generated, from committed sentences"
REAL_LICENCE = "BSD-2-Clause (Debian pocketsphinx-testdata; see assets/real/PROVENANCE.md)"


def _built(corpus: Corpus) -> tuple[int | None, float | None]:
    if not corpus.utterances:
        return None, None
    return len(corpus.utterances), sum(u.n_samples for u in corpus.utterances) / corpus.sample_rate / 3600


def _real_built() -> tuple[int, float]:
    clips = {i.target_audio for i in load_manifest(_real_manifest_path(), name="real").items}
    return len(clips), sum(audio_info(c).duration for c in clips if c) / 3600


def list_tiers(cache_dir: str | Path | None = None) -> list[CorpusTier]:
    """The corpus tiers with their voices, licences and what is built in the cache (nothing is synthesized)."""
    from bench.testsets.espeak_corpus import load_corpus
    from bench.testsets.natural import NaturalConfig, load_natural_corpus

    espeak = CorpusConfig()
    natural = NaturalConfig()
    try:
        natural_built = _built(load_natural_corpus(natural, cache_dir))
    except (FileNotFoundError, RuntimeError):  # no flite or no [voices]: the corpus cannot be located here
        natural_built = (None, None)
    licences = "; ".join(sorted({v.licence for v in natural.voices}))
    return [
        CorpusTier(
            "natural",
            "real TTS engines: flite (4 voices), piper joe, hibari heart",
            tuple(v for v in natural.voice_names if natural.split_of(v) != HELDOUT),
            natural.heldout,
            licences,
            tuple(spec.name for spec in (*NATURAL_SETS, *VC_SETS)),
            *natural_built,
            build="flashspeech-bench data natural (needs Debian's flite and the [voices] extra)",
        ),
        CorpusTier(
            "espeak",
            "espeak-ng en-us variants with jittered prosody",
            tuple(v.name for v in espeak.voices if espeak.split_of(v.name) != HELDOUT),
            espeak.heldout,
            ESPEAK_LICENCE,
            ("espeak",),
            *_built(load_corpus(espeak, cache_dir)),
            build="flashspeech-bench data synth (wheel only)",
        ),
        CorpusTier(
            "real",
            "real human speech (LibriVox reader, cards, CMU)",
            (),
            ("librivox", "cards", "cmu"),
            REAL_LICENCE,
            ("real",),
            *_real_built(),
            build="committed",
        ),
    ]


__all__ = [
    "EMBEDDED",
    "CorpusTier",
    "TestSetSummary",
    "embedded_manifest",
    "espeak_items",
    "list_embedded",
    "list_tiers",
]
