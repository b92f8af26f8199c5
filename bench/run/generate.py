"""Generate: run the plan's generation units, then read every slot's generation back from the cache into the
run's records (one per slot) and samples (one per generated audio, what the suites score).

What this run generated is timed "this run", an earlier run's entries "cache". A failed generation is recorded
with its error; an item this run generated counts even when its unit failed later (a failed unit's error is kept
only for the items it did not finish)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bench.execution import Executor, UnitFailure
from bench.results import GenerationRecord
from bench.run.plan import Plan, SystemPlan
from bench.run.timing import timed_label
from bench.systems import Generated
from suites.base import Sample
from suites.item import EvalItem


@dataclass
class Generations:
    records: list[GenerationRecord] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


def generate(plan: Plan, executor: Executor, reconstruct: bool, progress: bool = True) -> Generations:
    """Run the plan's units and collect every slot, in plan order; `reconstruct`: give each sample its prompt
    through the system's own codec (a suite needs it: `Need.RECONSTRUCTED_PROMPT`)."""
    from tqdm.auto import tqdm

    units = plan.units
    seeds_per_entry = {s.name: len(plan.seeds) if s.deterministic else 1 for s in plan.systems}
    with tqdm(total=plan.size, desc="generating", unit="sample", disable=not progress) as bar:
        bar.update(plan.cached)
        outcomes = executor.run(units, on_done=lambda unit, _: bar.update(unit.size * seeds_per_entry[unit.system]))
    errors: dict[str, str | None] = {}
    for unit, outcome in zip(units, outcomes, strict=True):
        errors.update(unit.failed(outcome.message(unit)) if isinstance(outcome, UnitFailure) else outcome)
    out = Generations()
    for system_plan in plan.plans:
        collect(system_plan, errors, reconstruct, out)
    return out


def collect(plan: SystemPlan, errors: dict[str, str | None], reconstruct: bool, out: Generations) -> None:
    """One system's records and samples, in test-set order (items, then seeds), read back from the cache."""
    system, label = plan.system, plan.key.label
    items = {i.id: i for i in plan.manifest.items}
    known = dict(plan.hits)  # a deterministic system's entry serves several slots: read it once
    reconstructed: dict[str, np.ndarray | None] = {}
    for entry in plan.slots:
        generated = known.get(entry.key)
        if generated is None:
            generated = plan.cached.collect(entry.key, errors.get(entry.key))
            if generated.error is None:
                known[entry.key] = generated
        path = None if generated.error is not None else str(plan.cached.cache.paths(entry.key)[0])
        out.records.append(_record(plan, entry.item, entry.seed, generated, path))
        if generated.audio is None:
            continue
        item = items[entry.item.id]
        if reconstruct and item.id not in reconstructed:
            try:
                reconstructed[item.id] = system.reconstruct(item.load_prompt(system.sample_rate))
            except Exception:
                reconstructed[item.id] = None
        out.samples.append(
            Sample(
                item=item,
                system=label,
                audio=generated.audio,
                sample_rate=generated.sample_rate,
                seed=entry.seed,
                timings=generated.timings,
                reconstructed_prompt=reconstructed.get(item.id),
                meta={**generated.meta, "testset": plan.key.testset, "timing": generated.timed},
            )
        )


def _record(plan: SystemPlan, item: EvalItem, seed: int, g: Generated, path: str | None) -> GenerationRecord:
    timed = g.timed or {}
    load = timed.get("load") or {}
    key = plan.key
    return GenerationRecord(
        system=key.label,
        kind=key.kind,
        steps=key.steps,
        family=key.family,
        sampler=key.sampler,
        nfe=key.nfe,
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
