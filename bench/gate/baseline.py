"""Choosing the baseline a run is gated against from the tracking store (`run --gate auto`, `compare auto`), or
the run that `tag:KEY=VALUE` names (`find_tagged`).

The baseline is the closest run before the candidate in git history: a FINISHED run on the baseline branch
(main by default) whose config, lock, evaluator fingerprint and device model equal the candidate's, whose
commit is the candidate's commit or one of its ancestors, and whose own gate did not fail (or that was accepted
after a deliberate change: `flashspeech-bench accept`). Among those, the
nearest commit wins, then the latest start. Every run passed over is listed with the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gate.store import StoredRun, list_runs
from bench.lineage import TAG_PREFIX, Lineage
from bench.tracking import DEFAULT_EXPERIMENT

AUTO = "auto"
DEFAULT_BRANCH = "main"
REPO = Path(__file__).resolve().parents[2]  # the checkout whose history decides ancestry


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30, check=False)


def commits_apart(ancestor: str, commit: str, repo: Path) -> int | None:
    """How many commits `commit` is ahead of `ancestor` (0: the same commit); None when `ancestor` is not an
    ancestor of `commit` or either is unknown to the clone at `repo`."""
    if _git(repo, "merge-base", "--is-ancestor", ancestor, commit).returncode != 0:
        return None
    count = _git(repo, "rev-list", "--count", f"{ancestor}..{commit}")
    return int(count.stdout.strip()) if count.returncode == 0 else None


def known_commit(commit: str, repo: Path) -> bool:
    return _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


@dataclass
class BaselineChoice:
    """The chosen run (None: no run qualifies), every qualifying run (nearest first: the gate's noise margins
    read the first N), the runs passed over with why, and how many were looked at."""

    run: StoredRun | None
    eligible: list[StoredRun] = field(default_factory=list)
    skipped: list[tuple[StoredRun, str]] = field(default_factory=list)
    considered: int = 0
    branch: str = DEFAULT_BRANCH
    distance: int | None = None

    def describe(self, limit: int = 8) -> str:
        if self.run is None:
            head = f"no baseline: none of {self.considered} logged run(s) qualifies"
        else:
            ahead = "the same commit" if self.distance == 0 else f"{self.distance} commit(s) back"
            head = f"baseline: run {self.run.label} on {self.branch}, {ahead}"
        lines = [head] + [f"  skipped {run.label}: {why}" for run, why in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more skipped")
        return "\n".join(lines)


def choose_baseline(
    candidate: Lineage,
    runs: Iterable[StoredRun],
    repo: Path,
    branch: str = DEFAULT_BRANCH,
    exclude: Iterable[str] = (),
) -> BaselineChoice:
    """The baseline for `candidate` among `runs` (see the module docstring); `exclude`: run ids to pass over
    (the candidate's own run, already logged)."""
    runs = sorted(runs, key=lambda r: r.started, reverse=True)
    excluded = set(exclude)
    choice = BaselineChoice(None, considered=len(runs), branch=branch)
    if not candidate.commit or not known_commit(candidate.commit, repo):
        choice.skipped = [
            (r, f"the candidate's commit ({candidate.commit}) is not in the clone at {repo}") for r in runs
        ]
        return choice
    eligible: list[tuple[int, StoredRun]] = []
    for run in runs:
        why = _disqualified(candidate, run, branch, excluded)
        if why is None:
            if not run.lineage.commit or not known_commit(run.lineage.commit, repo):
                why = f"commit {run.lineage.commit} is not in this clone (fetch the full history)"
            elif (distance := commits_apart(run.lineage.commit, candidate.commit, repo)) is None:
                why = f"commit {run.lineage.commit[:8]} is not an ancestor of {candidate.commit[:8]}"
            else:
                eligible.append((distance, run))
                continue
        choice.skipped.append((run, why))
    eligible.sort(key=lambda pair: (pair[0], -pair[1].started.timestamp()))
    choice.eligible = [run for _, run in eligible]
    if eligible:
        choice.distance, choice.run = eligible[0]
    return choice


def _disqualified(candidate: Lineage, run: StoredRun, branch: str, excluded: set[str]) -> str | None:
    if run.run_id in excluded:
        return "the candidate itself"
    if run.status != "FINISHED":
        return f"status {run.status}"
    if run.lineage.branch != branch:
        return f"branch {run.lineage.branch} (not {branch})"
    if mismatch := candidate.mismatch(run.lineage):
        theirs = ", ".join(f"{f} {getattr(run.lineage, f)} vs {getattr(candidate, f)}" for f in mismatch)
        return f"not comparable: {theirs}"
    if run.gate == "failed" and not run.accepted:
        return "its own gate failed (accept it with `flashspeech-bench accept` if the change was deliberate)"
    return None


def auto_baseline(
    candidate: Mapping[str, Any],
    uri: str,
    branch: str = DEFAULT_BRANCH,
    exclude: Iterable[str] = (),
    repo: Path = REPO,
    experiment: str = DEFAULT_EXPERIMENT,
) -> BaselineChoice:
    """The baseline for a run with results metadata `candidate` among the store's runs of its config."""
    lineage = Lineage.of(candidate)
    runs = list_runs(uri, experiment, lineage.config) if lineage.config else []
    return choose_baseline(lineage, runs, repo, branch, exclude)


def find_tagged(uri: str, ref: str, experiment: str = DEFAULT_EXPERIMENT) -> StoredRun:
    """The newest benchmark run whose tags match `ref` = "tag:KEY=VALUE[,KEY=VALUE...]"; a key without a dot is
    one of ours (`commit=abc123`, `branch=main`; a commit may be abbreviated)."""
    wanted = {}
    for part in ref.removeprefix("tag:").split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{ref}: expected tag:KEY=VALUE[,KEY=VALUE...]")
        key = key.strip() if "." in key else TAG_PREFIX + key.strip()
        wanted[key] = value.strip()
    commit_tag = TAG_PREFIX + "commit"

    def matches(run: StoredRun) -> bool:
        for key, value in wanted.items():
            have = run.tags.get(key)
            if have is None or not (
                have == value or (key == commit_tag and len(value) >= 7 and have.startswith(value))
            ):
                return False
        return True

    found = [r for r in list_runs(uri, experiment) if r.status == "FINISHED" and matches(r)]
    if not found:
        raise LookupError(f"no finished benchmark run at {uri} has the tags {wanted}")
    return found[-1]
