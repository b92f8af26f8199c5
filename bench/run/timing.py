"""Where and when a run's timings are measured: its timing context (stamped on every generation it times) and
the one line that says where a timing came from."""

from __future__ import annotations

import datetime as dt
import platform
import uuid
from typing import Any

from bench.record import Device, package_versions
from flashspeech.foundation.environment import cpu_model, environment, git_commit


def timing_context(device: str) -> dict[str, Any]:
    """Where this run's timings are measured: host, device, GPU model and driver, CPU model, torch / CUDA, code."""
    env = environment(device)
    keys = ("device", "gpu", "driver", "torch", "cuda", "torch_threads", "cpu_count")
    return {
        "host": platform.node(),
        **{k: env.get(k) for k in keys},
        "cpu": cpu_model() or env.get("cpu"),
        "git_commit": git_commit(),
        "code_version": package_versions(("flashspeech-bench",))["flashspeech-bench"],
    }


def run_context(device: str, started: dt.datetime) -> dict[str, Any]:
    """The timing context of a run started at `started`, with its `run_id`: it tells this run's cache entries from
    an earlier run's, even one started in the same second."""
    run_id = f"{started.isoformat(timespec='microseconds')}~{uuid.uuid4().hex[:8]}"
    return {**timing_context(device), "run_started": started.isoformat(timespec="seconds"), "run_id": run_id}


def timed_label(timed: dict[str, Any]) -> str:
    """One line saying when, where (GPU, else CPU model, else device) and at which commit a timing was measured."""
    device = Device.from_environment(timed, cpu=timed.get("cpu"), host=timed.get("host"))
    where = device.model or (device.name if timed.get("device") else "unknown device")
    commit = str(timed.get("git_commit") or "unknown commit")[:10]
    return f"{timed.get('measured_at', '?')} on {timed.get('host', '?')} ({where}) at {commit}"
