"""The prosody suite: per-sample F0 / duration statistics, seed diversity, and the paper's pitch/duration JSD.

Rows:

- one per sample (its seed): `f0_mean_hz`, `f0_std_st`, `f0_range_st`, `voiced_fraction`, `duration_s`
  and, when the system supplied phone durations in `sample.meta["durations"]` (frames per phoneme at
  80 Hz; optional `sample.meta["phonemes"]` names them), `phone_duration_frames`. The row's details keep
  its pitch / phone-duration histograms and those of the item's ground-truth target, so the JSD can be
  recomputed from stored records.
- one per (system, item) with seed None: diversity across seeds (see `suites.prosody.diversity`).
- on a voice-conversion item, the sample's row adds `f0_corr_source`: how much of the source's intonation the
  conversion kept (`suites.prosody.features.f0_correlation`), with the frames it is over in the details.

`aggregate` adds `pitch_jsd`, `duration_jsd` (phone level only), `utterance_duration_jsd` (utterance
lengths: a different measure, under its own name), each with its ground-truth split-half `<name>_floor`, and
the counts they were measured at (`jsd_items` per side, `jsd_floor_items` per half); see `suites.prosody.jsd`
for bins and units and `suites.prosody.distribution` for pooling, equal counts and the floor. An unavailable
JSD is NaN and `aggregate_notes` says why. Call `aggregate` with the rows of one system.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from flashspeech.foundation.f0 import DEFAULT_F0, F0Config, F0Track, extract_f0, pyworld_version
from flashspeech.foundation.fields import from_table
from suites.base import ItemScore, MetricInfo, Need, Sample, Suite, SuiteError, SuiteOptions, register
from suites.prosody.distribution import FLOOR_SEED, FLOOR_SPLITS, KINDS, system_jsd
from suites.prosody.diversity import diversity_rows
from suites.prosody.features import (
    CONTOUR_POINTS,
    MIN_CORRELATION_FRAMES,
    UtteranceProsody,
    f0_correlation,
    phone_durations,
    utterance_prosody,
)
from suites.prosody.jsd import (
    JSD_EPS,
    PHONE_MAX_FRAMES,
    PITCH_BINS,
    UTTERANCE_BIN_S,
    phone_duration_counts,
    pitch_counts,
)


def _info(unit: str, description: str, higher: bool | None = None) -> MetricInfo:
    """Metadata; `higher=None` marks a descriptive statistic with no better direction."""
    return MetricInfo(higher_is_better=higher, unit=unit, description=description)


SAMPLE_METRICS = {
    "f0_mean_hz": _info("Hz", "geometric mean F0 of voiced frames (exp of mean log-F0)"),
    "f0_std_st": _info("semitones", "std of voiced-frame F0"),
    "f0_range_st": _info("semitones", "5th-95th percentile F0 range"),
    "voiced_fraction": _info("", "share of 12.5 ms frames that are voiced"),
    "duration_s": _info("s", "utterance duration"),
    "phone_duration_frames": _info("frames", "mean phone duration (80 Hz frames)"),
    "f0_corr_source": _info(
        "r", "voice conversion: correlation of the normalised log-F0 contour with the source's (intonation kept)", True
    ),
}
GROUP_METRICS = {
    # diversity: more spread across seeds is what FlashSpeech's stochastic prosody is for
    "seed_f0_mean_std_st": _info("semitones", "std over seeds of utterance mean log-F0", higher=True),
    "seed_f0_range_std_st": _info("semitones", "std over seeds of the F0 range", higher=True),
    "seed_duration_std_s": _info("s", "std over seeds of utterance duration", higher=True),
    "seed_contour_dist_st": _info("semitones", "mean pairwise RMS distance of time-normalised F0 contours", True),
}
JSD_METRICS = {
    "pitch_jsd": _info("bits", "JSD of voiced log-F0 histograms, generated vs ground truth", higher=False),
    "duration_jsd": _info("bits", "JSD of phone-duration histograms vs ground truth (phone level only)", False),
    "utterance_duration_jsd": _info("bits", "JSD of utterance lengths (0.5 s bins) vs ground truth", False),
    **{
        f"{name}_floor": _info("bits", f"ground truth's split-half {name}: the sampling floor of {name}")
        for name in ("pitch_jsd", "duration_jsd", "utterance_duration_jsd")
    },
    "jsd_items": _info("utterances", "utterances per side of each JSD (per seed: seeds are compared one by one)"),
    "jsd_floor_items": _info("items", "ground-truth items per half of the split-half floors"),
}


@dataclass(frozen=True)
class ProsodyOptions(SuiteOptions):
    """What `[suites.prosody]` sets: how F0 is extracted (a table of F0Config) and the contour resolution."""

    f0: F0Config = DEFAULT_F0
    contour_points: int = CONTOUR_POINTS


@register
class ProsodySuite(Suite):
    """F0 statistics, seed diversity and the FlashSpeech prosody JSD (pyworld DIO + StoneMask)."""

    name = "prosody"
    Options = ProsodyOptions
    needs = frozenset({Need.GENERATED, Need.SEEDS})
    optional_needs = frozenset({Need.TARGET, Need.SOURCE})  # the JSD's reference distribution; vc's source contour
    aggregate_metrics = JSD_METRICS
    metrics: ClassVar[dict[str, MetricInfo]] = {**SAMPLE_METRICS, **GROUP_METRICS, **JSD_METRICS}

    def __init__(
        self, device: str = "cpu", batch_size: int = 8, f0: F0Config = DEFAULT_F0, contour_points: int = CONTOUR_POINTS
    ):
        super().__init__(device=device, batch_size=batch_size)
        self.f0 = f0 if isinstance(f0, F0Config) else from_table(F0Config, f0, "f0")  # a config's table
        self.contour_points = contour_points
        self._features: dict[tuple[str, str, int], UtteranceProsody] = {}
        self._targets: dict[str, dict[str, Any]] = {}  # target path -> details (or {"target_error": ...})
        self._sources: dict[str, F0Track | str] = {}  # a vc source's path -> its F0 track (or why it has none)

    def _load(self) -> None:
        if pyworld_version() is None:
            raise SuiteError("prosody: pyworld is not installed; `pip install pyworld` (builds with a C++ compiler)")

    def describe(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "backend": f"pyworld {pyworld_version()}",
            "f0": self.f0.describe(),
            "pitch_bins": f"{PITCH_BINS} one-semitone bins from 50 Hz (end bins take values outside)",
            "phone_duration_bins": f"1-frame bins 0..{PHONE_MAX_FRAMES} at 80 Hz plus overflow",
            "utterance_duration_bins": f"{UTTERANCE_BIN_S} s bins to 30 s plus overflow",
            "jsd": f"base 2 (0..1), epsilon {JSD_EPS:g} per bin",
            "jsd_metrics": ", ".join(KINDS),
            "jsd_counts": "per seed, the same items on both sides; mean over seeds",
            "jsd_floor": f"ground truth split-half, {FLOOR_SPLITS} random splits (numpy seed {FLOOR_SEED}), n//2 each",
            "contour": f"voiced frames, linear interpolation to {self.contour_points} points, RMS in semitones",
            "std": "ddof=1 across seeds",
            "f0_corr_source": (
                "Pearson r of per-utterance z-normalised log-F0, generated mapped onto the source's frames by linear "
                f"time scaling, over frames voiced in both (at least {MIN_CORRELATION_FRAMES})"
            ),
        }

    def _track(self, samples: np.ndarray, sample_rate: int) -> F0Track:
        return extract_f0(samples, sample_rate, self.f0)

    def _target_details(self, sample: Sample) -> dict[str, Any]:
        item = sample.item
        out: dict[str, Any] = {}
        if "target_durations" in item.meta:
            try:
                phones = phone_durations(item.meta["target_durations"], item.meta.get("target_phonemes"))
                out["target_phone_dur_hist"] = phone_duration_counts(phones).tolist()
            except (TypeError, ValueError) as exc:
                out["target_durations_error"] = f"{type(exc).__name__}: {exc}"
        if item.target_audio is None:
            return out
        if item.target_audio not in self._targets:
            try:
                rate = self.f0.sample_rate
                samples = item.load_target(rate)
                track = self._track(samples, rate)
                duration = len(samples) / rate
                feats = utterance_prosody(track, duration)
                self._targets[item.target_audio] = {
                    "target_pitch_hist": pitch_counts(track.f0).tolist(),
                    "target_duration_s": duration,
                    "target_f0_mean_hz": feats.f0_mean_hz,
                    "target_voiced_fraction": feats.voiced_fraction,
                }
            except Exception as exc:  # a bad target must not fail the generated sample
                self._targets[item.target_audio] = {"target_error": f"{type(exc).__name__}: {exc}"}
        return {**out, **self._targets[item.target_audio]}

    def _score_one(self, sample: Sample) -> ItemScore:
        track = self._track(sample.audio, sample.sample_rate)
        phones = None
        if sample.meta.get("durations") is not None:
            phones = phone_durations(sample.meta["durations"], sample.meta.get("phonemes"))
        feats = utterance_prosody(track, sample.duration, phones)
        self._features[sample.key] = feats
        details: dict[str, Any] = {"text": sample.item.text, "voiced_frames": int(track.voiced.sum())}
        details["pitch_hist"] = pitch_counts(track.f0).tolist()
        if phones is not None:
            details["phone_dur_hist"] = phone_duration_counts(phones).tolist()
        if feats.f0_mean_hz is None:
            details["note"] = "no voiced frames: F0 metrics left out"
        details.update(self._target_details(sample))
        metrics = feats.metrics()
        if sample.item.source_audio is not None:
            self._source_correlation(sample, track, metrics, details)
        return ItemScore(self.name, sample.system, sample.item.id, sample.seed, metrics=metrics, details=details)

    def _source_correlation(
        self, sample: Sample, track: F0Track, metrics: dict[str, float], details: dict[str, Any]
    ) -> None:
        """A conversion's `f0_corr_source`, or the reason it has none in the details (the row is still scored)."""
        path = str(sample.item.source_audio)
        if path not in self._sources:
            try:
                rate = self.f0.sample_rate
                self._sources[path] = self._track(sample.item.load_source(rate), rate)
            except Exception as exc:  # a bad source must not fail the generated sample
                self._sources[path] = f"source unusable: {type(exc).__name__}: {exc}"
        source = self._sources[path]
        if isinstance(source, str):
            details["f0_corr_source"] = source
            return
        r, frames = f0_correlation(track, source)
        details["f0_corr_frames"] = frames
        if r is None:
            details["f0_corr_source"] = f"{frames} frames voiced in both (< {MIN_CORRELATION_FRAMES}) or a flat contour"
        else:
            metrics["f0_corr_source"] = r

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        return [self._score_one(s) for s in samples]

    def score(
        self, samples: Sequence[Sample], progress: bool = False, context: Sequence[Sample] | None = None
    ) -> list[ItemScore]:
        """Per-sample rows (failures isolated by `Suite.score`), then one diversity row per (system, item)."""
        self._features.clear()
        try:
            rows = super().score(samples, progress=progress)
            groups = diversity_rows(self.name, samples, rows, lambda s: self._features.get(s.key), self.contour_points)
        finally:
            self._features.clear()
        return rows + groups

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        """Means of the per-sample and per-group metrics, counts, and the pitch / duration JSD."""
        per_sample = [s for s in scores if s.seed is not None]
        groups = [s for s in scores if s.seed is None]
        out: dict[str, float] = {
            "items": float(len(per_sample)),
            "failed": float(sum(not s.ok for s in per_sample)),
            "groups": float(len(groups)),
            "groups_failed": float(sum(not s.ok for s in groups)),
        }
        for metric in (*SAMPLE_METRICS, *GROUP_METRICS):
            values = [s.metrics[metric] for s in scores if s.ok and np.isfinite(s.metrics.get(metric, np.nan))]
            if values:
                out[metric] = float(np.mean(values))
        jsd = system_jsd(per_sample)
        for metric in JSD_METRICS:
            if not metric.endswith("_items"):
                out[metric] = jsd.values.get(metric, float("nan"))
        out["jsd_items"], out["jsd_floor_items"] = float(jsd.items), float(jsd.floor_items)
        return out

    def aggregate_notes(self, scores: Sequence[ItemScore]) -> dict[str, str]:
        """Why a JSD or its floor is unavailable, whether the JSDs compare different counts, and why conversions
        have no F0 correlation."""
        per_sample = [s for s in scores if s.seed is not None]
        notes = dict(system_jsd(per_sample).notes)
        reasons = [str(s.details["f0_corr_source"]) for s in per_sample if s.ok and "f0_corr_source" in s.details]
        if reasons and not any("f0_corr_source" in s.metrics for s in per_sample if s.ok):
            notes["f0_corr_source"] = max(set(reasons), key=reasons.count)
        return notes
