"""Plan a run: every (system, test set, item, seed) slot with its generation key, the cache hits among them, and
the generation units that make the rest. Each system's `SystemKey` is built here, once; its label names the
system everywhere after (records, samples, rows, metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.cache import CachedSystem, Entry, GenerationCache, generation_key
from bench.config import BenchConfig, TestSetConfig
from bench.execution import GenerationUnit
from bench.record import SystemKey
from bench.systems import Generated, System
from bench.testsets.manifest import Manifest, load_manifest


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


@dataclass
class SystemPlan:
    """One system on one test set: its key, the system behind the generation cache, the test set, every (item,
    seed) slot in test-set order (items, then seeds), the cache hits among them and the units for the rest."""

    key: SystemKey
    cached: CachedSystem
    manifest: Manifest
    code: str  # the system's `code_digest()`: part of its generation keys and metadata
    slots: list[Entry]
    hits: dict[str, Generated]
    units: list[GenerationUnit]

    @property
    def system(self) -> System:
        return self.cached.system


@dataclass(frozen=True)
class Skipped:
    """A system not run on a test set because it does not do the set's task (e.g. a TTS system on a vc set)."""

    testset: str
    system: str
    task: str


@dataclass
class Plan:
    testsets: list[tuple[str, Manifest]]
    systems: list[System]
    seeds: list[int]
    context: dict[str, Any]  # the run's timing context, with its run_id
    plans: list[SystemPlan]  # test sets, then systems
    skipped: list[Skipped] = field(default_factory=list)  # (test set, system) pairs of another task

    @property
    def units(self) -> list[GenerationUnit]:
        return [u for p in self.plans for u in p.units]

    @property
    def size(self) -> int:
        """Slots in all (what the generation progress counts)."""
        return sum(len(p.slots) for p in self.plans)

    @property
    def generated(self) -> int:
        """Entries the units generate."""
        return sum(u.size for u in self.units)

    @property
    def cached(self) -> int:
        """Slots served from the cache."""
        return sum(1 for p in self.plans for e in p.slots if e.key in p.hits)

    @property
    def keys(self) -> dict[str, SystemKey]:
        """label -> key, in run order."""
        return {p.key.label: p.key for p in self.plans}


def plan_run(
    config: BenchConfig,
    testsets: Sequence[tuple[str, Manifest]],
    systems: Sequence[System],
    cache: GenerationCache,
    context: dict[str, Any],
) -> Plan:
    """The plan of every system on every test set of a task it does (each system's code digest hashed once); the
    other pairs are listed as skipped."""
    codes = {s.name: s.code_digest() for s in systems}
    plans, skipped = [], []
    for testset, manifest in testsets:
        for system in systems:
            if manifest.task not in system.tasks:
                skipped.append(Skipped(testset, system.name, manifest.task))
                continue
            key = SystemKey.of(system, testset, manifest.task)
            plans.append(plan_system(key, system, manifest, codes[system.name], config, cache, context))
    return Plan(list(testsets), list(systems), list(config.seeds), context, plans, skipped)


def plan_system(
    key: SystemKey,
    system: System,
    manifest: Manifest,
    code: str,
    config: BenchConfig,
    cache: GenerationCache,
    context: dict[str, Any],
) -> SystemPlan:
    """Every (item, seed) slot of one system on one test set, the cache hits among them, and units for the rest.

    A deterministic system generates one entry per item (under seed 0's key) that serves every seed; `retime`
    counts no hit, so every timing is this run's. The key holds the generating code's digest (`code`:
    `System.code_digest`) and, on CPU, the torch thread count the units run with (`ExecutorConfig.cpu_threads`).
    Units hold about `shard_items` entries, whole batches each, the longest texts first."""
    cached = CachedSystem(system, cache, str(context.get("run_id", "")), config.retime)
    description = {**system.describe(), "code": code}
    if system.threads_affect_audio and not str(config.device).startswith("cuda"):
        description["cpu_threads"] = config.executor.cpu_threads()  # other counts round differently
    slots: list[Entry] = []
    hits: dict[str, Generated] = {}
    todo: list[Entry] = []
    for item in manifest.items:
        for seed in config.seeds:
            key_seed = 0 if system.deterministic else seed
            entry = Entry(item, seed, generation_key(description, item, key_seed, system.reads_target))
            slots.append(entry)
            hit = None if entry.key in hits else cached.hit(entry.key)
            if hit is not None:
                hits[entry.key] = hit
            elif entry.key not in hits and (not system.deterministic or seed == config.seeds[0]):
                todo.append(entry)
    todo.sort(key=lambda e: -len(e.item.text))  # longest texts first: batches of similar length (ties keep order)
    batch = system.batch_size
    per_unit = max(1, config.executor.shard_items // batch) * batch
    units = [
        GenerationUnit(
            label=key.label,
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
    return SystemPlan(key, cached, manifest, code, slots, hits, units)
