"""The benchmark run: test sets -> systems -> generation cache -> suites -> results (the CLI then writes the
reports and logs to MLflow).

Generation and scoring are separate: every (system, item, seed) is looked up in the content-addressed
cache first and generated only when missing, so a finished benchmark regenerates nothing and an
interrupted one resumes. A failed generation or a failed score is recorded with its error and counted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cache import GenerationCache, ScoreCache, default_cache_root, generation_key
from bench.config import BenchConfig, TestSetConfig
from bench.results import (
    AGGREGATE_COLUMNS,
    GenerationRecord,
    Results,
    aggregates_table,
    bootstrap_scheme,
    groups_table,
    items_table,
    score_clusters,
)
from bench.systems import Generated, System, build_systems, prompt_clip
from bench.testsets.manifest import Manifest, load_manifest
from flashspeech.foundation.environment import cpu_model, environment, git_commit
from suites.base import CANNOT_RUN, ItemScore, Need, Sample, Suite, evaluator_fingerprint
from suites.item import EvalItem

PACKAGES = ("flashspeech-bench", "torch", "torchaudio", "openai-whisper", "jiwer", "transformers", "mlflow", "numpy")


@dataclass
class RunOutcome:
    results: Results
    output_dir: Path
    generated: int = 0
    cached: int = 0


def load_testset(cfg: TestSetConfig) -> Manifest:
    """An embedded set by name, or a manifest file; `max_items` keeps the first n valid items."""
    if cfg.manifest:
        manifest = load_manifest(cfg.manifest, name=cfg.name)
    else:
        from bench.testsets.embedded import embedded_manifest

        manifest = embedded_manifest(cfg.name)
    if cfg.max_items is not None:
        manifest.items = manifest.items[: cfg.max_items]
    return manifest


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def timing_context(device: str) -> dict[str, Any]:
    """Where this run's timings are measured: host, device, GPU model and driver, CPU model, torch / CUDA, code."""
    import platform

    env = environment(device)
    keys = ("device", "gpu", "driver", "torch", "cuda", "torch_threads", "cpu_count")
    return {
        "host": platform.node(),
        **{k: env.get(k) for k in keys},
        "cpu": cpu_model() or env.get("cpu"),
        "git_commit": git_commit(),
        "code_version": package_versions()["flashspeech-bench"],
    }


def timed_label(timed: dict[str, Any]) -> str:
    """One line saying when, where and at which commit a timing was measured."""
    where = timed.get("gpu") or timed.get("cpu") or timed.get("device") or "unknown device"
    commit = str(timed.get("git_commit") or "unknown commit")[:10]
    return f"{timed.get('measured_at', '?')} on {timed.get('host', '?')} ({where}) at {commit}"


def _generate_all(
    system: System,
    label: str,
    manifest: Manifest,
    seeds: Sequence[int],
    cache: GenerationCache,
    batch_size: int,
    bar: Any,
    context: dict[str, Any] | None = None,
    retime: bool = False,
) -> tuple[list[GenerationRecord], dict[tuple[str, int], Generated], int, int]:
    """Records and audio for every (item, seed), the number of generation attempts and of cache hits.

    Every generate() call is timed under a `LoadMonitor`: its samples share a batch id and record where, when
    and under what load they were timed. A cache hit keeps the timings of the run that generated it, marked as
    such; `retime` regenerates cache hits so that every timing is this run's."""
    from bench.contention import LoadMonitor

    description = system.describe()
    deterministic = system.deterministic  # one generation serves every seed
    records: list[GenerationRecord] = []
    audio: dict[tuple[str, int], Generated] = {}
    todo: list[tuple[EvalItem, int, str]] = []
    hits = 0
    for item in manifest.items:
        for seed in seeds:
            key = generation_key(description, item, 0 if deterministic else seed)
            hit = None if retime else cache.get(key)
            if hit is None:
                if not deterministic or seed == seeds[0]:
                    todo.append((item, seed, key))
                continue
            generated, path = hit
            hits += 1
            audio[(item.id, seed)] = generated
            records.append(_record(system, label, item, seed, generated, str(path)))
            bar.update(1)
    if todo:
        with contextlib.suppress(Exception):  # untimed; a failing item is recorded by the real call
            system.warmup(todo[0][0])
    for number, start in enumerate(range(0, len(todo), batch_size)):
        batch = todo[start : start + batch_size]
        with LoadMonitor() as monitor:
            results = system.generate([b[0] for b in batch], [b[1] for b in batch])
        timed = {
            **(context or {}),
            "source": "this run",
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            # unique across runs: a cache hit keeps the batch id of the run that timed it
            "batch_id": f"{label}#{number}@{(context or {}).get('run_started', '')}",
            "load": monitor.report.as_dict() if monitor.report else None,
        }
        for (item, seed, key), generated in zip(batch, results, strict=True):
            generated.timed = timed
            path = cache.put(key, generated) if generated.error is None else None
            seeds_here = seeds if deterministic else [seed]
            for s in seeds_here:
                audio[(item.id, s)] = generated
                records.append(_record(system, label, item, s, generated, None if path is None else str(path)))
                bar.update(1)
    return records, audio, len(todo), hits


