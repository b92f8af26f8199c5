"""The "defects" suite: failed-generation detection from the generated audio and the item's text (no model).

Each scored sample gets one 0/1 metric per flag (the aggregate mean is the rate, `<flag>_count` the number of
items) and `defective` = 1 when any flag fired; the row's details carry what was measured and name the flags that
fired (`flags`). Every threshold is a `DefectThresholds` field, recorded in `describe()`.

Analysis, at the clip's own sample rate: after a 100 Hz high-pass (DC and rumble are not sound), the energy of
each non-overlapping 20 ms frame in dBFS; the speech level is the 95th percentile of these, the noise floor the
10th. A frame is silent when its energy is below the highest of: speech level - `silence_db` (35 dB),
`silence_floor_dbfs` (-70 dBFS), and noise floor + `noise_margin_db` (8 dB) capped at speech level -
`speech_margin_db` (15 dB): steady background noise is silence, speech is not. Sounding runs shorter than
`min_sound_s` (60 ms: clicks) count as silence. The sounding part runs from the first to the last sounding frame.

- ``long_silence``: the longest silence inside the sounding part is longer than `long_silence_s` (1 s);
- ``edge_silence``: the silence before or after the sounding part is longer than `edge_silence_s` (1 s; the
  human recordings of the `real` test set reach 0.9 s);
- ``noise_tail``: the sounding part ends in more than `noise_tail_s` (0.5 s) of steady sound, frames whose energy
  varies by at most `steady_db` (6 dB) within `steady_window_s` (0.3 s) around them. Speech is modulated by its
  syllables (typically by 10 dB or more within 0.3 s); stationary noise, hiss, hum or a stuck buzz is not;
- ``clipping``: more than `clip_fraction` (0.1 %) of the samples at or beyond `clip_level` (0.999) of full scale,
  or inside flat tops (runs of `flat_run_s`, 0.5 ms, or more of identical samples at half the peak or more);
- ``truncated``: the sounding part is shorter than `truncated_ratio` (0.5) x the text read fast, its letters and
  digits at `fast_chars_per_s` (20 per second; read English runs at about 12-15);
- ``runaway``: the sounding part is longer than `runaway_ratio` (2.5) x the text read slowly (`slow_chars_per_s`,
  8 per second) + `runaway_margin_s` (2 s).

The duration flags catch gross failures only (a few missing words are a WER matter); an item whose text has no
letter or digit gets none (the row says why). Empty or silent audio has no sounding part: it is truncated. Audio
that is not mono or has non-finite samples is an error row: counted as a failure, never dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from flashspeech.foundation.fields import from_table
from suites.base import ItemScore, MetricInfo, Need, Sample, Suite, SuiteOptions, register

FLAGS = ("long_silence", "edge_silence", "noise_tail", "clipping", "truncated", "runaway")
TEXT_FLAGS = ("truncated", "runaway")  # need the item's text
_EPS = 1e-12  # energy floor: -120 dBFS for digital silence


@dataclass(frozen=True)
class DefectThresholds:
    """Every setting of the analysis and the flags (seconds, dB, fractions of full scale, characters per second)."""

    frame_s: float = 0.02
    highpass_hz: float = 100.0
    silence_db: float = 35.0
    noise_margin_db: float = 8.0
    speech_margin_db: float = 15.0
    silence_floor_dbfs: float = -70.0
    min_sound_s: float = 0.06
    long_silence_s: float = 1.0
    edge_silence_s: float = 1.0
    noise_tail_s: float = 0.5
    steady_window_s: float = 0.3
    steady_db: float = 6.0
    clip_level: float = 0.999
    clip_fraction: float = 0.001
    flat_run_s: float = 0.0005
    fast_chars_per_s: float = 20.0
    truncated_ratio: float = 0.5
    slow_chars_per_s: float = 8.0
    runaway_ratio: float = 2.5
    runaway_margin_s: float = 2.0

    def __post_init__(self) -> None:
        bad = [f.name for f in dataclasses.fields(self) if not (np.isfinite(getattr(self, f.name)))]
        positive = ("frame_s", "fast_chars_per_s", "slow_chars_per_s", "clip_level", "steady_window_s")
        bad += [name for name in positive if not getattr(self, name) > 0]
        if bad:
            raise ValueError(f"defects: {', '.join(bad)} must be finite (and > 0 for rates, frames and levels)")


@dataclass(frozen=True)
class DefectsOptions(DefectThresholds, SuiteOptions):
    """What `[suites.defects]` sets: the batch size and every threshold."""


@dataclass(frozen=True)
class Measurements:
    """What the analysis of one clip found (seconds unless named otherwise)."""

    audio_s: float
    speech_s: float  # first to last sounding frame
    leading_silence_s: float
    trailing_silence_s: float
    longest_pause_s: float
    steady_tail_s: float
    clipped_fraction: float
    flat_top_fraction: float
    speech_level_dbfs: float
    silence_threshold_dbfs: float
    text_chars: int

    def flags(self, t: DefectThresholds) -> dict[str, float]:
        """One 0/1 value per flag; no duration flags without text."""
        out = {
            "long_silence": self.longest_pause_s > t.long_silence_s,
            "edge_silence": max(self.leading_silence_s, self.trailing_silence_s) > t.edge_silence_s,
            "noise_tail": self.steady_tail_s > t.noise_tail_s,
            "clipping": max(self.clipped_fraction, self.flat_top_fraction) > t.clip_fraction,
        }
        if self.text_chars:
            out["truncated"] = self.speech_s < t.truncated_ratio * self.expected_min_s(t)
            out["runaway"] = self.speech_s > t.runaway_ratio * self.expected_max_s(t) + t.runaway_margin_s
        return {name: float(fired) for name, fired in out.items()}

    def expected_min_s(self, t: DefectThresholds) -> float:
        return self.text_chars / t.fast_chars_per_s

    def expected_max_s(self, t: DefectThresholds) -> float:
        return self.text_chars / t.slow_chars_per_s


def text_chars(text: str) -> int:
    """Letters and digits of a text (`str.isalnum`, any script): what its spoken duration scales with. The default
    rates are for alphabetic scripts; a syllabic script (Chinese) reads far fewer characters per second."""
    return sum(ch.isalnum() for ch in text)


def frame_energies(audio: np.ndarray, sample_rate: int, frame_s: float, highpass_hz: float = 0.0) -> np.ndarray:
    """Energy of each whole non-overlapping frame, in dBFS (digital silence: -120), above `highpass_hz`."""
    size = max(1, round(frame_s * sample_rate))
    n = len(audio) // size
    signal = np.asarray(audio[: n * size], dtype=np.float64)
    if highpass_hz > 0 and n:
        from scipy.signal import butter, sosfilt

        signal = sosfilt(butter(4, highpass_hz, "highpass", fs=sample_rate, output="sos"), signal)
    frames = signal.reshape(n, size)
    return 10.0 * np.log10(np.mean(frames**2, axis=1) + _EPS)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def sounding(db: np.ndarray, t: DefectThresholds) -> tuple[np.ndarray, float, float]:
    """(sounding-frame mask, speech level, silence threshold) of frame energies in dBFS."""
    if db.size == 0:
        return np.zeros(0, bool), -120.0, t.silence_floor_dbfs
    level, floor = float(np.percentile(db, 95)), float(np.percentile(db, 10))
    threshold = max(
        level - t.silence_db, t.silence_floor_dbfs, min(floor + t.noise_margin_db, level - t.speech_margin_db)
    )
    mask = db >= threshold
    shortest = round(t.min_sound_s / t.frame_s)
    for start, stop in _runs(mask):
        if stop - start < shortest:
            mask[start:stop] = False
    return mask, level, threshold


def steady_tail(db: np.ndarray, first: int, last: int, t: DefectThresholds) -> int:
    """Frames of steady energy (range <= steady_db within steady_window_s, inside [first, last]) ending at `last`."""
    half = max(1, round(t.steady_window_s / t.frame_s / 2))
    count = 0
    for i in range(last, first - 1, -1):
        window = db[max(first, i - half) : min(last, i + half) + 1]
        if float(window.max() - window.min()) > t.steady_db:
            break
        count += 1
    return count


def clipped(audio: np.ndarray, sample_rate: int, t: DefectThresholds) -> tuple[float, float]:
    """(fraction of samples at or beyond clip_level, fraction inside flat tops at half the peak or more)."""
    if audio.size == 0:
        return 0.0, 0.0
    magnitude = np.abs(audio)
    full = float(np.mean(magnitude >= t.clip_level))
    peak = float(magnitude.max())
    if peak < 0.01 or audio.size < 2:  # too quiet for flat tops to mean anything (quantisation steps repeat)
        return full, 0.0
    runs = np.array(_runs(np.diff(audio) == 0), dtype=np.int64).reshape(-1, 2)  # sample i == sample i + 1
    lengths = runs[:, 1] - runs[:, 0] + 1  # samples in each run of identical values
    flat = (lengths >= max(2, round(t.flat_run_s * sample_rate))) & (magnitude[runs[:, 0]] >= 0.5 * peak)
    return full, float(lengths[flat].sum()) / audio.size


def measure(audio: np.ndarray, sample_rate: int, text: str, t: DefectThresholds) -> Measurements:
    """Analyse one mono clip (see the module docstring)."""
    db = frame_energies(audio, sample_rate, t.frame_s, t.highpass_hz)
    mask, level, threshold = sounding(db, t)
    frame = max(1, round(t.frame_s * sample_rate)) / sample_rate
    audio_s = len(audio) / sample_rate
    on = np.flatnonzero(mask)
    if on.size == 0:
        lead = trail = audio_s
        speech = pause = tail = 0.0
    else:
        first, last = int(on[0]), int(on[-1])
        lead, trail = first * frame, max(0.0, audio_s - (last + 1) * frame)
        speech = (last + 1 - first) * frame
        gaps = [stop - start for start, stop in _runs(~mask[first : last + 1])]
        pause = max(gaps, default=0) * frame
        tail = steady_tail(db, first, last, t) * frame
    full, flat = clipped(audio, sample_rate, t)
    return Measurements(
        audio_s=audio_s,
        speech_s=speech,
        leading_silence_s=lead,
        trailing_silence_s=trail,
        longest_pause_s=pause,
        steady_tail_s=tail,
        clipped_fraction=full,
        flat_top_fraction=flat,
        speech_level_dbfs=level,
        silence_threshold_dbfs=threshold,
        text_chars=text_chars(text),
    )


def _flag(what: str) -> MetricInfo:
    return MetricInfo(higher_is_better=False, unit="fraction", description=f"1 when {what} (aggregate: the rate)")


def _count(flag: str) -> MetricInfo:
    return MetricInfo(higher_is_better=False, unit="items", description=f"scored items flagged {flag}")


@register
class DefectsSuite(Suite):
    """Failed-generation flags per sample: long pauses, edge silence, noise tails, clipping, wrong length."""

    name: ClassVar[str] = "defects"
    Options: ClassVar[type] = DefectsOptions
    needs: ClassVar[frozenset[Need]] = frozenset({Need.GENERATED, Need.TEXT})
    rows_per_sample: ClassVar[bool] = True
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "long_silence": _flag("an internal pause is longer than long_silence_s"),
        "edge_silence": _flag("the leading or trailing silence is longer than edge_silence_s"),
        "noise_tail": _flag("the sound ends in more than noise_tail_s of steady, unmodulated sound"),
        "clipping": _flag("more than clip_fraction of the samples are at or beyond full scale, or flat-topped"),
        "truncated": _flag("the sounding part is much shorter than the text read fast"),
        "runaway": _flag("the sounding part is much longer than the text read slowly"),
        "defective": _flag("any flag fired"),
    }
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {
        "scored": MetricInfo(None, "items", "items analysed (the rates' denominator)"),
        **{f"{name}_count": _count(name) for name in (*FLAGS, "defective")},
    }

    def __init__(self, device: str = "cpu", batch_size: int = 8, **thresholds: Any):
        super().__init__(device=device, batch_size=batch_size)
        self.thresholds = from_table(DefectThresholds, thresholds, what="the defects suite")

    def describe(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "method": "frame energies after a high-pass, at the clip's own rate (rules: suites.defects docstring)",
            "thresholds": dataclasses.asdict(self.thresholds),
            "defective": "1 when any of " + ", ".join(FLAGS) + " fired",
        }

    def _score_one(self, sample: Sample) -> ItemScore:
        audio = np.asarray(sample.audio)
        if audio.ndim != 1:
            raise ValueError(f"generated audio is not mono (shape {audio.shape})")
        if not np.isfinite(audio).all():
            bad = int(audio.size - np.isfinite(audio).sum())
            raise ValueError(f"non-finite audio ({bad} of {audio.size} samples NaN or infinite)")
        t = self.thresholds
        m = measure(audio, sample.sample_rate, sample.item.text or "", t)
        metrics = m.flags(t)
        metrics["defective"] = float(any(metrics.values()))
        details: dict[str, Any] = {
            "flags": ", ".join(name for name in FLAGS if metrics.get(name)),
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in dataclasses.asdict(m).items()},
        }
        if m.text_chars:
            details.update(expected_min_s=round(m.expected_min_s(t), 3), expected_max_s=round(m.expected_max_s(t), 3))
        else:
            why = f"text {sample.item.text!r} has no letter or digit: no expected duration"
            details.update(dict.fromkeys(TEXT_FLAGS, why))
        return ItemScore(self.name, sample.system, sample.item.id, sample.seed, metrics=metrics, details=details)

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        return [self._score_one(s) for s in samples]

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        """Items, failed, scored; per flag the rate over the scored items that have it and `<flag>_count`."""
        ok = [s for s in scores if s.ok]
        out: dict[str, float] = {"items": float(len(scores)), "failed": float(len(scores) - len(ok))}
        out["scored"] = float(len(ok))
        for name in (*FLAGS, "defective"):
            values = [s.metrics[name] for s in ok if name in s.metrics]
            out[f"{name}_count"] = float(sum(values))
            if values:
                out[name] = float(np.mean(values))
        return out
