"""How well the instruments hear the test voices: a survey of the corpora's ground truth.

Per voice, on its test sentences (what the test sets draw their targets from): corpus WER of the ground
truth under each ASR configuration, DistillMOS and DNSMOS (P.808, P.835 overall), and per tier the same
pooled; resemblyzer speaker separation of the natural voices (centroid cosine between voices against the
spread within a voice: a pair whose centroids are closer than 0.90 is too close to count as two speakers);
and the DTW alignment method checked against flite's own segments. `flashspeech-bench data survey` writes
it as JSON and Markdown (the committed copy is ``assets/natural/SURVEY.md``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SURVEY_FILES = ("SURVEY.md", "survey.json")  # what write_survey writes
SEPARATION_THRESHOLD = 0.90  # centroid cosine above this: too close to be distinct speakers
ASR_CONFIGS: dict[str, dict[str, Any]] = {
    "tiny.en greedy": {"model": None, "beam_size": None},
    "base greedy": {"model": "offline:base", "beam_size": None},
    "base beam 5": {"model": "offline:base", "beam_size": 5},
}


@dataclass(frozen=True)
class Clip:
    tier: str  # "natural", "espeak", "real"
    voice: str
    split: str
    text: str
    path: str


@dataclass
class Survey:
    clips: int
    per_voice: list[dict[str, Any]] = field(default_factory=list)
    per_tier: list[dict[str, Any]] = field(default_factory=list)
    separation: dict[str, Any] = field(default_factory=dict)
    alignment: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "clips": self.clips,
            "per_voice": self.per_voice,
            "per_tier": self.per_tier,
            "separation": self.separation,
            "alignment_error_ms": self.alignment,
            "seconds": self.seconds,
        }


def survey_clips(cache_dir: str | Path | None = None, per_voice: int | None = 20) -> list[Clip]:
    """The ground truth of the first `per_voice` test sentences (None: all 40) of every natural voice and of
    the espeak-ng held-out voices, and the real set's targets."""
    from bench.testsets.corpus import HELDOUT
    from bench.testsets.embedded import embedded_manifest
    from bench.testsets.espeak_corpus import CorpusConfig, build_corpus
    from bench.testsets.natural import build_natural_corpus

    clips = []
    natural = build_natural_corpus(cache_dir=cache_dir, progress=True)
    wanted = sorted({u.sentence_id for u in natural.utterances if u.test_sentence})[:per_voice]
    for u in natural.utterances:
        if u.sentence_id in wanted:
            clips.append(Clip("natural", u.voice, u.split, u.text, str(natural.audio_path(u))))
    config = CorpusConfig()
    heldout = [v.name for v in config.voices if config.split_of(v.name) == HELDOUT]
    espeak = build_corpus(config, cache_dir, voices=heldout, progress=True)
    for u in espeak.utterances:
        if u.sentence_id in wanted:
            clips.append(Clip("espeak", u.voice, u.split, u.text, str(espeak.audio_path(u))))
    for item in embedded_manifest("real").items:
        assert item.target_audio is not None
        clips.append(Clip("real", item.speaker or "?", "-", item.text, item.target_audio))
    return clips


def _corpus_wer(rows: Sequence[tuple[str, str]]) -> float:
    from suites.wer.normalize import get_normalizer
    from suites.wer.scoring import count_words, summarize

    norm = get_normalizer("whisper")
    return summarize(count_words(norm(ref), norm(hyp)).as_metrics() for ref, hyp in rows)["wer_corpus"]


