"""Regression gate: a candidate run against a baseline run, per system and metric (`flashspeech-bench compare`).

Statistic: the one the reports show, over the (item, seed) samples both runs scored: the mean of
`<suite>.<metric>`, or a ratio of sums (`numerator` / `denominator` columns: corpus WER = Σ(S+D+I) / Σ ref_words,
RTF = Σ time / Σ audio). Uncertainty: a paired bootstrap over clusters (`bench.stats.clusters`): items linked by a
shared speaker or text, or for timings by a shared batch. With fewer than `min_paired` clusters but at least as
many items, items are resampled within their cluster (conditional on the test set's speakers; the note says so;
never for timings); fewer items than that is "not comparable". Rules and margins: `bench.gate_config`.
A metric REGRESSES when its estimate is worse than the margin and significantly so after Holm's adjustment over
every gating comparison of the report. A bootstrap row's p is twice the smaller one-sided tail beyond the margin:
unadjusted, p < alpha iff the (1 - alpha) percentile CI shown excludes the margin (up to the +1 of the tail count).
`mannwhitney` (unpaired, items taken as independent) tests a shift beyond the margin and reports the
Hodges-Lehmann shift with its Moses CI (the shifts that test does not reject) and the rank-biserial r.
Improvements mirror regressions. `<suite>.failed` counts over the (item, seed) samples both runs attempted;
every suite with an error column gets such a rule (no new failure allowed) unless the config names it.
`same_device` rules (RTF) need one device and use only samples timed in this run on an uncontended machine. A
suite whose evaluator fingerprint (`suites.base.evaluator_fingerprint`) differs between the runs is "not
comparable" and fails, unless `allow_evaluator_change`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.gate_config import GateConfig, MetricRule
from bench.results import AGGREGATE_COLUMNS, Results
from bench.stats import GateTest, ShiftTest, bootstrap_test, clusters, holm, strata
from suites.base import evaluator_fingerprint

VERDICTS = ("regressed", "improved", "unchanged", "not comparable", "missing")
NOT_MEASURED = "not measured per item in either run"
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


@dataclass
class GateReport:
    """Every (system, metric) comparison, what is on one side only, and whether the gate passed."""

    rows: list[ComparisonRow]
    baseline_label: str
    candidate_label: str
    baseline_device: str
    candidate_device: str
    systems_only: dict[str, list[str]] = field(default_factory=dict)  # side ("baseline"/"candidate") -> systems
    items_only: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # side -> system -> item ids
    alpha: float = 0.05
    comparisons: int = 0  # gating tests in the Holm family

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[ComparisonRow]:
        return [r for r in self.rows if r.fails]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(r) for r in self.rows], columns=[f.name for f in fields(ComparisonRow)])

    def to_markdown(self) -> str:
        """A CI job summary: the outcome, the table, then what was on one side only or measured by neither."""
        status = "✅ PASSED" if self.passed else f"❌ FAILED ({len(self.failures)} failing)"
        lines = [
            f"## Regression gate: {status}",
            "",
            f"Baseline `{self.baseline_label}` ({self.baseline_device}) vs candidate `{self.candidate_label}` "
            f"({self.candidate_device}). The reports' statistics (means; Σ/Σ ratios: corpus WER, RTF) over the items"
            f" both runs scored, failures counted; Δ = candidate − baseline; CI: unadjusted {100 * (1 - self.alpha):g}"
            " % paired bootstrap over clusters (items sharing a speaker or text; timings: a batch; with too few"
            " clusters, items within their cluster: see the note), or Mann-Whitney:"
            " medians, Hodges-Lehmann Δ, Moses CI, rank-biserial r; allowed: the margin; n: items / clusters.",
            f"p: Holm-adjusted over {self.comparisons} comparisons, family-wise α = {self.alpha:g}.",
            "",
            "| system | metric | baseline | candidate | Δ | CI of Δ / p | allowed | n | verdict |",
            "|---|---|---:|---:|---:|---|---:|---:|---|",
        ]
        unmeasured: dict[str, list[str]] = {}
        for r in self.rows:
            if r.note == NOT_MEASURED:
                unmeasured.setdefault(r.metric, []).append(r.system)
                continue
            rel = f" ({100 * r.rel_delta:+.1f} %)" if math.isfinite(r.rel_delta) else ""
            stat = [f"[{_fmt(r.ci_low, True)}, {_fmt(r.ci_high, True)}]"] if math.isfinite(r.ci_low) else []
            stat += [f"p = {r.p_value:.3g}"] if math.isfinite(r.p_value) else []
            stat += [f"r = {r.effect_size:+.2f}"] if math.isfinite(r.effect_size) else []
            n = f"{r.n_paired} / {r.n_clusters}" if r.n_clusters else str(r.n_paired)
            verdict = (f"**{r.verdict}**" if r.fails else r.verdict) + ("" if r.gate else " (not gating)")
            lines.append(
                f"| {r.system} | {r.metric} | {_fmt(r.baseline)} | {_fmt(r.candidate)} | {_fmt(r.delta, True)}{rel} "
                f"| {', '.join(stat) or '–'} | {_fmt(r.allowed, True)} | {n} "
                f"| {verdict}{': ' + r.note if r.note else ''} |"
            )
        notes = [f"Systems only in the {side}: {', '.join(s)}" for side, s in self.systems_only.items() if s]
        for side, table in self.items_only.items():
            for system, ids in table.items():
                more = f", … ({len(ids) - 5} more)" if len(ids) > 5 else ""
                notes.append(f"{system}: {len(ids)} item(s) only in the {side}: {', '.join(ids[:5])}{more}")
        notes += [f"Not measured per item in either run: {m} ({', '.join(s)})" for m, s in unmeasured.items()]
        return "\n".join(lines + ([""] + [f"- {n}" for n in notes] if notes else [])) + "\n"


def _fmt(x: float, signed: bool = False) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:+.4g}" if signed else f"{x:.4g}"


def device_of(metadata: dict[str, Any]) -> tuple[str | None, str]:
    """(identity, label) of the device a run was timed on: device kind (index dropped) and GPU model."""
    env = metadata.get("environment") or {}
    device, gpu = env.get("device"), env.get("gpu")
    if not device and not gpu:
        return None, "device not recorded"
    return f"{str(device or '').split(':')[0]}|{gpu or ''}", f"{device} ({gpu})" if gpu else str(device)


def _direction(rule: MetricRule, baseline: Results, candidate: Results) -> bool | None:
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
class _Usable:
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


def _usable(items: pd.DataFrame, rule: MetricRule) -> _Usable:
    """The scored samples' numerator and denominator (1 for a mean), per system; timing rules keep only timings
    measured in this run on an uncontended machine."""
    num_cols, den_col = rule.columns()
    if any(c not in items for c in [*num_cols, den_col or rule.metric]):
        return _Usable()
    ok = items["status"].astype(str).eq("ok") & items.reindex(columns=[f"{rule.suite}.error"]).iloc[:, 0].isna()
    num = sum((pd.to_numeric(items[c], errors="coerce") for c in num_cols), pd.Series(0.0, index=items.index))
    den = pd.to_numeric(items[den_col], errors="coerce") if den_col else pd.Series(1.0, index=items.index)
    frame = items.assign(num=num, den=den).loc[ok & np.isfinite(num) & np.isfinite(den)]
    systems = list(dict.fromkeys(frame["system"]))
    if not rule.same_device:
        return _Usable({s: frame[frame["system"] == s] for s in systems})
    if any(c not in frame for c in PROVENANCE) or frame["timing_source"].isna().all():
        return _Usable({s: frame[frame["system"] == s] for s in systems}, unrecorded=True)
    why = pd.Series(
        [_exclusion(s, c) for s, c in zip(frame["timing_source"], frame["contended"], strict=True)], frame.index
    )
    excluded = {s: g.value_counts().to_dict() for s, g in why[why != ""].groupby(frame["system"])}
    kept = frame[why == ""]
    return _Usable({s: kept[kept["system"] == s] for s in systems}, excluded)


def _failure_flags(items: pd.DataFrame, suite: str) -> dict[str, pd.Series]:
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


def _failure_rules(config: GateConfig, *tables: pd.DataFrame) -> list[MetricRule]:
    """A `<suite>.failed` count rule (no new failure) for each suite with an error column the config leaves out."""
    named = {r.metric for r in config.rules} | set(config.dropped)
    suites = sorted({c[: -len(".error")] for t in tables for c in t.columns if c.endswith(".error")})
    metrics = [f"{s}.failed" for s in suites if s and "." not in s]
    return [MetricRule(m, allowed_abs=0.0) for m in metrics if m not in named] if config.failure_rules else []


def _fingerprint(metadata: dict[str, Any], suite: str) -> dict[str, Any] | None:
    """From the suite's recorded `describe()` (every run has it), else a fingerprint the runner recorded."""
    described = (metadata.get("suites") or {}).get(suite)
    if isinstance(described, dict):
        return evaluator_fingerprint(described)
    recorded = (metadata.get("evaluators") or {}).get(suite)
    return recorded if isinstance(recorded, dict) and "parts" in recorded else None


