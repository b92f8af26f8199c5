"""Benchmark runs as the MLflow store holds them: parent runs with their lineage tags (`bench.lineage`), children's
metrics; the gate's outcome tags."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from bench.lineage import TAG_PREFIX, Lineage
from bench.tracking import DEFAULT_EXPERIMENT, KIND_TAG, PARENT_TAG, SYSTEM_TAG, open_client

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

GATE_TAG = TAG_PREFIX + "gate"  # "passed" | "failed" | "no baseline", set after `run --gate`
GATE_BASELINE_TAG = TAG_PREFIX + "gate_baseline"  # the baseline run the gate compared with
ACCEPTED_TAG = TAG_PREFIX + "accepted"  # why a run whose gate failed was accepted as a baseline (`accept`)


@dataclass
class StoredRun:
    """One logged benchmark run (the parent run): id, start time, status, lineage and gate outcome."""

    run_id: str
    started: dt.datetime
    status: str
    lineage: Lineage
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def gate(self) -> str | None:
        """The gate's outcome tagged on the run (None: it was not gated)."""
        return self.tags.get(GATE_TAG)

    @property
    def accepted(self) -> str | None:
        """Why the run was accepted as a baseline despite its gate (`flashspeech-bench accept`); None if not."""
        return self.tags.get(ACCEPTED_TAG)

    @property
    def label(self) -> str:
        commit = (self.lineage.commit or "?")[:8]
        return f"{self.run_id[:8]} ({commit}, {self.started:%Y-%m-%d %H:%M})"


def _experiment_id(client: MlflowClient, experiment: str) -> str | None:
    found = client.get_experiment_by_name(experiment)
    return None if found is None else found.experiment_id


def _search(client: MlflowClient, experiment_id: str, query: str) -> Iterator[Run]:
    """Every run of the experiment that matches `query`, page after page."""
    token = None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        yield from page
        token = page.token
        if not token:
            return


def list_runs(uri: str, experiment: str = DEFAULT_EXPERIMENT, config: str | None = None) -> list[StoredRun]:
    """The experiment's benchmark runs (parents), oldest first; only `config`'s when given. FINISHED or not:
    callers decide (a FAILED run is one whose logging broke)."""
    client = open_client(uri)
    experiment_id = _experiment_id(client, experiment)
    if experiment_id is None:
        return []
    query = f"tags.`{KIND_TAG}` = 'parent'"
    if config is not None:
        query += f" and tags.`{TAG_PREFIX}config` = '{config}'"
    runs = [
        StoredRun(
            run_id=run.info.run_id,
            started=dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.timezone.utc),
            status=run.info.status,
            lineage=Lineage.from_tags(run.data.tags),
            name=run.info.run_name or "",
            tags=dict(run.data.tags),
        )
        for run in _search(client, experiment_id, query)
    ]
    return sorted(runs, key=lambda r: (r.started, r.run_id))


def run_metrics(uri: str, runs: list[StoredRun], experiment: str = DEFAULT_EXPERIMENT) -> pd.DataFrame:
    """Every system metric of `runs` (their child runs' metrics), one row per (run, system, metric): value and,
    where logged, ci_low / ci_high."""
    client = open_client(uri)
    columns = ["run_id", "system", "metric", "value", "ci_low", "ci_high"]
    experiment_id = _experiment_id(client, experiment)
    if experiment_id is None or not runs:
        return pd.DataFrame(columns=columns)
    rows: list[dict[str, Any]] = []
    wanted = {r.run_id for r in runs}
    for child in _search(client, experiment_id, f"tags.`{KIND_TAG}` = 'system'"):
        parent = child.data.tags.get(PARENT_TAG)
        if parent not in wanted:
            continue
        metrics = child.data.metrics
        for key, value in metrics.items():
            if key.endswith((".ci_low", ".ci_high")):
                continue
            rows.append(
                {
                    "run_id": parent,
                    "system": child.data.tags.get(SYSTEM_TAG, child.info.run_name),
                    "metric": key,
                    "value": value,
                    "ci_low": metrics.get(f"{key}.ci_low"),
                    "ci_high": metrics.get(f"{key}.ci_high"),
                }
            )
    return pd.DataFrame(rows, columns=columns)


def tag_run(uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set tags on a logged run (the gate's outcome after `run --gate`)."""
    client = open_client(uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
