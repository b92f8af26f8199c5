"""Regression gate: a candidate run against a baseline run, per system and metric (`flashspeech-bench compare`).

Item values (`<suite>.<metric>` columns of `Results.items`) are averaged over seeds and paired by (system, item_id).
A metric REGRESSES when the candidate is worse by more than the rule's margin and significantly so: `bootstrap`: the
(1 - alpha) percentile CI of the mean paired difference lies wholly beyond the margin; `mannwhitney` (unpaired): the
U test of "candidate worse than baseline + margin" has p < alpha. Improvements mirror this. `<suite>.failed` metrics
are counted over the (item, seed) samples both runs attempted. `same_device` rules (RTF) need one device and GPU.
"""

from __future__ import annotations

import math
import sys
import zlib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.results import AGGREGATE_COLUMNS, Results

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TESTS = ("bootstrap", "mannwhitney", "count")
VERDICTS = ("regressed", "improved", "unchanged", "not comparable", "missing")
NOT_MEASURED = "not measured per item in either run"


class GateConfigError(ValueError):
    """A gate config that cannot be used; the message names the field."""


@dataclass
class MetricRule:
    """How one metric gates: direction, allowed regression (absolute and/or relative to the baseline), test."""

    metric: str  # "<suite>.<metric>", e.g. "wer.wer"
    higher_is_better: bool | None = None  # None: from the aggregates, else the registered suite's metric info
    allowed_abs: float | None = None  # allowed move in the worse direction, in the metric's unit
    allowed_rel: float | None = None  # ... as a fraction of the baseline value (0.1 = 10 %)
    test: str = "bootstrap"  # bootstrap (paired) | mannwhitney (unpaired) | count (`*.failed` metrics)
    same_device: bool = False  # compare only when both runs ran on the same device (timings)
    alpha: float | None = None  # None: the config's alpha
    gate: bool = True  # False: reported, never fails the gate

    def __post_init__(self) -> None:
        if "." not in self.metric:
            raise GateConfigError(f"metric {self.metric!r}: expected '<suite>.<metric>'")
        if self.test not in TESTS:
            raise GateConfigError(f"{self.metric}: test {self.test!r} unknown; known: {', '.join(TESTS)}")
        if self.name == "failed":
            self.test = "count"  # failures are counted, never resampled
        elif self.test == "count":
            raise GateConfigError(f"{self.metric}: the count test is for '<suite>.failed' metrics only")
        if any(v is not None and not v >= 0 for v in (self.allowed_abs, self.allowed_rel)):
            raise GateConfigError(f"{self.metric}: allowed_abs / allowed_rel are magnitudes (>= 0)")

    @property
    def suite(self) -> str:
        return self.metric.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.metric.split(".", 1)[1]

    def allowed(self, baseline: float) -> float:
        """The margin: the larger of the absolute and the relative allowance (0 when neither is set)."""
        rel = (self.allowed_rel or 0.0) * abs(baseline) if math.isfinite(baseline) else 0.0
        return max(self.allowed_abs or 0.0, rel)


def default_rules() -> list[MetricRule]:
    """WER +1 point, SIM-o / SIM-r -0.01, RTF +10 % (same device only), no new generation failures."""
    return [
        MetricRule("wer.wer", allowed_abs=0.01),
        MetricRule("similarity.sim_o", allowed_abs=0.01),
        MetricRule("similarity.sim_r", allowed_abs=0.01),
        MetricRule("rtf.rtf", allowed_rel=0.10, same_device=True),
        MetricRule("generation.failed", allowed_abs=0.0),
    ]


