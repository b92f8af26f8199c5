"""Where a run's work runs: explicit work units (`units`) and the executors that run them (`executor`: local;
`ray_cluster`: Ray actor pools)."""

from bench.execution.executor import (
    Executor,
    ExecutorConfig,
    ExecutorError,
    LocalExecutor,
    UnitFailure,
)
from bench.execution.units import Entry, GenerationUnit, ScoringUnit, Worker, by_length, merge_shards, score_shards

__all__ = [
    "Entry",
    "Executor",
    "ExecutorConfig",
    "ExecutorError",
    "GenerationUnit",
    "LocalExecutor",
    "ScoringUnit",
    "UnitFailure",
    "Worker",
    "build_executor",
    "by_length",
    "merge_shards",
    "score_shards",
]


def build_executor(config: ExecutorConfig, device: str, worker: Worker | None = None) -> Executor:
    """The configured executor; `worker` (the driver's systems and suites) serves the local one."""
    config.validate()
    if config.kind == "ray":
        from bench.execution.ray_cluster import RayExecutor

        return RayExecutor(config, device)
    return LocalExecutor(config, worker)
