"""Audio I/O: reading any wav/flac to mono float32 at 16 kHz, clips, clear errors, atomic writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from flashspeech.foundation.audio import DEFAULT_RESAMPLER, AudioError, audio_info, read_audio, resample, write_wav
from flashspeech.foundation.files import write_text_atomic

SR = 16_000


def sine(freq: float, seconds: float, sr: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, sr: int) -> float:
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window))
    return float(np.argmax(spectrum) * sr / len(samples))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- reading and resampling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", ["wav", "flac"])
@pytest.mark.parametrize("sr", [8000, 22050, 44100])
def test_read_any_rate_to_16k(tmp_path, ext, sr):
    n = round(1.0 * sr)
    path = tmp_path / f"tone.{ext}"
    sf.write(path, sine(440.0, 1.0, sr), sr)

    audio = read_audio(path)

    assert audio.sample_rate == SR and audio.source_rate == sr
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert abs(len(audio.samples) - round(n * SR / sr)) <= 1
    assert abs(peak_hz(audio.samples, SR) - 440.0) <= 2.0
    assert audio.resampler == DEFAULT_RESAMPLER.describe()
    assert "torchaudio" in audio.resampler and "sinc_interp_hann" in audio.resampler
    assert audio.path == str(path)
    assert audio.duration == pytest.approx(1.0, abs=1 / SR)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_read_at_target_rate_records_no_resampler(tmp_path, ext):
    path = tmp_path / f"tone.{ext}"
    data = sine(1000.0, 0.5, SR)
    sf.write(path, data, SR)

    audio = read_audio(path)

    assert audio.resampler is None
    assert audio.sample_rate == audio.source_rate == SR
    np.testing.assert_allclose(audio.samples, data, atol=1 / 32768)  # only PCM_16 quantisation


def test_sample_rate_none_keeps_native_rate(tmp_path):
    path = tmp_path / "tone.wav"
    data = sine(300.0, 0.25, 22050)
    sf.write(path, data, 22050, subtype="FLOAT")

    audio = read_audio(path, sample_rate=None)

    assert audio.sample_rate == audio.source_rate == 22050
    assert audio.resampler is None
    np.testing.assert_array_equal(audio.samples, data)


def test_read_to_other_target_rate(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, sine(500.0, 1.0, SR), SR)

    audio = read_audio(path, sample_rate=24_000)

    assert audio.sample_rate == 24_000 and audio.source_rate == SR
    assert abs(len(audio.samples) - 24_000) <= 1
    assert audio.resampler is not None
    assert abs(peak_hz(audio.samples, 24_000) - 500.0) <= 2.0


def test_resample_function():
    x = sine(440.0, 1.0, 44100)
    same = resample(x.astype(np.float64), 44100, 44100)
    assert same.dtype == np.float32
    np.testing.assert_array_equal(same, x)

    y = resample(x, 44100, SR)
    assert y.dtype == np.float32
    assert abs(len(y) - round(len(x) * SR / 44100)) <= 1
    assert abs(peak_hz(y, SR) - 440.0) <= 2.0


def test_stereo_is_channel_mean(tmp_path):
    left = sine(440.0, 0.5, SR, amp=0.6)
    right = np.linspace(-0.3, 0.3, len(left), dtype=np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")

    audio = read_audio(path)

    assert audio_info(path).channels == 2
    assert audio.samples.ndim == 1 and len(audio.samples) == len(left)
    np.testing.assert_allclose(audio.samples, (left + right) / 2, atol=1e-7)


def test_int16_and_float_files_come_back_float32(tmp_path):
    ints = (sine(440.0, 0.2, SR) * 32767).astype(np.int16)
    sf.write(tmp_path / "int.wav", ints, SR, subtype="PCM_16")
    floats = sine(440.0, 0.2, SR)
    sf.write(tmp_path / "float.wav", floats, SR, subtype="FLOAT")

    a = read_audio(tmp_path / "int.wav")
    b = read_audio(tmp_path / "float.wav")

    assert a.samples.dtype == np.float32 and b.samples.dtype == np.float32
    np.testing.assert_allclose(a.samples, ints / 32768.0, atol=1e-7)  # scaled to [-1, 1), not raw ints
    np.testing.assert_array_equal(b.samples, floats)


def test_audio_info(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, np.zeros((22050, 2), dtype=np.float32), 44100)

    info = audio_info(path)

    assert (info.frames, info.sample_rate, info.channels) == (22050, 44100, 2)
    assert info.duration == pytest.approx(0.5)


# --- clips ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def ramp(tmp_path):
    """2 s at 8 kHz where sample i holds i / 16000 exactly (FLOAT wav): any cut is checkable sample by sample."""
    sr = 8000
    data = (np.arange(2 * sr) / 16000).astype(np.float32)
    path = tmp_path / "ramp.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    return path, data, sr


def test_offset_and_duration_cut_right_samples(ramp):
    path, data, sr = ramp

    clip = read_audio(path, sample_rate=None, offset_s=0.5, duration_s=0.25)
    assert clip.sample_rate == sr
    np.testing.assert_array_equal(clip.samples, data[4000:6000])

    tail = read_audio(path, sample_rate=None, offset_s=1.5)
    np.testing.assert_array_equal(tail.samples, data[12000:])

    whole = read_audio(path, sample_rate=None, duration_s=2.0)  # exactly to the end is fine
    np.testing.assert_array_equal(whole.samples, data)


def test_clip_then_resample_has_clip_length(ramp):
    path, _, _ = ramp
    clip = read_audio(path, offset_s=0.5, duration_s=1.0)
    assert clip.sample_rate == SR and abs(len(clip.samples) - SR) <= 1


@pytest.mark.parametrize(
    ("offset_s", "duration_s"),
    [(2.0, None), (3.0, 0.5), (1.5, 1.0), (0.0, 2.5)],
    ids=["offset-at-end", "offset-past-end", "runs-past-end", "too-long"],
)
def test_clip_outside_audio_raises(ramp, offset_s, duration_s):
    path, _, _ = ramp
    with pytest.raises(AudioError, match="outside the audio") as exc:
        read_audio(path, offset_s=offset_s, duration_s=duration_s)
    assert str(path) in str(exc.value)


# --- clear errors -----------------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    for fn in (audio_info, read_audio):
        with pytest.raises(AudioError, match="file not found") as exc:
            fn(path)
        assert str(path) in str(exc.value)


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        read_audio(tmp_path)


def test_empty_audio_zero_frames(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), SR)
    assert sf.info(path).frames == 0  # a valid header, no samples
    for fn in (audio_info, read_audio):
        with pytest.raises(AudioError, match="empty audio") as exc:
            fn(path)
        assert str(path) in str(exc.value)


@pytest.mark.parametrize("content", [b"", b"this is not a RIFF file at all" * 20], ids=["zero-bytes", "garbage"])
def test_unreadable_bytes_with_wav_name(tmp_path, content):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    for fn in (audio_info, read_audio):
        with pytest.raises(AudioError, match="unreadable audio") as exc:
            fn(path)
        assert str(path) in str(exc.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    data = sine(440.0, 0.1, SR)
    data[37] = bad
    path = tmp_path / "nan.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite") as exc:
        read_audio(path)
    assert str(path) in str(exc.value)


def test_non_finite_outside_clip_is_fine(tmp_path):
    data = sine(440.0, 1.0, SR)
    data[-1] = np.nan
    path = tmp_path / "nan_at_end.wav"
    sf.write(path, data, SR, subtype="FLOAT")
    clip = read_audio(path, duration_s=0.5)
    assert np.all(np.isfinite(clip.samples)) and len(clip.samples) == SR // 2


# --- writing ----------------------------------------------------------------------------------------------------------


def test_write_wav_round_trip(tmp_path):
    data = sine(440.0, 0.5, SR, amp=0.9)
    out = write_wav(tmp_path / "sub" / "out.wav", data, SR)  # creates the parent folder

    assert out == tmp_path / "sub" / "out.wav"
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (SR, 1, len(data), "PCM_16")
    back = read_audio(out)
    assert back.resampler is None
    np.testing.assert_allclose(back.samples, data, atol=1.0 / 32767)
    assert mode(out) == 0o644
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.wav"]


def test_write_wav_float_subtype_is_exact(tmp_path):
    data = sine(440.0, 0.1, SR)
    out = write_wav(tmp_path / "f.wav", data, SR, subtype="FLOAT")
    np.testing.assert_array_equal(sf.read(out, dtype="float32")[0], data)


def test_write_wav_overwrites(tmp_path):
    path = tmp_path / "o.wav"
    write_wav(path, np.zeros(100, dtype=np.float32), SR)
    write_wav(path, np.full(50, 0.5, dtype=np.float32), SR)
    assert sf.info(path).frames == 50
    assert mode(path) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["o.wav"]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_write_wav_refuses_non_finite(tmp_path, bad):
    data = sine(440.0, 0.1, SR)
    data[3] = bad
    path = tmp_path / "x.wav"
    with pytest.raises(AudioError, match="NaN or infinite") as exc:
        write_wav(path, data, SR)
    assert str(path) in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_write_wav_refuses_2d(tmp_path):
    path = tmp_path / "x.wav"
    with pytest.raises(AudioError, match="mono") as exc:
        write_wav(path, np.zeros((100, 2), dtype=np.float32), SR)
    assert str(path) in str(exc.value) and "(100, 2)" in str(exc.value)
    assert list(tmp_path.iterdir()) == []


def test_write_wav_failure_leaves_target_untouched(tmp_path, monkeypatch):
    path = tmp_path / "keep.wav"
    original = sine(440.0, 0.2, SR)
    write_wav(path, original, SR)
    before = path.read_bytes()
    seen_tmp: list[Path] = []

    def broken_write(file, data, samplerate, **kwargs):
        tmp = Path(file)
        assert tmp.exists() and tmp.parent == tmp_path and tmp != path  # writes go to a sibling temp file
        seen_tmp.append(tmp)
        tmp.write_bytes(b"RIFF half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", broken_write)
    with pytest.raises(RuntimeError, match="disk full"):
        write_wav(path, np.zeros(1000, dtype=np.float32), SR)

    assert seen_tmp, "the fake soundfile.write was never called"
    assert path.read_bytes() == before
    assert not seen_tmp[0].exists()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]


def test_write_text_atomic(tmp_path):
    path = tmp_path / "a" / "b.txt"
    assert write_text_atomic(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert mode(path) == 0o644
    write_text_atomic(path, "second")
    assert path.read_text(encoding="utf-8") == "second"
    assert [p.name for p in path.parent.iterdir()] == ["b.txt"]


def test_write_text_atomic_failure_leaves_target_untouched(tmp_path, monkeypatch):
    path = tmp_path / "t.txt"
    write_text_atomic(path, "old")

    def broken_replace(src, dst):
        raise OSError("replace failed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="replace failed"):
        write_text_atomic(path, "new")
    monkeypatch.undo()

    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.txt"]


@pytest.mark.parametrize(("offset", "duration"), [(float("nan"), None), (-0.1, None), (0.0, -1.0), (0.0, float("inf"))])
def test_bad_clip_bounds_are_audio_errors(tmp_path, offset, duration):
    path = write_wav(tmp_path / "a.wav", np.zeros(1600, np.float32) + 0.1, 16000)
    with pytest.raises(AudioError, match=r"a\.wav: clip (offset|duration) must be"):
        read_audio(path, offset_s=offset, duration_s=duration)
