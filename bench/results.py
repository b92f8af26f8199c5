"""The results of a benchmark run: per-item table, per-group table, aggregates with confidence intervals.

Tables (pandas):

- ``items``: one row per (system, item, seed): ``system``, ``kind``, ``steps``, ``seed``, ``item_id``,
  ``speaker``, ``status`` ("ok" / "failed" generation), ``error``, ``audio_path``, ``audio_s``, then one
  column per metric, ``<suite>.<metric>``, and ``<suite>.error`` (None when scored).
- ``groups``: one row per (system, item) for metrics over seeds (prosody diversity), same column scheme.
- ``aggregates``: one row per (system, suite, metric): ``value`` (the suite's own aggregate, e.g. corpus
  WER or sum(time)/sum(audio)), ``ci_low`` / ``ci_high`` (95 % percentile bootstrap over clusters: the items
  sharing a speaker or a text, with every seed, stay together), ``n_items``, ``higher_is_better``, ``unit``.

A failed generation or a failed score stays in the tables with its error, and the aggregates count it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.record import RunRecord
from flashspeech.foundation.files import write_text_atomic
from suites.base import SUITES, ItemScore, Suite

ITEM_KEYS = [
    "system", "kind", "family", "sampler", "steps", "nfe", "seed", "item_id", "speaker", "status", "error",
    "audio_path", "audio_s", "batch_id", "timing_source", "timed_at", "contended",
]  # fmt: skip
GROUP_KEYS = ["system", "item_id"]
AGGREGATE_COLUMNS = ["system", "suite", "metric", "value", "ci_low", "ci_high", "n_items", "higher_is_better", "unit"]
BOOTSTRAP_RESAMPLES = 1000


@dataclass
class GenerationRecord:
    """What a system produced for one (item, seed): audio or an error."""

    system: str
    kind: str
    steps: int | None
    item_id: str
    speaker: str
    seed: int
    audio_path: str | None
    audio_s: float | None
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    batch_id: str | None = None  # samples timed together (one generate() call) share it
    timing_source: str | None = None  # "this run", or "cache" (timings of an earlier run's generation)
    timed_at: str | None = None  # when and where the timings were measured (see bench.timing_context)
    contended: bool | None = None  # the machine was busy while this sample was timed
    text: str | None = None  # what the item asked to say
    family: str | None = None  # sampling family (consistency, diffusion); None for a system that does not sample
    sampler: str | None = None  # consistency, euler, heun
    nfe: int | None = None  # denoiser calls per sample

    @property
    def ok(self) -> bool:
        return self.error is None


def _metric_names(suite: str, rows: Sequence[ItemScore]) -> set[str]:
    """The suite's per-row metric names: those it registers and any a row carries."""
    cls = SUITES.get(suite)
    return set(cls.metrics if cls else ()) | {m for r in rows for m in r.metrics}


def _detail_columns(suite: str, row: ItemScore, metrics: set[str]) -> dict[str, Any]:
    """A row's scalar details as `<suite>.<key>` columns; lists and dicts (e.g. histograms) stay in the score
    cache. A detail named like a metric (the reason that metric is absent) becomes `<suite>.<key>_note`, so
    a column never mixes numbers and messages; `text` (the item's text) goes to the table's `text` column."""
    out: dict[str, Any] = {}
    for key, value in row.details.items():
        if key == "text" or not (value is None or isinstance(value, (str, bool, int, float))):
            continue
        out[f"{suite}.{key}_note" if key in metrics else f"{suite}.{key}"] = value
    return out


def _as_text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def items_table(records: Sequence[GenerationRecord], scores: dict[str, Sequence[ItemScore]]) -> pd.DataFrame:
    """Join generation records with per-sample suite scores (rows with seed set): each suite's metrics and
    scalar details (e.g. `wer.reference`, `wer.hypothesis_raw`) as `<suite>.<name>` columns, and the item's
    `text` (from the generation record, else from a suite's details: the WER and prosody suites carry it)."""
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in records:
        rows[(r.system, r.item_id, r.seed)] = {
            "system": r.system,
            "kind": r.kind,
            "family": r.family,
            "sampler": r.sampler,
            "steps": r.steps,
            "nfe": r.nfe,
            "seed": r.seed,
            "item_id": r.item_id,
            "speaker": r.speaker,
            "status": "ok" if r.ok else "failed",
            "error": r.error,
            "audio_path": r.audio_path,
            "audio_s": r.audio_s,
            "batch_id": r.batch_id,
            "timing_source": r.timing_source,
            "timed_at": r.timed_at,
            "contended": r.contended,
        }
        if r.text is not None:
            rows[(r.system, r.item_id, r.seed)]["text"] = r.text
    details: set[str] = set()
    for suite, suite_scores in scores.items():
        metrics = _metric_names(suite, suite_scores)
        for s in suite_scores:
            if s.seed is None:
                continue
            row = rows.get((s.system, s.item_id, s.seed))
            if row is None:
                raise KeyError(f"suite {suite} scored {s.system}/{s.item_id}/seed {s.seed}, which was not generated")
            if isinstance(s.details.get("text"), str):
                row.setdefault("text", s.details["text"])
            row[f"{suite}.error"] = s.error
            extra = _detail_columns(suite, s, metrics)
            details.update(extra)
            row.update(extra)
            for metric, value in s.metrics.items():
                row[f"{suite}.{metric}"] = value
    frame = pd.DataFrame(list(rows.values()))
    for column in details & set(frame.columns):  # a detail that is text in some rows is text in all (one type)
        if frame[column].map(lambda v: isinstance(v, str)).any():
            frame[column] = frame[column].map(_as_text)
    keys = [*ITEM_KEYS, "text"]
    return frame.reindex(columns=keys + sorted(c for c in frame.columns if c not in keys))


