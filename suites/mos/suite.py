"""The "mos" suite: predicted mean opinion score of each generated utterance, from a named predictor.

Per row: `mos` (the backend's main score, 1-5, higher is better) plus the backend's extras (dnsmos: `sig`,
`bak`, `ovrl`, `p808`). Aggregates: the mean of each. Audio is resampled to 16 kHz with
`flashspeech.foundation.audio.resample`. A clip that is not mono, empty, non-finite, silent (RMS < 1e-4,
-80 dBFS: nothing to rate) or shorter than `min_seconds` is an error row with the reason: counted, never dropped.

Only the `utmos` backend (UTMOS22 strong, from a local checkpoint) is the FlashSpeech paper's predictor;
`describe()` and every metric's description say which predictor made the numbers, and the offline ones
(`distillmos`, the default, and `dnsmos`) say they are not UTMOS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from flashspeech.foundation.audio import DEFAULT_RESAMPLER
from suites.base import ItemScore, MetricInfo, Need, Sample, Suite, SuiteOptions, register
from suites.mos.backends import MOS_BACKENDS, SAMPLE_RATE, MosBackend

SILENCE_RMS = 1e-4  # -80 dBFS


def _mos(description: str) -> MetricInfo:
    return MetricInfo(higher_is_better=True, unit="MOS 1-5", description=description)


@dataclass(frozen=True)
class MosOptions(SuiteOptions):
    """What `[suites.mos]` sets besides the predictor's own options (distillmos: crops_per_batch; dnsmos:
    personalized; utmos: checkpoint): which predictor, and the shortest clip rated."""

    backend: str = "distillmos"
    min_seconds: float = 0.3


def unusable(audio: np.ndarray, min_seconds: float) -> str | None:
    """Why a 16 kHz clip cannot be rated (None: it can)."""
    if audio.ndim != 1:
        return f"generated audio must be mono (1-D), got shape {audio.shape}"
    if audio.size == 0:
        return "generated audio is empty (0 samples)"
    if not np.isfinite(audio).all():
        return "generated audio contains NaN or infinite samples"
    seconds = audio.size / SAMPLE_RATE
    if seconds < min_seconds:
        return f"generated audio too short to rate: {seconds:.3f} s < {min_seconds} s"
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    if rms < SILENCE_RMS:
        return f"generated audio is silent (RMS {rms:.3g} < {SILENCE_RMS:g}, -80 dBFS): nothing to rate"
    return None


@register
class MosSuite(Suite):
    """Predicted MOS of the generated speech (DistillMOS offline by default; DNSMOS; UTMOS22 strong)."""

    name = "mos"
    Options = MosOptions
    backends = MOS_BACKENDS
    needs = frozenset({Need.GENERATED})
    rows_per_sample = True
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "mos": _mos("predicted mean opinion score of the generated speech (the backend's main score)"),
        "sig": _mos("DNSMOS P.835 speech signal quality"),
        "bak": _mos("DNSMOS P.835 background noise quality"),
        "ovrl": _mos("DNSMOS P.835 overall quality"),
        "p808": _mos("DNSMOS P.808 overall quality"),
    }

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 8,
        backend: str | MosBackend = "distillmos",
        min_seconds: float = 0.3,
        **backend_options: Any,
    ):
        super().__init__(device=device, batch_size=batch_size)
        if isinstance(backend, MosBackend):
            if backend_options:
                raise ValueError("checkpoint / backend options apply to a backend named by string, not an object")
            self.backend = backend
        else:
            self.backend = MOS_BACKENDS.build(backend, device=device, **backend_options)
        self.options = MosOptions(batch_size, self.backend.name, min_seconds)
        # per instance: only this backend's metrics, each description naming the predictor
        label = self.backend.predictor
        self.metrics = {
            k: replace(info, description=f"{info.description} [{label}]")
            for k, info in self.metrics.items()
            if k in self.backend.metrics
        }

    def _load(self) -> None:
        self.backend.load()

    def describe(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            **self.backend.describe(),
            "label": self.backend.predictor,
            "metrics": {k: v.description for k, v in self.metrics.items()},
            "resampler": DEFAULT_RESAMPLER.describe(),
            "min_seconds": self.options.min_seconds,
            "unscorable_audio": f"not mono, empty, non-finite, RMS < {SILENCE_RMS:g} or shorter than min_seconds: "
            "error row",
            "batch_size": self.batch_size,
        }

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        rows: list[ItemScore | None] = [None] * len(samples)
        todo: list[tuple[int, np.ndarray]] = []
        for i, sample in enumerate(samples):
            audio = np.asarray(sample.generated_audio(SAMPLE_RATE), dtype=np.float32)
            reason = unusable(audio, self.options.min_seconds)
            if reason is not None:
                rows[i] = self.failure(sample, ValueError(reason))
            else:
                todo.append((i, audio))
        if todo:
            scores = self.backend.predict([audio for _, audio in todo])
            for (i, audio), values in zip(todo, scores, strict=True):
                sample = samples[i]
                details = {"backend": self.backend.name, "seconds": round(audio.size / SAMPLE_RATE, 3)}
                rows[i] = ItemScore(self.name, sample.system, sample.item.id, sample.seed, values, details)
        return [row for row in rows if row is not None]
