"""`--gate auto`: the baseline a run is gated against, picked from the tracking store, and margins from noise."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bench.gate_config import GateConfig
from bench.lineage import TAG_PREFIX, Lineage
from bench.regression.baseline import DEFAULT_BRANCH, BaselineChoice, choose_baseline
from bench.regression.noise import DEFAULT_K, apply_history_noise
from bench.regression.store import StoredRun, list_runs, run_metrics
from bench.tracking import DEFAULT_EXPERIMENT

AUTO = "auto"
REPO = Path(__file__).resolve().parents[2]  # the checkout whose history decides ancestry


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


def noise_margins(config: GateConfig, choice: BaselineChoice, uri: str, runs: int, k: float = DEFAULT_K) -> list[str]:
    """Widen `config`'s margins from the spread of the `runs` nearest qualifying baseline runs."""
    return apply_history_noise(config, run_metrics(uri, choice.eligible[:runs]), k)


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
