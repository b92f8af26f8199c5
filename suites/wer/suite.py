"""The "wer" suite: transcribe generated speech, normalise, count word errors against the item's text.

Unscorable audio counts against the system: a clip that is empty (0 samples), has a non-finite sample, or
is silent (RMS below `SILENCE_RMS` = 1e-4, i.e. -80 dBFS on the [-1, 1] scale) is not transcribed but scored
as an empty hypothesis (WER 1, every reference word a deletion), with the reason in the row's `note`. The
silence threshold sits far below any audible speech (-20 to -50 dBFS) and above 16-bit quantisation noise
(about -101 dBFS); below it Whisper would only hallucinate text. Audio that is not mono, and an item whose
reference is empty after normalisation (WER undefined), stay error rows.

`hallucination` flags an item whose normalised hypothesis has more than `hallucination_ratio` (2) x the reference
words + `hallucination_margin` (3) words: the ASR heard much more than the text (a babbling or looping generation,
or an ASR that loops); the aggregate is the rate, `hallucination_count` the number of items. It changes no WER count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any, ClassVar

import numpy as np

from suites.base import ItemScore, MetricInfo, Need, Ratio, Sample, Suite, SuiteOptions, register
from suites.wer.backends import ASR_BACKENDS, AsrBackend
from suites.wer.normalize import get_normalizer
from suites.wer.scoring import WER_CORPUS, count_words, summarize

SILENCE_RMS = 1e-4  # -80 dBFS: below it a clip is scored as an empty hypothesis (see the module docstring)


def empty_hypothesis_reason(audio: np.ndarray) -> str | None:
    """Why a mono clip is scored as an empty hypothesis without transcription (None: transcribe it)."""
    if audio.size == 0:
        return "empty audio (0 samples) scored as an empty hypothesis"
    finite = np.isfinite(audio)
    if not finite.all():
        bad = int(audio.size - finite.sum())
        return f"non-finite audio ({bad} of {audio.size} samples NaN or infinite) scored as an empty hypothesis"
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < SILENCE_RMS:
        return f"silent audio (RMS {rms:.3g} < {SILENCE_RMS:g}, -80 dBFS) scored as an empty hypothesis"
    return None


def _count(unit: str, what: str) -> MetricInfo:
    return MetricInfo(higher_is_better=False, unit=unit, description=what)


@dataclass(frozen=True)
class WerOptions(SuiteOptions):
    """What `[suites.wer]` sets besides the backend's own options (whisper: model, download_root, beam_size;
    hubert: model)."""

    backend: str = "whisper"
    normalizer: str = "whisper"
    hallucination_ratio: float = 2.0
    hallucination_margin: float = 3.0

    def __post_init__(self) -> None:
        get_normalizer(self.normalizer)  # ValueError naming the known ones
        if not (self.hallucination_ratio >= 0 and self.hallucination_margin >= 0):
            raise ValueError("hallucination_ratio and hallucination_margin must be >= 0")


@register
class WerSuite(Suite):
    """Word error rate of the generated speech against the item's text (per item, corpus and mean)."""

    name: ClassVar[str] = "wer"
    Options: ClassVar[type] = WerOptions
    backends = ASR_BACKENDS
    needs: ClassVar[frozenset[Need]] = frozenset({Need.GENERATED, Need.TEXT})
    rows_per_sample: ClassVar[bool] = True
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "wer": _count("fraction", "word errors / reference words of this item"),
        "substitutions": _count("words", "substituted words"),
        "deletions": _count("words", "deleted words"),
        "insertions": _count("words", "inserted words"),
        "ref_words": MetricInfo(higher_is_better=None, unit="words", description="reference words (normalised)"),
        "hyp_words": MetricInfo(higher_is_better=None, unit="words", description="hypothesis words (normalised)"),
        "hallucination": _count(
            "fraction", "1 when hyp_words > hallucination_ratio x ref_words + hallucination_margin"
        ),
    }
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {
        "wer_corpus": _count("fraction", "sum of errors / sum of reference words (ZipVoice/NeMo convention)"),
        "wer_mean": _count("fraction", "mean of per-item WERs (Seed-TTS/F5 convention)"),
        "over_50pct": _count("items", "items with WER above 50 %"),
        "over_50pct_frac": _count("fraction", "fraction of scored items with WER above 50 %"),
        "hallucination_count": _count("items", "items whose hypothesis is far longer than the reference"),
    }
    ratios: ClassVar[dict[str, Ratio]] = {
        "wer_corpus": WER_CORPUS,  # Σ errors / Σ ref words, the one definition `summarize` computes
    }

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 8,
        backend: str | AsrBackend = "whisper",
        normalizer: str = "whisper",
        hallucination_ratio: float = 2.0,
        hallucination_margin: float = 3.0,
        **backend_options: Any,
    ):
        super().__init__(device=device, batch_size=batch_size)
        WerOptions(
            batch_size,
            normalizer=normalizer,
            hallucination_ratio=hallucination_ratio,
            hallucination_margin=hallucination_margin,
        )  # checks them
        self.hallucination_ratio, self.hallucination_margin = float(hallucination_ratio), float(hallucination_margin)
        self.normalizer = get_normalizer(normalizer)
        if isinstance(backend, str):
            self.backend: AsrBackend = ASR_BACKENDS.build(backend, device=device, **backend_options)
        else:
            if backend_options:
                raise ValueError("model/backend options apply to a backend named by string, not to a backend object")
            self.backend = backend

    def _load(self) -> None:
        self.backend.load()

    def _error(self, sample: Sample, message: str) -> ItemScore:
        return ItemScore(self.name, sample.system, sample.item.id, sample.seed, error=message)

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        rows: list[ItemScore | None] = [None] * len(samples)
        todo: list[tuple[int, str, np.ndarray]] = []
        for i, sample in enumerate(samples):
            reference = self.normalizer(sample.item.text or "")
            if not reference:
                rows[i] = self._error(
                    sample,
                    f"item {sample.item.id!r}: reference text {sample.item.text!r} is empty after "
                    f"{self.normalizer.name!r} normalisation; WER is undefined",
                )
                continue
            raw_audio = np.asarray(sample.audio)
            if raw_audio.ndim != 1:
                rows[i] = self._error(
                    sample, f"item {sample.item.id!r}: generated audio is not mono (shape {raw_audio.shape})"
                )
                continue
            why = empty_hypothesis_reason(raw_audio)
            if why is not None:
                rows[i] = self._row(sample, reference, "", note=why)
                continue
            audio = np.asarray(sample.generated_audio(self.backend.sample_rate), dtype=np.float32)
            todo.append((i, reference, audio))
        hypotheses = self.backend.transcribe([audio for _, _, audio in todo]) if todo else []
        if len(hypotheses) != len(todo):
            raise RuntimeError(f"ASR backend returned {len(hypotheses)} hypotheses for {len(todo)} clips")
        for (i, reference, _), raw in zip(todo, hypotheses, strict=True):
            rows[i] = self._row(samples[i], reference, raw)
        return [row for row in rows if row is not None]

    def _row(self, sample: Sample, reference: str, raw: str, note: str | None = None) -> ItemScore:
        """A scored row: counts, and the text, normalised reference, raw and normalised hypothesis."""
        hypothesis = self.normalizer(raw)
        details = {"text": sample.item.text, "reference": reference, "hypothesis": hypothesis, "hypothesis_raw": raw}
        if note is not None:
            details["note"] = note
        metrics = count_words(reference, hypothesis).as_metrics()
        limit = self.hallucination_ratio * metrics["ref_words"] + self.hallucination_margin
        metrics["hallucination"] = float(metrics["hyp_words"] > limit)
        return ItemScore(self.name, sample.system, sample.item.id, sample.seed, metrics=metrics, details=details)

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        ok = [s for s in scores if s.ok and "wer" in s.metrics]
        out: dict[str, float] = {
            "items": float(len(scores)),
            "failed": float(len(scores) - len(ok)),
            "scored": float(len(ok)),
        }
        out.update(summarize(s.metrics for s in ok) or dict.fromkeys(self.aggregate_metrics, float("nan")))
        flagged = [s.metrics["hallucination"] for s in ok if "hallucination" in s.metrics]
        if flagged:  # rows scored before the flag existed have none
            out.update(hallucination=float(np.mean(flagged)), hallucination_count=float(sum(flagged)))
        return out

    def aggregate_notes(self, scores: Sequence[ItemScore]) -> dict[str, str]:
        if any(s.ok for s in scores):
            return {}
        why = f"no item could be scored ({len(scores)} failed)" if scores else "no items"
        return dict.fromkeys(self.aggregate_metrics, why)

    def describe(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            **self.backend.describe(),
            "normalizer": self.normalizer.name,
            "normalizer_description": self.normalizer.description,
            "sample_rate": self.backend.sample_rate,
            "batch_size": self.batch_size,
            "jiwer_version": metadata.version("jiwer"),
            "aggregates": "wer_corpus = sum errors / sum ref words; wer_mean = mean of per-item WERs",
            "hallucination_ratio": self.hallucination_ratio,
            "hallucination_margin": self.hallucination_margin,
            "unscorable_audio": (
                f"empty, non-finite or RMS < {SILENCE_RMS:g} (-80 dBFS): scored as an empty hypothesis (WER 1), "
                "not transcribed; not mono: error row"
            ),
        }
