"""The regression gate's rules and configuration: which metrics gate, by which test, with what margin (`[gate]`
tables).

`default_rules()` are the rules a run is gated by when nothing else is said; a ratio statistic's sums (corpus WER,
RTF) are the ones its suite declares (`suites.base.Ratio`, `Suite.ratios`). `GateConfig.from_dict` / `from_toml`
read a `[gate]` table: config fields, `defaults` (keep the default rules; true) and `metrics` =
{"<suite>.<metric>": {rule fields} | false}. The comparison itself is `bench.gate.compare`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bench.stats import MIN_CLUSTERS
from flashspeech.foundation.fields import FieldError, typed_fields
from suites import SUITES
from suites.defects import FLAGS as DEFECT_FLAGS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TESTS = ("bootstrap", "mannwhitney", "count")
# per-sample 0/1 flags that the count test counts as it counts `<suite>.failed`: flagged samples both runs scored
FLAG_METRICS = frozenset({*(f"defects.{flag}" for flag in (*DEFECT_FLAGS, "defective")), "wer.hallucination"})


class GateConfigError(FieldError):
    """A gate config that cannot be used; the message names the field."""


@dataclass
class MetricRule:
    """How one metric gates: direction, allowed regression (absolute and/or relative to the baseline), test."""

    metric: str  # "<suite>.<metric>", e.g. "wer.wer"
    higher_is_better: bool | None = None  # None: from the aggregates, else the registered suite's metric info
    allowed_abs: float | None = None  # allowed move in the worse direction, in the metric's unit
    allowed_rel: float | None = None  # ... as a fraction of the baseline value (0.1 = 10 %)
    test: str = "bootstrap"  # bootstrap (paired) | mannwhitney (unpaired) | count (`*.failed`, FLAG_METRICS)
    same_device: bool = False  # compare only when both runs ran on the same device (timings)
    alpha: float | None = None  # None: the config's alpha; the level the rule's Holm-adjusted p must reach
    gate: bool = True  # False: reported (at its unadjusted p), never fails the gate
    numerator: tuple[str, ...] | None = None  # a ratio statistic: Σ numerator columns / Σ denominator column
    denominator: str | None = None  # (a column without a dot is the rule's suite's: "ref_words" = "wer.ref_words")

    def __post_init__(self) -> None:
        if "." not in self.metric:
            raise GateConfigError(f"metric {self.metric!r}: expected '<suite>.<metric>'")
        if self.test not in TESTS:
            raise GateConfigError(f"{self.metric}: test {self.test!r} unknown; known: {', '.join(TESTS)}")
        if (self.numerator is None) != (self.denominator is None):
            raise GateConfigError(f"{self.metric}: a ratio needs both numerator and denominator")
        if self.numerator is not None:
            self.numerator = (self.numerator,) if isinstance(self.numerator, str) else tuple(self.numerator)
        if self.name == "failed":
            if self.numerator is not None:
                raise GateConfigError(f"{self.metric}: failures are counted, not a ratio")
            self.test = "count"  # failures are counted, never resampled
        elif self.test == "count" and self.metric not in FLAG_METRICS:
            flags = ", ".join(sorted(FLAG_METRICS))
            raise GateConfigError(f"{self.metric}: the count test is for '<suite>.failed' metrics and flags ({flags})")
        elif self.test == "count" and self.numerator is not None:
            raise GateConfigError(f"{self.metric}: flags are counted, not a ratio")
        elif self.numerator is not None and self.test != "bootstrap":
            raise GateConfigError(f"{self.metric}: a ratio statistic is compared by the paired bootstrap only")
        if any(v is not None and not v >= 0 for v in (self.allowed_abs, self.allowed_rel)):
            raise GateConfigError(f"{self.metric}: allowed_abs / allowed_rel are magnitudes (>= 0)")

    def incomparable_allowed(self, allowed: list[str]) -> bool:
        """Whether a "not comparable" row of this rule passes: named in `allowed` (or "*" there)."""
        return "*" in allowed or self.metric in allowed

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

    def columns(self) -> tuple[list[str], str | None]:
        """The items columns summed in the numerator, and the denominator's (None: a mean of the metric)."""
        if self.numerator is None or self.denominator is None:
            return [self.metric], None
        names = [c if "." in c else f"{self.suite}.{c}" for c in (*self.numerator, self.denominator)]
        return names[:-1], names[-1]


def declared_ratio(metric: str) -> dict[str, Any]:
    """The numerator and denominator of `<suite>.<metric>` as its registered suite declares them (`Suite.ratios`)."""
    suite, _, name = metric.partition(".")
    ratio = SUITES.lookup(suite).ratios[name]
    return {"numerator": ratio.numerator, "denominator": ratio.denominator}


def default_rules() -> list[MetricRule]:
    """WER +1 point (mean of per-item WERs and corpus WER, both shown by the reports), SIM-o / SIM-r -0.01, RTF
    (Σ time / Σ audio) +10 % on the same device only, no new generation failures, no new defective sample (the
    defects suite) and no new ASR hallucination (the WER suite); `compare` adds a `<suite>.failed` rule for every
    suite in the results (`GateConfig.failure_rules`). A rule whose metric neither run measured is reported, never
    failing."""
    return [
        MetricRule("wer.wer", allowed_abs=0.01),
        MetricRule("wer.wer_corpus", allowed_abs=0.01, **declared_ratio("wer.wer_corpus")),
        MetricRule("similarity.sim_o", allowed_abs=0.01),
        MetricRule("similarity.sim_r", allowed_abs=0.01),
        MetricRule("rtf.rtf", allowed_rel=0.10, same_device=True, **declared_ratio("rtf.rtf")),
        MetricRule("generation.failed", allowed_abs=0.0),
        MetricRule("defects.defective", test="count", allowed_abs=0.0),
        MetricRule("wer.hallucination", test="count", allowed_abs=0.0),
    ]


