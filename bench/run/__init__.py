"""The benchmark run: plan -> generate -> score -> aggregate -> record (the CLI then writes the reports and logs
to MLflow). Each step is its own module; `run_benchmark` only orchestrates them.

- `preflight`: every test set, system and suite loaded (or named as missing) before anything is generated.
- `plan`: the test sets' (system, item, seed) slots, their generation keys, the cache hits, the generation units.
- `generate`: runs the units and reads every generation back from the cache (records and samples).
- `score`: every suite over the samples, behind the score cache (`CachedSuite`).
- `aggregate`: the aggregates table, the test-set rows and the aggregate notes.
- `assemble`: the results and their metadata, with the typed run record (`bench.record`).
- `timing`: the timing context stamped on every generation, and the line that says where a timing came from.

Generation and scoring are separate: every (system, item, seed) is looked up in the content-addressed cache
first (`bench.cache.CachedSystem`) and generated only when missing, so a finished benchmark regenerates nothing
and an interrupted one resumes. A failed generation or a failed score is recorded with its error and counted.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cache import GenerationCache, ScoreCache, default_cache_root
from bench.config import BenchConfig
from bench.execution import Worker, build_executor
from bench.results import Results
from bench.run.aggregate import aggregate
from bench.run.assemble import assemble
from bench.run.generate import generate
from bench.run.plan import load_testset, plan_run
from bench.run.preflight import PreflightError, Ready, preflight
from bench.run.score import score
from bench.run.timing import run_context, timed_label, timing_context
from bench.systems import System
from suites.base import Need, Suite

__all__ = [
    "PreflightError",
    "Ready",
    "RunOutcome",
    "load_testset",
    "preflight",
    "run_benchmark",
    "timed_label",
    "timing_context",
]


@dataclass
class RunOutcome:
    results: Results
    output_dir: Path
    generated: int = 0
    cached: int = 0


def run_benchmark(config: BenchConfig, progress: bool = True, log: Callable[[str], None] = print) -> RunOutcome:
    """Run the configured benchmark end to end; returns the results and where everything was written."""
    from suites import build_suite

    started = dt.datetime.now(dt.timezone.utc)
    out_dir = Path(config.output_dir).resolve()
    local = config.executor.kind == "local"
    ready = preflight(config, load_suites=local).raise_for_missing(config.name)  # nothing missing after hours
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = GenerationCache(Path(config.cache_dir) if config.cache_dir else default_cache_root(out_dir))
    testsets, systems = ready.testsets, ready.systems
    suite_options = [(name, dict(options or {})) for name, options in config.suites.items()]
    suites = ready.suites if local else [build_suite(n, device=config.device, **o) for n, o in suite_options]
    reconstruct = any(Need.RECONSTRUCTED_PROMPT in (s.needs | s.optional_needs) for s in suites)

    stage_s: dict[str, float] = {}
    t0 = time.perf_counter()
    plan = plan_run(config, testsets, systems, cache, run_context(config.device, started))
    worker = _local_worker(config, systems, suite_options, suites)
    with build_executor(config.executor, config.device, worker) as executor:
        generations = generate(plan, executor, reconstruct, progress)
        stage_s["generation_s"] = time.perf_counter() - t0
        scored = [(suite, options) for suite, (_, options) in zip(suites, suite_options, strict=True)]
        score_cache = ScoreCache(cache.root / "scores")
        scores = score(scored, generations.samples, score_cache, executor, config, progress, stage_s)
        executor_info = executor.describe()
    t0 = time.perf_counter()
    aggregates, notes = aggregate(suites, scores, generations.records, plan.plans, config.bootstrap_resamples)
    stage_s["aggregates_s"] = time.perf_counter() - t0
    run: dict[str, Any] = {
        "started": started.isoformat(),
        "generated": plan.generated,
        "cached": plan.cached,
        "wall_s": stage_s,
        "executor": executor_info,
    }
    results = assemble(config, plan, suites, generations.records, scores, aggregates, notes, run, out_dir)
    results.save(out_dir)
    return RunOutcome(results, out_dir, generated=plan.generated, cached=plan.cached)


def _local_worker(
    config: BenchConfig, systems: Sequence[System], suite_options: Sequence[tuple[str, dict]], suites: Sequence[Suite]
) -> Worker:
    """The local executor's worker: it runs units with the driver's own systems and suites."""
    worker = Worker()
    for system in systems:
        worker.adopt_system(system.config, config.device, system)
    for (name, options), suite in zip(suite_options, suites, strict=True):
        worker.adopt_suite(name, options, config.device, suite)
    return worker
