"""`run_speed(config)`: time FlashSpeech and the diffusion baseline, then the suites; write the results file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bench.config import ConfigError
from bench.speed.generation import measure_flashspeech
from bench.speed.report import build_report, write_report
from bench.speed.scoring import measure_suites
from bench.speed.settings import SpeedConfig
from flashspeech.foundation.environment import environment


def run_speed(config: SpeedConfig, log: Callable[[str], None] = print) -> tuple[dict[str, Any], Path]:
    """One speed run on one device; returns the report and the path of the JSON it wrote."""
    config.validate()
    if config.cuda and not torch.cuda.is_available():
        raise ConfigError(f"device {config.device!r}: torch sees no CUDA device (use a cpu config, e.g. cpu-rtf)")
    if config.threads:
        torch.set_num_threads(config.threads)
    start = time.perf_counter()
    env = environment(config.device, config.dtype)
    log(f"speed {config.name}: {config.preset} on {env.get('gpu') or config.device}, dtype {config.dtype}")
    flash = measure_flashspeech(config, log)
    suites = measure_suites(config, log)
    report = build_report(config, flash, suites, env, time.perf_counter() - start)
    return report, write_report(report, config.output_dir)
