"""Real-time factor from the systems' own per-stage timings, and a warm-up/repeat timing helper.

Per sample (`sample.timings`: stage -> seconds, this sample's own share): `time_s` (sum of the stages;
a key named "total" is taken as the total instead, and the unaccounted rest becomes stage "other"),
`time_<stage>_s`, `audio_s`, and `rtf` = time_s / audio_s. A batch's timings must be split among its
items before scoring (`share_batch_timings`), or the batch time is counted once per item.

Where the timings come from (`sample.meta["timing"]`, filled by the runner): "this run", or "cache" for a
generation reused from an earlier run, whose timings were measured then (on the device and commit it names).
Each row's details say which, when and where, and whether the machine was busy (`contended`: other processes
competed for the CPU while it was timed; see `bench.contention`).

`aggregate`, over the samples timed in this run only (borrowed timings are never this run's speed):

- `rtf` = Σ time / Σ audio: the dataset-level convention of F5-TTS's `benchmark.py` (long utterances weigh
  more), and `rtfx` = its inverse (seconds of audio per second);
- `rtf_median`: the median of per-sample RTFs (robust to a few slow items);
- `share_<stage>`: each stage's part of the total time; `time_s`, `audio_s`: the sums; items, failed;
- `timed_here`: samples timed in this run; `borrowed`: samples whose timings came from the cache (excluded);
  `contended`: samples of this run timed while other processes competed (included, flagged by the reports,
  never gated).

The suite's `describe()` carries `environment()` (`flashspeech.foundation.environment`): device name,
torch / CUDA / cuDNN versions, threads. Batch splitting and callable timing live in `flashspeech.timing`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from flashspeech.foundation.environment import environment
from suites.base import ItemScore, MetricInfo, Need, Ratio, Sample, Suite, register

TOTAL_KEY = "total"
OTHER_STAGE = "other"
_TOLERANCE_S = 1e-6
TIMED_METRICS = ("rtf", "rtfx", "rtf_median", "time_s", "audio_s")  # aggregates of this run's timings only


def _timed_here(score: ItemScore) -> bool:
    """Whether a row's timings were measured in this run (not borrowed from a cached generation)."""
    return score.details.get("timing_source", "this run") == "this run"


def stage_times(timings: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(total seconds, seconds per stage) from a system's timings; raises ValueError on bad values."""
    if not timings:
        raise ValueError("no timings: the system did not report per-stage times (Need.TIMINGS)")
    values = {str(k): float(v) for k, v in timings.items()}
    bad = {k: v for k, v in values.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"timings must be finite and >= 0 seconds, got {bad}")
    stages = {k: v for k, v in values.items() if k != TOTAL_KEY}
    staged = sum(stages.values())
    if TOTAL_KEY not in values:
        return staged, stages
    total = values[TOTAL_KEY]
    if staged > total + _TOLERANCE_S:
        raise ValueError(f"stages add up to {staged:.6f} s, more than the reported total {total:.6f} s")
    if stages and total - staged > _TOLERANCE_S:
        stages[OTHER_STAGE] = stages.get(OTHER_STAGE, 0.0) + total - staged
    return total, stages or {TOTAL_KEY: total}


@register
class RtfSuite(Suite):
    """Real-time factor and stage breakdown from `sample.timings` (no model)."""

    name = "rtf"
    needs = frozenset({Need.GENERATED, Need.TIMINGS})
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "rtf": MetricInfo(False, "s/s", "seconds of compute per second of audio (aggregate: Σtime/Σaudio)"),
        "rtf_median": MetricInfo(False, "s/s", "median of per-sample RTF"),
        "rtfx": MetricInfo(True, "s/s", "seconds of audio per second of compute (1/rtf)"),
        "time_s": MetricInfo(False, "s", "generation time (sum of stages)"),
        "audio_s": MetricInfo(True, "s", "generated audio length"),
    }
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {
        "timed_here": MetricInfo(None, "samples", "samples timed in this run (the aggregates' basis)"),
        "borrowed": MetricInfo(None, "samples", "samples whose timings are an earlier run's (cache), excluded"),
        "contended": MetricInfo(False, "samples", "samples timed while other processes competed for the CPU"),
    }
    ratios: ClassVar[dict[str, Ratio]] = {"rtf": Ratio(("time_s",), "audio_s")}  # over the samples timed here

    def aggregate_notes(self, scores: Sequence[ItemScore]) -> dict[str, str]:
        scored = [s for s in scores if s.ok]
        borrowed = [s for s in scored if not _timed_here(s)]
        if not scored or len(borrowed) < len(scored):
            return {}
        when = sorted({str(s.details.get("measured_at")) for s in borrowed})
        why = (
            f"all {len(borrowed)} timings come from cached generations (measured {when[0]} .. {when[-1]}), "
            "not this run: rerun with --retime (or a fresh cache) to time this run"
        )
        return dict.fromkeys(TIMED_METRICS, why)

    def describe(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "source": "sample.timings as reported by the system (stage -> seconds)",
            "aggregate": "rtf = sum(time)/sum(audio) (F5-TTS benchmark.py convention); rtf_median = median per item",
            "environment": environment(self.device),
        }

    def _score_one(self, sample: Sample) -> ItemScore:
        total, stages = stage_times(sample.timings)
        audio_s = sample.duration
        if audio_s <= 0:
            raise ValueError("empty generated audio: RTF undefined")
        metrics = {"time_s": total, "audio_s": audio_s, "rtf": total / audio_s}
        metrics.update({f"time_{stage}_s": t for stage, t in stages.items()})
        details: dict[str, Any] = {"stages": sorted(stages)}
        if "batch_size" in sample.meta:
            details["batch_size"] = sample.meta["batch_size"]
        timed = sample.meta.get("timing") or {}
        load = timed.get("load") or {}
        details.update(
            timing_source=timed.get("source", "this run"),
            measured_at=timed.get("measured_at"),
            measured_on=timed.get("gpu") or timed.get("cpu") or timed.get("device"),
            measured_commit=timed.get("git_commit"),
            contended=load.get("contended"),
            others_cores=load.get("others_cores"),
        )
        return ItemScore(self.name, sample.system, sample.item.id, sample.seed, metrics=metrics, details=details)

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        return [self._score_one(s) for s in samples]

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        scored = [s for s in scores if s.ok]
        ok = [s for s in scored if _timed_here(s)]
        out: dict[str, float] = {"items": float(len(scores)), "failed": float(len(scores) - len(scored))}
        out.update(
            timed_here=float(len(ok)),
            borrowed=float(len(scored) - len(ok)),
            contended=float(sum(bool(s.details.get("contended")) for s in ok)),
        )
        if not ok:  # nothing timed in this run: the numbers are absent, not borrowed (aggregate_notes says why)
            return {**out, **dict.fromkeys(TIMED_METRICS, math.nan)}
        time_s, audio_s = self.ratios["rtf"].sums(s.metrics for s in ok)
        out.update(time_s=time_s, audio_s=audio_s, rtf=time_s / audio_s)
        out["rtfx"] = audio_s / time_s if time_s > 0 else math.inf
        out["rtf_median"] = float(np.median([s.metrics["rtf"] for s in ok]))
        stages = sorted({k for s in ok for k in s.metrics if k.startswith("time_") and k != "time_s"})
        for key in stages:
            share = sum(s.metrics.get(key, 0.0) for s in ok) / time_s if time_s > 0 else math.nan
            out[f"share_{key[len('time_') : -len('_s')]}"] = share
        return out
