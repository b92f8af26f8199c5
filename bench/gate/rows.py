"""The rows of the regression gate (`bench.gate.compare`): what each run can use of a metric, and per system the
statistic, its interval and its test.

Statistic: the one the reports show, over the (item, seed) samples both runs scored: the mean of `<suite>.<metric>`,
or a ratio of sums (`numerator` / `denominator` columns, as the suite declares them: corpus WER = Σ(S+D+I) / Σ
ref_words, RTF = Σ time / Σ audio). Uncertainty: a paired bootstrap over clusters (`bench.stats.clusters`): items
linked by a shared speaker or text, or for timings by a shared batch. With fewer than `min_paired` clusters
(`bench.stats.few_clusters`; the shipped sets: 16 items on a few voices), a paired sign-flip test over items
(timings: over the batch clusters), exact up to 16 units, conditional on the test set's items and voices (the note
says so); fewer than `min_flip_units` units is "not comparable", which fails a gating rule unless the config allows
it (`allow_incomparable`). A bootstrap row's p is twice the smaller one-sided tail beyond the margin: unadjusted, p
< alpha iff the (1 - alpha) percentile CI shown excludes the margin (up to the +1 of the tail count). `mannwhitney`
(unpaired, items taken as independent) tests a shift beyond the margin and reports the Hodges-Lehmann shift with its
Moses CI (the shifts that test does not reject) and the rank-biserial r. `<suite>.failed` counts over the (item,
seed) samples both runs attempted; every suite with an error column gets such a rule (no new failure allowed) unless
the config names it. A 0/1 flag (`FLAG_METRICS`: a defective sample, an ASR hallucination) is counted the same way,
over the samples both runs scored. `same_device` rules (RTF) use only samples timed in this run on an uncontended
machine.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bench.gate.rules import GateConfig, MetricRule
from bench.gate.significance import EXACT_SIGN_FLIPS, GateTest, ShiftTest, bootstrap_test, sign_flip_test
from bench.results import AGGREGATE_COLUMNS, Results
from bench.stats import clusters, few_clusters

PROVENANCE = ("batch_id", "timing_source", "contended")  # items columns a timing rule needs


@dataclass
class ComparisonRow:
    """One metric of one system: `delta` = candidate - baseline; `allowed` is the margin, signed worse-ward."""

    system: str
    metric: str
    verdict: str
    baseline: float = math.nan
    candidate: float = math.nan
    delta: float = math.nan
    rel_delta: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    p_value: float = math.nan
    allowed: float = math.nan
    n_paired: int = 0  # items in both runs (bootstrap, count) or compared on each side (Mann-Whitney: the fewer)
    test: str = ""
    higher_is_better: bool | None = None
    gate: bool = True
    fails: bool = False
    note: str = ""
    n_clusters: int = 0  # independent clusters the bootstrap resampled
    p_raw: float = math.nan  # unadjusted; p_value is Holm-adjusted over the gating comparisons
    effect_size: float = math.nan  # Mann-Whitney: rank-biserial r = P(candidate > baseline) - P(<)


def metric_direction(rule: MetricRule, baseline: Results, candidate: Results) -> bool | None:
    """The rule's override, else the aggregates' higher_is_better, else the registered suite's metric info."""
    if rule.higher_is_better is not None or rule.name == "failed":
        return bool(rule.higher_is_better)
    agg = pd.concat([baseline.aggregates, candidate.aggregates]).reindex(columns=AGGREGATE_COLUMNS)
    hits = agg.loc[(agg["suite"] == rule.suite) & (agg["metric"] == rule.name), "higher_is_better"].dropna()
    for value in hits:
        return value.strip().lower() == "true" if isinstance(value, str) else bool(value)
    from suites import SUITES

    suite = SUITES.get(rule.suite)
    info = None if suite is None else {**suite.metrics, **suite.aggregate_metrics}.get(rule.name)
    return None if info is None else info.higher_is_better


