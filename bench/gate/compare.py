"""Regression gate: a candidate run against a baseline run, per system and metric (`flashspeech-bench compare`).

Each rule of the config (`bench.gate.rules`: rules and margins; failures and per-sample flags such as
`defects.defective` are counted), plus a `<suite>.failed` rule per suite with an error column, gives one row per
system: its statistic, interval and test (`bench.gate.rows`). A metric REGRESSES when its estimate is worse than the
margin and significantly so after Holm's adjustment over every gating comparison of the report; improvements mirror
regressions; an estimate beyond the margin that is not significant reads "worse (not significant)" (it does not
fail). `same_device` rules (RTF) need one device (`timing_device`). A gating row that cannot compare (too few items,
other device, contended or borrowed timings, evaluator changed) is "not comparable" and fails: the gate fails
closed, unless the config allows that metric (`allow_incomparable`, `--allow-incomparable`) or, for a changed
evaluator fingerprint (`suites.base.evaluator_fingerprint`), `allow_evaluator_change`. Items of the baseline missing
from the candidate (a shrunken test set) fail as a `testset.items` row. `GateReport` holds the rows and renders them
for a CI job summary; `load_results` reads either run from a results directory or an MLflow run id.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.gate.rows import (
    ComparisonRow,
    Usable,
    count_flags,
    count_row,
    failure_rules,
    metric_direction,
    stat_row,
    timing_blocker,
    usable,
)
from bench.gate.rules import GateConfig, MetricRule
from bench.gate.significance import GateTest, holm
from bench.record import Device
from bench.results import Results
from suites.base import evaluator_fingerprint

VERDICTS = (
    "regressed",
    "improved",
    "worse (not significant)",
    "better (not significant)",
    "unchanged",
    "not comparable",
    "missing",
)
NOT_MEASURED = "not measured per item in either run"
FAILS_CLOSED = "a gating metric must compare: fails (allow it with --allow-incomparable METRIC)"
ALLOWED_INCOMPARABLE = "not comparable, allowed (--allow-incomparable)"


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
            " clusters, a paired sign-flip test over items: see the note), or Mann-Whitney:"
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


def timing_device(device: Device) -> str | None:
    """What must match for two runs' timings to compare (`same_device` rules): the device kind and, on a GPU, its
    model, the index dropped (`cuda|NVIDIA H100 80GB HBM3`, `cpu|`); None when the run recorded no device. Unlike
    `Device.identity` (the baselines' `device_model`), CPU runs compare across CPU models: whole CPU runs drift
    together, which the CPU timing floor (`cpu_timing_rel`) or a calibrated margin covers."""
    if not device.recorded:
        return None
    return f"{device.kind}|{device.model if device.is_gpu and device.model else ''}"


def _device(results: Results) -> tuple[str | None, str]:
    """(`timing_device`, label) of the device a run was timed on."""
    device = results.record.device
    identity = timing_device(device)
    return identity, device.label if identity else "device not recorded"


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
    (b_dev, b_label), (c_dev, c_label) = _device(baseline), _device(candidate)
    why = "different devices" if b_dev and c_dev else "device not recorded"
    device_note = "" if b_dev and b_dev == c_dev else f"{why} ({b_label} vs {c_label})"
    rows: list[tuple[ComparisonRow, MetricRule]] = []
    tests: list[tuple[ComparisonRow, MetricRule, GateTest]] = []
    cpu = bool(b_dev and b_dev == c_dev and b_dev.startswith("cpu|"))
    for rule in [*config.rules, *failure_rules(config, b_items, c_items)]:
        rule, floor_note = timing_floor(rule, config, cpu)
        direction = metric_direction(rule, baseline, candidate)
        evaluator = evaluator_change(rule.suite, baseline.metadata, candidate.metadata)
        b_use, c_use = (Usable(), Usable()) if rule.test == "count" else (usable(b_items, rule), usable(c_items, rule))
        if rule.test == "count":
            b_vals, c_vals = count_flags(b_items, rule), count_flags(c_items, rule)
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
                count_row(row, rule, base, cand)
            else:
                blocker, excluded = timing_blocker(rule, system, b_use, c_use, device_note)
                if test := stat_row(row, rule, base, cand, config, blocker):
                    tests.append((row, rule, test))
                margin = config.margin_notes.get(rule.metric) or (config.timing_margin_note if rule.same_device else "")
                margin = margin or floor_note
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
        if rule.gate and row.verdict == "not comparable":  # fails closed: a gating row compares or fails
            allowed = rule.incomparable_allowed(config.allow_incomparable)
            row.fails = not allowed
            row.note = "; ".join(filter(None, [row.note, ALLOWED_INCOMPARABLE if allowed else FAILS_CLOSED]))
    ordered = sorted((r for r, _ in rows), key=lambda r: shared.index(r.system))  # rules keep their order
    items_only = {
        "baseline": {s: sorted(b_ids[s] - c_ids[s]) for s in shared if b_ids[s] - c_ids[s]},
        "candidate": {s: sorted(c_ids[s] - b_ids[s]) for s in shared if c_ids[s] - b_ids[s]},
    }
    for system, lost in items_only["baseline"].items():  # a shrunken set must not pass as "better"
        more = f", … ({len(lost) - 5} more)" if len(lost) > 5 else ""
        ordered.append(
            ComparisonRow(
                system,
                "testset.items",
                "regressed",
                baseline=float(len(b_ids[system])),
                candidate=float(len(c_ids[system])),
                delta=float(len(c_ids[system]) - len(b_ids[system])),
                allowed=0.0,
                test="count",
                higher_is_better=True,
                note=f"{len(lost)} item(s) of the baseline missing in the candidate: {', '.join(lost[:5])}{more}",
                fails=config.fail_on_missing,
            )
        )
    for systems, side, fails in ((only_b, "baseline", config.fail_on_missing), (only_c, "candidate", False)):
        ordered += [
            ComparisonRow(s, "(all)", "missing", note=f"system only in the {side}", fails=fails) for s in systems
        ]
    return GateReport(
        rows=ordered,
        baseline_label=baseline_label or str(baseline.record.config or "baseline"),
        candidate_label=candidate_label or str(candidate.record.config or "candidate"),
        baseline_device=b_label,
        candidate_device=c_label,
        systems_only={"baseline": only_b, "candidate": only_c},
        items_only=items_only,
        alpha=config.alpha,
        comparisons=len(family),
    )


def timing_floor(rule: MetricRule, config: GateConfig, cpu: bool) -> tuple[MetricRule, str]:
    """A timing rule on two CPU-timed runs gets at least `config.cpu_timing_rel` as its relative margin (whole CPU
    runs drift together), unless its margin was calibrated (`rtf_noise`, `--noise-runs`); (rule, note)."""
    floor = config.cpu_timing_rel
    calibrated = config.rtf_noise or rule.metric in config.margin_notes
    if not (rule.same_device and cpu and floor) or calibrated or (rule.allowed_rel or 0.0) >= floor:
        return rule, ""
    note = f"margin {100 * floor:.0f} %: the CPU noise floor (cpu_timing_rel; calibrate-rtf for this machine's)"
    return replace(rule, allowed_rel=floor), note


def results_dir(ref: str | Path) -> Path | None:
    """The results directory `ref` names, or None when it is an MLflow run id; FileNotFoundError when it looks
    like a path (or is a file) but is not a directory."""
    path = Path(ref)
    if path.is_dir():
        return path
    if path.exists() or any(c in str(ref) for c in "/\\") or str(ref).startswith((".", "~")):
        raise FileNotFoundError(f"{ref}: not a results directory (nor an MLflow run id)")
    return None


def load_results(ref: str | Path, uri: str | None = None) -> Results:
    """An existing directory is a results directory (`Results.load`); anything else is an MLflow run id."""
    path = results_dir(ref)
    if path is not None:
        return Results.load(path)
    from bench.tracking import load_run_results

    return load_run_results(str(ref), uri)
