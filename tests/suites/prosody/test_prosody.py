"""Prosody suite: F0 on known signals, JSD properties, seed diversity, grouping and failure isolation."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from flashspeech.foundation.audio import read_audio, write_wav
from suites.base import SUITES, ItemScore, Sample
from suites.item import EvalItem
from suites.prosody import F0Config, ProsodySuite, extract_f0, jensen_shannon
from suites.prosody.distribution import split_half_floor
from suites.prosody.diversity import group_metrics
from suites.prosody.features import contour_distance, phone_durations, utterance_prosody
from suites.prosody.jsd import PHONE_BINS, PITCH_BINS, phone_duration_counts, pitch_counts, utterance_duration_counts

SR = 16_000
REAL = Path(__file__).resolve().parents[3] / "bench/testsets/assets/real/librivox_0880.wav"


def tone(hz: float, seconds: float = 1.0, sr: int = SR, glide_to: float | None = None) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    end = glide_to or hz
    freq = hz * (end / hz) ** (t / seconds)  # exponential glide (constant when glide_to is None)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    return (0.3 * np.sin(phase)).astype(np.float32)


def item(item_id: str = "i1", target: str | None = None, **meta) -> EvalItem:
    return EvalItem(id=item_id, text="text", prompt_audio="unused.wav", speaker="s", target_audio=target, meta=meta)


def sample(audio: np.ndarray, seed: int = 0, it: EvalItem | None = None, system: str = "sys", **meta) -> Sample:
    return Sample(item=it or item(), system=system, audio=audio, sample_rate=SR, seed=seed, meta=meta)


def test_registered():
    assert SUITES["prosody"] is ProsodySuite


# --- F0 -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hz", [70.0, 120.0, 220.0, 440.0, 900.0])
def test_f0_of_tones_within_2_percent(hz):
    track = extract_f0(tone(hz), SR)
    assert track.voiced_fraction > 0.95
    err = np.abs(track.voiced_hz / hz - 1)
    assert np.median(err) < 0.02
    assert np.mean(err < 0.02) > 0.95


def test_f0_resamples_other_rates():
    track = extract_f0(tone(200.0, sr=22_050), 22_050)
    assert abs(np.median(track.voiced_hz) / 200.0 - 1) < 0.02
    assert track.frame_period_s == pytest.approx(0.0125)
    assert len(track.f0) == pytest.approx(80, abs=2)  # 80 Hz frames


def test_noise_and_silence_are_unvoiced():
    noise = np.random.default_rng(0).normal(0, 0.1, SR).astype(np.float32)
    assert extract_f0(noise, SR).voiced_fraction < 0.05
    assert extract_f0(np.zeros(SR, np.float32), SR).voiced_fraction == 0.0


def test_f0_rejects_bad_audio():
    with pytest.raises(ValueError, match="too short"):
        extract_f0(np.zeros(100, np.float32), SR)
    with pytest.raises(ValueError, match="NaN"):
        extract_f0(np.full(SR, np.nan, np.float32), SR)
    with pytest.raises(ValueError, match="unknown F0 method"):
        F0Config(method="yin")


@pytest.mark.parametrize("method", ["dio", "harvest"])
def test_f0_of_real_speech_is_plausible(method):
    audio = read_audio(REAL, SR)
    track = extract_f0(audio.samples, SR, F0Config(method=method))
    assert 0.5 < track.voiced_fraction < 1.0  # read speech: mostly voiced
    assert 60 < np.median(track.voiced_hz) < 300  # adult male/female range


# --- features and JSD ---------------------------------------------------------------------------------


def test_utterance_features_of_a_glide():
    track = extract_f0(tone(100.0, glide_to=200.0), SR)  # one octave, evenly in log-F0
    feats = utterance_prosody(track, 1.0)
    assert feats.f0_mean_hz == pytest.approx(100 * math.sqrt(2), rel=0.03)
    assert feats.f0_range_st == pytest.approx(12 * 0.9, abs=0.6)  # 5..95 % of a linear ramp
    assert feats.f0_std_st == pytest.approx(12 / math.sqrt(12), abs=0.3)  # std of a uniform ramp
    assert set(feats.metrics()) == {"duration_s", "voiced_fraction", "f0_mean_hz", "f0_std_st", "f0_range_st"}


def test_phone_durations_drop_boundaries():
    assert phone_durations([5, 3, 4, 0]).tolist() == [3, 4]
    assert phone_durations([5, 3, 4, 0], ["<s>", "a", "b", "</s>"]).tolist() == [3, 4]
    assert phone_durations([3, 4], ["a", "b"]).tolist() == [3, 4]
    with pytest.raises(ValueError):
        phone_durations([1, -2, 3])


def test_histogram_bins():
    counts = pitch_counts(np.array([0.0, 50.0, 100.0, 1099.0, 3000.0, 20.0]))
    assert len(counts) == PITCH_BINS == 54
    assert counts[0] == 2 and counts[12] == 1 and counts[53] == 2 and counts.sum() == 5  # 0 Hz ignored
    d = phone_duration_counts(np.array([0, 1, 60, 61, 500]))
    assert len(d) == PHONE_BINS == 62
    assert d[0] == d[1] == d[60] == 1 and d[61] == 2


def test_jsd_properties():
    p, q = np.array([3.0, 1.0, 0.0, 2.0]), np.array([1.0, 1.0, 4.0, 0.0])
    assert jensen_shannon(p, p) == pytest.approx(0.0, abs=1e-9)
    assert jensen_shannon(p, 5 * p) == pytest.approx(0.0, abs=1e-9)  # counts are normalised
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0, abs=1e-6)
    assert jensen_shannon(p, q) == pytest.approx(jensen_shannon(q, p))
    # hand case: P = (1, 0), Q = (1/2, 1/2), M = (3/4, 1/4)
    expected = 0.5 * math.log2(4 / 3) + 0.5 * (0.5 * math.log2(2 / 3) + 0.5 * math.log2(2))
    assert jensen_shannon([1, 0], [1, 1]) == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(0.311278, abs=1e-6)
    with pytest.raises(ValueError):
        jensen_shannon([0, 0], [1, 1])
    with pytest.raises(ValueError):
        jensen_shannon([1, 2], [1, 2, 3])


def test_jsd_grows_as_a_distribution_shifts():
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 1.0, 20_000)
    edges = np.linspace(-6, 10, 65)
    ref = np.histogram(base, edges)[0]
    values = [jensen_shannon(ref, np.histogram(base + shift, edges)[0]) for shift in (0.0, 0.5, 1.0, 2.0, 4.0)]
    assert values[0] == pytest.approx(0.0, abs=1e-9)
    assert all(a < b for a, b in itertools.pairwise(values))


# --- diversity ----------------------------------------------------------------------------------------


def test_diversity_is_zero_for_identical_audio():
    feats = [utterance_prosody(extract_f0(tone(150.0), SR), 1.0) for _ in range(3)]
    m = group_metrics(feats)
    assert m == dict.fromkeys(m, 0.0) and len(m) == 4


def test_diversity_of_tones_an_octave_apart():
    feats = [utterance_prosody(extract_f0(tone(hz), SR), 1.0) for hz in (100.0, 200.0)]
    m = group_metrics(feats)
    assert m["seed_f0_mean_std_st"] == pytest.approx(12 / math.sqrt(2), abs=0.3)  # ddof=1 of (0, 12)
    assert m["seed_contour_dist_st"] == pytest.approx(12.0, abs=0.4)
    assert m["seed_f0_range_std_st"] == pytest.approx(0.0, abs=0.2)
    assert m["seed_duration_std_s"] == 0.0
    assert contour_distance(feats[0].contour_st, feats[0].contour_st) == 0.0


def test_suite_diversity_rows_and_isolation():
    suite = ProsodySuite(batch_size=8)
    a, b, c = item("a"), item("b"), item("c")
    samples = [
        sample(tone(150.0), seed=0, it=a),
        sample(tone(150.0), seed=1, it=a),  # identical seeds: zero spread
        sample(tone(100.0), seed=0, it=b),
        sample(tone(200.0, seconds=1.5), seed=1, it=b),
        sample(np.zeros(10, np.float32), seed=2, it=b),  # fails: too short
        sample(tone(150.0), seed=0, it=c),  # one seed only
    ]
    rows = suite.score(samples)
    per_sample = {(r.item_id, r.seed): r for r in rows if r.seed is not None}
    groups = {r.item_id: r for r in rows if r.seed is None}
    assert len(per_sample) == 6 and len(groups) == 3
    assert not per_sample[("b", 2)].ok and "too short" in per_sample[("b", 2)].error
    assert all(r.ok for k, r in per_sample.items() if k != ("b", 2))
    assert groups["a"].ok and groups["a"].metrics["seed_f0_mean_std_st"] == pytest.approx(0.0, abs=1e-9)
    assert groups["a"].metrics["seed_contour_dist_st"] == pytest.approx(0.0, abs=1e-9)
    assert groups["b"].ok and groups["b"].details["seeds_failed"] == 1
    assert groups["b"].metrics["seed_f0_mean_std_st"] == pytest.approx(8.485, abs=0.3)
    assert groups["b"].metrics["seed_duration_std_s"] == pytest.approx(0.5 / math.sqrt(2))
    assert not groups["c"].ok and "only one seed" in groups["c"].error
    agg = suite.aggregate(rows)
    assert agg["items"] == 6 and agg["failed"] == 1 and agg["groups"] == 3 and agg["groups_failed"] == 1
    assert math.isnan(agg["pitch_jsd"]) and math.isnan(agg["duration_jsd"])
    assert "target audio" in suite.aggregate_notes(rows)["pitch_jsd"]


def test_groups_span_batches():
    suite = ProsodySuite(batch_size=1)
    rows = suite.score([sample(tone(100.0), seed=s) for s in range(3)])
    group = [r for r in rows if r.seed is None]
    assert len(group) == 1 and group[0].ok and group[0].details["seeds"] == [0, 1, 2]


# --- JSD against targets ------------------------------------------------------------------------------


def test_jsd_against_targets(tmp_path):
    paths = {}
    for name, hz in (("t1", 120.0), ("t2", 240.0)):
        paths[name] = str(write_wav(tmp_path / f"{name}.wav", tone(hz), SR))
    durs = [2, 5, 7, 9, 0]
    it1 = item("t1", paths["t1"], target_durations=durs)
    it2 = item("t2", paths["t2"], target_durations=durs)
    suite = ProsodySuite()
    same = [sample(tone(120.0), it=it1, durations=durs), sample(tone(240.0), it=it2, durations=durs)]
    agg = suite.aggregate(suite.score(same))
    assert agg["pitch_jsd"] < 0.01 and agg["jsd_items"] == 2
    assert agg["duration_jsd"] == pytest.approx(0.0, abs=1e-6) and agg["utterance_duration_jsd"] == 0.0
    assert agg["phone_duration_frames"] == pytest.approx(7.0)
    assert (
        math.isnan(agg["pitch_jsd_floor"])
        and ">= 4 items" in suite.aggregate_notes(suite.score(same))["pitch_jsd_floor"]
    )
    shifted = [sample(tone(400.0), it=it1, durations=[3, 20, 20, 20, 0]), sample(tone(800.0), it=it2, durations=durs)]
    agg = suite.aggregate(suite.score(shifted))
    assert agg["pitch_jsd"] > 0.9 and 0.1 < agg["duration_jsd"] < 1.0
    # without phone durations there is no duration JSD; utterance lengths are compared under their own name
    rows = suite.score([sample(tone(120.0), it=it1), sample(tone(240.0, seconds=3.0), it=it2)])
    agg = suite.aggregate(rows)
    assert (
        math.isnan(agg["duration_jsd"])
        and "2 sample(s) without phone durations" in (suite.aggregate_notes(rows)["duration_jsd"])
    )
    assert "see utterance_duration_jsd" in suite.aggregate_notes(rows)["duration_jsd"]
    assert agg["utterance_duration_jsd"] == pytest.approx(jensen_shannon([2, 0], [1, 1]), abs=1e-6)


def test_unreadable_target_keeps_the_sample(tmp_path):
    suite = ProsodySuite()
    rows = suite.score([sample(tone(150.0), it=item("x", str(tmp_path / "missing.wav")))])
    row = next(r for r in rows if r.seed is not None)
    assert row.ok and "target_error" in row.details
    assert "unreadable targets" in suite.aggregate_notes(rows)["pitch_jsd"]


# --- equal counts and the sampling floor (synthetic histogram rows: no audio) -----------------------------


def _row(item_id: str, seed: int, pitch: list[int], target: list[int], seconds: float = 5.0) -> ItemScore:
    details = {"pitch_hist": pitch, "target_pitch_hist": target, "target_duration_s": 5.0}
    return ItemScore("prosody", "sys", item_id, seed, metrics={"duration_s": seconds}, details=details)


def test_jsd_compares_equal_counts_seed_by_seed():
    """Seed 0 matches its targets, seed 1 is shifted and lost two items: each seed is compared with the targets
    of its own items (equal counts), and the JSD is the mean over seeds, not one pool of 14 vs 8 utterances."""
    targets = {f"i{k}": [0] * k + [10, 5] + [0] * (8 - k) for k in range(8)}
    rows = [_row(i, 0, t, t) for i, t in targets.items()]
    rows += [_row(i, 1, [0, 0, *t[:-2]], t) for i, t in list(targets.items())[:6]]
    agg = ProsodySuite().aggregate(rows)
    seed0 = jensen_shannon(np.sum(list(targets.values()), 0), np.sum(list(targets.values()), 0))
    six = list(targets.values())[:6]
    seed1 = jensen_shannon(np.sum([[0, 0, *t[:-2]] for t in six], 0), np.sum(six, 0))
    assert seed0 == pytest.approx(0.0, abs=1e-9) and seed1 > 0.1
    assert agg["pitch_jsd"] == pytest.approx((seed0 + seed1) / 2)
    assert agg["jsd_items"] == 7  # 8 and 6 utterances per side: mean over seeds
    pooled = jensen_shannon(np.sum([r.details["pitch_hist"] for r in rows], 0), np.sum(list(targets.values()), 0))
    assert abs(agg["pitch_jsd"] - pooled) > 0.01  # what pooling the seeds against 8 targets would have said
    assert agg["utterance_duration_jsd"] == pytest.approx(0.0, abs=1e-9)  # every length in the same bin
    assert agg["jsd_floor_items"] == 4 and agg["pitch_jsd_floor"] > 0.1  # the 8 targets differ from each other
    assert math.isnan(agg["duration_jsd"]) and math.isnan(agg["duration_jsd_floor"])


def test_split_half_floor_is_seeded_and_measures_the_sampling_bias():
    same = [np.array([3, 1, 0, 2])] * 10
    assert split_half_floor(same) == pytest.approx(0.0, abs=1e-9)
    assert split_half_floor(same[:3]) is None  # fewer than 2 items per half
    rng = np.random.default_rng(1)
    pools = [[utterance_duration_counts([d]) for d in rng.uniform(4, 10, 200)] for _ in range(20)]
    assert split_half_floor(pools[0]) == split_half_floor(pools[0])  # seeded
    # identical distributions (uniform 4-10 s, 0.5 s bins), as in the distribution module's table:
    # 100 vs 100 utterances give about 0.042, and the split-half floor of 200 items (100 per half) the same
    floors = [split_half_floor(pool) for pool in pools]
    assert 0.034 < np.mean(floors) < 0.052
    pairs = [(rng.uniform(4, 10, 100), rng.uniform(4, 10, 100)) for _ in range(200)]
    same_n = [jensen_shannon(utterance_duration_counts(a), utterance_duration_counts(b)) for a, b in pairs]
    assert 0.036 < np.mean(same_n) < 0.049
    split_100 = [split_half_floor([utterance_duration_counts([d]) for d in a], splits=1) for a, _ in pairs]
    assert 0.07 < np.mean(split_100) < 0.095  # 50 per half: about twice the bias at 100
