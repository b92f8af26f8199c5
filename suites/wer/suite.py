"""The "wer" suite: transcribe generated speech, normalise, count word errors against the item's text."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from suites.base import ItemScore, MetricInfo, Need, Sample, Suite, register
from suites.wer.normalize import get_normalizer
from suites.wer.scoring import count_words, summarize


@runtime_checkable
class AsrBackend(Protocol):
    """What the suite needs from an ASR model: batched transcription of mono float32 clips."""

    sample_rate: int

    def load(self) -> None: ...

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


BACKENDS = ("whisper", "hubert")


def build_backend(name: str, model: str | None = None, device: str = "cpu", **options: Any) -> AsrBackend:
    """A backend by name ("whisper": openai-whisper, default tiny.en offline; "hubert": local HuBERT CTC)."""
    if name == "whisper":
        from suites.wer.whisper_backend import WhisperBackend

        return WhisperBackend(model=model, device=device, **options)
    if name == "hubert":
        from suites.wer.hubert_backend import HubertBackend

        return HubertBackend(model=model, device=device, **options)
    raise ValueError(f"unknown WER backend {name!r}; known: {', '.join(BACKENDS)}")


def _count(unit: str, what: str) -> MetricInfo:
    return MetricInfo(higher_is_better=False, unit=unit, description=what)


@register
class WerSuite(Suite):
    """Word error rate of the generated speech against the item's text (per item, corpus and mean)."""

    name: ClassVar[str] = "wer"
    needs: ClassVar[frozenset[Need]] = frozenset({Need.GENERATED, Need.TEXT})
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "wer": _count("fraction", "word errors / reference words of this item"),
        "substitutions": _count("words", "substituted words"),
        "deletions": _count("words", "deleted words"),
        "insertions": _count("words", "inserted words"),
        "ref_words": MetricInfo(higher_is_better=None, unit="words", description="reference words (normalised)"),
        "hyp_words": MetricInfo(higher_is_better=None, unit="words", description="hypothesis words (normalised)"),
    }
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {
        "wer_corpus": _count("fraction", "sum of errors / sum of reference words (ZipVoice/NeMo convention)"),
        "wer_mean": _count("fraction", "mean of per-item WERs (Seed-TTS/F5 convention)"),
        "over_50pct": _count("items", "items with WER above 50 %"),
        "over_50pct_frac": _count("fraction", "fraction of scored items with WER above 50 %"),
    }

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 8,
        backend: str | AsrBackend = "whisper",
        model: str | None = None,
        normalizer: str = "whisper",
        **backend_options: Any,
    ):
        super().__init__(device=device, batch_size=batch_size)
        self.normalizer = get_normalizer(normalizer)
        if isinstance(backend, str):
            self.backend: AsrBackend = build_backend(backend, model=model, device=device, **backend_options)
        else:
            if model is not None or backend_options:
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
            audio = np.asarray(sample.generated_audio(self.backend.sample_rate), dtype=np.float32)
            if audio.ndim != 1 or audio.size == 0 or not np.all(np.isfinite(audio)):
                rows[i] = self._error(
                    sample, f"item {sample.item.id!r}: generated audio is empty, not mono or not finite"
                )
                continue
            todo.append((i, reference, audio))
        hypotheses = self.backend.transcribe([audio for _, _, audio in todo]) if todo else []
        if len(hypotheses) != len(todo):
            raise RuntimeError(f"ASR backend returned {len(hypotheses)} hypotheses for {len(todo)} clips")
        for (i, reference, _), raw in zip(todo, hypotheses, strict=True):
            sample = samples[i]
            hypothesis = self.normalizer(raw)
            counts = count_words(reference, hypothesis)
            rows[i] = ItemScore(
                self.name,
                sample.system,
                sample.item.id,
                sample.seed,
                metrics=counts.as_metrics(),
                details={"hypothesis": hypothesis, "reference": reference, "hypothesis_raw": raw},
            )
        return [row for row in rows if row is not None]

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        ok = [s for s in scores if s.ok and "wer" in s.metrics]
        out: dict[str, float] = {
            "items": float(len(scores)),
            "failed": float(len(scores) - len(ok)),
            "scored": float(len(ok)),
        }
        out.update(summarize(s.metrics for s in ok) or dict.fromkeys(self.aggregate_metrics, float("nan")))
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
        }