def evaluator_change(suite: str, baseline: dict[str, Any], candidate: dict[str, Any]) -> str:
    """What differs between the evaluators the runs scored `suite` with ("" when nothing), from their metadata."""
    if suite == "generation":
        return ""
    prints = {side: _fingerprint(meta, suite) for side, meta in (("baseline", baseline), ("candidate", candidate))}
    if None in prints.values():
        return f"evaluator not recorded in the {' and '.join(k for k, v in prints.items() if v is None)}"
    b, c = prints["baseline"] or {}, prints["candidate"] or {}
    if b.get("digest") == c.get("digest"):
        return ""
    bp, cp = b["parts"], c["parts"]
    keys = sorted(k for k in bp.keys() | cp.keys() if bp.get(k, ...) != cp.get(k, ...))
    diffs = ", ".join(f"{k} differs ({_short(bp.get(k, ...))} vs {_short(cp.get(k, ...))})" for k in keys[:3])
    return f"evaluator changed: {suite}: {diffs}" + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")


def _short(value: Any) -> str:
    text = "absent" if value is ... else str(value)
    return text[:8] + "…" if len(text) > 12 else text


def _count_row(row: ComparisonRow, rule: MetricRule, base: pd.Series, cand: pd.Series) -> None:
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
    row.note = f"over {len(common)} samples attempted in both"