@dataclass
class Usable:
    """What a rule can use of one run: per system, the usable rows (`num`, `den` and the items columns) and the
    timings left out, by reason; `unrecorded`: a timing rule on results without timing provenance."""

    rows: dict[str, pd.DataFrame] = field(default_factory=dict)
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)
    unrecorded: bool = False


def _flag(value: Any) -> bool | None:
    """A recorded boolean (also as read back from CSV), None when not recorded."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return {"true": True, "false": False}.get(value.strip().lower()) if isinstance(value, str) else bool(value)


def _exclusion(source: Any, contended: Any) -> str:
    """Why a timing may not gate ("" when it may): only this run's timings on an uncontended machine count."""
    if not isinstance(source, str):
        return "timing source not recorded"
    if source != "this run":
        return f"from the {source}"
    busy = _flag(contended)
    return "contention not recorded" if busy is None else "contended" if busy else ""


def usable(items: pd.DataFrame, rule: MetricRule) -> Usable:
    """The scored samples' numerator and denominator (1 for a mean), per system; timing rules keep only timings
    measured in this run on an uncontended machine."""
    num_cols, den_col = rule.columns()
    if any(c not in items for c in [*num_cols, den_col or rule.metric]):
        return Usable()
    ok = items["status"].astype(str).eq("ok") & items.reindex(columns=[f"{rule.suite}.error"]).iloc[:, 0].isna()
    num = sum((pd.to_numeric(items[c], errors="coerce") for c in num_cols), pd.Series(0.0, index=items.index))
    den = pd.to_numeric(items[den_col], errors="coerce") if den_col else pd.Series(1.0, index=items.index)
    frame = items.assign(num=num, den=den).loc[ok & np.isfinite(num) & np.isfinite(den)]
    systems = list(dict.fromkeys(frame["system"]))
    if not rule.same_device:
        return Usable({s: frame[frame["system"] == s] for s in systems})
    if any(c not in frame for c in PROVENANCE) or frame["timing_source"].isna().all():
        return Usable({s: frame[frame["system"] == s] for s in systems}, unrecorded=True)
    why = pd.Series(
        [_exclusion(s, c) for s, c in zip(frame["timing_source"], frame["contended"], strict=True)], frame.index
    )
    excluded = {s: g.value_counts().to_dict() for s, g in why[why != ""].groupby(frame["system"])}
    kept = frame[why == ""]
    return Usable({s: kept[kept["system"] == s] for s in systems}, excluded)


def failure_flags(items: pd.DataFrame, suite: str) -> dict[str, pd.Series]:
    """Per system the suite scored: (item_id, seed) -> failed (generation status, or the suite's error)."""
    generated = items["status"].astype(str).eq("ok")
    systems = set(items["system"])
    if suite == "generation":
        failed = ~generated
    elif f"{suite}.error" in items:
        failed = generated & items[f"{suite}.error"].notna()
        touched = items[[c for c in items.columns if c.startswith(f"{suite}.")]].notna().any(axis=1)
        systems = set(items.loc[touched, "system"])
    else:
        return {}
    flags = items[["system", "item_id", "seed"]].assign(failed=failed).set_index(["system", "item_id", "seed"])
    return {s: g["failed"].droplevel(0) for s, g in flags.groupby(level=0) if s in systems}


def count_flags(items: pd.DataFrame, rule: MetricRule) -> dict[str, pd.Series]:
    """Per system, (item_id, seed) -> whether the sample counts against a count rule: failed (`<suite>.failed`), or
    for a 0/1 flag column, flagged, over the samples generated and scored by the flag's suite."""
    if rule.name == "failed":
        return failure_flags(items, rule.suite)
    if rule.metric not in items:
        return {}
    values = pd.to_numeric(items[rule.metric], errors="coerce")
    scored = items["status"].astype(str).eq("ok") & values.notna()
    if f"{rule.suite}.error" in items:
        scored &= items[f"{rule.suite}.error"].isna()
    flags = items.loc[scored, ["system", "item_id", "seed"]].assign(flag=values[scored] > 0.5)
    flags = flags.set_index(["system", "item_id", "seed"])
    return {s: g["flag"].droplevel(0) for s, g in flags.groupby(level=0)}