def groups_table(scores: dict[str, Sequence[ItemScore]]) -> pd.DataFrame:
    """Rows over all seeds of an item (seed None)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for suite, suite_scores in scores.items():
        for s in suite_scores:
            if s.seed is not None:
                continue
            row = rows.setdefault((s.system, s.item_id), {"system": s.system, "item_id": s.item_id})
            row[f"{suite}.error"] = s.error
            for metric, value in s.metrics.items():
                row[f"{suite}.{metric}"] = value
    frame = pd.DataFrame(list(rows.values()), columns=GROUP_KEYS if not rows else None)
    return frame.reindex(columns=GROUP_KEYS + sorted(c for c in frame.columns if c not in GROUP_KEYS))


def bootstrap_ci(
    scores: Sequence[ItemScore],
    statistic: Callable[[Sequence[ItemScore]], dict[str, float]],
    metrics: Sequence[str],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
    clusters: Mapping[str, Hashable] | None = None,
    min_clusters: int | None = None,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap of `statistic` over clusters of items: `clusters` maps item_id -> cluster (items sharing
    a speaker or a text, `score_clusters`); without it each item is its own cluster. A cluster's rows (its items,
    every seed) are resampled together. With fewer than `min_clusters` clusters (default `bench.stats.MIN_CLUSTERS`)
    that would undercover, so items (with all their rows) are resampled within their cluster instead: the interval
    is then conditional on the test set's speakers (`bootstrap_scheme` says which applies; the rule:
    `bench.stats.resample_within_clusters`). NaN below 2 items."""
    from bench.stats import MIN_CLUSTERS, resample_within_clusters

    by_item: dict[str, list[ItemScore]] = {}
    for s in scores:
        by_item.setdefault(s.item_id, []).append(s)
    items = sorted(by_item)
    if len(items) < 2:
        return {m: (math.nan, math.nan) for m in metrics}
    label = {i: i if clusters is None else str(clusters.get(i, i)) for i in items}
    groups: dict[str, list[str]] = {}
    for i in items:
        groups.setdefault(label[i], []).append(i)
    within = resample_within_clusters(len(groups), len(items), MIN_CLUSTERS if min_clusters is None else min_clusters)
    units = [[i] for i in items] if within else [groups[k] for k in sorted(groups)]
    strata = (
        [[k for k, u in enumerate(units) if label[u[0]] == g] for g in sorted(groups)]
        if within
        else [list(range(len(units)))]
    )
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {m: [] for m in metrics}
    for _ in range(resamples):
        picked = [members[j] for members in strata for j in rng.integers(0, len(members), len(members))]
        sample = [row for k in picked for item in units[k] for row in by_item[item]]
        stats = statistic(sample)
        for m in metrics:
            value = stats.get(m, math.nan)
            if value is not None and np.isfinite(value):
                draws[m].append(float(value))
    alpha = (1 - level) / 2
    out = {}
    for m, values in draws.items():
        if len(values) < resamples // 2:  # mostly undefined: no honest interval
            out[m] = (math.nan, math.nan)
        else:
            lo, hi = np.quantile(values, [alpha, 1 - alpha])
            out[m] = (float(lo), float(hi))
    return out


def bootstrap_scheme(item_clusters: Mapping[str, Hashable], min_clusters: int | None = None) -> str:
    """How `bootstrap_ci` resamples these items, in words (recorded with the results)."""
    from bench.stats import MIN_CLUSTERS, resample_within_clusters

    limit = MIN_CLUSTERS if min_clusters is None else min_clusters
    k, n = len(set(item_clusters.values())), len(item_clusters)
    if not resample_within_clusters(k, n, limit):
        return f"{k} clusters (items sharing a speaker or a text) resampled"
    return (
        f"{n} items resampled within their {k} clusters (fewer than {limit}): intervals hold for this test set's "
        "speakers, not for new ones"
    )


