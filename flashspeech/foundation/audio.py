"""Audio I/O: read any wav/flac to mono float32 at a requested rate, write wavs atomically.

Resampling goes through torchaudio's windowed-sinc resampler; the exact settings are recorded on every
`Audio` so a report can say how its 16 kHz inputs were made (kits differ here and it moves SIM scores).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from flashspeech.foundation.files import atomic_path

DEFAULT_SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """Audio that cannot be used, with the file and the reason in the message."""


@dataclass(frozen=True)
class Resampler:
    """torchaudio.functional.resample settings (its defaults)."""

    method: str = "sinc_interp_hann"
    lowpass_filter_width: int = 6
    rolloff: float = 0.99

    def describe(self) -> str:
        return (
            f"torchaudio.functional.resample(method={self.method}, "
            f"lowpass_filter_width={self.lowpass_filter_width}, rolloff={self.rolloff})"
        )


DEFAULT_RESAMPLER = Resampler()


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples plus where they came from."""

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    resampler: str | None = None  # None when no resampling was needed
    path: str | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header facts of an audio file; raises AudioError if it is missing, unreadable or empty."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    try:
        info = sf.info(str(path))
    except Exception as exc:  # libsndfile raises several types
        raise AudioError(f"{path}: unreadable audio ({exc})") from exc
    if info.frames <= 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    return AudioInfo(frames=int(info.frames), sample_rate=int(info.samplerate), channels=int(info.channels))


def resample(
    samples: np.ndarray, source_rate: int, target_rate: int, resampler: Resampler = DEFAULT_RESAMPLER
) -> np.ndarray:
    """Resample mono float32 samples with torchaudio."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    import torch

    from flashspeech.foundation.compat import import_torchaudio

    F = import_torchaudio().functional
    out = F.resample(
        torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)),
        source_rate,
        target_rate,
        lowpass_filter_width=resampler.lowpass_filter_width,
        rolloff=resampler.rolloff,
        resampling_method=resampler.method,
    )
    return out.numpy()


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = DEFAULT_SAMPLE_RATE,
    *,
    offset_s: float = 0.0,
    duration_s: float | None = None,
    resampler: Resampler = DEFAULT_RESAMPLER,
) -> Audio:
    """Read a wav/flac (any rate, any channel count) as mono float32, resampled to `sample_rate`.

    `offset_s` / `duration_s` cut a clip (in seconds of the source). `sample_rate=None` keeps the
    file's rate. Raises AudioError naming the file for missing, unreadable, empty or non-finite audio.
    """
    info = audio_info(path)
    if not math.isfinite(offset_s) or offset_s < 0:
        raise AudioError(f"{path}: clip offset must be a finite number >= 0, got {offset_s!r}")
    if duration_s is not None and (not math.isfinite(duration_s) or duration_s <= 0):
        raise AudioError(f"{path}: clip duration must be a finite number > 0, got {duration_s!r}")
    start = round(offset_s * info.sample_rate)
    stop = None if duration_s is None else start + round(duration_s * info.sample_rate)
    if start < 0 or start >= info.frames or (stop is not None and stop > info.frames + 1):
        raise AudioError(
            f"{path}: clip [{offset_s:.3f}s, {'end' if duration_s is None else f'{offset_s + duration_s:.3f}s'}]"
            f" is outside the audio (duration {info.duration:.3f}s)"
        )
    try:
        data, sr = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio ({exc})") from exc
    if data.size == 0:
        raise AudioError(f"{path}: empty audio (0 samples)")
    mono = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    target = sr if sample_rate is None else sample_rate
    used = None if target == sr else resampler.describe()
    mono = resample(mono, sr, target, resampler)
    return Audio(samples=mono, sample_rate=target, source_rate=sr, resampler=used, path=str(path))


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    """Write mono audio atomically (a crash never leaves a half-written file at `path`)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"{path}: expected mono samples, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: refusing to write NaN or infinite samples")
    tmp, final = atomic_path(path)
    try:
        sf.write(str(tmp), samples, sample_rate, subtype=subtype, format="WAV")
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