def failure_rules(config: GateConfig, *tables: pd.DataFrame) -> list[MetricRule]:
    """A `<suite>.failed` count rule (no new failure) for each suite with an error column the config leaves out."""
    named = {r.metric for r in config.rules} | set(config.dropped)
    suites = sorted({c[: -len(".error")] for t in tables for c in t.columns if c.endswith(".error")})
    metrics = [f"{s}.failed" for s in suites if s and "." not in s]
    return [MetricRule(m, allowed_abs=0.0) for m in metrics if m not in named] if config.failure_rules else []


def count_row(row: ComparisonRow, rule: MetricRule, base: pd.Series, cand: pd.Series) -> None:
    common = base.index.intersection(cand.index)
    row.n_paired = len(common.get_level_values(0).unique())
    if len(common) == 0:
        row.verdict, row.note = "not comparable", "no (item, seed) attempted in both runs"
        return
    row.baseline, row.candidate = float(base[common].sum()), float(cand[common].sum())
    row.delta = row.candidate - row.baseline
    row.rel_delta = row.delta / row.baseline if row.baseline else math.nan
    row.allowed = tau = rule.allowed(row.baseline)
    row.verdict = "regressed" if row.delta > tau else "improved" if row.delta < -tau else "unchanged"
    row.note = f"over {len(common)} samples {'attempted' if rule.name == 'failed' else 'scored'} in both"


def _clusters(paired: list[str], base: pd.DataFrame, cand: pd.DataFrame, timing: bool) -> dict[str, str]:
    """item -> cluster: items sharing a speaker or a text; for timings, a batch (of either run)."""
    links: list[tuple[str, tuple[Any, ...]]] = []
    for side, frame in (("baseline", base), ("candidate", cand)):
        for column in ["batch_id"] if timing else [c for c in ("speaker", "text") if c in frame]:
            pairs = frame[["item_id", column]].dropna().drop_duplicates()
            key = (side, column) if timing else (column,)
            links += [(item, (*key, value)) for item, value in pairs.itertuples(index=False)]
    return clusters(paired, links)


