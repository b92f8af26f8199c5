"""Time `FlashSpeech.synthesize` end to end: FlashSpeech at its step counts, the diffusion baseline at its own.

Random weights (`FlashSpeech.from_config`), every item forced to the same length (`total_frames` =
target_seconds x frame rate), so every system makes the same seconds of audio. Each call runs the whole
pipeline (text frontend, prosody, sampling, decoder) under `StageTimer(sync=True)`; `flashspeech.timing.measure`
adds warm-up calls and CUDA synchronisation around each timed call. Per system and batch size: median,
IQR, min / max of the totals and of each stage (`other` = total - sum of stages: output assembly), RTF
(time / audio seconds), and throughput (audio seconds per wall second).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from bench.speed.settings import SPEED_CODECS, SpeedConfig
from bench.systems.flashspeech import default_series
from flashspeech.codecs import Codec, ConvCodec, MelCodec
from flashspeech.synthesis import FlashSpeech
from flashspeech.timing import STAGES, StageTimer, measure

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
OTHER = "other"


def build_codec(name: str, latent_dim: int, width: int | None = None) -> Codec:
    """The codec a speed run decodes with, matching the preset's latent size (16 kHz, 80 frames/s)."""
    if name == "conv":
        return ConvCodec(latent_dim, dec_width=width or 1024)
    if name == "mel":
        return MelCodec(n_mels=latent_dim)
    raise ValueError(f"unknown codec {name!r}; known: {', '.join(SPEED_CODECS)}")


def codec_info(codec: Codec) -> dict[str, Any]:
    """describe() plus the parameter count (for the results file)."""
    info = {k: v for k, v in codec.describe().items() if k not in ("latent_mean", "latent_scale")}
    info["parameters"] = sum(p.numel() for p in codec.parameters())
    info["random_weights"] = isinstance(codec, ConvCodec)
    return info


def spread(times: Sequence[float]) -> dict[str, float]:
    """median, IQR (p75 - p25), p25, p75, min, max, mean of a list of seconds."""
    a = np.asarray(times, dtype=np.float64)
    p25, median, p75 = np.percentile(a, [25, 50, 75])
    return {
        "median": float(median),
        "iqr": float(p75 - p25),
        "p25": float(p25),
        "p75": float(p75),
        "min": float(a.min()),
        "max": float(a.max()),
        "mean": float(a.mean()),
    }


@dataclass
class SystemTiming:
    """One system at one batch size: `repeats` timed end-to-end calls."""

    system: str  # flashspeech@2, diffusion-heun@150
    objective: str  # consistency | diffusion
    preset: str
    sampler: str
    steps: int
    nfe: int  # latent-network evaluations in sampling
    schedule: str
    batch: int
    frames_per_item: int
    audio_s_per_item: float
    warmup: int
    times_s: list[float]
    stages_s: dict[str, list[float]]  # per stage (and "other"), one value per timed call
    peak_memory_gib: float | None = None

    @property
    def audio_s(self) -> float:
        return self.audio_s_per_item * self.batch

    @property
    def median_s(self) -> float:
        return float(np.median(self.times_s))

    @property
    def rtf(self) -> float:
        """Median wall time per second of audio (batch 1: the paper's latency RTF)."""
        return self.median_s / self.audio_s

    @property
    def throughput(self) -> float:
        """Seconds of audio per wall second (the inverse RTF of the whole batch)."""
        return self.audio_s / self.median_s

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            repeats=len(self.times_s),
            audio_s=self.audio_s,
            time_s=spread(self.times_s),
            stages={name: spread(values) for name, values in self.stages_s.items()},
            stage_sum_median_s=float(
                np.median([sum(v[i] for k, v in self.stages_s.items() if k != OTHER) for i in range(len(self.times_s))])
            ),
            rtf=self.rtf,
            rtf_min=min(self.times_s) / self.audio_s,
            throughput_audio_s_per_s=self.throughput,
            time_per_item_s=self.median_s / self.batch,  # amortised; batch 1 is the latency
        )
        return out


@dataclass
class FlashSpeechResults:
    systems: list[SystemTiming] = field(default_factory=list)
    models: dict[str, Any] = field(default_factory=dict)  # per preset: parameters, codec, dtype, compile

    def speedups(self, reference_steps: int) -> list[dict[str, Any]]:
        """Each diffusion system's median time over FlashSpeech@reference_steps, per batch size."""
        out = []
        for ref in self.systems:
            if ref.objective != "consistency" or ref.steps != reference_steps:
                continue
            for other in self.systems:
                if other.objective == "diffusion" and other.batch == ref.batch:
                    out.append(
                        {
                            "batch": ref.batch,
                            "reference": ref.system,
                            "system": other.system,
                            "speedup": other.median_s / ref.median_s,
                            "nfe_ratio": other.nfe / ref.nfe,
                        }
                    )
        return out


