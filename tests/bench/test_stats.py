"""Clusters and the fallback rule (`bench.stats`), the gate's tests (`bench.gate.significance`) and the clustered
intervals of the aggregates."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from bench.gate.significance import ShiftTest, holm, paired_ratio_draws, tail_p
from bench.results import GenerationRecord, aggregates_table, bootstrap_ci, bootstrap_scheme
from bench.stats import MIN_CLUSTERS, clusters, few_clusters, resample_within_clusters
from suites.base import ItemScore
from suites.rtf import RtfSuite


def test_clusters_are_the_connected_components_of_shared_keys():
    links = [("a", ("speaker", 1)), ("b", ("speaker", 1)), ("c", ("speaker", 2)), ("d", ("text", "x"))]
    links += [("c", ("text", "x")), ("e", ("speaker", 3))]
    assert clusters("abcdef", links) == {"a": "a", "b": "a", "c": "c", "d": "c", "e": "e", "f": "f"}
    # labels do not depend on the order of the links
    assert clusters("fedcba", links[::-1]) == clusters("abcdef", links)


def test_one_rule_for_too_few_clusters():
    """Below MIN_CLUSTERS both the aggregates and the gate condition on the clusters; the aggregates keep the plain
    item bootstrap when every cluster is one item (nothing to resample within)."""
    assert few_clusters(MIN_CLUSTERS - 1) and not few_clusters(MIN_CLUSTERS) and few_clusters(5, min_clusters=6)
    assert resample_within_clusters(4, 16) and not resample_within_clusters(24, 48)
    assert not resample_within_clusters(16, 16)  # all singletons: few clusters, but nothing to stratify
    assert bootstrap_scheme({f"i{k}": f"s{k % 4}" for k in range(16)}).startswith("16 items resampled within their 4")


def test_holm_adjusts_step_down():
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    # sorted: 0.005 x 4, 0.01 x 3, 0.03 x 2, 0.04 x 1 -> monotone: 0.02, 0.03, 0.06, 0.06
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and holm([]).size == 0 and holm([0.03]) == [0.03]


def test_paired_ratio_draws_resample_clusters_of_both_runs_together():
    rng = np.random.default_rng(0)
    num, den = rng.uniform(1, 5, 30), rng.uniform(10, 20, 30)
    same = paired_ratio_draws((num, den), (num, den), 500, np.random.default_rng(1))
    assert same.shape == (500,) and np.all(same == 0)
    slower = paired_ratio_draws((num, den), (1.5 * num, den), 500, np.random.default_rng(1))
    ratios = paired_ratio_draws((np.zeros(30), den), (num, den), 500, np.random.default_rng(1))
    assert slower == pytest.approx(0.5 * ratios)  # the same resamples: the ratio scales exactly
    assert tail_p(slower, 0.0, upper=False) == pytest.approx(1 / 501)
    assert tail_p(same, 0.0, upper=True) == 1.0


def test_shift_test_matches_scipy_and_inverts_to_the_moses_interval():
    rng = np.random.default_rng(2)
    x, y = rng.normal(0, 1, 25), rng.normal(0.6, 1, 30)
    test = ShiftTest.of(x, y)
    # tie-free data: the same p-values as scipy's asymptotic test (continuity-corrected)
    for delta in (0.0, 0.3, -0.2):
        expected = mannwhitneyu(y - delta, x, alternative="greater", method="asymptotic").pvalue
        assert test.p_greater(delta) == pytest.approx(expected, rel=1e-9)
        assert test.p_less(delta) == pytest.approx(
            mannwhitneyu(y - delta, x, alternative="less", method="asymptotic").pvalue, rel=1e-9
        )
    assert test.shift == pytest.approx(np.median(np.subtract.outer(y, x)))
    assert test.rank_biserial == pytest.approx(np.mean(np.sign(np.subtract.outer(y, x))))
    low, high = test.ci(0.95)
    assert low < test.shift < high
    # the interval is exactly the shifts that neither one-sided test rejects at 2.5 %
    mids = (test.diffs[1:] + test.diffs[:-1]) / 2
    inside = (mids > low) & (mids < high)
    accepted = np.array([test.p_greater(d) >= 0.025 and test.p_less(d) >= 0.025 for d in mids])
    assert np.array_equal(inside, accepted)
    with pytest.raises(ValueError):
        ShiftTest.of(np.array([]), y)


def _rows(n: int) -> list[ItemScore]:
    return [ItemScore("t", "s", f"i{i:02d}", 0, {"v": float(i // 10)}) for i in range(n)]


def _mean(rows) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {"v": float(np.mean([r.metrics["v"] for r in rows]))}


def test_bootstrap_ci_resamples_clusters():
    rows = _rows(40)  # 4 speakers of 10 items each; the value is the speaker's
    speakers = {r.item_id: f"spk{int(r.metrics['v'])}" for r in rows}
    by_item = bootstrap_ci(rows, _mean, ["v"])
    by_speaker = bootstrap_ci(rows, _mean, ["v"], clusters=speakers, min_clusters=2)
    width = {k: ci["v"][1] - ci["v"][0] for k, ci in (("item", by_item), ("speaker", by_speaker))}
    assert width["speaker"] > 2.5 * width["item"]  # sqrt(10): the items of a speaker are one sample
    # one cluster per item is the item bootstrap, draw for draw
    assert bootstrap_ci(rows, _mean, ["v"], clusters={r.item_id: r.item_id for r in rows}) == by_item
    # fewer clusters than MIN_CLUSTERS: items are resampled within their speaker, so the interval is conditional
    # on these 4 speakers (here each speaker's items are identical: no uncertainty left)
    within = bootstrap_ci(rows, _mean, ["v"], clusters=speakers)
    assert within["v"][0] == within["v"][1] == pytest.approx(np.mean([r.metrics["v"] for r in rows]))
    assert "within their 4 clusters" in bootstrap_scheme(speakers)
    assert "40 clusters" in bootstrap_scheme({r.item_id: r.item_id for r in rows})
    # a single cluster: within it, the item bootstrap
    alone = bootstrap_ci(rows, _mean, ["v"], clusters=dict.fromkeys((r.item_id for r in rows), "one"))
    assert alone == by_item
    assert all(math.isnan(v) for v in bootstrap_ci(rows[:1], _mean, ["v"])["v"])  # one item: no interval


def test_aggregates_resample_the_speakers_of_the_generation_records():
    suite = RtfSuite()
    rows, records = [], []
    for i in range(24):
        audio_s, time_s = 2.0 + i % 5, 0.1 * (1 + i // 6)
        rows.append(
            ItemScore("rtf", "sys", f"i{i:02d}", 0, {"time_s": time_s, "audio_s": audio_s, "rtf": time_s / audio_s})
        )
        records.append(GenerationRecord("sys", "toy", 1, f"i{i:02d}", f"spk{i // 6}", 0, "a.wav", audio_s))
    table = aggregates_table([suite], {"rtf": rows}, records, resamples=300).set_index("metric")
    speakers = {r.item_id: r.speaker for r in records}
    expected = bootstrap_ci(
        rows,
        suite.aggregate,
        ["rtf"],
        resamples=300,
        clusters=clusters(speakers, [(i, s) for i, s in speakers.items()]),
    )
    assert (table.loc["rtf", "ci_low"], table.loc["rtf", "ci_high"]) == pytest.approx(expected["rtf"])
    unclustered = aggregates_table([suite], {"rtf": rows}, resamples=300).set_index("metric")
    # 4 speakers (< MIN_CLUSTERS): items resampled within speakers, not across them
    assert (table.loc["rtf", "ci_low"], table.loc["rtf", "ci_high"]) != pytest.approx(
        (unclustered.loc["rtf", "ci_low"], unclustered.loc["rtf", "ci_high"])
    )


def test_sign_flip_test_is_exact_on_few_items_and_finds_a_consistent_shift():
    from bench.gate.significance import sign_flip_test

    rng = np.random.default_rng(0)
    wer = rng.uniform(0.0, 0.2, 12)
    ones = np.ones(12)
    # identical runs: nothing beyond a margin, either way; the interval holds 0
    same = sign_flip_test((wer, ones), (wer, ones), 1.0, 0.01, 0.05, 1000, rng)
    assert same.p_worse == 1.0 and same.p_better == 1.0 and same.ci_low <= 0 <= same.ci_high
    # every item 0.1 worse: the smallest exact one-sided p over 12 items is 2^-12 (only the observed labelling)
    worse = sign_flip_test((wer, ones), (wer + 0.1, ones), 1.0, 0.01, 0.05, 1000, rng)
    assert worse.p_worse == pytest.approx(2.0**-12) and worse.p_better == 1.0
    assert 0.01 < worse.ci_low <= 0.1 + 1e-9 and worse.ci_high >= 0.1 - 1e-9  # every item +0.1: the point 0.1
    # higher is better (SIM): a drop is worse
    drop = sign_flip_test((wer, ones), (wer - 0.1, ones), -1.0, 0.01, 0.05, 1000, rng)
    assert drop.p_worse == pytest.approx(2.0**-12) and drop.p_better == 1.0


def test_sign_flip_test_counts_the_margin_and_mixed_signs():
    from bench.gate.significance import sign_flip_test

    rng = np.random.default_rng(1)
    base = rng.uniform(0.05, 0.3, 10)
    ones = np.ones(10)
    # a shift inside the margin is not beyond it
    inside = sign_flip_test((base, ones), (base + 0.005, ones), 1.0, 0.01, 0.05, 1000, rng)
    assert inside.p_worse > 0.5
    # half the items much worse, half unchanged: weaker evidence than all worse
    mixed = base + np.where(np.arange(10) % 2 == 0, 0.2, 0.0)
    half = sign_flip_test((base, ones), (mixed, ones), 1.0, 0.01, 0.05, 1000, rng)
    assert 2.0**-10 < half.p_worse < 0.05
    # a ratio of sums (corpus WER = errors / words) is shifted by margin x words, item by item
    errors, words = rng.integers(0, 4, 10).astype(float), rng.integers(8, 20, 10).astype(float)
    ratio = sign_flip_test((errors, words), (errors + 0.5 * words, words), 1.0, 0.01, 0.05, 1000, rng)
    assert ratio.p_worse == pytest.approx(2.0**-10) and ratio.ci_low > 0.01


def test_sign_flip_test_monte_carlo_above_sixteen_units():
    from bench.gate.significance import sign_flip_test, sign_flips

    flips, exact = sign_flips(40, 2000, np.random.default_rng(0))
    assert not exact and flips.shape == (2001, 40) and not flips[0].any()
    rng = np.random.default_rng(2)
    base = rng.uniform(0, 1, 40)
    ones = np.ones(40)
    test = sign_flip_test((base, ones), (base + 0.2, ones), 1.0, 0.0, 0.05, 2000, rng)
    assert test.p_worse == pytest.approx(1 / 2001, rel=0.5) and test.p_better == 1.0
