"""Scoring throughput against the number of executor actors: how far a machine (or a Ray cluster) scales the
scoring models that dominate a run's wall time.

Every configuration scores the same synthetic clips (`synthetic_clips`, 4-10 s by default) with the same
random-weight model of a released size, through the suites' own backends (`bench.speed.scoring`: Whisper's
batched greedy decoding with a fixed token budget, the WavLM-TDNN embedder), cut into units of `unit_items`
clips. Configurations: the local executor (in this process, its torch threads as they are) and the Ray
executor with each actor count in `actors`. Per configuration: the wall time from submitting the units to the
last result (actor start and model load included: what a run pays), the busiest actor's time inside units
(steady state), and items per second for both.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.execution import ExecutorConfig, LocalExecutor, UnitFailure, build_executor
from bench.execution.units import Worker

MODELS = ("whisper:tiny", "whisper:base", "whisper:small", "whisper:large-v3", "wavlm:tiny", "wavlm:large")


@dataclass(frozen=True)
class ScalingConfig:
    model: str = "whisper:tiny"  # see MODELS: random weights of that size
    device: str = "cpu"
    items: int = 32
    unit_items: int = 8  # clips per unit (one actor call)
    batch: int = 8  # clips per model call
    actors: tuple[int, ...] = (1, 2)
    cpus_per_actor: float = 0.5
    gpus_per_actor: float | None = None  # None: 1 on CUDA (one actor per GPU), else 0
    threads_per_actor: int = 1
    address: str | None = None  # an existing Ray cluster; None starts a local one
    num_cpus: float | None = None  # a local cluster's CPUs (None: all)
    min_seconds: float = 4.0
    max_seconds: float = 10.0
    tokens_per_second: float = 3.0  # Whisper's decoded tokens per second of speech (see bench.speed.scoring)
    local: bool = True  # also time the local executor (this process)
    seed: int = 0

    def validate(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model: {self.model!r} is not one of {', '.join(MODELS)}")
        if min(self.items, self.unit_items, self.batch, *self.actors) < 1:
            raise ValueError("items, unit_items, batch and every actor count must be >= 1")


@dataclass
class ThroughputUnit:
    """Score `clips` with one random-weight model (loaded once per worker); returns the time spent and the pid."""

    model: str
    device: str
    clips: list[np.ndarray]
    batch: int
    seed: int
    tokens_per_second: float
    index: int = 0

    @property
    def pool(self) -> str:
        return f"model {self.model}"

    @property
    def size(self) -> int:
        return len(self.clips)

    def describe(self) -> str:
        return f"{self.model} throughput unit {self.index} ({self.size} clips)"

    def run(self, worker: Worker, context: Any = None) -> dict[str, Any]:
        score = worker.model(f"throughput {self.model} {self.device} {self.seed}", self._build)
        start = time.perf_counter()
        for i in range(0, len(self.clips), self.batch):
            score(self.clips[i : i + self.batch])
        _sync(self.device)
        return {"pid": os.getpid(), "seconds": time.perf_counter() - start, "items": self.size}

    def _build(self) -> Callable[[Sequence[np.ndarray]], Any]:
        import math

        from bench.speed.scoring import SAMPLE_RATE, build_wavlm, build_whisper

        family, size = self.model.split(":")
        if family == "whisper":
            backend = build_whisper(size, self.device, self.seed)

            def transcribe(chunk: Sequence[np.ndarray]) -> Any:
                backend.sample_len = math.ceil(self.tokens_per_second * max(len(c) for c in chunk) / SAMPLE_RATE)
                return backend.transcribe(chunk)

            return transcribe
        return build_wavlm(size, self.device, self.seed, self.batch).embed


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@dataclass
class ScalingRow:
    executor: str
    actors: int
    wall_s: float
    busiest_actor_s: float
    items: int
    failed_units: int
    workers_seen: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s

    @property
    def steady_items_per_s(self) -> float:
        return self.items / self.busiest_actor_s if self.busiest_actor_s > 0 else float("nan")


def _units(config: ScalingConfig) -> list[ThroughputUnit]:
    from bench.speed.scoring import synthetic_clips

    clips = synthetic_clips(config.items, config.min_seconds, config.max_seconds, config.seed)
    return [
        ThroughputUnit(
            config.model,
            config.device,
            clips[i : i + config.unit_items],
            config.batch,
            config.seed,
            config.tokens_per_second,
            index=i // config.unit_items,
        )
        for i in range(0, len(clips), config.unit_items)
    ]


def _row(kind: str, actors: int, wall: float, results: list[Any], extra: dict[str, Any]) -> ScalingRow:
    ok = [r for r in results if not isinstance(r, UnitFailure)]
    busy: dict[int, float] = {}
    for r in ok:
        busy[r["pid"]] = busy.get(r["pid"], 0.0) + r["seconds"]
    return ScalingRow(
        kind,
        actors,
        wall,
        max(busy.values(), default=0.0),
        sum(r["items"] for r in ok),
        len(results) - len(ok),
        len(busy),
        extra,
    )


def measure_scaling(config: ScalingConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Time the local executor and the Ray executor at each actor count on the same units."""
    import torch

    config.validate()
    rows: list[ScalingRow] = []
    if config.local:
        units = _units(config)
        start = time.perf_counter()
        results = LocalExecutor(ExecutorConfig(max_retries=0)).run(units)
        rows.append(_row("local", 1, time.perf_counter() - start, results, {"torch_threads": torch.get_num_threads()}))
        log(f"  local ({torch.get_num_threads()} threads): {rows[-1].items_per_s:.2f} items/s")
    for actors in config.actors:
        executor_config = ExecutorConfig(
            kind="ray",
            actors=actors,
            cpus_per_actor=config.cpus_per_actor,
            gpus_per_actor=config.gpus_per_actor,
            threads_per_actor=config.threads_per_actor,
            address=config.address,
            num_cpus=config.num_cpus,
            max_retries=0,
        )
        units = _units(config)
        with build_executor(executor_config, config.device) as executor:
            start = time.perf_counter()
            results = executor.run(units)
            wall = time.perf_counter() - start
            info = executor.describe()
        rows.append(_row("ray", actors, wall, results, {"cluster": info.get("cluster"), "nodes": info.get("nodes")}))
        log(f"  ray, {actors} actor(s): {rows[-1].items_per_s:.2f} items/s ({rows[-1].steady_items_per_s:.2f} steady)")
    return {
        "config": asdict(config),
        "machine": machine(config.device),
        "rows": [{**asdict(r), "items_per_s": r.items_per_s, "steady_items_per_s": r.steady_items_per_s} for r in rows],
    }


