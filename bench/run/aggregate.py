"""Aggregate: the aggregates table (every suite's metrics per system, with bootstrap intervals; the generation
and test-set counts) and why an aggregate is unavailable (`aggregate_notes`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from bench.results import AGGREGATE_COLUMNS, GenerationRecord, aggregates_table
from bench.run.plan import SystemPlan
from suites.base import ItemScore, Suite


def aggregate(
    suites: Sequence[Suite],
    scores: dict[str, list[ItemScore]],
    records: Sequence[GenerationRecord],
    plans: Sequence[SystemPlan],
    resamples: int,
) -> tuple[pd.DataFrame, dict[str, dict[str, str]]]:
    """The aggregates table (test-set rows first) and the aggregate notes."""
    aggregates = aggregates_table(suites, scores, list(records), resamples=resamples)
    aggregates = pd.concat([testset_rows(plans), aggregates], ignore_index=True)
    return aggregates, aggregate_notes(suites, scores)


def testset_rows(plans: Sequence[SystemPlan]) -> pd.DataFrame:
    """Per system and test set (suite "testset"): `items` = entries of the test set, `failed` = entries left out
    for a problem (manifest lines with one or more problems), so a test set that lost items is counted next to
    the numbers and in the reports' failure table, not only listed in results.json."""
    rows = []
    for plan in plans:
        manifest = plan.manifest
        # one entry per problem line (a problem not from a file names its item instead)
        bad = len({(p.source, p.line, None if p.line else p.item_id) for p in manifest.problems})
        for metric, value in (("items", len(manifest) + bad), ("failed", bad)):
            rows.append(
                {
                    "system": plan.key.label,
                    "suite": "testset",
                    "metric": metric,
                    "value": float(value),
                    "ci_low": math.nan,
                    "ci_high": math.nan,
                    "n_items": len(manifest),
                    "higher_is_better": False if metric == "failed" else None,
                    "unit": "items",
                }
            )
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def aggregate_notes(suites: Sequence[Suite], scores: dict[str, list[ItemScore]]) -> dict[str, dict[str, str]]:
    """system -> {"<suite>.<metric>": why that aggregate is unavailable}, from each suite's `aggregate_notes`."""
    notes: dict[str, dict[str, str]] = {}
    for suite in suites:
        rows = scores.get(suite.name, [])
        for system in sorted({r.system for r in rows}):
            for metric, why in suite.aggregate_notes([r for r in rows if r.system == system]).items():
                notes.setdefault(system, {})[f"{suite.name}.{metric}"] = why
    return notes
