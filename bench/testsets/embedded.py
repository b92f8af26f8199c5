"""The embedded test sets that `nox -s bench` and the tests run on, with no downloads.

- ``smoke``: held-out synthetic voices (never trained on) reading test sentences (never trained on),
  each prompted by another sentence of the same voice: zero-shot, cross-sentence.
- ``real``: real human speech from Debian's pocketsphinx-testdata (committed under
  ``bench/testsets/assets/real``), prompted by another utterance of the same speaker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bench.testsets.manifest import Manifest, load_manifest, write_manifest
from bench.testsets.synth import HELDOUT, Corpus, CorpusConfig, build_corpus, corpus_root
from flashspeech.foundation.audio import audio_info
from suites.item import EvalItem

SMOKE_VERSION = 2  # bump when smoke_items changes what it writes
SMOKE_ITEMS_PER_VOICE = 8
SMOKE_PROMPT_RANGE_S = (2.0, 4.5)  # prompts near the protocols' 3 s


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


def smoke_items(corpus: Corpus, items_per_voice: int = SMOKE_ITEMS_PER_VOICE, seed: int = 0) -> list[EvalItem]:
    """Cross-sentence items for the held-out voices of a built corpus (deterministic given `seed`).

    Test sentences are dealt out so that voices get disjoint targets where there are enough; each
    prompt is a non-test sentence of the same voice lasting 2-4.5 s, used at most once per voice.
    """
    config = corpus.config
    rng = random.Random(seed)
    heldout = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    tests = sorted({u.sentence_id for u in corpus.utterances if u.test_sentence})
    rng.shuffle(tests)
    items = []
    for k, voice in enumerate(heldout):
        utts = {u.sentence_id: u for u in corpus.by_voice(voice)}
        if not utts:
            raise ValueError(f"held-out voice {voice!r} is not built in {corpus.root}")
        targets = [tests[(k * items_per_voice + j) % len(tests)] for j in range(min(items_per_voice, len(tests)))]
        lo, hi = SMOKE_PROMPT_RANGE_S
        prompts = [u for u in utts.values() if not u.test_sentence and lo <= u.n_samples / config.sample_rate <= hi]
        prompts.sort(key=lambda u: u.sentence_id)
        rng.shuffle(prompts)
        if len(prompts) < len(targets):
            raise ValueError(
                f"voice {voice!r} has {len(prompts)} prompt candidates of {lo}-{hi} s for {len(targets)} targets"
            )
        for target_id, prompt in zip(targets, prompts, strict=False):
            target = utts[target_id]
            items.append(
                EvalItem(
                    id=f"smoke-{target.id}",
                    text=target.text,
                    prompt_audio=str(corpus.audio_path(prompt)),
                    prompt_text=prompt.text,
                    speaker=voice,
                    target_audio=str(corpus.audio_path(target)),
                    meta={
                        "prompt_utt": prompt.id,
                        "target_utt": target.id,
                        # the synthesizer's alignment of the ground truth, for phone-level prosody metrics
                        "target_phonemes": list(target.phonemes),
                        "target_durations": list(target.durations),
                    },
                )
            )
    return items


def _smoke_manifest_path(cache_dir: Path | None = None) -> Path:
    return corpus_root(CorpusConfig(), cache_dir) / "manifests" / f"smoke-v{SMOKE_VERSION}.jsonl"


def _build_smoke(cache_dir: Path | None = None, progress: bool = True) -> Path:
    path = _smoke_manifest_path(cache_dir)
    if path.is_file():
        return path
    config = CorpusConfig()
    heldout = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    corpus = build_corpus(config, cache_dir, voices=heldout, progress=progress)
    return write_manifest(smoke_items(corpus), path)


EMBEDDED: dict[str, EmbeddedSet] = {
    "smoke": EmbeddedSet(
        name="smoke",
        description="held-out synthetic espeak-ng voices, test sentences, cross-sentence prompts",
        manifest_path=_smoke_manifest_path,
        build=_build_smoke,
    ),
    "real": EmbeddedSet(
        name="real",
        description="real speech (pocketsphinx-testdata: LibriVox reader, cards, CMU), cross-sentence",
        manifest_path=_real_manifest_path,
        build=_build_real,
    ),
}


def embedded_manifest(name: str, cache_dir: str | Path | None = None, *, progress: bool = True) -> Manifest:
    """Load an embedded test set, building it first if needed (the smoke set synthesizes its voices)."""
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


__all__ = ["EMBEDDED", "TestSetSummary", "embedded_manifest", "list_embedded", "smoke_items"]
