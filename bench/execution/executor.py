"""Executors: where a run's work units run. `local` (the default) runs them one after another in this process;
`ray` (`bench.execution.ray_cluster`, the `[ray]` extra) runs them on actor pools of a Ray cluster;
`bench.execution.build_executor` picks one.

Both take the same units, retry a unit that raises (or whose worker dies) up to `max_retries` times, and hand
back, per unit, its result or a `UnitFailure` with the last error: the runner records a failed unit's items as
failed, with that error, never drops them. Results come back in the units' order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.execution.units import GenerationUnit, ScoringUnit, Worker

Unit = GenerationUnit | ScoringUnit
OnDone = Callable[[Unit, Any], None]  # called on the driver as each unit finishes (progress bars)

KINDS = ("local", "ray")


class ExecutorError(ValueError):
    """An executor config that cannot be used; the message names the field."""


@dataclass
class ExecutorConfig:
    """`[executor]` of a bench config.

    kind: "local" (in this process) or "ray". shard_items: about how many items (generation) or samples
    (scoring) one unit holds. max_retries: further attempts of a unit that raised or lost its worker.
    Ray only: address (an existing cluster, e.g. "auto" or "ray://head:10001"; None starts a local one with
    `num_cpus` CPUs, all by default), actors (per model: each system and each scoring suite gets its own pool),
    cpus_per_actor (fractional on CPU machines: whole CPUs held by actors can starve the driver), gpus_per_actor
    (None: 1 when the device is CUDA, else 0), threads_per_actor (torch CPU threads in each actor; None: the
    driver's, which a local run generates with, so that the same seed gives the same audio on either executor:
    torch's CPU kernels round differently at other thread counts, and the generation key records the count),
    object_store_mb (a local cluster's object store; None: Ray's default)."""

    kind: str = "local"
    shard_items: int = 16
    max_retries: int = 2
    address: str | None = None
    num_cpus: float | None = None
    actors: int = 2
    cpus_per_actor: float = 0.5
    gpus_per_actor: float | None = None
    threads_per_actor: int | None = None
    object_store_mb: int | None = None

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ExecutorError(f"executor.kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        for name in ("shard_items", "actors", "threads_per_actor"):
            if name == "threads_per_actor" and self.threads_per_actor is None:
                continue
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ExecutorError(f"executor.{name}: must be an integer >= 1, got {getattr(self, name)!r}")
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ExecutorError(f"executor.max_retries: must be an integer >= 0, got {self.max_retries!r}")
        if not isinstance(self.cpus_per_actor, int | float) or self.cpus_per_actor <= 0:
            raise ExecutorError(f"executor.cpus_per_actor: must be > 0, got {self.cpus_per_actor!r}")
        if self.gpus_per_actor is not None and self.gpus_per_actor < 0:
            raise ExecutorError(f"executor.gpus_per_actor: must be >= 0, got {self.gpus_per_actor!r}")

    def cpu_threads(self) -> int:
        """The torch CPU threads units run with: a Ray actor's `threads_per_actor`, else this process's."""
        import torch

        return self.threads_per_actor if self.kind == "ray" and self.threads_per_actor else torch.get_num_threads()


@dataclass
class UnitFailure:
    """A unit that failed on every attempt: the last error, and how many attempts were made."""

    error: str
    attempts: int

    def message(self, unit: Unit) -> str:
        return f"{unit.describe()} failed after {self.attempts} attempt(s): {self.error}"


class Executor(ABC):
    """Runs units; a context manager (a Ray executor connects on entry and lets go on exit)."""

    kind: str

    def __init__(self, config: ExecutorConfig):
        self.config = config

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers and connections."""

    @abstractmethod
    def run(self, units: Sequence[Unit], context: Any = None, on_done: OnDone | None = None) -> list[Any]:
        """Each unit's result (or `UnitFailure`), in the units' order; `context` is passed to every unit."""

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


class LocalExecutor(Executor):
    """Runs units one after another in this process, with one `Worker` (the driver's systems and suites)."""

    kind = "local"

    def __init__(self, config: ExecutorConfig, worker: Worker | None = None):
        super().__init__(config)
        self.worker = worker or Worker()

    def run(self, units: Sequence[Unit], context: Any = None, on_done: OnDone | None = None) -> list[Any]:
        results = []
        for unit in units:
            attempts, result = 0, None
            while result is None:
                attempts += 1
                try:
                    result = unit.run(self.worker, context)
                except Exception as exc:
                    if attempts > self.config.max_retries:
                        result = UnitFailure(f"{type(exc).__name__}: {exc}", attempts)
            results.append(result)
            if on_done is not None:
                on_done(unit, result)
        return results
