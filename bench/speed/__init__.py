"""GPU-speed benchmark: paper-scale RTF of FlashSpeech vs the diffusion baseline, and scoring throughput.

`flashspeech-bench speed --config gpu-rtf` (or `nox -s speed -- --config gpu-rtf`) times the `paper`
preset end to end at 1, 2 and 4 steps and the 150-step Heun diffusion baseline on the same backbone, at
batch 1 (latency) and batched (throughput), plus Whisper large-v3 and WavLM-TDNN scoring throughput, and
writes `results/speed/<config>-<device>.json`. `cpu-rtf` measures the same ratios with the tiny preset.
"""

from bench.speed.benchmark import run_speed
from bench.speed.settings import SpeedConfig, SuiteSpeedConfig, load_speed_config

__all__ = ["SpeedConfig", "SuiteSpeedConfig", "load_speed_config", "run_speed"]
