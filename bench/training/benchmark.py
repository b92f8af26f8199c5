"""Training throughput and memory per device: latent frames per second and peak memory of optimizer steps of a
preset (tiny on the CPU, `paper` on a GPU) at a frame budget, per precision; and, for a batch too large to run
here, the memory it would need, estimated from what was measured.

The data are synthetic utterances of realistic shape (5-10 s at the model's 80 frames/s, one phone per six
frames, a speaker-level F0), so the numbers measure the model and the trainer, not a corpus. Memory:

* CUDA: `torch.cuda.max_memory_allocated` from before the model is built to the end of the steps (tensors
  only; the caching allocator reserves more).
* CPU: the process's peak resident set (`ru_maxrss`) minus its resident set before the model is built, which
  includes the allocator's slack: an upper-side measure. Each measurement runs in a fresh process
  (`measure_in_process`), since the peak never falls within one.

Either way the peak covers everything a step needs: weights, gradients, AdamW's moments and activations.
`estimate_memory` fits it linearly in frames through two measured budgets and extrapolates: attention is
quadratic in an utterance's length, but utterances are capped at the same length at any budget, so a larger
budget adds utterances, not length. The fp32 model state (weights + gradients + moments, 16 bytes per trainable
parameter) is stated beside it. It is an estimate and says so.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from flashspeech.config import preset as model_preset
from flashspeech.model import FlashSpeechModel
from flashspeech.training.trainer import TrainConfig, Trainer

GB = 1024**3


@dataclass(frozen=True)
class SyntheticItem:
    id: str
    speaker: str
    phonemes: torch.Tensor
    durations: torch.Tensor
    latent: torch.Tensor
    f0: torch.Tensor


def synthetic_items(n: int, latent_dim: int, vocab: int, seed: int = 0, frames: tuple[int, int] = (400, 800)):  # type: ignore[no-untyped-def]
    """`n` utterances of `frames` latent frames (uniform), about six frames per phone, F0 by speaker."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        t = int(torch.randint(frames[0], frames[1] + 1, (1,), generator=g))
        p = max(t // 6, 2)
        durations = torch.full((p,), t // p, dtype=torch.long)
        durations[-1] += t - int(durations.sum())
        phonemes = torch.randint(5, vocab, (p,), generator=g)
        latent = torch.randn(latent_dim, t, generator=g) * 0.5
        f0 = torch.full((t,), 100.0 + 10 * (i % 8))
        items.append(SyntheticItem(f"s{i}", f"spk{i % 8}", phonemes, durations, latent, f0))
    return items


@dataclass(frozen=True)
class ThroughputRow:
    preset: str
    stage: str
    precision: str
    device: str
    batch_frames: int
    steps: int
    s_per_step: float
    frames_per_s: float
    peak_memory_gb: float
    memory_measure: str
    parameters_m: float
    trainable_m: float


def _peak_rss_gb() -> float:
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / GB


def _rss_gb() -> float:
    """The resident set now (Linux /proc; elsewhere the peak, an over-estimate of the baseline)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return _peak_rss_gb()
    return pages * resource.getpagesize() / GB


def measure(
    preset: str = "tiny",
    precision: str = "fp32",
    batch_frames: int = 2000,
    steps: int = 3,
    device: str = "cpu",
    stage: str = "consistency",
    warmup: int = 1,
    seed: int = 0,
) -> ThroughputRow:
    """Time `steps` optimizer steps (after `warmup` untimed ones) of `preset` at `batch_frames` per step."""
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss_before = _rss_gb()
    torch.manual_seed(seed)
    cfg = model_preset(preset)
    model = FlashSpeechModel(cfg).to(device)
    longest = max(batch_frames // 2, 40)
    frames = (min(400, longest // 2), min(800, longest))
    items = synthetic_items(64, cfg.latent_dim, cfg.vocab_size, seed, frames)
    train = TrainConfig(stage=stage, steps=warmup + steps, warmup=0, batch_frames=batch_frames, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(model, items, train, Path(tmp))
        for _ in range(warmup):
            trainer.train_step()
        if cuda:
            torch.cuda.synchronize()
        t0, total = time.perf_counter(), 0.0
        for _ in range(steps):
            total += trainer.train_step().metrics["frames"]
        if cuda:
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - t0
        peak = torch.cuda.max_memory_allocated() / GB if cuda else _peak_rss_gb() - rss_before
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in trainer.trainable)
    return ThroughputRow(
        preset=preset,
        stage=stage,
        precision=precision,
        device=device,
        batch_frames=batch_frames,
        steps=steps,
        s_per_step=elapsed / steps,
        frames_per_s=total / elapsed,
        peak_memory_gb=peak,
        memory_measure="CUDA max_memory_allocated" if cuda else "peak RSS above the process's RSS before the model",
        parameters_m=params / 1e6,
        trainable_m=trainable / 1e6,
    )


@dataclass(frozen=True)
class MemoryEstimate:
    preset: str
    batch_frames: int
    state_gb: float  # fp32 weights + gradients + AdamW moments of the trainable weights
    activations_gb: float
    total_gb: float
    measured_at: tuple[int, int]  # the two budgets the activation slope came from
    basis: str

    def line(self) -> str:
        return (
            f"{self.preset} at {self.batch_frames} frames per device: about {self.total_gb:.1f} GB "
            f"({self.state_gb:.1f} GB weights, gradients and AdamW moments + {self.activations_gb:.1f} GB activations, "
            f"extrapolated from {self.measured_at[0]} and {self.measured_at[1]} frames; {self.basis})"
        )


def estimate_memory(preset: str, batch_frames: int, small: ThroughputRow, large: ThroughputRow) -> MemoryEstimate:
    """Memory of a step of `preset` at `batch_frames`: the measured peak of two smaller budgets of the same preset
    and precision, linear in frames (module docstring); the fp32 model state is stated beside it."""
    if (small.preset, small.precision) != (large.preset, large.precision) or small.batch_frames >= large.batch_frames:
        raise ValueError("need two measurements of one preset and precision at increasing frame budgets")
    state = (small.parameters_m * 4 + small.trainable_m * (4 + 8)) * 1e6 / GB
    slope = max(large.peak_memory_gb - small.peak_memory_gb, 0.0) / (large.batch_frames - small.batch_frames)
    total = large.peak_memory_gb + slope * (batch_frames - large.batch_frames)
    return MemoryEstimate(
        preset=preset,
        batch_frames=batch_frames,
        state_gb=state,
        activations_gb=max(total - state, 0.0),
        total_gb=total,
        measured_at=(small.batch_frames, large.batch_frames),
        basis=f"{small.memory_measure}, {small.device}, {small.precision}",
    )


def measure_in_process(**kwargs: object) -> ThroughputRow:
    """`measure` in a fresh process (its memory peak is its own)."""
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, kwds=kwargs)


def run_benchmark(
    preset: str,
    precisions: list[str],
    budgets: list[int],
    device: str,
    steps: int,
    estimate_at: int | None,
) -> dict:
    """Every (precision, budget) measured in its own process; with `estimate_at`, the memory at that budget
    per precision from its two largest measured budgets. A report dict (rows, estimates, machine)."""
    from bench.speed.scaling import machine

    rows, estimates = [], []
    for precision in precisions:
        measured = [
            measure_in_process(preset=preset, precision=precision, batch_frames=b, steps=steps, device=device)
            for b in sorted(budgets)
        ]
        rows += measured
        if estimate_at is not None and len(measured) >= 2:
            estimates.append(estimate_memory(preset, estimate_at, measured[-2], measured[-1]))
    return {
        "machine": machine(device) | {"torch_threads": torch.get_num_threads()},
        "rows": [asdict(r) for r in rows],
        "estimates": [asdict(e) | {"line": e.line()} for e in estimates],
    }


def markdown(report: dict) -> str:
    lines = [
        "| preset | stage | precision | device | frames / step | s / step | frames / s | peak memory (GB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['preset']} | {r['stage']} | {r['precision']} | {r['device']} | {r['batch_frames']} | "
            f"{r['s_per_step']:.2f} | {r['frames_per_s']:.0f} | {r['peak_memory_gb']:.2f} |"
        )
    if report["rows"]:
        first = report["rows"][0]
        lines += ["", f"Memory: {first['memory_measure']}. {first['parameters_m']:.1f} M parameters, "
                  f"{first['trainable_m']:.1f} M trained."]  # fmt: skip
    lines += [f"- {e['line']}" for e in report["estimates"]]
    m = report["machine"]
    where = m.get("gpu") or f"{m.get('cpu')} ({m.get('cpu_count')} CPUs, {m.get('torch_threads')} torch threads)"
    lines += ["", f"Measured on {where}, torch {m.get('torch')}; synthetic utterances (bench/training/benchmark.py)."]
    return "\n".join(lines)