def _group(clips: Sequence[Clip], key: Callable[[Clip], str]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for k, clip in enumerate(clips):
        groups.setdefault(key(clip), []).append(k)
    return groups


def separation(embeddings: np.ndarray, voices: Sequence[str]) -> dict[str, Any]:
    """Centroid cosine between voices, mean within-voice cosine to the centroid, and the pairs over
    `SEPARATION_THRESHOLD`."""
    names = sorted(set(voices))
    centroids, within = [], {}
    for name in names:
        e = embeddings[[v == name for v in voices]]
        c = e.mean(axis=0)
        c /= np.linalg.norm(c)
        centroids.append(c)
        within[name] = float(np.mean(e @ c / np.linalg.norm(e, axis=1)))
    sims = np.stack(centroids) @ np.stack(centroids).T
    pairs = [
        {"a": a, "b": b, "cosine": float(sims[i, j])} for i, a in enumerate(names) for j, b in enumerate(names) if i < j
    ]
    return {
        "voices": names,
        "centroid_cosine": sims.round(4).tolist(),
        "within_voice": within,
        "too_close": [p for p in pairs if p["cosine"] > SEPARATION_THRESHOLD],
        "closest": max(pairs, key=lambda p: p["cosine"]) if pairs else None,
    }


def alignment_check(sentences: int = 20) -> dict[str, float]:
    """Median boundary error (ms) of the DTW method against flite's segments, per flite voice."""
    import shutil

    from bench.testsets.align import boundary_error_ms
    from bench.testsets.natural import NaturalConfig, Renderer

    if shutil.which("flite") is None:
        raise FileNotFoundError("the alignment check needs Debian's `flite` program")
    config, out = NaturalConfig(), {}
    texts = [s.text for s in config.sentences() if config.is_test_sentence(s)][:sentences]
    for voice in (v for v in config.voices if v.engine == "flite"):
        renderer = Renderer(voice, 16_000)
        errors = []
        try:
            for text in texts:
                audio, phonemes, truth = renderer.render_segments(text)
                found = renderer.dtw_starts(text, phonemes, audio)
                errors.append(boundary_error_ms(truth, [s / 16_000 for s in found]))
        finally:
            renderer.close()
        out[voice.name] = float(np.median(errors))
    return out


def run_survey(clips: Sequence[Clip], asr: dict[str, dict[str, Any]] | None = None, progress: bool = True) -> Survey:
    """Score every clip with each ASR configuration, DistillMOS, DNSMOS and resemblyzer."""
    from tqdm.auto import tqdm

    from flashspeech.foundation.audio import read_audio
    from suites.mos import MOS_BACKENDS
    from suites.similarity import SPEAKER_BACKENDS
    from suites.wer import ASR_BACKENDS

    asr = ASR_CONFIGS if asr is None else asr
    audio = [read_audio(c.path, 16_000).samples for c in tqdm(clips, desc="reading", disable=not progress)]
    seconds: dict[str, float] = {}
    hyps: dict[str, list[str]] = {}
    for label, options in asr.items():
        backend = ASR_BACKENDS.build("whisper", **options)
        backend.load()
        start = time.perf_counter()
        hyps[label] = []
        for k in tqdm(range(0, len(audio), 8), desc=f"ASR {label}", disable=not progress):
            hyps[label].extend(backend.transcribe(audio[k : k + 8]))
        seconds[f"asr {label}"] = time.perf_counter() - start
    mos: dict[str, list[dict[str, float]]] = {}
    for name in ("distillmos", "dnsmos"):
        backend = MOS_BACKENDS.build(name)
        backend.load()
        start = time.perf_counter()
        mos[name] = []
        for k in tqdm(range(0, len(audio), 8), desc=name, disable=not progress):
            mos[name].extend(backend.predict(audio[k : k + 8]))
        seconds[name] = time.perf_counter() - start
    embedder = SPEAKER_BACKENDS.build("resemblyzer")
    natural = [k for k, c in enumerate(clips) if c.tier == "natural"]
    embeddings = embedder.embed([audio[k] for k in natural]).cpu().numpy() if natural else np.zeros((0, 256))

    def summary(indices: list[int]) -> dict[str, Any]:
        row: dict[str, Any] = {
            "clips": len(indices),
            "seconds": round(sum(len(audio[k]) for k in indices) / 16_000, 1),
        }
        for label in asr:
            row[f"wer {label}"] = round(_corpus_wer([(clips[k].text, hyps[label][k]) for k in indices]), 4)
        row["distillmos"] = round(float(np.mean([mos["distillmos"][k]["mos"] for k in indices])), 3)
        for metric in ("p808", "ovrl"):
            values = [mos["dnsmos"][k][metric] for k in indices if metric in mos["dnsmos"][k]]
            row[f"dnsmos {metric}"] = round(float(np.mean(values)), 3) if values else None
        return row

    survey = Survey(clips=len(clips), seconds=seconds)
    for voice, idx in _group(clips, lambda c: f"{c.tier}/{c.voice}").items():
        tier, name = voice.split("/", 1)
        survey.per_voice.append({"tier": tier, "voice": name, "split": clips[idx[0]].split, **summary(idx)})
    for tier, idx in _group(clips, lambda c: c.tier).items():
        survey.per_tier.append({"tier": tier, **summary(idx)})
    if natural:
        survey.separation = separation(embeddings, [clips[k].voice for k in natural])
    return survey


def render_markdown(survey: Survey) -> str:
    """The survey as Markdown tables."""

    def table(rows: list[dict[str, Any]]) -> list[str]:
        if not rows:
            return ["(none)"]
        keys = list(rows[0])
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        for row in rows:
            lines.append("| " + " | ".join("-" if row[k] is None else str(row[k]) for k in keys) + " |")
        return lines

    sep = survey.separation
    lines = [
        "# Ground-truth survey of the corpora",
        "",
        "Written by `flashspeech-bench data survey`. Each voice's test sentences (never trained on); corpus WER",
        "with the Whisper normaliser; DistillMOS and DNSMOS are offline predictors, not the paper's UTMOS.",
        "",
        "## Per tier",
        "",
        *table(survey.per_tier),
        "",
        "## Per voice",
        "",
        *table(survey.per_voice),
        "",
    ]
    if sep:
        lines += [
            "## Speaker separation of the natural voices (resemblyzer)",
            "",
            f"Centroid cosine between voices; pairs above {SEPARATION_THRESHOLD} would be too close to count as "
            "two speakers.",
            "",
            "| | " + " | ".join(sep["voices"]) + " |",
            "|---|" + "---|" * len(sep["voices"]),
            *[
                f"| {a} | " + " | ".join(f"{v:.3f}" for v in row) + " |"
                for a, row in zip(sep["voices"], sep["centroid_cosine"], strict=True)
            ],
            "",
            "Within-voice cosine to the voice's centroid: "
            + ", ".join(f"{k} {v:.3f}" for k, v in sep["within_voice"].items())
            + ".",
            "",
            "Too close: "
            + (", ".join(f"{p['a']} / {p['b']} ({p['cosine']:.3f})" for p in sep["too_close"]) or "none")
            + f". Closest pair: {sep['closest']['a']} / {sep['closest']['b']} ({sep['closest']['cosine']:.3f}).",
            "",
        ]
    if survey.alignment:
        lines += [
            "## DTW alignment against flite's segments",
            "",
            "Median phoneme-start error of alignment by synthesis (the method piper and hibari durations use), "
            "measured on flite voices whose true segments are known: "
            + ", ".join(f"{k} {v:.1f} ms" for k, v in survey.alignment.items())
            + " (one frame is 12.5 ms).",
            "",
        ]
    lines += [
        "## Time taken",
        "",
        ", ".join(f"{k} {v:.0f} s" for k, v in survey.seconds.items()) + f" for {survey.clips} clips.",
        "",
    ]
    return "\n".join(lines)


def write_survey(survey: Survey, out_dir: Path) -> tuple[Path, Path]:
    from flashspeech.foundation.files import write_text_atomic

    out_dir.mkdir(parents=True, exist_ok=True)
    md, js = (out_dir / name for name in SURVEY_FILES)
    write_text_atomic(js, json.dumps(survey.to_json(), indent=1) + "\n")
    write_text_atomic(md, render_markdown(survey))
    return md, js


__all__ = [
    "ASR_CONFIGS",
    "SURVEY_FILES",
    "Clip",
    "Survey",
    "alignment_check",
    "render_markdown",
    "run_survey",
    "separation",
    "survey_clips",
    "write_survey",
]