def stat_row(
    row: ComparisonRow, rule: MetricRule, base: pd.DataFrame, cand: pd.DataFrame, config: GateConfig, blocker: str
) -> GateTest | None:
    """Fill `row` with the statistic and its interval; its test, or None when not comparable (`blocker`: a reason
    found before, e.g. the device). Bootstrap: over the (item, seed) samples both runs scored, paired by cluster;
    Mann-Whitney: every scored item of each run (per-item values), unpaired."""
    unpaired = rule.test == "mannwhitney"
    if not unpaired:
        b_keys, c_keys = (pd.MultiIndex.from_frame(f[["item_id", "seed"]]) for f in (base, cand))
        base, cand = base[b_keys.isin(c_keys)], cand[c_keys.isin(b_keys)]
    x, y = (f.groupby("item_id")[["num", "den"]].sum() for f in (base, cand))  # per item, sorted by id
    row.n_paired = min(len(x), len(y))
    if row.n_paired == 0:
        row.verdict, row.note = "not comparable", blocker or "no item scored in both runs"
        return None
    shift = ShiftTest.of((x["num"] / x["den"]).to_numpy(), (y["num"] / y["den"]).to_numpy()) if unpaired else None
    if shift is not None:
        row.baseline, row.candidate = float((x["num"] / x["den"]).median()), float((y["num"] / y["den"]).median())
        row.delta = shift.shift  # Hodges-Lehmann
    else:
        row.baseline, row.candidate = (float(f["num"].sum() / f["den"].sum()) for f in (x, y))
        row.delta = row.candidate - row.baseline
    row.rel_delta = row.delta / abs(row.baseline) if row.baseline else math.nan
    cluster = {} if blocker or unpaired else _clusters(list(x.index), base, cand, rule.same_device)
    row.n_clusters = len(set(cluster.values()))
    # few clusters: a sign-flip test over items (timings: over clusters of batches), conditional on them
    flip = not unpaired and few_clusters(row.n_clusters, config.min_paired)
    units = (row.n_clusters if rule.same_device else row.n_paired) if flip else 0
    if unpaired:
        n, need, unit = row.n_paired, config.min_paired, "item(s) to compare"
    elif flip:
        n, need, unit = units, config.min_flip_units, "batch clusters" if rule.same_device else "items"
    else:
        n, need, unit = row.n_clusters, config.min_paired, "independent clusters"
    too_few = f"only {n} {unit} (at least {need} needed to test)" if n < need else ""
    if blocker or too_few or row.higher_is_better is None:
        row.verdict, row.note = "not comparable", blocker or too_few or "direction unknown: set higher_is_better"
        return None
    alpha, worse = config.alpha if rule.alpha is None else rule.alpha, -1.0 if row.higher_is_better else 1.0
    tau = rule.allowed(row.baseline)
    row.allowed = worse * tau
    rng = np.random.default_rng([config.seed, zlib.crc32(f"{row.system}\0{rule.metric}".encode())])
    if shift is not None:
        test: GateTest | None = shift.gate(worse, tau, alpha)
        row.note = f"unpaired: {len(x)} baseline vs {len(y)} candidate items"
    elif flip:
        if rule.same_device:  # a batch shares one timing: its items swap together
            b, c = (f.groupby(f.index.map(cluster))[["num", "den"]].sum() for f in (x, y))
        else:
            b, c = x, y
        how = f"exact over all 2^{units}" if units <= EXACT_SIGN_FLIPS else f"{config.resamples} random"
        row.note = (
            f"{row.n_clusters} clusters < min_paired {config.min_paired}: paired sign-flip test over {units} "
            f"{unit} ({how} label swaps), conditional on this test set's items and voices (not for new ones)"
        )
        sums = [(f["num"].to_numpy(), f["den"].to_numpy()) for f in (b, c)]
        test = sign_flip_test(sums[0], sums[1], worse, tau, alpha, config.resamples, rng)
    else:
        b, c = (f.groupby(f.index.map(cluster))[["num", "den"]].sum() for f in (x, y))
        sums = [(f["num"].to_numpy(), f["den"].to_numpy()) for f in (b, c)]
        test = bootstrap_test(sums[0], sums[1], worse, tau, alpha, config.resamples, rng)
    if test is None:
        row.verdict, row.note = "not comparable", "the statistic is undefined in most resamples"
        return None
    row.ci_low, row.ci_high, row.effect_size = test.ci_low, test.ci_high, test.effect_size
    return test


def timing_blocker(rule: MetricRule, system: str, base: Usable, cand: Usable, device: str) -> tuple[str, str]:
    """(why a timing rule cannot compare, which timings it left out) for one system; ("", "") for other rules."""
    if not rule.same_device:
        return "", ""
    unrecorded = [side for side, u in (("baseline", base), ("candidate", cand)) if u.unrecorded]
    if device or unrecorded:
        return device or f"timing provenance not recorded ({', '.join(unrecorded)})", ""
    parts = [
        f"{side} {sum(counts.values())} ({', '.join(f'{n} {why}' for why, n in sorted(counts.items()))})"
        for side, use in (("baseline", base), ("candidate", cand))
        if (counts := use.excluded.get(system))
    ]
    excluded = f"excluded: {', '.join(parts)}" if parts else ""
    if base.rows[system].empty or cand.rows[system].empty:
        return "; ".join(filter(None, ["no timing left to compare", excluded])), ""
    return "", excluded
