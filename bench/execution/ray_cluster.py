"""The Ray executor: work units on actor pools of a Ray cluster (`pip install flashspeech-bench[ray]`).

Each model gets its own pool: every system and every scoring suite has up to `actors` actors, each a `Worker`
that loads the model once and runs one unit at a time (`num_gpus` per actor on GPU machines, fractional CPUs
on CPU machines). Units are handed to idle actors as they free up; a unit that raises is retried on the same
actor, a unit whose actor died is retried on a replacement, and after `max_retries` further attempts it comes
back as a `UnitFailure`. A pool's actors are let go as soon as its units are done, so the CPUs and GPUs they
hold go to the next model. Units read and write the run's caches, which therefore must be one directory that
every node sees (a shared filesystem); the driver reads the results from there.

Offline: Ray's usage-stats reporting is switched off before Ray is imported, and nothing is downloaded; on a
multi-node cluster every node needs the same installation and the same model directory (see the README).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.execution.executor import Executor, ExecutorConfig, ExecutorError, OnDone, Unit, UnitFailure
from bench.execution.units import Worker

USAGE_STATS = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_USAGE_STATS_PROMPT_ENABLED": "0"}


def _import_ray() -> Any:
    os.environ.update(USAGE_STATS)  # before Ray starts any process: they inherit it
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the [ray] extra is part of [test]
        raise RuntimeError(
            "the ray executor needs Ray: pip install 'flashspeech-bench[ray]' (or use [executor] kind = \"local\")"
        ) from exc
    return ray


def _worker_environment() -> dict[str, str]:
    """What every worker of the job gets: no usage stats, and this harness's settings (the model directory
    `FLASHSPEECH_BENCH_MODELS` and the like), so actors on other nodes look for models where the driver does."""
    ours = {k: v for k, v in os.environ.items() if k.startswith("FLASHSPEECH_BENCH_")}
    return {**ours, **USAGE_STATS}


@dataclass
class _Pool:
    """The actors of one model and the units waiting for them."""

    name: str
    queue: deque[int]
    actors: list[Any] = field(default_factory=list)
    idle: list[Any] = field(default_factory=list)
    pending: int = 0  # units of this pool not finished yet


class RayExecutor(Executor):
    """Connects to `address` (or starts a local cluster) on entry; disconnects (or stops it) on exit."""

    kind = "ray"

    def __init__(self, config: ExecutorConfig, device: str):
        super().__init__(config)
        self.device = device
        gpus = config.gpus_per_actor
        self.gpus = float(gpus) if gpus is not None else (1.0 if device.startswith("cuda") else 0.0)
        self.ray = _import_ray()
        self._owns_connection = False

    def __enter__(self) -> RayExecutor:
        ray = self.ray
        if not ray.is_initialized():
            options: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": logging.WARNING,
                "log_to_driver": True,
                "runtime_env": {"env_vars": _worker_environment()},
            }
            if self.config.address:
                options["address"] = self.config.address
            else:
                if self.config.num_cpus is not None:
                    options["num_cpus"] = self.config.num_cpus
                if self.config.object_store_mb is not None:
                    options["object_store_memory"] = int(self.config.object_store_mb) << 20
            ray.init(**options)
            self._owns_connection = True
        self._check_feasible()
        return self

    def _check_feasible(self) -> None:
        """An actor that asks for more than any node has would wait forever: say so instead."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        for resource, need, field_name in (
            ("GPU", self.gpus, "gpus_per_actor"),
            ("CPU", self.config.cpus_per_actor, "cpus_per_actor"),
        ):
            most = max((n.get(resource, 0.0) for n in nodes), default=0.0)
            if need > most:
                self.close()
                raise ExecutorError(
                    f"executor.{field_name} = {need:g}, but no node of the Ray cluster has more than "
                    f"{most:g} {resource}"
                    + (' (on a CPU-only cluster use device = "cpu" or gpus_per_actor = 0)' if resource == "GPU" else "")
                )

    def close(self) -> None:
        if self._owns_connection and self.ray.is_initialized():
            self.ray.shutdown()
        self._owns_connection = False

    def describe(self) -> dict[str, Any]:
        resources = self.ray.cluster_resources() if self.ray.is_initialized() else {}
        return {
            "kind": self.kind,
            "address": self.config.address,
            "actors": self.config.actors,
            "cpus_per_actor": self.config.cpus_per_actor,
            "gpus_per_actor": self.gpus,
            "cluster": {k: v for k, v in resources.items() if k in ("CPU", "GPU", "memory")},
            "nodes": sum(1 for n in self.ray.nodes() if n.get("Alive")) if self.ray.is_initialized() else None,
        }

    def _actor(self) -> Any:
        remote = self.ray.remote(Worker).options(
            num_cpus=self.config.cpus_per_actor, num_gpus=self.gpus, max_restarts=0, max_concurrency=1
        )
        return remote.remote(threads=self.config.cpu_threads(), device="cuda" if self.gpus > 0 else None)

    def run(self, units: Sequence[Unit], context: Any = None, on_done: OnDone | None = None) -> list[Any]:
        ray = self.ray
        if not units:
            return []
        context_ref = ray.put(context) if context is not None else None
        results: list[Any] = [None] * len(units)
        attempts = [0] * len(units)
        pools: dict[str, _Pool] = {}
        for i, unit in enumerate(units):
            pool = pools.setdefault(unit.pool, _Pool(unit.pool, deque()))
            pool.queue.append(i)
            pool.pending += 1
        for pool in pools.values():
            pool.actors = [self._actor() for _ in range(min(self.config.actors, len(pool.queue)))]
            pool.idle = list(pool.actors)
        running: dict[Any, tuple[int, Any, _Pool]] = {}  # object ref -> (unit index, actor, pool)

        def submit(pool: _Pool) -> None:
            while pool.idle and pool.queue:
                i, actor = pool.queue.popleft(), pool.idle.pop()
                attempts[i] += 1
                running[actor.run.remote(units[i], context_ref)] = (i, actor, pool)

        def finish(i: int, result: Any, pool: _Pool) -> None:
            results[i] = result
            pool.pending -= 1
            if on_done is not None:
                on_done(units[i], result)
            if pool.pending == 0:  # let the model go: its CPUs / GPUs serve the next pools
                for actor in pool.actors:
                    ray.kill(actor)
                pool.actors, pool.idle = [], []

        try:
            for pool in pools.values():
                submit(pool)
            while running:
                (ref,), _ = ray.wait(list(running), num_returns=1)
                i, actor, pool = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    died = isinstance(exc, ray.exceptions.RayActorError)
                    if died:  # the worker process is gone: replace it
                        pool.actors.remove(actor)
                        actor = self._actor()
                        pool.actors.append(actor)
                    if attempts[i] > self.config.max_retries:
                        finish(i, UnitFailure(_error_text(exc, died), attempts[i]), pool)
                    else:
                        pool.queue.appendleft(i)
                    if pool.actors:
                        pool.idle.append(actor)
                    submit(pool)
                    continue
                finish(i, result, pool)
                if pool.actors:
                    pool.idle.append(actor)
                submit(pool)
        finally:
            for pool in pools.values():
                for actor in pool.actors:
                    ray.kill(actor)
        return results


def _error_text(exc: BaseException, died: bool) -> str:
    """The unit's own exception (`Type: message`) when it raised; what happened to the worker when it died."""
    cause = getattr(exc, "cause", None)
    if not died and isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    first = str(exc).strip().splitlines()
    return f"worker died ({type(exc).__name__}): {first[0] if first else 'no message'}"
