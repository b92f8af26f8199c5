"""The embedded `real` test set: real human speech from Debian's pocketsphinx-testdata (see PROVENANCE.md)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bench.testsets.manifest import load_manifest
from flashspeech.foundation.audio import audio_info, read_audio

REAL_DIR = Path(__file__).resolve().parents[3] / "bench" / "testsets" / "assets" / "real"
MANIFEST = REAL_DIR / "real.jsonl"
TRANSCRIPTS = REAL_DIR / "transcripts.tsv"
EXPECTED_ITEMS = 12
EXPECTED_PER_SPEAKER = {"librivox": 5, "cards": 5, "cmu": 2}
MIN_RMS = 1e-3  # full scale is 1.0; the quietest clip is about 0.028


def _transcripts() -> dict[str, dict[str, str]]:
    with TRANSCRIPTS.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return {row["file"]: row for row in rows}


TRANSCRIPT_ROWS = _transcripts()
WAVS = sorted(p.name for p in REAL_DIR.glob("*.wav"))


def test_manifest_loads_without_problems():
    manifest = load_manifest(MANIFEST)
    assert manifest.problems == []
    assert len(manifest) == EXPECTED_ITEMS
    assert {item.id for item in manifest.items} == {f"real-{Path(w).stem}" for w in WAVS}


def test_transcripts_cover_every_wav():
    assert list(next(iter(TRANSCRIPT_ROWS.values())).keys()) == [
        "file",
        "speaker",
        "text",
        "source",
        "duration_s",
    ]
    assert sorted(TRANSCRIPT_ROWS) == WAVS
    counts: dict[str, int] = {}
    for row in TRANSCRIPT_ROWS.values():
        counts[row["speaker"]] = counts.get(row["speaker"], 0) + 1
        assert row["file"].startswith(row["speaker"] + "_")
        assert row["text"].strip() and "(" not in row["text"] and "<s>" not in row["text"]
        assert row["source"].startswith("/usr/share/pocketsphinx/test/data/")
    assert counts == EXPECTED_PER_SPEAKER


@pytest.mark.parametrize("name", WAVS)
def test_wav_format_level_and_duration(name: str):
    path = REAL_DIR / name
    info = audio_info(path)
    assert info.sample_rate == 16_000
    assert info.channels == 1
    audio = read_audio(path, sample_rate=None)
    assert audio.source_rate == 16_000 and audio.resampler is None
    rms = float(np.sqrt(np.mean(np.square(audio.samples, dtype=np.float64))))
    assert rms > MIN_RMS, f"{name} is (nearly) silent: RMS {rms:.5f}"
    assert abs(info.duration - float(TRANSCRIPT_ROWS[name]["duration_s"])) < 1e-3


def test_items_match_transcripts_and_prompts_are_other_clips_of_same_speaker():
    manifest = load_manifest(MANIFEST)
    for item in manifest.items:
        target = Path(item.target_audio)
        prompt = Path(item.prompt_audio)
        assert target.parent == REAL_DIR and prompt.parent == REAL_DIR
        assert prompt.name != target.name
        target_row = TRANSCRIPT_ROWS[target.name]
        prompt_row = TRANSCRIPT_ROWS[prompt.name]
        assert item.id == f"real-{target.stem}"
        assert item.speaker == target_row["speaker"] == prompt_row["speaker"]
        assert item.text == target_row["text"]
        assert item.prompt_text == prompt_row["text"]
        assert item.prompt_offset_s == 0.0 and item.prompt_duration_s is None
    # every clip is used exactly once as a target and exactly once as a prompt
    assert sorted(Path(i.target_audio).name for i in manifest.items) == WAVS
    assert sorted(Path(i.prompt_audio).name for i in manifest.items) == WAVS


def test_total_duration_is_sane():
    total = sum(audio_info(REAL_DIR / name).duration for name in WAVS)
    assert 30.0 <= total <= 60.0
    assert total == pytest.approx(sum(float(r["duration_s"]) for r in TRANSCRIPT_ROWS.values()), abs=1e-3)