def _clusters(paired: list[str], base: pd.DataFrame, cand: pd.DataFrame, timing: bool) -> dict[str, str]:
    """item -> cluster: items sharing a speaker or a text; for timings, a batch (of either run)."""
    links: list[tuple[str, tuple[Any, ...]]] = []
    for side, frame in (("baseline", base), ("candidate", cand)):
        for column in ["batch_id"] if timing else [c for c in ("speaker", "text") if c in frame]:
            pairs = frame[["item_id", column]].dropna().drop_duplicates()
            key = (side, column) if timing else (column,)
            links += [(item, (*key, value)) for item, value in pairs.itertuples(index=False)]
    return clusters(paired, links)


def _stat_row(
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
    # few speakers but enough items: resample within speakers (not for timings: a batch shares one timing)
    scheme, within = strata(cluster, config.min_paired) if cluster and not rule.same_device else ("clusters", None)
    n, unit = (row.n_paired, "item(s) to compare") if unpaired else (row.n_clusters, "independent clusters")
    too_few = f"only {n} {unit} (min_paired {config.min_paired})" if n < config.min_paired else ""
    if scheme == "within":
        too_few = ""
    if blocker or too_few or row.higher_is_better is None:
        row.verdict, row.note = "not comparable", blocker or too_few or "direction unknown: set higher_is_better"
        return None
    alpha, worse = config.alpha if rule.alpha is None else rule.alpha, -1.0 if row.higher_is_better else 1.0
    tau = rule.allowed(row.baseline)
    row.allowed = worse * tau
    if shift is not None:
        test: GateTest | None = shift.gate(worse, tau, alpha)
        row.note = f"unpaired: {len(x)} baseline vs {len(y)} candidate items"
    else:
        rng = np.random.default_rng([config.seed, zlib.crc32(f"{row.system}\0{rule.metric}".encode())])
        if within is None:
            b, c = (f.groupby(f.index.map(cluster))[["num", "den"]].sum() for f in (x, y))
        else:  # per item (x, y are sorted by item id, as `within` is)
            b, c = x, y
            row.note = (
                f"{row.n_clusters} clusters < min_paired {config.min_paired}: {row.n_paired} items resampled within "
                "their cluster (the interval holds for this test set's speakers, not for new ones)"
            )
        sums = [(f["num"].to_numpy(), f["den"].to_numpy()) for f in (b, c)]
        test = bootstrap_test(sums[0], sums[1], worse, tau, alpha, config.resamples, rng, within)
    if test is None:
        row.verdict, row.note = "not comparable", "the statistic is undefined in most resamples"
        return None
    row.ci_low, row.ci_high, row.effect_size = test.ci_low, test.ci_high, test.effect_size
    return test


def _timing_blocker(rule: MetricRule, system: str, base: _Usable, cand: _Usable, device: str) -> tuple[str, str]:
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


def compare(
    baseline: Results,
    candidate: Results,
    config: GateConfig | None = None,
    baseline_label: str | None = None,
    candidate_label: str | None = None,
) -> GateReport:
    """Compare `candidate` against `baseline` under `config` (the default rules when None)."""
    config = config or GateConfig()
    b_items, c_items = (r.items.astype({"system": str, "item_id": str}) for r in (baseline, candidate))
    b_ids, c_ids = (items.groupby("system")["item_id"].agg(set).to_dict() for items in (b_items, c_items))
    shared, only_b, only_c = sorted(b_ids.keys() & c_ids), sorted(b_ids.keys() - c_ids), sorted(c_ids.keys() - b_ids)
    (b_dev, b_label), (c_dev, c_label) = device_of(baseline.metadata), device_of(candidate.metadata)
    why = "different devices" if b_dev and c_dev else "device not recorded"
    device_note = "" if b_dev and b_dev == c_dev else f"{why} ({b_label} vs {c_label})"
    rows: list[tuple[ComparisonRow, MetricRule]] = []
    tests: list[tuple[ComparisonRow, MetricRule, GateTest]] = []
    for rule in [*config.rules, *_failure_rules(config, b_items, c_items)]:
        direction = _direction(rule, baseline, candidate)
        evaluator = evaluator_change(rule.suite, baseline.metadata, candidate.metadata)
        b_use, c_use = (
            (_Usable(), _Usable()) if rule.test == "count" else (_usable(b_items, rule), _usable(c_items, rule))
        )
        if rule.test == "count":
            b_vals, c_vals = _failure_flags(b_items, rule.suite), _failure_flags(c_items, rule.suite)
        else:
            b_vals, c_vals = b_use.rows, c_use.rows
        for system in shared:
            row = ComparisonRow(system, rule.metric, "missing", test=rule.test, higher_is_better=direction)
            row.gate, base, cand = rule.gate, b_vals.get(system), c_vals.get(system)
            rows.append((row, rule))
            if base is None or cand is None:
                missing = "new in the candidate (no baseline)" if base is None else "not measured in the candidate"
                row.note = NOT_MEASURED if base is None and cand is None else missing
                row.fails = config.fail_on_missing and cand is None and base is not None
            elif evaluator and not config.allow_evaluator_change:
                row.verdict, row.note, row.fails = "not comparable", evaluator, True
            elif rule.test == "count":
                _count_row(row, rule, base, cand)
            else:
                blocker, excluded = _timing_blocker(rule, system, b_use, c_use, device_note)
                if test := _stat_row(row, rule, base, cand, config, blocker):
                    tests.append((row, rule, test))
                margin = config.timing_margin_note if rule.same_device else ""
                row.note = "; ".join(filter(None, [row.note, excluded, margin]))
            if evaluator and config.allow_evaluator_change and base is not None and cand is not None:
                row.note = "; ".join(filter(None, [evaluator.replace("changed:", "changed (allowed):", 1), row.note]))
    family = [test.p for _, rule, test in tests if rule.gate]
    adjusted = iter(holm(family))  # over the gating comparisons; a non-gating one keeps its own p
    for row, rule, test in tests:
        row.p_raw, row.p_value = test.p, float(next(adjusted)) if rule.gate else test.p
        harm = -row.delta if row.higher_is_better else row.delta
        alpha = config.alpha if rule.alpha is None else rule.alpha
        row.verdict = test.verdict(row.p_value, alpha, harm, abs(row.allowed))
    for row, rule in rows:
        row.fails = rule.gate and (row.fails or row.verdict == "regressed")
    ordered = sorted((r for r, _ in rows), key=lambda r: shared.index(r.system))  # rules keep their order
    for systems, side, fails in ((only_b, "baseline", config.fail_on_missing), (only_c, "candidate", False)):
        ordered += [
            ComparisonRow(s, "(all)", "missing", note=f"system only in the {side}", fails=fails) for s in systems
        ]
    return GateReport(
        rows=ordered,
        baseline_label=baseline_label or str((baseline.metadata.get("run") or {}).get("name") or "baseline"),
        candidate_label=candidate_label or str((candidate.metadata.get("run") or {}).get("name") or "candidate"),
        baseline_device=b_label,
        candidate_device=c_label,
        systems_only={"baseline": only_b, "candidate": only_c},
        items_only={
            "baseline": {s: sorted(b_ids[s] - c_ids[s]) for s in shared if b_ids[s] - c_ids[s]},
            "candidate": {s: sorted(c_ids[s] - b_ids[s]) for s in shared if c_ids[s] - b_ids[s]},
        },
        alpha=config.alpha,
        comparisons=len(family),
    )


def load_results(ref: str | Path, uri: str | None = None) -> Results:
    """An existing directory is a results directory (`Results.load`); anything else is an MLflow run id."""
    path = Path(ref)
    if path.is_dir():
        return Results.load(path)
    if path.exists() or any(c in str(ref) for c in "/\\") or str(ref).startswith((".", "~")):
        raise FileNotFoundError(f"{ref}: not a results directory (nor an MLflow run id)")
    from bench.tracking import load_run_results

    return load_run_results(str(ref), uri)
