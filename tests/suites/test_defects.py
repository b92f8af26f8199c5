"""The "defects" suite on synthetic speech-like audio (clean and broken on purpose) and on the real clips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.results import GenerationRecord, aggregates_table, items_table
from flashspeech.foundation.audio import read_audio
from suites import build_suite
from suites.base import SUITES, ItemScore, Sample
from suites.defects import FLAGS, DefectsSuite
from suites.item import EvalItem

SR = 16_000
REAL = Path(__file__).resolve().parents[2] / "bench" / "testsets" / "assets" / "real"
TEXT = "He was not an ill disposed young man, and he might even have been made amiable himself."
TEXTS = ("Ten of clubs.", "Go forward ten meters.", TEXT)


def speech_like(text: str, seed: int = 0, chars_per_s: float = 13.0, sr: int = SR) -> np.ndarray:
    """Speech-like audio for `text`: per word, syllables of ~0.2 s (a harmonic series on a wobbling 100-150 Hz f0
    under a Hann envelope), 60-140 ms gaps between words, 0.2 s / 0.15 s of room noise (-60 dBFS) at the edges;
    peak 0.5, `chars_per_s` letters per second of speech."""
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(0.2 * sr))]
    for word in text.split():
        duration = sum(ch.isalnum() for ch in word) / chars_per_s
        syllables = max(1, round(duration / 0.2))
        for _ in range(syllables):
            t = np.arange(int(duration / syllables * sr)) / sr
            f0 = rng.uniform(100, 150) * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
            phase = 2 * np.pi * np.cumsum(f0) / sr
            harmonics = sum(np.sin(h * phase) / h for h in range(1, 30))
            parts.append(np.hanning(len(t)) ** 0.7 * harmonics)
        parts.append(np.zeros(int(rng.uniform(0.06, 0.14) * sr)))
    parts.append(np.zeros(int(0.15 * sr)))
    audio = np.concatenate(parts)
    audio = 0.5 * audio / np.abs(audio).max()
    return (audio + 1e-3 * rng.standard_normal(len(audio))).astype(np.float32)


def room(seconds: float, seed: int = 1, sr: int = SR) -> np.ndarray:
    return (1e-3 * np.random.default_rng(seed).standard_normal(int(seconds * sr))).astype(np.float32)


def noise(seconds: float, rms: float, pink: bool = False, seed: int = 2, sr: int = SR) -> np.ndarray:
    """White or pink (1/f power) Gaussian noise at `rms`."""
    n = int(seconds * sr)
    white = np.random.default_rng(seed).standard_normal(n)
    if pink:
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        white = np.fft.irfft(spectrum, n)
    return (rms * white / white.std()).astype(np.float32)


def speech_rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(audio[np.abs(audio) > 0.01] ** 2)))


def sample(audio: np.ndarray, text: str = TEXT, item_id: str = "i", system: str = "sys", sr: int = SR) -> Sample:
    item = EvalItem(id=item_id, text=text, prompt_audio="unused.wav", speaker="spk")
    return Sample(item=item, system=system, audio=np.asarray(audio), sample_rate=sr)


def score(audio: np.ndarray, text: str = TEXT, sr: int = SR, **thresholds: float) -> ItemScore:
    (row,) = DefectsSuite(**thresholds).score([sample(audio, text, sr=sr)])
    assert row.ok, row.error
    return row


def fired(row: ItemScore) -> set[str]:
    return {name for name in FLAGS if row.metrics.get(name)}


def broken(kind: str, clean: np.ndarray, sr: int = SR) -> np.ndarray:
    """`clean` with one defect built in."""
    middle = len(clean) // 2
    tail = 0.3 * speech_rms(clean)
    return {
        "internal silence": lambda: np.concatenate([clean[:middle], room(2.0, sr=sr), clean[middle:]]),
        "leading silence": lambda: np.concatenate([room(1.5, sr=sr), clean]),
        "white noise tail": lambda: np.concatenate([clean, noise(1.0, tail, sr=sr)]),
        "pink noise tail": lambda: np.concatenate([clean, noise(1.0, tail, pink=True, sr=sr)]),
        "truncated": lambda: clean[: len(clean) // 5],
        "clipped": lambda: np.clip(3 * clean, -1, 1),
        "runaway": lambda: np.concatenate([clean] * 4),
    }[kind]()


EXPECTED = {
    "internal silence": "long_silence",
    "leading silence": "edge_silence",
    "white noise tail": "noise_tail",
    "pink noise tail": "noise_tail",
    "truncated": "truncated",
    "clipped": "clipping",
    "runaway": "runaway",
}


# --- flags ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("chars_per_s", [10.0, 13.0, 16.0])
def test_clean_speech_like_audio_is_not_flagged(text: str, chars_per_s: float):
    row = score(speech_like(text, chars_per_s=chars_per_s), text)
    assert fired(row) == set() and row.metrics["defective"] == 0.0, row.details
    assert set(row.metrics) == set(DefectsSuite.metrics)
    d = row.details
    assert d["flags"] == "" and d["longest_pause_s"] < 0.2 and d["steady_tail_s"] < 0.1
    assert d["leading_silence_s"] == pytest.approx(0.2, abs=0.05) and d["trailing_silence_s"] < 0.35
    assert d["clipped_fraction"] == 0.0 and d["flat_top_fraction"] == 0.0
    assert d["expected_min_s"] * 0.5 < d["speech_s"] < d["expected_max_s"] * 2.5 + 2.0


@pytest.mark.parametrize("kind", EXPECTED)
def test_each_defect_fires_alone(kind: str):
    row = score(broken(kind, speech_like(TEXT)))
    assert fired(row) == {EXPECTED[kind]}, row.details
    assert row.metrics["defective"] == 1.0 and row.details["flags"] == EXPECTED[kind]


def test_details_measure_what_was_built():
    clean = speech_like(TEXT)
    d = score(broken("internal silence", clean)).details
    assert d["longest_pause_s"] == pytest.approx(2.0, abs=0.2)  # 2 s of room noise, plus a word gap
    d = score(broken("leading silence", clean)).details
    assert d["leading_silence_s"] == pytest.approx(1.7, abs=0.05) and d["trailing_silence_s"] < 0.35
    for kind in ("white noise tail", "pink noise tail"):
        d = score(broken(kind, clean)).details
        assert 0.7 <= d["steady_tail_s"] <= 1.0 and d["trailing_silence_s"] < 0.05, kind
    d = score(broken("truncated", clean)).details
    assert d["speech_s"] < 0.5 * d["expected_min_s"] and d["text_chars"] == 69
    assert d["expected_min_s"] == pytest.approx(69 / 20) and d["expected_max_s"] == pytest.approx(69 / 8)
    d = score(broken("clipped", clean)).details
    assert d["clipped_fraction"] > 0.01 and d["flat_top_fraction"] > 0.01
    d = score(broken("runaway", clean)).details
    assert d["speech_s"] > 2.5 * d["expected_max_s"] + 2.0


def test_flat_tops_below_full_scale_count_as_clipping():
    clean = speech_like(TEXT)
    limited = np.clip(2 * clean, -0.6, 0.6)  # a limiter at 0.6: nothing near full scale
    d = score(limited).details
    assert d["clipped_fraction"] == 0.0 and d["flat_top_fraction"] > 0.01
    assert fired(score(limited)) == {"clipping"}


@pytest.mark.parametrize("sr", [22_050, 24_000])
def test_other_sample_rates(sr: int):
    clean = speech_like(TEXT, sr=sr)
    assert fired(score(clean, sr=sr)) == set()
    for kind in ("internal silence", "white noise tail", "clipped"):
        assert fired(score(broken(kind, clean, sr), sr=sr)) == {EXPECTED[kind]}, kind


def _real_items() -> list[dict]:
    lines = (REAL / "real.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_real_recordings_are_not_flagged():
    """The twelve human recordings of the `real` test set with their transcripts: no flag fires."""
    suite = DefectsSuite()
    samples = []
    for entry in _real_items():
        audio = read_audio(REAL / entry["target_audio"], sample_rate=None)
        samples.append(sample(audio.samples, entry["text"], entry["id"], sr=audio.sample_rate))
    rows = suite.score(samples)
    assert len(rows) == 12 and all(r.ok for r in rows)
    flagged = {r.item_id: r.details["flags"] for r in rows if r.metrics["defective"]}
    assert flagged == {}
    assert all(set(r.metrics) == set(DefectsSuite.metrics) for r in rows)
    aggregate = suite.aggregate(rows)
    assert aggregate["defective"] == 0.0 and aggregate["defective_count"] == 0.0 and aggregate["scored"] == 12
    assert max(r.details["longest_pause_s"] for r in rows) < 0.5  # far below 1 s
    assert max(r.details["steady_tail_s"] for r in rows) < 0.2  # far below 0.5 s


# --- odd inputs, options ------------------------------------------------------------------------------------------


def test_empty_silent_unusable_and_textless_samples():
    suite = DefectsSuite()
    samples = [
        sample(np.zeros(0, np.float32), item_id="empty"),
        sample(np.zeros(2 * SR, np.float32), item_id="zeros"),
        sample(np.full(SR, np.nan, np.float32), item_id="nan"),
        sample(np.zeros((2, SR), np.float32), item_id="stereo"),
        sample(speech_like(TEXT), text="...", item_id="no-text"),
    ]
    rows = {r.item_id: r for r in suite.score(samples)}
    assert fired(rows["empty"]) == {"truncated"} and rows["empty"].metrics["defective"] == 1.0
    assert fired(rows["zeros"]) == {"truncated", "edge_silence"}
    assert rows["zeros"].details["leading_silence_s"] == pytest.approx(2.0)
    assert not rows["nan"].ok and "non-finite audio (16000 of 16000" in rows["nan"].error
    assert not rows["stereo"].ok and "not mono" in rows["stereo"].error
    textless = rows["no-text"]
    assert textless.ok and "truncated" not in textless.metrics and "runaway" not in textless.metrics
    assert "no letter or digit" in textless.details["truncated"] and textless.metrics["defective"] == 0.0
    aggregate = suite.aggregate(list(rows.values()))
    assert (aggregate["items"], aggregate["failed"], aggregate["scored"]) == (5, 2, 3)
    assert aggregate["truncated_count"] == 2 and aggregate["truncated"] == pytest.approx(1.0)  # 2 of the 2 with text
    assert aggregate["defective_count"] == 2 and aggregate["defective"] == pytest.approx(2 / 3)


def test_thresholds_are_options_recorded_in_describe():
    assert SUITES["defects"] is DefectsSuite
    suite = build_suite("defects", device="cpu", edge_silence_s=2.0, clip_fraction=0.5)
    description = suite.describe()
    assert description["thresholds"]["edge_silence_s"] == 2.0 and description["thresholds"]["clip_fraction"] == 0.5
    assert description["thresholds"]["long_silence_s"] == 1.0 and description["thresholds"]["noise_tail_s"] == 0.5
    clean = speech_like(TEXT)
    assert fired(score(broken("leading silence", clean), edge_silence_s=2.0)) == set()
    assert fired(score(broken("clipped", clean), clip_fraction=0.5)) == set()
    with pytest.raises(ValueError, match=r"edge_silence: unknown key of the defects suite \(known: frame_s, "):
        DefectsSuite(edge_silence=1.0)
    with pytest.raises(ValueError, match="fast_chars_per_s"):
        DefectsSuite(fast_chars_per_s=0.0)


# --- through the results tables ---------------------------------------------------------------------------------


def test_rows_and_aggregates_through_the_results_tables():
    """Two systems, four items each: one system's audio is broken on two items; rates, counts, units, directions
    and CIs come out of `aggregates_table`, the measurements as `defects.*` item columns."""
    suite = DefectsSuite()
    texts = {f"item-{i}": text for i, text in enumerate((*TEXTS, "Seven of clubs."))}
    samples, records = [], []
    for system in ("good", "bad"):
        for i, (item_id, text) in enumerate(texts.items()):
            audio = speech_like(text, seed=i)
            if system == "bad" and i < 2:
                audio = broken(("internal silence", "clipped")[i], audio)
            samples.append(sample(audio, text, item_id, system))
            records.append(
                GenerationRecord(system, "toy", None, item_id, f"spk{i}", 0, None, len(audio) / SR, text=text)
            )
    rows = suite.score(samples)
    table = aggregates_table([suite], {"defects": rows}, records, resamples=200)
    assert set(table["suite"]) == {"generation", "defects"}
    table = table[table["suite"] == "defects"].set_index(["system", "metric"])
    bad, good = table.loc["bad"], table.loc["good"]
    assert bad.loc["defective", "value"] == pytest.approx(0.5) and bad.loc["defective_count", "value"] == 2
    assert bad.loc["long_silence_count", "value"] == 1 and bad.loc["clipping_count", "value"] == 1
    assert bad.loc["defective", "unit"] == "fraction" and bad.loc["defective", "higher_is_better"] is False
    assert bad.loc["defective_count", "unit"] == "items" and bad.loc["scored", "value"] == 4
    assert 0.0 <= bad.loc["defective", "ci_low"] <= 0.5 <= bad.loc["defective", "ci_high"] <= 1.0
    assert good.loc["defective", "value"] == 0.0 and good.loc["defective_count", "value"] == 0
    assert (good.loc["items", "value"], good.loc["failed", "value"]) == (4, 0)
    items = items_table(records, {"defects": rows}).set_index(["system", "item_id"])
    assert items.loc[("bad", "item-0"), "defects.long_silence"] == 1.0
    assert items.loc[("bad", "item-0"), "defects.flags"] == "long_silence"
    assert items.loc[("bad", "item-1"), "defects.clipped_fraction"] > 0.01
    assert items.loc[("good", "item-2"), "defects.defective"] == 0.0
    assert items.loc[("good", "item-2"), "defects.longest_pause_s"] < 0.2
