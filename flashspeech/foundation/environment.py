"""Machine facts recorded next to every timing: device, GPU and driver, CPU, torch / CUDA, threads, commit."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def environment(device: Any = "cpu", dtype: Any = None) -> dict[str, Any]:
    """What a timing was measured on: recorded next to every figure."""
    import torch

    name = str(device) if device is not None else "cpu"
    env: dict[str, Any] = {
        "device": name,
        "dtype": None if dtype is None else str(dtype),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if name.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(name).index or 0
        env["gpu"] = torch.cuda.get_device_name(index)
        env["cudnn"] = torch.backends.cudnn.version()
        env["driver"] = command_output(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    return env


def command_output(argv: Sequence[str], cwd: str | None = None) -> str | None:
    """First line a command prints, or None when it is missing or fails (for provenance fields)."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=True, cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.stdout.strip().splitlines()
    return lines[0] if lines else None


def cpu_model() -> str | None:
    """The CPU's model name from /proc/cpuinfo (Linux), else None."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def git_commit() -> str | None:
    """The commit of the checkout the code runs from (wherever the run was started)."""
    return command_output(["git", "rev-parse", "HEAD"], cwd=str(Path(__file__).resolve().parent))


BRANCH_VARIABLES = (
    "FLASHSPEECH_BENCH_BRANCH",
    "GITHUB_HEAD_REF",  # a pull request's source branch (GITHUB_REF_NAME is then "<n>/merge")
    "GITHUB_REF_NAME",
    "CI_COMMIT_REF_NAME",  # GitLab
    "BRANCH_NAME",  # Jenkins
)


def git_branch() -> str | None:
    """The branch a run belongs to: `FLASHSPEECH_BENCH_BRANCH`, else the CI's variable (GitHub Actions, GitLab,
    Jenkins; CI checkouts are often a detached HEAD), else the checkout's branch; None when detached and unnamed."""
    for name in BRANCH_VARIABLES:
        if value := os.environ.get(name, "").strip():
            return value
    branch = command_output(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=str(Path(__file__).resolve().parent))
    return None if branch in (None, "HEAD") else branch