@dataclass
class GateConfig:
    """The gate's rules and statistics settings; `from_dict` / `from_toml` read a `[gate]` table."""

    rules: list[MetricRule] = field(default_factory=default_rules)
    alpha: float = 0.05
    resamples: int = 2000
    seed: int = 0
    min_paired: int = 2  # fewer items to compare: "not comparable"
    fail_on_missing: bool = True  # a system or metric the baseline has and the candidate lacks fails the gate

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        """Config fields, `defaults` (keep the default rules; true) and `metrics` = {"<suite>.<metric>": {rule
        fields} (override that metric's default rule, or add one) | false (drop it)}."""
        data = dict(data)
        unknown = set(data) - ({f.name for f in fields(cls)} - {"rules"}) - {"defaults", "metrics"}
        if unknown:
            raise GateConfigError(f"gate: unknown key(s) {', '.join(sorted(unknown))}")
        rules = {r.metric: r for r in (default_rules() if data.pop("defaults", True) else [])}
        rule_fields = {f.name for f in fields(MetricRule)} - {"metric"}
        for metric, spec in (data.pop("metrics", None) or {}).items():
            if spec is False:
                rules.pop(metric, None)
                continue
            if not isinstance(spec, dict) or set(spec) - rule_fields:
                raise GateConfigError(f"gate.metrics.{metric}: expected a table of {', '.join(sorted(rule_fields))}")
            base = asdict(rules[metric]) if metric in rules else {"metric": metric}
            rules[metric] = MetricRule(**{**base, **spec})
        config = cls(rules=list(rules.values()), **data)
        if not 0 < config.alpha < 1 or config.resamples < 100:
            raise GateConfigError("gate: alpha must be in (0, 1) and resamples >= 100")
        return config

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "gate") -> GateConfig:
        """The `[table]` of a TOML file (or the whole file when it has no such table)."""
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data.get(table, data))


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
            f"({self.candidate_device}). Means over paired items (seeds averaged; failures: counts); Δ = candidate"
            f" − baseline, {100 * (1 - self.alpha):g} % bootstrap CI or Mann-Whitney p; allowed: the margin.",
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
            verdict = (f"**{r.verdict}**" if r.fails else r.verdict) + ("" if r.gate else " (not gating)")
            lines.append(
                f"| {r.system} | {r.metric} | {_fmt(r.baseline)} | {_fmt(r.candidate)} | {_fmt(r.delta, True)}{rel} "
                f"| {', '.join(stat) or '–'} | {_fmt(r.allowed, True)} | {r.n_paired} "
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


def _item_values(items: pd.DataFrame, rule: MetricRule) -> dict[str, pd.Series]:
    """Per system: item_id -> the metric averaged over the item's scored seeds (no entry: nothing scored)."""
    if rule.metric not in items:
        return {}
    ok = items["status"].astype(str).eq("ok") & items.reindex(columns=[f"{rule.suite}.error"]).iloc[:, 0].isna()
    values = pd.to_numeric(items[rule.metric], errors="coerce")
    rows = items.loc[ok & np.isfinite(values), ["system", "item_id"]].assign(value=values)
    means = rows.groupby(["system", "item_id"])["value"].mean()
    return {system: group.droplevel(0) for system, group in means.groupby(level=0)}


def _failure_flags(items: pd.DataFrame, suite: str) -> dict[str, pd.Series]:
    """Per system: (item_id, seed) -> failed (generation status, or the suite's error); {} when not run."""
    generated = items["status"].astype(str).eq("ok")
    if suite == "generation":
        failed = ~generated
    elif f"{suite}.error" in items:
        failed = generated & items[f"{suite}.error"].notna()
    else:
        return {}
    flags = items[["system", "item_id", "seed"]].assign(failed=failed).set_index(["system", "item_id", "seed"])
    return {system: group["failed"].droplevel(0) for system, group in flags.groupby(level=0)}


def _bootstrap_ci(
    x: np.ndarray, y: np.ndarray, paired: bool, alpha: float, resamples: int, rng: np.random.Generator
) -> tuple[float, float]:
    """Percentile CI of mean(y) - mean(x): items resampled together (paired) or each side on its own."""
    if paired:
        draws = (y - x)[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    else:
        draws = y[rng.integers(0, len(y), (resamples, len(y)))].mean(axis=1)
        draws -= x[rng.integers(0, len(x), (resamples, len(x)))].mean(axis=1)
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _classify(row: ComparisonRow, harm: float, tau: float, worse: bool, better: bool) -> None:
    """Regressed / improved only when the point estimate is beyond the margin and the test agrees."""
    row.verdict = "regressed" if worse and harm > tau else "improved" if better and harm < -tau else "unchanged"


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
    _classify(row, row.delta, tau, True, True)
    row.note = f"over {len(common)} samples attempted in both"


def _stat_row(row: ComparisonRow, rule: MetricRule, base: pd.Series, cand: pd.Series, config: GateConfig) -> None:
    """Bootstrap (paired items) or Mann-Whitney (every scored item); a note set before (device) = not comparable."""
    unpaired, paired_ids = rule.test == "mannwhitney", base.index.intersection(cand.index)
    x = (base if unpaired else base[paired_ids]).to_numpy(float)
    y = (cand if unpaired else cand[paired_ids]).to_numpy(float)
    row.n_paired = min(len(x), len(y))
    if len(x) == 0:
        row.verdict, row.note = "not comparable", "no item scored in both runs"
        return
    row.baseline, row.candidate = float(x.mean()), float(y.mean())
    row.delta = row.candidate - row.baseline
    row.rel_delta = row.delta / abs(row.baseline) if row.baseline else math.nan
    if not row.note and row.n_paired < config.min_paired:
        row.note = f"only {row.n_paired} item(s) to compare (min_paired {config.min_paired})"
    if not row.note and row.higher_is_better is None:
        row.note = "direction unknown: set higher_is_better in the rule"
    if row.note:
        row.verdict = "not comparable"
        return
    sign = -1.0 if row.higher_is_better else 1.0  # harm = sign * delta: positive is worse
    tau = rule.allowed(row.baseline)
    row.allowed = sign * tau
    alpha = config.alpha if rule.alpha is None else rule.alpha
    rng = np.random.default_rng([config.seed, zlib.crc32(f"{row.system}\0{rule.metric}".encode())])
    row.ci_low, row.ci_high = _bootstrap_ci(x, y, not unpaired, alpha, config.resamples, rng)
    harm = sign * row.delta
    if unpaired:
        from scipy.stats import mannwhitneyu

        p_worse = float(mannwhitneyu(sign * y - tau, sign * x, alternative="greater").pvalue)
        p_better = float(mannwhitneyu(sign * y + tau, sign * x, alternative="less").pvalue)
        row.p_value = p_worse if harm >= 0 else p_better
        row.note = f"unpaired: {len(x)} baseline vs {len(y)} candidate items"
        _classify(row, harm, tau, p_worse < alpha, p_better < alpha)
    else:
        harm_lo, harm_hi = sorted((sign * row.ci_low, sign * row.ci_high))
        _classify(row, harm, tau, harm_lo > tau, harm_hi < -tau)


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
    rows: list[ComparisonRow] = []
    for rule in config.rules:
        direction = _direction(rule, baseline, candidate)
        if rule.test == "count":
            b_vals, c_vals = _failure_flags(b_items, rule.suite), _failure_flags(c_items, rule.suite)
        else:
            b_vals, c_vals = _item_values(b_items, rule), _item_values(c_items, rule)
        for system in shared:
            row = ComparisonRow(system, rule.metric, "missing", test=rule.test, higher_is_better=direction)
            row.gate, base, cand = rule.gate, b_vals.get(system), c_vals.get(system)
            if base is None or cand is None:
                missing = "new in the candidate (no baseline)" if base is None else "not measured in the candidate"
                row.note = NOT_MEASURED if base is None and cand is None else missing
                row.fails = config.fail_on_missing and cand is None and base is not None
            elif rule.test == "count":
                _count_row(row, rule, base, cand)
            else:
                row.note = device_note if rule.same_device else ""
                _stat_row(row, rule, base, cand, config)
            row.fails = rule.gate and (row.fails or row.verdict == "regressed")
            rows.append(row)
    rows.sort(key=lambda r: shared.index(r.system))  # stable: rules keep their order within a system
    for systems, side, fails in ((only_b, "baseline", config.fail_on_missing), (only_c, "candidate", False)):
        rows += [ComparisonRow(s, "(all)", "missing", note=f"system only in the {side}", fails=fails) for s in systems]
    return GateReport(
        rows=rows,
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
