"""The benchmark run: test sets -> systems -> generation cache -> suites -> results (the CLI then writes the
reports and logs to MLflow).

Generation and scoring are separate: every (system, item, seed) is looked up in the content-addressed
cache first and generated only when missing, so a finished benchmark regenerates nothing and an
interrupted one resumes. A failed generation or a failed score is recorded with its error and counted.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.cache import GenerationCache, ScoreCache, default_cache_root, generation_key
from bench.config import BenchConfig, TestSetConfig
from bench.execution import (
    Entry,
    Executor,
    GenerationUnit,
    ScoringUnit,
    UnitFailure,
    Worker,
    build_executor,
    by_length,
    merge_shards,
    score_shards,
)
from bench.execution.units import ScoredShard, timed_this_run
from bench.lineage import lock_digest
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
from flashspeech.foundation.environment import cpu_model, environment, git_branch, git_commit
from suites.base import ItemScore, Need, Sample, Suite, evaluator_fingerprint, suite_code_digest
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


def _generation_units(
    system: System,
    label: str,
    manifest: Manifest,
    config: BenchConfig,
    cache: GenerationCache,
    context: dict[str, Any],
    code: str,
) -> tuple[list[Entry], dict[str, Generated], list[GenerationUnit]]:
    """Every (item, seed) slot of one system on one test set, the cache hits among them, and units for the rest.

    A deterministic system generates one entry per item (under seed 0's key) that serves every seed; `retime`
    counts no hit, so every timing is this run's. The key holds the generating code's digest (`code`:
    `System.code_digest`) and, on CPU, the torch thread count the units run with (`ExecutorConfig.cpu_threads`).
    Units hold about `shard_items` entries, whole batches each, the longest texts first."""
    description = {**system.describe(), "code": code}
    if system.threads_affect_audio and not str(config.device).startswith("cuda"):
        description["cpu_threads"] = config.executor.cpu_threads()  # other counts round differently
    slots: list[Entry] = []
    hits: dict[str, Generated] = {}
    todo: list[Entry] = []
    for item in manifest.items:
        for seed in config.seeds:
            key = generation_key(description, item, 0 if system.deterministic else seed)
            slots.append(Entry(item, seed, key))
            hit = None if config.retime or key in hits else cache.get(key)
            if hit is not None:
                hits[key] = hit[0]
            elif key not in hits and (not system.deterministic or seed == config.seeds[0]):
                todo.append(Entry(item, seed, key))
    todo.sort(key=lambda e: -len(e.item.text))  # longest texts first: batches of similar length (ties keep order)
    batch = system.batch_size
    per_unit = max(1, config.executor.shard_items // batch) * batch
    units = [
        GenerationUnit(
            label=label,
            config=system.config,
            system=system.name,
            device=config.device,
            entries=todo[start : start + per_unit],
            first_batch=start // batch,
            batch_size=batch,
            context=context,
            cache_root=str(cache.root),
            retime=config.retime,
        )
        for start in range(0, len(todo), per_unit)
    ]
    return slots, hits, units


def _collect(
    system: System,
    label: str,
    slots: Sequence[Entry],
    hits: dict[str, Generated],
    errors: dict[str, str | None],
    cache: GenerationCache,
    run_id: str,
) -> tuple[list[GenerationRecord], dict[tuple[str, int], Generated]]:
    """Records and audio for every slot, in test-set order (items, then seeds), read back from the cache: what
    this run generated is timed "this run", an earlier run's entries "cache". An item this run generated counts
    even when its unit failed later (a failed unit's error is kept only for the items it did not finish)."""
    records: list[GenerationRecord] = []
    audio: dict[tuple[str, int], Generated] = {}
    known = dict(hits)  # a deterministic system's entry serves several slots: read it once
    for entry in slots:
        generated = known.get(entry.key)
        if generated is None:
            generated = _read_back(entry.key, errors.get(entry.key), cache, run_id, system.sample_rate)
            if generated.error is None:
                known[entry.key] = generated
        path = None if generated.error is not None else str(cache.paths(entry.key)[0])
        audio[(entry.item.id, entry.seed)] = generated
        records.append(_record(system, label, entry.item, entry.seed, generated, path))
    return records, audio


def _read_back(key: str, error: str | None, cache: GenerationCache, run_id: str, sample_rate: int) -> Generated:
    hit = cache.get(key)
    if hit is not None and timed_this_run(hit[0], run_id):
        generated = hit[0]
        generated.timed = {**generated.timed, "source": "this run"}
        return generated
    if error is not None:
        return Generated(None, sample_rate, error=error)
    if hit is not None:  # cached meanwhile by another run sharing the cache
        return hit[0]
    return Generated(None, sample_rate, error=_NOT_IN_CACHE)


_NOT_IN_CACHE = (
    "generated, but not found in the generation cache (with a multi-node executor, cache_dir must be one "
    "directory that every node sees)"
)


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
    suites: Sequence[tuple[Suite, dict[str, Any]]],
    samples: list[Sample],
    cache: ScoreCache,
    executor: Executor,
    config: BenchConfig,
    progress: bool,
    timings: dict[str, float],
) -> dict[str, list[ItemScore]]:
    """Each suite's rows, scored and cached per (suite, system): adding a system to a run scores only that system
    (unless the suite's `context_key`, what its rows see of the other samples, changes too). A system's samples are
    scored in units (shards at the suite's batch and item boundaries, each cached as soon as it is done, so a run
    killed while scoring keeps every shard it finished); their merged rows are cached under the system's key.
    Shards take the samples longest first (`by_length`), so batches waste little on padding; rows come back in
    generation order. Suites that read timings (RTF) are rescored every run, never cached: the same audio must not
    replay another run's speed."""
    from tqdm.auto import tqdm

    scores: dict[str, list[ItemScore]] = {}
    scoring_code = suite_code_digest()  # the same source for every suite: hashed once
    for suite, options in suites:
        start = time.perf_counter()
        timed = Need.TIMINGS in suite.needs
        mine = [s for s in samples if not timed or s.timings]
        by_system: dict[str, list[Sample]] = {}
        for sample in mine:
            by_system.setdefault(sample.system, []).append(sample)
        description = {**suite.describe(), "context": suite.context_key(mine), "code": scoring_code}
        # over the samples in shard order: a system scored as one shard is cached once, under its system key
        keys = {system: cache.key(description, by_length(group)) for system, group in by_system.items()}
        rows: dict[str, list[ItemScore]] = {}
        units: list[ScoringUnit] = []
        with tqdm(total=len(mine), desc=f"scoring {suite.name}", unit="item", disable=not progress) as bar:
            for system, group in by_system.items():
                cached = None if timed else cache.get(keys[system])
                if cached is not None:
                    rows[system] = merge_shards([cached], group)  # a shard's rows are in by_length order
                    bar.update(len(group))
                    continue
                for shard in score_shards(by_length(group), suite.batch_size, config.executor.shard_items):
                    key = cache.key(description, shard)
                    units.append(
                        ScoringUnit(suite.name, options, config.device, system, shard, key, str(cache.root), not timed)
                    )
            needs_context = description["context"] is not None
            outcomes = executor.run(
                units, context=mine if needs_context else None, on_done=lambda unit, _: bar.update(unit.size)
            )
        shards: dict[str, list[ScoredShard]] = {}
        shard_keys: dict[str, set[str]] = {}
        for unit, outcome in zip(units, outcomes, strict=True):
            if isinstance(outcome, UnitFailure):
                error = outcome.message(unit)
                failed = [ItemScore(suite.name, s.system, s.item.id, s.seed, error=error) for s in unit.samples]
                outcome = ScoredShard(failed, cannot_run=True)  # not cached: retried next run
            shards.setdefault(unit.system, []).append(outcome)
            shard_keys.setdefault(unit.system, set()).add(unit.key)
        for system, parts in shards.items():
            rows[system] = merge_shards([p.rows for p in parts], by_system[system])
            if not timed and keys[system] not in shard_keys[system] and not any(p.cannot_run for p in parts):
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
    codes = {s.name: s.code_digest() for s in systems}  # part of each system's generation keys and metadata
    suite_options = [(name, dict(options or {})) for name, options in config.suites.items()]
    suites = [build_suite(name, device=config.device, **options) for name, options in suite_options]

    records: list[GenerationRecord] = []
    samples: list[Sample] = []
    generated = cached = 0
    stage_s: dict[str, float] = {}
    t0 = time.perf_counter()
    total = sum(len(m.items) for _, m in testsets) * len(config.seeds) * len(systems)
    needs_reconstruction = any(Need.RECONSTRUCTED_PROMPT in (s.needs | s.optional_needs) for s in suites)
    # run_id tells this run's cache entries from an earlier run's, even one started in the same second
    run_id = f"{started.isoformat(timespec='microseconds')}~{uuid.uuid4().hex[:8]}"
    context = {**timing_context(config.device), "run_started": started.isoformat(timespec="seconds"), "run_id": run_id}
    worker = Worker()  # the local executor runs units with the driver's own systems and suites
    for system in systems:
        worker.adopt_system(system.config, config.device, system)
    for (name, options), suite in zip(suite_options, suites, strict=True):
        worker.adopt_suite(name, options, config.device, suite)
    with build_executor(config.executor, config.device, worker) as executor:
        plans = []
        with tqdm(total=total, desc="generating", unit="sample", disable=not progress) as bar:
            units: list[GenerationUnit] = []
            for testset, manifest in testsets:
                for system in systems:
                    label = f"{testset}:{system.name}"
                    slots, hits, todo = _generation_units(
                        system, label, manifest, config, cache, context, codes[system.name]
                    )
                    plans.append((testset, manifest, system, label, slots, hits))
                    units.extend(todo)
                    generated += sum(u.size for u in todo)
                    cached += sum(1 for e in slots if e.key in hits)
                    bar.update(sum(1 for e in slots if e.key in hits))
            seeds_per_entry = {s.name: len(config.seeds) if s.deterministic else 1 for s in systems}
            outcomes = executor.run(units, on_done=lambda unit, _: bar.update(unit.size * seeds_per_entry[unit.system]))
        errors: dict[str, str | None] = {}
        for unit, outcome in zip(units, outcomes, strict=True):
            errors.update(unit.failed(outcome.message(unit)) if isinstance(outcome, UnitFailure) else outcome)
        for testset, manifest, system, label, slots, hits in plans:
            items = {i.id: i for i in manifest.items}
            recs, audio = _collect(system, label, slots, hits, errors, cache, context["run_id"])
            records.extend(recs)
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
        scores = _score(
            list(zip(suites, [o for _, o in suite_options], strict=True)),
            samples,
            ScoreCache(cache.root / "scores"),
            executor,
            config,
            progress,
            stage_s,
        )
        executor_info = executor.describe()
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
            "branch": git_branch(),
            "lock_sha256": lock_digest(),
            "generated": generated,
            "cached": cached,
            "wall_s": stage_s,
            "retime": config.retime,
            "executor": executor_info,
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
                "code": codes[s.name],
                "provenance_note": s.provenance_note(),
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