def machine(device: str) -> dict[str, Any]:
    """Where the numbers come from: host, CPU model and count, GPU, torch and Ray versions."""
    import torch

    from flashspeech.foundation.environment import cpu_model

    info: dict[str, Any] = {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "device": device,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_count"] = torch.cuda.device_count()
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        info["ray"] = None
    return info


def markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table, with the machine and settings it was measured on."""
    c, m = report["config"], report["machine"]
    lines = [
        f"Scoring throughput of {c['model']} (random weights) on {c['device']}: {c['items']} clips of "
        f"{c['min_seconds']:g}-{c['max_seconds']:g} s, {c['unit_items']} per unit, batches of {c['batch']}.",
        f"Machine: {m.get('cpu')} ({m.get('cpu_count')} CPUs){', ' + m['gpu'] if m.get('gpu') else ''}; torch "
        f"{m.get('torch')}, Ray {m.get('ray')}. Ray actors: {c['cpus_per_actor']:g} CPU and "
        f"{c['threads_per_actor']} torch thread(s) each.",
        "",
        "| executor | actors | wall s | items/s (wall) | busiest actor s | items/s (steady) | speed-up (wall) "
        "| failed units |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = next((r for r in report["rows"] if r["executor"] == "ray"), report["rows"][0])
    for r in report["rows"]:
        lines.append(
            f"| {r['executor']} | {r['actors']} | {r['wall_s']:.1f} | {r['items_per_s']:.2f} | "
            f"{r['busiest_actor_s']:.1f} | {r['steady_items_per_s']:.2f} | "
            f"{r['items_per_s'] / base['items_per_s']:.2f}x | {r['failed_units']} |"
        )
    lines.append("")
    lines.append("Speed-up is against Ray with the first actor count; wall time includes starting the actors and")
    lines.append("loading the model in each; `steady` divides by the busiest actor's time inside units.")
    return "\n".join(lines)
