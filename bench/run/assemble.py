"""Record: assemble a run's `Results` (items, groups, aggregates) and its metadata (provenance, environment,
systems, suites, evaluators, test sets), with the typed run record (`bench.record`) under `record` and each system's
`SystemKey` under `systems.<label>.key`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from bench.config import BenchConfig
from bench.record import Device, Provenance, RunRecord, evaluator_digest, lock_digest, package_versions
from bench.results import GenerationRecord, Results, bootstrap_scheme, groups_table, items_table, score_clusters
from bench.run.plan import Plan
from bench.testsets.manifest import Manifest
from flashspeech.foundation.environment import environment, git_branch
from suites.base import ItemScore, Suite, evaluator_fingerprint


def assemble(
    config: BenchConfig,
    plan: Plan,
    suites: Sequence[Suite],
    records: list[GenerationRecord],
    scores: dict[str, list[ItemScore]],
    aggregates: pd.DataFrame,
    notes: dict[str, dict[str, str]],
    run: dict[str, Any],
    output_dir: Path,
) -> Results:
    """The run's results; `run`: its timings and counts (started, generated, cached, wall_s, executor)."""
    context = plan.context
    branch, packages = git_branch(), package_versions()
    evaluators = {suite.name: evaluator_fingerprint(suite.describe()) for suite in suites}
    provenance = Provenance(
        commit=context["git_commit"],
        branch=branch,
        lock_sha256=lock_digest(),
        evaluator=evaluator_digest(evaluators),
        packages=packages,
    )
    record = RunRecord(config.name, Device.current(config.device), provenance, plan.keys)
    metadata = {
        "run": {
            "name": config.name,
            "started": run["started"],
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
            "git_commit": context["git_commit"],
            "branch": branch,
            "lock_sha256": provenance.lock_sha256,
            "generated": run["generated"],
            "cached": run["cached"],
            "wall_s": run["wall_s"],
            "retime": config.retime,
            "executor": run["executor"],
            "timing_context": context,
            "skipped": [asdict(s) for s in plan.skipped],  # systems not run on a test set of another task
        },
        "config": config.to_dict(),
        "output_dir": str(output_dir),
        "environment": environment(config.device),
        "packages": packages,
        "systems": {
            p.key.label: {
                **p.system.describe(),
                "steps": None,  # a system that does not sample records no steps; sampling() overrides it
                **p.system.sampling(),
                "code": p.code,
                "provenance_note": p.system.provenance_note(),
                "name": p.system.name,
                "testset": p.key.testset,
                "kind": p.system.kind,
                "key": p.key.to_dict(),
            }
            for p in plan.plans
        },
        "suites": {s.name: s.describe() for s in suites},
        "evaluators": evaluators,
        "aggregate_notes": notes,
        "bootstrap": bootstrap_scheme(score_clusters(records, scores)) if records else None,
        "testsets": {name: _testset_metadata(m) for name, m in plan.testsets},
        "record": record.metadata(),
    }
    return Results(
        items=items_table(records, scores), groups=groups_table(scores), aggregates=aggregates, metadata=metadata
    )


def _testset_metadata(manifest: Manifest) -> dict[str, Any]:
    """What ran of a test set: its items, the entries left out, and for an imported set its import record and the
    digest of the item lines as read (set against the record's to prove the set unchanged)."""
    return {
        "task": manifest.task,
        "items": len(manifest),
        "problems": [str(p) for p in manifest.problems],
        "manifest": manifest.source,
        "import": None if manifest.provenance is None else manifest.provenance.to_dict(),
        "items_sha256": manifest.items_sha256,
    }