def prompt_waveform(seconds: float, sample_rate: int, seed: int) -> torch.Tensor:
    """A deterministic voiced-like prompt: a 120 Hz harmonic series with a slow envelope, plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    wav = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 8))
    wav = wav * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.05 * rng.standard_normal(t.size)
    return torch.from_numpy((0.1 * wav / np.abs(wav).max()).astype(np.float32))


def precision(config: SpeedConfig) -> AbstractContextManager[Any]:
    """autocast to `dtype` (weights stay float32) when asked; otherwise nothing."""
    if config.dtype == "float32" or config.precision != "autocast":
        return nullcontext()
    return torch.autocast(torch.device(config.device).type, dtype=DTYPES[config.dtype])


def build_tts(config: SpeedConfig, preset_name: str) -> FlashSpeech:
    """Random-weight FlashSpeech of `preset_name` with its codec, on the device, cast / compiled as asked."""
    from flashspeech.config import preset

    cfg = preset(preset_name)
    codec = build_codec(config.codec, cfg.latent_dim)
    tts = FlashSpeech.from_config(cfg, codec, seed=config.seed).to(config.device)
    if config.dtype != "float32" and config.precision == "cast":
        tts.model.to(DTYPES[config.dtype])
        if config.codec == "conv":
            tts.codec.to(DTYPES[config.dtype])
    if config.compile:
        tts.model.lcm.compile(mode=config.compile_mode, dynamic=False)
    return tts


def model_info(tts: FlashSpeech, config: SpeedConfig) -> dict[str, Any]:
    return {
        "preset": tts.config.name,
        "objective": tts.config.objective,
        "parameters": sum(p.numel() for p in tts.model.parameters()),
        "lcm_parameters": sum(p.numel() for p in tts.model.lcm.parameters()),
        "weights": "random (FlashSpeech.from_config)",
        "weight_dtype": str(next(tts.model.parameters()).dtype).replace("torch.", ""),
        "compute_dtype": config.dtype,
        "precision": config.precision if config.dtype != "float32" else "float32",
        "compiled_lcm": config.compile_mode if config.compile else None,
        "codec": codec_info(tts.codec),
        "frame_rate": tts.codec.frame_rate,
    }


def time_system(
    tts: FlashSpeech, config: SpeedConfig, *, steps: int, batch: int, repeats: int, sampler: str | None = None
) -> SystemTiming:
    """Warm-up, then `repeats` end-to-end synthesize calls of `batch` items of target_seconds each."""
    plan = tts.plan(steps, sampler)
    frames = max(1, round(config.target_seconds * tts.codec.frame_rate))
    prompt = prompt_waveform(config.prompt_seconds, tts.sample_rate, config.seed)
    timers: list[StageTimer] = []

    def call() -> Any:
        timer = StageTimer(sync=True)
        with precision(config):
            out = tts.synthesize(
                [config.text] * batch,
                [prompt] * batch,
                plan=plan,
                seed=config.seed,
                total_frames=[frames] * batch,
                timer=timer,
            )
        timers.append(timer)
        return out

    if config.cuda:
        torch.cuda.reset_peak_memory_stats(config.device)
    m = measure(call, warmup=config.warmup, repeats=repeats, device=config.device)
    expected = tts.codec.num_samples(frames)
    lengths = {len(w) for w in m.result.waveforms}
    if lengths != {expected}:
        raise RuntimeError(f"length control failed: got {sorted(lengths)} samples per item, expected {expected}")
    timed = timers[config.warmup :]
    stages = {name: [t.records[name][0] for t in timed] for name in STAGES}
    stages[OTHER] = [max(0.0, total - sum(stages[n][i] for n in STAGES)) for i, total in enumerate(m.times)]
    return SystemTiming(
        system=f"{default_series(plan)}@{steps}",
        objective=plan.family,
        preset=tts.config.name,
        sampler=plan.sampler,
        steps=plan.steps,
        nfe=plan.nfe,
        schedule=plan.schedule,
        batch=batch,
        frames_per_item=frames,
        audio_s_per_item=expected / tts.sample_rate,
        warmup=config.warmup,
        times_s=list(m.times),
        stages_s=stages,
        peak_memory_gib=torch.cuda.max_memory_allocated(config.device) / 2**30 if config.cuda else None,
    )


@contextmanager
def _model(config: SpeedConfig, preset_name: str) -> Iterator[FlashSpeech]:
    tts = build_tts(config, preset_name)
    try:
        yield tts
    finally:
        del tts
        gc.collect()
        if config.cuda:
            torch.cuda.empty_cache()


def measure_flashspeech(config: SpeedConfig, log: Callable[[str], None] = print) -> FlashSpeechResults:
    """FlashSpeech at `steps`, then the diffusion baseline at `diffusion_steps`, at every batch size."""
    results = FlashSpeechResults()
    groups: list[tuple[str, tuple[int, ...], str | None, int]] = [(config.preset, config.steps, None, config.repeats)]
    if config.diffusion_preset:
        groups.append((config.diffusion_preset, config.diffusion_steps, config.sampler, config.timed_diffusion_repeats))
    for preset_name, step_counts, sampler, repeats in groups:
        with _model(config, preset_name) as tts:
            results.models[preset_name] = model_info(tts, config)
            for batch in config.batch_sizes:
                for steps in step_counts:
                    timing = time_system(tts, config, steps=steps, batch=batch, repeats=repeats, sampler=sampler)
                    results.systems.append(timing)
                    log(
                        f"  {timing.system:>22} batch {batch:>3}: {timing.median_s * 1e3:9.1f} ms median, "
                        f"RTF {timing.rtf:.5f}, {timing.throughput:8.1f} s audio/s"
                    )
    return results