@dataclass
class GateConfig:
    """The gate's rules and statistics settings; `from_dict` / `from_toml` read a `[gate]` table."""

    rules: list[MetricRule] = field(default_factory=default_rules)
    alpha: float = 0.05  # family-wise, over the gating comparisons (Holm)
    resamples: int = 10000  # the smallest bootstrap p is 2 / (resamples + 1)
    seed: int = 0
    min_paired: int = MIN_CLUSTERS  # fewer clusters: the sign-flip test over items (Mann-Whitney: not comparable)
    min_flip_units: int = 6  # fewer items (timings: batch clusters) for the sign-flip test: "not comparable"
    # gating metrics allowed to be "not comparable" without failing ("*": every one); by default a gating row
    # either compares or fails the gate
    allow_incomparable: list[str] = field(default_factory=list)
    fail_on_missing: bool = True  # a system or metric the baseline has and the candidate lacks fails the gate
    failure_rules: bool = True  # a `<suite>.failed` count rule for every suite with an error column
    allow_evaluator_change: bool = False  # compare a suite's metrics although its evaluator fingerprint changed
    dropped: list[str] = field(default_factory=list)  # metrics the config dropped (no automatic rule for them)
    # a `calibrate-rtf` result (rtf-noise.json): the timing rules' allowed_rel becomes its recommended margin
    rtf_noise: str | None = None
    # timing rules on two CPU-timed runs: at least this relative margin unless calibrated. Whole runs drift
    # together on a shared CPU (measured on the 2-core development VM: up to 19 % between identical runs of
    # `smoke`; calibrate-rtf recommended 40 %); None: the rules' own margins
    cpu_timing_rel: float | None = 0.40
    timing_margin_note: str = ""  # where the timing rules' margin came from (set with rtf_noise)
    margin_notes: dict[str, str] = field(default_factory=dict)  # metric -> where its margin came from (history)

    def __post_init__(self) -> None:
        if self.rtf_noise:
            self.apply_rtf_noise(self.rtf_noise)

    def apply_rtf_noise(self, path: str | Path) -> None:
        """Set every timing rule's relative margin from a `calibrate-rtf` result: the run-to-run noise of RTF
        measured on the machine the gated runs come from."""
        import json

        try:
            noise = json.loads(Path(path).read_text(encoding="utf-8"))
            margin = float(noise["recommended_allowed_rel"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise GateConfigError(f"gate.rtf_noise: {path}: not a calibrate-rtf result ({exc})") from exc
        for rule in self.rules:
            if rule.same_device:
                rule.allowed_rel, rule.allowed_abs = margin, None
        machine = noise.get("machine") or {}
        where = machine.get("gpu") or machine.get("cpu") or machine.get("device") or "an unrecorded machine"
        self.rtf_noise = str(path)
        self.timing_margin_note = (
            f"margin {100 * margin:.0f} % calibrated by {noise.get('runs', '?')} re-timed runs on {where} "
            f"({noise.get('measured_at', '?')}: worst run-to-run deviation {100 * noise['worst_max_rel_dev']:.1f} %)"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateConfig:
        """Config fields, `defaults` (keep the default rules and failure rules; true) and `metrics` =
        {"<suite>.<metric>": {rule fields} (override that metric's rule, or add one) | false (drop it)}."""
        derived = {"rules", "dropped", "timing_margin_note", "margin_notes"}  # set by the code, not by a config
        checked = typed_fields(cls, data, "gate", skip=("defaults", "metrics"), hide=derived, error=GateConfigError)
        data = {**data, **checked}
        defaults = data.pop("defaults", True)
        data.setdefault("failure_rules", bool(defaults))
        rules = {r.metric: r for r in (default_rules() if defaults else [])}
        rule_fields = {f.name for f in fields(MetricRule)} - {"metric"}
        dropped = []
        for metric, spec in (data.pop("metrics", None) or {}).items():
            if spec is False:
                rules.pop(metric, None)
                dropped.append(metric)
                continue
            if not isinstance(spec, dict) or set(spec) - rule_fields:
                raise GateConfigError(f"gate.metrics.{metric}: expected a table of {', '.join(sorted(rule_fields))}")
            base = asdict(rules[metric]) if metric in rules else {"metric": metric}
            rules[metric] = MetricRule(**{**base, **spec})
        config = cls(rules=list(rules.values()), dropped=dropped, **data)
        if not 0 < config.alpha < 1 or config.resamples < 100 or config.min_paired < 2 or config.min_flip_units < 1:
            raise GateConfigError(
                "gate: alpha must be in (0, 1), resamples >= 100, min_paired >= 2 and min_flip_units >= 1"
            )
        floor = config.cpu_timing_rel
        if floor is not None and floor < 0:
            raise GateConfigError(f"gate.cpu_timing_rel: a fraction >= 0 (0.4 = 40 %) or absent, got {floor!r}")
        return config

    @classmethod
    def from_toml(cls, path: str | Path, table: str = "gate") -> GateConfig:
        """The `[table]` of a TOML file (or the whole file when it has no such table)."""
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        return cls.from_dict(data.get(table, data))
