"""F0 extraction with WORLD (pyworld): DIO + StoneMask at 80 Hz, 50-1100 Hz.

Why these settings:

- **pyworld**, as the FlashSpeech paper ("pitch from PyWorld") and the NaturalSpeech 2 / Amphion feature
  code it builds on.
- **DIO + StoneMask**, not Harvest: it is the pair that Amphion's pyworld pitch features use, it runs about
  40x faster (about 0.005 s per audio second on one CPU core vs 0.2 s), and Harvest marks steady pure
  tones as unvoiced, so it cannot be checked against known-F0 signals. DIO misses some weakly voiced frames
  of real speech (a lower voiced fraction than Harvest); every system and the reference are measured
  with the same extractor, so distributions stay comparable.
- **12.5 ms frames** (80 Hz: hop 200 at 16 kHz), the frame rate of FlashSpeech's durations and pitch.
- **50-1100 Hz** floor/ceiling: the range of FlashSpeech's 512 log-spaced pitch bins.

Audio is resampled to 16 kHz first (the repository's torchaudio resampler). Unvoiced frames have F0 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REFERENCE_HZ = 55.0  # semitone values are relative to A1 (only differences are ever reported)


@dataclass(frozen=True)
class F0Config:
    """How F0 is extracted (recorded in the suite's `describe()`)."""

    sample_rate: int = 16_000
    frame_period_ms: float = 12.5
    f0_floor: float = 50.0
    f0_ceil: float = 1100.0
    method: str = "dio"  # "dio" (DIO + StoneMask refinement) or "harvest"

    def __post_init__(self) -> None:
        if self.method not in ("dio", "harvest"):
            raise ValueError(f"unknown F0 method {self.method!r}; use 'dio' or 'harvest'")
        if not 0 < self.f0_floor < self.f0_ceil < self.sample_rate / 2:
            raise ValueError(f"need 0 < f0_floor < f0_ceil < Nyquist, got {self.f0_floor}, {self.f0_ceil}")
        if self.frame_period_ms <= 0:
            raise ValueError(f"frame period must be > 0 ms, got {self.frame_period_ms}")

    def describe(self) -> str:
        algo = "DIO + StoneMask" if self.method == "dio" else "Harvest"
        return (
            f"pyworld {algo}, {self.frame_period_ms} ms frames, f0 {self.f0_floor:g}-{self.f0_ceil:g} Hz, "
            f"audio at {self.sample_rate} Hz"
        )


DEFAULT_F0 = F0Config()


@dataclass(frozen=True)
class F0Track:
    """F0 per frame in Hz (0 where unvoiced)."""

    f0: np.ndarray
    frame_period_s: float

    @property
    def voiced(self) -> np.ndarray:
        return self.f0 > 0

    @property
    def voiced_hz(self) -> np.ndarray:
        return self.f0[self.voiced]

    @property
    def voiced_fraction(self) -> float:
        return float(self.voiced.mean()) if len(self.f0) else 0.0

    def semitones(self) -> np.ndarray:
        """Voiced frames in semitones re `REFERENCE_HZ`, in time order."""
        return hz_to_semitones(self.voiced_hz)


def hz_to_semitones(hz: np.ndarray | float) -> np.ndarray:
    return 12.0 * np.log2(np.asarray(hz, dtype=np.float64) / REFERENCE_HZ)


def pyworld_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("pyworld")
    except Exception:
        return None


def extract_f0(samples: np.ndarray, sample_rate: int, config: F0Config = DEFAULT_F0) -> F0Track:
    """F0 of mono audio; raises ValueError for empty, too short or non-finite audio."""
    import pyworld

    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono audio (1-D), got shape {samples.shape}")
    if sample_rate != config.sample_rate:
        from flashspeech.foundation.audio import resample

        samples = resample(samples.astype(np.float32), sample_rate, config.sample_rate)
    x = np.ascontiguousarray(samples, dtype=np.float64)
    hop = config.sample_rate * config.frame_period_ms / 1000.0
    if len(x) < 2 * hop:
        raise ValueError(f"audio too short for F0: {len(x)} samples (< 2 frames of {hop:g})")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio contains NaN or infinite samples")
    kwargs = {"f0_floor": config.f0_floor, "f0_ceil": config.f0_ceil, "frame_period": config.frame_period_ms}
    if config.method == "dio":
        f0, times = pyworld.dio(x, config.sample_rate, **kwargs)
        f0 = pyworld.stonemask(x, f0, times, config.sample_rate)
    else:
        f0, _ = pyworld.harvest(x, config.sample_rate, **kwargs)
    f0 = np.where(np.isfinite(f0) & (f0 > 0), f0, 0.0)
    return F0Track(f0=f0, frame_period_s=config.frame_period_ms / 1000.0)