def _record(system: System, label: str, item: EvalItem, seed: int, g: Generated, path: str | None) -> GenerationRecord:
    timed = g.timed or {}
    load = timed.get("load") or {}
    sampling = system.sampling()
    return GenerationRecord(
        system=label,
        kind=system.kind,
        steps=sampling.get("steps"),
        family=sampling.get("family"),
        sampler=sampling.get("sampler"),
        nfe=sampling.get("nfe"),
        item_id=item.id,
        speaker=item.speaker,
        seed=seed,
        audio_path=path,
        audio_s=None if g.audio is None else len(g.audio) / g.sample_rate,
        error=g.error,
        timings=g.timings,
        batch_id=timed.get("batch_id"),
        timing_source=timed.get("source"),
        timed_at=timed_label(timed) if timed else None,
        contended=load.get("contended"),
        text=item.text,
    )


def _score(
    suites: Sequence[Suite], samples: list[Sample], cache: ScoreCache, progress: bool, timings: dict[str, float]
) -> dict[str, list[ItemScore]]:
    """Each suite's rows, scored and cached per (suite, system) as each is done: adding a system to a run scores
    only that system (unless the suite's `context_key`, what its rows see of the other samples, changes too), and
    a run killed while scoring keeps every (suite, system) it finished. Suites that read timings (RTF) are
    rescored every run, never cached: the same audio must not replay another run's speed."""
    scores: dict[str, list[ItemScore]] = {}
    for suite in suites:
        start = time.perf_counter()
        timed = Need.TIMINGS in suite.needs
        mine = [s for s in samples if not timed or s.timings]
        by_system: dict[str, list[Sample]] = {}
        for sample in mine:
            by_system.setdefault(sample.system, []).append(sample)
        description = {**suite.describe(), "context": suite.context_key(mine)}
        keys = {system: cache.key(description, group) for system, group in by_system.items()}
        rows: dict[str, list[ItemScore]] = {}
        for system, key in keys.items():
            cached = None if timed else cache.get(key)
            if cached is not None:
                rows[system] = cached
        for system, group in by_system.items():  # one unit of work each, cached as soon as it is done
            if system in rows:
                continue
            try:
                rows[system] = suite.score(group, progress=progress, context=mine)
            except CANNOT_RUN as exc:  # the whole suite cannot run: every sample says why (not cached)
                rows[system] = [suite.failure(s, exc) for s in group]
                continue
            if not timed:
                cache.put(keys[system], rows[system])
        scores[suite.name] = [r for system in by_system for r in rows[system]]
        timings[f"score_{suite.name}_s"] = time.perf_counter() - start
    return scores


