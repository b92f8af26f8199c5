"""One gate, for `run --gate` and `compare`: resolve the baseline -> compare -> emit the report -> tag the run."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bench.gate.baseline import AUTO, DEFAULT_BRANCH, REPO, auto_baseline, find_tagged
from bench.gate.compare import GateReport, compare, load_results, results_dir
from bench.gate.margins import noise_margins
from bench.gate.rules import GateConfig
from bench.gate.store import GATE_BASELINE_TAG, GATE_TAG, tag_run
from bench.results import Results

NO_BASELINE = "## Regression gate\n\nNo baseline run qualifies (see the log): nothing was compared; the gate passes.\n"


@dataclass
class GateOptions:
    """How a gate runs: its config (rules, margins), the tracking store (`uri`: where `auto`, `tag:` and run ids are
    looked up, and where `tag_run` is tagged), how `auto` chooses (`branch`, `repo`, `noise_runs`), the runs that
    are never the baseline (`exclude`: the candidate's own), the candidate's name in the report and where the
    report's Markdown goes (`report_path`, besides stdout and `$GITHUB_STEP_SUMMARY`)."""

    config: GateConfig = field(default_factory=GateConfig)
    uri: str | None = None
    branch: str = DEFAULT_BRANCH
    repo: Path = REPO
    noise_runs: int = 0
    exclude: tuple[str | None, ...] = ()
    candidate_label: str | None = None
    report_path: str | None = None
    tag_run: str | None = None  # the candidate's logged run: tagged with the outcome


@dataclass
class GateOutcome:
    """The report (None: no baseline qualified, nothing was compared) and the baseline it compared with."""

    report: GateReport | None
    baseline: str | None = None

    @property
    def passed(self) -> bool | None:
        """Whether the gate passed; None when there was no baseline."""
        return None if self.report is None else self.report.passed

    def exit_status(self, require_baseline: bool = False) -> int:
        """0 passed, 3 failed (or no baseline with `require_baseline`)."""
        if self.report is None:
            return 3 if require_baseline else 0
        return 0 if self.report.passed else 3


def gate(candidate: Results, baseline: str, options: GateOptions) -> GateOutcome:
    """Gate `candidate` against `baseline` (a results directory, an MLflow run id, `tag:K=V` or `auto`): resolve it,
    compare, emit the report (`publish_markdown`) and tag the candidate's logged run with the outcome."""
    ref = resolve_baseline(baseline, candidate, options)
    if ref is None:
        publish_markdown(NO_BASELINE, options.report_path)
        record_gate(options.uri, options.tag_run, None, None)
        return GateOutcome(None)
    report = compare(load_results(ref, uri=options.uri), candidate, options.config, ref, options.candidate_label)
    publish_markdown(report.to_markdown(), options.report_path)
    record_gate(options.uri, options.tag_run, report.passed, ref)
    return GateOutcome(report, ref)


def needs_store(baseline: str) -> bool:
    """Whether `baseline` is chosen from the tracking store (`auto`, `tag:K=V`)."""
    return baseline == AUTO or baseline.startswith("tag:")


def check_baseline(baseline: str) -> None:
    """Fail now (before a run) when `baseline` looks like a path but is not a results directory."""
    if not needs_store(baseline):
        results_dir(baseline)


def resolve_baseline(ref: str, candidate: Results, options: GateOptions) -> str | None:
    """The results reference (directory or MLflow run id) the gate compares with: `ref` itself, the run that
    `tag:K=V` names, or for `auto` the run `bench.gate.baseline` chooses (printed with what it skipped; None when
    none qualifies). With `auto` and `noise_runs`, the config's margins widen to the baselines' noise."""
    if not needs_store(ref):
        return ref
    uri = options.uri
    if not uri:
        raise ValueError(f"baseline {ref}: needs a tracking store (the store to choose the baseline from)")
    if ref.startswith("tag:"):
        run = find_tagged(uri, ref)
        print(f"baseline: run {run.label} (tags {ref[4:]})")
        return run.run_id
    exclude = [run_id for run_id in options.exclude if run_id]
    choice = auto_baseline(candidate.metadata, uri, options.branch, exclude, options.repo)
    print(choice.describe())
    if choice.run is not None and options.noise_runs:
        for line in noise_margins(options.config, choice, uri, options.noise_runs):
            print(f"  {line}")
    return None if choice.run is None else choice.run.run_id


def record_gate(uri: str | None, run_id: str | None, passed: bool | None, baseline: str | None) -> None:
    """Tag the logged run with the gate's outcome ("passed" | "failed" | "no baseline")."""
    if not uri or not run_id:
        return
    outcome = "no baseline" if passed is None else "passed" if passed else "failed"
    tag_run(uri, run_id, {GATE_TAG: outcome, **({GATE_BASELINE_TAG: baseline} if baseline else {})})


def publish_markdown(text: str, path: str | None = None) -> None:
    """Print Markdown and append it to `path` and to the CI job summary (`$GITHUB_STEP_SUMMARY`), when set."""
    print("\n" + text)
    for target in filter(None, (path, os.environ.get("GITHUB_STEP_SUMMARY"))):
        with Path(target).open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