def score_clusters(records: Sequence[GenerationRecord], scores: dict[str, Sequence[ItemScore]]) -> dict[str, str]:
    """item_id -> cluster for `bootstrap_ci`: the items linked by a shared speaker (generation records) or a
    shared text (the records' or a score's `text` detail), as connected components (`bench.stats.clusters`)."""
    from bench.stats import clusters

    links: list[tuple[str, Hashable]] = [(r.item_id, ("speaker", r.speaker)) for r in records if r.speaker]
    texts = {(r.item_id, r.text) for r in records if r.text}
    texts |= {(s.item_id, s.details["text"]) for rows in scores.values() for s in rows if s.details.get("text")}
    return clusters({r.item_id for r in records}, links + [(item, ("text", text)) for item, text in sorted(texts)])


def generation_rows(records: Sequence[GenerationRecord]) -> list[dict[str, Any]]:
    """Per system: items attempted and generations failed (suite "generation")."""
    rows = []
    for system in sorted({r.system for r in records}):
        mine = [r for r in records if r.system == system]
        n_items = len({r.item_id for r in mine})
        for metric, value in (("attempted", len(mine)), ("failed", sum(not r.ok for r in mine))):
            rows.append(
                {
                    "system": system,
                    "suite": "generation",
                    "metric": metric,
                    "value": float(value),
                    "ci_low": math.nan,
                    "ci_high": math.nan,
                    "n_items": n_items,
                    "higher_is_better": False if metric == "failed" else None,
                    "unit": "samples",
                }
            )
    return rows


def aggregates_table(
    suites: Sequence[Suite],
    scores: dict[str, Sequence[ItemScore]],
    records: Sequence[GenerationRecord] = (),
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> pd.DataFrame:
    """Generation failures, then each suite's own aggregate per system with a bootstrap CI over clusters of items
    (those sharing a speaker or a text; each item alone when there are no records)."""
    rows = generation_rows(records)
    clusters = score_clusters(records, scores) if records else None
    for suite in suites:
        info = {**suite.metrics, **suite.aggregate_metrics}
        systems = sorted({s.system for s in scores.get(suite.name, [])})
        for system in systems:
            mine = [s for s in scores[suite.name] if s.system == system]
            values = suite.aggregate(mine)
            metrics = [m for m in values if m in info]
            cis = bootstrap_ci(mine, suite.aggregate, metrics, resamples=resamples, clusters=clusters)
            for metric, value in values.items():
                meta = info.get(metric)
                lo, hi = cis.get(metric, (math.nan, math.nan))
                rows.append(
                    {
                        "system": system,
                        "suite": suite.name,
                        "metric": metric,
                        "value": value,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n_items": len({s.item_id for s in mine}),
                        "higher_is_better": None if meta is None else meta.higher_is_better,
                        "unit": "" if meta is None else meta.unit,
                    }
                )
    return pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)


def _text_columns(parquet: Path) -> dict[str, type]:
    """The string columns of a saved table, from its parquet twin's schema, so that text such as a hypothesis
    "55" or a speaker "1089" reads back from the CSV as text (empty strings still read back as missing)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pq.read_schema(parquet)
    except (ImportError, OSError, ValueError):  # no pyarrow, no parquet file, or a damaged one
        return {}
    return {f.name: str for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}


@dataclass
class Results:
    """Everything a run produced, as tables plus metadata (config, systems, suites, environment)."""

    items: pd.DataFrame
    groups: pd.DataFrame
    aggregates: pd.DataFrame
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> RunRecord:
        """The run's typed record (systems, device, provenance), read from the metadata."""
        return RunRecord.of(self.metadata)

    def save(self, directory: str | Path) -> Path:
        """items.csv / items.parquet, groups.csv, aggregates.csv, results.json (metadata), atomically each."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for name, frame in (("items", self.items), ("groups", self.groups), ("aggregates", self.aggregates)):
            write_text_atomic(out / f"{name}.csv", frame.to_csv(index=False))
        try:
            tmp = out / ".items.parquet.tmp"
            self.items.to_parquet(tmp, index=False)
            tmp.replace(out / "items.parquet")
        except ImportError:  # pragma: no cover - pyarrow comes with mlflow
            pass
        write_text_atomic(out / "results.json", json.dumps(self.metadata, indent=1, default=str) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> Results:
        d = Path(directory)
        if not (d / "results.json").is_file():
            raise FileNotFoundError(f"{d}: no results.json (not a flashspeech-bench results directory)")
        ids = {"system": str, "item_id": str, "speaker": str}
        return cls(
            items=pd.read_csv(d / "items.csv", dtype={**_text_columns(d / "items.parquet"), **ids}),
            groups=pd.read_csv(d / "groups.csv", dtype=ids),
            aggregates=pd.read_csv(d / "aggregates.csv", dtype={"system": str}),
            metadata=json.loads((d / "results.json").read_text(encoding="utf-8")),
        )

    def summary(self) -> pd.DataFrame:
        """Systems x headline metrics (value only), for printing."""
        if self.aggregates.empty:
            return pd.DataFrame()
        frame = self.aggregates.assign(column=self.aggregates["suite"] + "." + self.aggregates["metric"])
        return frame.pivot_table(index="system", columns="column", values="value", aggfunc="first")