def run_benchmark(config: BenchConfig, progress: bool = True, log: Callable[[str], None] = print) -> RunOutcome:
    """Run the configured benchmark end to end; returns the results and where everything was written."""
    from tqdm.auto import tqdm

    from suites import build_suite

    started = dt.datetime.now(dt.timezone.utc)
    out_dir = Path(config.output_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = GenerationCache(Path(config.cache_dir) if config.cache_dir else default_cache_root(out_dir))
    testsets = [(cfg.name, load_testset(cfg)) for cfg in config.testsets]
    systems = build_systems(config.systems, config.device)
    suites = [build_suite(name, device=config.device, **(options or {})) for name, options in config.suites.items()]

    records: list[GenerationRecord] = []
    samples: list[Sample] = []
    generated = cached = 0
    stage_s: dict[str, float] = {}
    t0 = time.perf_counter()
    total = sum(len(m.items) for _, m in testsets) * len(config.seeds) * len(systems)
    needs_reconstruction = any(Need.RECONSTRUCTED_PROMPT in (s.needs | s.optional_needs) for s in suites)
    context = {**timing_context(config.device), "run_started": started.isoformat(timespec="seconds")}
    with tqdm(total=total, desc="generating", unit="sample", disable=not progress) as bar:
        for testset, manifest in testsets:
            items = {i.id: i for i in manifest.items}
            for system in systems:
                label = f"{testset}:{system.name}"
                recs, audio, n, hits = _generate_all(
                    system, label, manifest, config.seeds, cache, system.batch_size, bar, context, config.retime
                )
                records.extend(recs)
                generated += n
                cached += hits
                reconstructed: dict[str, np.ndarray | None] = {}
                for rec in recs:
                    g = audio[(rec.item_id, rec.seed)]
                    if g.audio is None:
                        continue
                    item = items[rec.item_id]
                    if needs_reconstruction and item.id not in reconstructed:
                        try:
                            reconstructed[item.id] = system.reconstruct(prompt_clip(item, system.sample_rate))
                        except Exception:
                            reconstructed[item.id] = None
                    samples.append(
                        Sample(
                            item=item,
                            system=label,
                            audio=g.audio,
                            sample_rate=g.sample_rate,
                            seed=rec.seed,
                            timings=g.timings,
                            reconstructed_prompt=reconstructed.get(item.id),
                            meta={**g.meta, "testset": testset, "timing": g.timed},
                        )
                    )
    stage_s["generation_s"] = time.perf_counter() - t0
    scores = _score(suites, samples, ScoreCache(cache.root / "scores"), progress, stage_s)
    t0 = time.perf_counter()
    aggregates = aggregates_table(suites, scores, records, resamples=config.bootstrap_resamples)
    aggregates = pd.concat([testset_rows(testsets, systems), aggregates], ignore_index=True)
    stage_s["aggregates_s"] = time.perf_counter() - t0
    metadata = {
        "run": {
            "name": config.name,
            "started": started.isoformat(),
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(),
            "git_commit": context["git_commit"],
            "generated": generated,
            "cached": cached,
            "wall_s": stage_s,
            "retime": config.retime,
            "timing_context": context,
        },
        "config": config.to_dict(),
        "output_dir": str(out_dir),
        "environment": environment(config.device),
        "packages": package_versions(),
        "systems": {
            f"{t}:{s.name}": {
                **s.describe(),
                "steps": None,  # a system that does not sample records no steps; sampling() overrides it
                **s.sampling(),
                "name": s.name,
                "testset": t,
                "kind": s.kind,
            }
            for t, _ in testsets
            for s in systems
        },
        "suites": {s.name: s.describe() for s in suites},
        "evaluators": {suite.name: evaluator_fingerprint(suite.describe()) for suite in suites},
        "aggregate_notes": aggregate_notes(suites, scores),
        "bootstrap": bootstrap_scheme(score_clusters(records, scores)) if records else None,
        "testsets": {name: {"items": len(m), "problems": [str(p) for p in m.problems]} for name, m in testsets},
    }
    results = Results(
        items=items_table(records, scores),
        groups=groups_table(scores),
        aggregates=aggregates,
        metadata=metadata,
    )
    results.save(out_dir)
    return RunOutcome(results, out_dir, generated=generated, cached=cached)


def testset_rows(testsets: Sequence[tuple[str, Manifest]], systems: Sequence[System]) -> pd.DataFrame:
    """Per system and test set (suite "testset"): `items` = entries of the test set, `failed` = entries left out
    for a problem (manifest lines with one or more problems), so a test set that lost items is counted next to
    the numbers and in the reports' failure table, not only listed in results.json."""
    rows = []
    for name, manifest in testsets:
        # one entry per problem line (a problem not from a file names its item instead)
        bad = len({(p.source, p.line, None if p.line else p.item_id) for p in manifest.problems})
        for system in systems:
            for metric, value in (("items", len(manifest) + bad), ("failed", bad)):
                rows.append(
                    {
                        "system": f"{name}:{system.name}",
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
