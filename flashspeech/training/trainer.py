"""The training loop for every stage, with resumable state and deterministic steps.

Stages (paper §4.1 / official code s1, s2, "stage 3"):
- `consistency`: consistency training of the LCM + prosody regression losses (paper stage 1 before 600k).
- `adversarial`: the same plus the adversarial loss from a frozen speech encoder's discriminator, with
  the adaptive weight; generator and discriminator steps alternate (even / odd steps, as the code does),
  each with its own AdamW (the official code puts both in one AdamW; the updates are the same because
  each step only has gradients for one of them).
- `refinement`: the prosody refinement consistency models on the residual; everything else frozen.
- `diffusion`: the diffusion baseline's EDM denoising objective + the same prosody regression losses.

Determinism: each micro-batch draws everything (prompt splits, noise levels, noise, dropout) from generators
seeded by (seed, its global index G), and its items from the epoch's deterministic frame-budget order
(`flashspeech.training.sampler`). The saved state is therefore weights, optimizer moments (and the fp16 loss
scaler) and the step: a resumed run continues bit-exactly.

Scale: an optimizer step takes `accumulate` micro-batches on each of the `Ranks` (torchrun processes, gradients
averaged over them: `flashspeech.training.distributed`), each micro-batch filled to `batch_frames` latent frames,
so world x accumulate micro-batches make one step and the run is the same for any split of that product. Only
rank 0 logs, validates and saves. `precision` runs the forward passes under autocast: "bf16" (CPU and recent
GPUs), "fp16" (CUDA, with a dynamic loss scaler); the preconditioning scalings, the losses (pseudo-Huber, L1,
the discriminator's objectives) and the optimizer stay in fp32, because the model's outputs meet fp32 inputs
there and promote.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from flashspeech.training.batch import Batch, TrainingItem, collate
from flashspeech.training.ct import adaptive_weight, curriculum_steps
from flashspeech.training.distributed import Ranks, all_mean, average_gradients, broadcast_state
from flashspeech.training.losses import conditioning, consistency_loss, diffusion_loss, refinement_loss
from flashspeech.training.sampler import FrameBudgetSampler

STAGES = ("consistency", "adversarial", "refinement", "diffusion")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
SCHEDULES = ("linear", "cosine", "constant")
STATE = "state.pt"
METRICS = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """One stage's settings. Defaults follow the paper where they fit a small run (see the docs)."""

    stage: str = "consistency"
    steps: int = 1000
    lr: float = 3e-4  # paper AdamW 3e-4 (code 1e-4; stage-2 code 8e-5)
    warmup: int = 100  # linear warm-up steps, then `schedule` down to `final_lr_fraction` of lr
    final_lr_fraction: float = 0.1
    schedule: str = "linear"  # after warm-up: "linear" decay (the paper), "cosine" (official s1), "constant" (s2)
    weight_decay: float = 0.01
    grad_clip: float = 0.5  # official code: gradient_clip_val 0.5
    batch_frames: int = 4000  # frame budget per micro-batch (items x longest item; the paper: 20k per GPU)
    accumulate: int = 1  # micro-batches per rank per optimizer step (gradient accumulation)
    precision: str = "fp32"  # autocast of the forward passes: fp32 (off), bf16, fp16 (CUDA, loss-scaled)
    seed: int = 0
    # iCT curriculum N(k) = min(s0 * 2^floor(k / K'), s1) + 1 over `curriculum_total` steps (default: steps)
    s0: int = 10
    s1: int = 1280
    curriculum_total: int | None = None
    fixed_sigmas: int | None = None  # a fixed N (the code's is_fixed: 1281 in stage 2)
    # adversarial stage
    gan_loss: str = "lsgan"  # "lsgan" (official code) or "log" (paper Eq. 15)
    speech_encoder: str = "whisper"  # "whisper" (offline default) or "wavlm:<dir>"
    disc_widths: tuple[int, ...] = (256, 512, 1024, 1024)
    disc_lr: float | None = None  # default: lr
    adaptive_scale: float = 0.5  # official code multiplies the adaptive weight by 0.5
    # bookkeeping
    log_every: int = 10
    validate_every: int = 0  # held-out validation (`Trainer.validation`) every n steps and at the start; 0: off
    checkpoint_every: int = 200
    snapshot_every: int = 0  # also keep a loadable checkpoint of every n-th step (`Trainer.on_snapshot`); 0: off
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"unknown stage {self.stage!r}; stages: {', '.join(STAGES)}")
        if self.steps < 1 or self.batch_frames < 1:
            raise ValueError("steps and batch_frames must be >= 1")
        if self.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1, got {self.accumulate}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.gan_loss not in ("lsgan", "log"):
            raise ValueError(f"gan_loss must be 'lsgan' or 'log', got {self.gan_loss!r}")

    def n_sigmas(self, step: int) -> int:
        if self.fixed_sigmas is not None:
            return self.fixed_sigmas
        return curriculum_steps(step, self.s0, self.s1, self.curriculum_total or self.steps)

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        if self.schedule == "constant":
            return self.lr
        frac = min((step - self.warmup) / max(1, self.steps - self.warmup), 1.0)
        if self.schedule == "cosine":
            return self.lr * (
                self.final_lr_fraction + (1.0 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * frac))
            )
        return self.lr * (1.0 - (1.0 - self.final_lr_fraction) * frac)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["disc_widths"] = list(self.disc_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        d = dict(d)
        if "disc_widths" in d:
            d["disc_widths"] = tuple(d["disc_widths"])
        return cls(**d)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the metric lines of `path` logged after `step` (a resumed run logs them again)."""
    if path.is_file():
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in keep), encoding="utf-8")


def step_seed(seed: int, step: int) -> int:
    return (seed * 1_000_003 + step * 7919 + 17) % (2**63 - 1)


@dataclass
class StepResult:
    step: int
    metrics: dict[str, float]


@dataclass
class Trainer:
    """Trains `model` (a FlashSpeechModel) on `items` for one stage; `run_dir` holds state and metrics."""

    model: torch.nn.Module
    items: Sequence[TrainingItem]
    config: TrainConfig
    run_dir: Path
    codec: torch.nn.Module | None = None  # needed by the adversarial stage
    on_log: Callable[[int, dict[str, float]], None] | None = None
    speech_encoder: torch.nn.Module | None = None  # adversarial stage; default: built from config.speech_encoder
    validation: Sequence[Batch] | None = None  # held-out batches (flashspeech.training.validation)
    # called as (step, directory) every `snapshot_every` steps to write a loadable checkpoint there
    on_snapshot: Callable[[int, Path], None] | None = None
    ranks: Ranks = field(default_factory=Ranks)  # this process among the data-parallel ranks (default: alone)
    step: int = 0
    elapsed_s: float = 0.0  # training wall time over all sessions of this stage
    last_validation: dict[str, float] | None = field(default=None, init=False)
    discriminator: torch.nn.Module | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        self.device = next(self.model.parameters()).device
        cfg = self.config
        objective = getattr(self.model.cfg, "objective", "consistency")
        if cfg.stage == "diffusion" and objective != "diffusion":
            raise ValueError("the diffusion stage needs a model whose config has objective='diffusion'")
        if cfg.stage != "diffusion" and objective == "diffusion":
            raise ValueError(f"stage {cfg.stage!r} trains a consistency model, not a diffusion one")
        self.trainable = self._select_trainable()
        broadcast_state(self.model, self.ranks)
        self.optimizer = torch.optim.AdamW(self.trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.disc_optimizer = None
        if cfg.stage == "adversarial":
            from flashspeech.training.discriminator import Discriminator
            from flashspeech.training.speech_encoders import build_speech_encoder

            if self.codec is None:
                raise ValueError("the adversarial stage needs the codec (to feed the speech encoder)")
            if self.speech_encoder is None:
                self.speech_encoder = build_speech_encoder(cfg.speech_encoder)
            self.speech_encoder.to(self.device)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                self.discriminator = Discriminator(self.speech_encoder.channels, cfg.disc_widths).to(self.device)
            broadcast_state(self.discriminator, self.ranks)
            self.disc_optimizer = torch.optim.AdamW(
                self.discriminator.parameters(), lr=cfg.disc_lr or cfg.lr, weight_decay=cfg.weight_decay
            )
        if cfg.precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device (use bf16 on the CPU)")
        self.scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
        # a streamed item list knows its lengths without loading anything (bench.training.featurize)
        lengths = getattr(self.items, "lengths", None) or [int(item.latent.shape[-1]) for item in self.items]
        self.sampler = FrameBudgetSampler(lengths, cfg.batch_frames, cfg.seed, self.ranks.world, cfg.accumulate)
        self.n_batches = self.sampler.steps_per_epoch  # optimizer steps per epoch

    # -- parameters -----------------------------------------------------------------------------------
    def _select_trainable(self) -> list[Tensor]:
        refiners = ("duration_refiner.", "pitch_refiner.")
        params = []
        for name, p in self.model.named_parameters():
            is_refiner = name.startswith(refiners)
            train = is_refiner if self.config.stage == "refinement" else not is_refiner
            p.requires_grad_(train)
            if train:
                params.append(p)
        return params

    # -- data -----------------------------------------------------------------------------------------
    def batch_at(self, step: int, micro: int = 0) -> Batch:
        """This rank's micro-batch `micro` of optimizer step `step`, its prompt split drawn from its global seed."""
        indices = self.sampler.indices(step, self.ranks.rank, micro)
        rng = random.Random(self._seed(step, micro))
        return collate([self.items[i] for i in indices], rng).to(self.device)

    def _seed(self, step: int, micro: int) -> int:
        return step_seed(self.config.seed, self.sampler.global_index(step, self.ranks.rank, micro))

    # -- one step -------------------------------------------------------------------------------------
    def train_step(self) -> StepResult:
        """One optimizer step over this rank's `accumulate` micro-batches, gradients averaged over the ranks."""
        cfg, k = self.config, self.step
        discriminator = cfg.stage == "adversarial" and k % 2 == 1
        optimizer = self.disc_optimizer if discriminator else self.optimizer
        params = list(self.discriminator.parameters()) if discriminator else self.trainable
        lr = cfg.lr_at(k)
        for group in optimizer.param_groups:
            group["lr"] = (cfg.disc_lr or cfg.lr) * lr / cfg.lr if discriminator else lr
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        for micro in range(cfg.accumulate):
            batch = self.batch_at(k, micro)
            seed = self._seed(k, micro)
            gen = torch.Generator().manual_seed(seed)
            torch.manual_seed(seed)  # dropout
            with self._autocast():
                loss, metrics = self._disc_loss(batch, gen) if discriminator else self._loss(batch, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"step {k}: non-finite loss {float(loss)} ({metrics})")
            scaled = loss / cfg.accumulate
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            metrics["frames"] = float(batch.frames)
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + value
        metrics = {key: (v if key == "frames" else v / cfg.accumulate) for key, v in sums.items()}
        metrics = all_mean(metrics, self.ranks, self.device)
        metrics["frames"] *= self.ranks.world  # frames of the whole step
        metrics["grad_norm_d" if discriminator else "grad_norm"] = self._apply(optimizer, params)
        metrics["lr"] = lr
        self.step += 1
        return StepResult(k, metrics)

    def _autocast(self) -> torch.autocast:
        dtype = PRECISIONS[self.config.precision]
        return torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    def _loss(self, batch: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """The stage's generator (or refiner) loss on one micro-batch, with its terms."""
        cfg, model, k = self.config, self.model, self.step
        metrics: dict[str, float] = {}
        if cfg.stage == "refinement":
            model.eval()
            with torch.no_grad():
                c = conditioning(model, batch)
            model.duration_refiner.train()
            model.pitch_refiner.train()
            n = cfg.n_sigmas(k)
            losses = refinement_loss(model, batch, c, n, gen)
            metrics.update(loss_refine_duration=losses["duration"].item(), loss_refine_pitch=losses["pitch"].item())
            metrics["n_sigmas"] = float(n)
            loss = losses["duration"] + losses["pitch"]
        else:
            model.train()
            c = conditioning(model, batch)
            loss = c.loss
            metrics.update(loss_duration=c.loss_duration.item(), loss_pitch=c.loss_pitch.item())
            if c.loss_anchor is not None:
                metrics["loss_anchor"] = c.loss_anchor.item()
            if cfg.stage == "diffusion":
                l_diff = diffusion_loss(model, batch, c, gen)
                loss = loss + l_diff
                metrics["loss_diffusion"] = l_diff.item()
            else:
                n = cfg.n_sigmas(k)
                terms = consistency_loss(model, batch, c, n, gen)
                loss = loss + terms.loss
                metrics.update(loss_ct=terms.loss.item(), n_sigmas=float(n))
                if cfg.stage == "adversarial":
                    l_g = self._generator_adv_loss(batch, terms.student)
                    weight = adaptive_weight(
                        terms.loss, l_g, model.lcm.layers[-1].out_proj.weight, scale=cfg.adaptive_scale
                    )
                    loss = loss + weight * l_g
                    metrics.update(loss_g=l_g.item(), adv_weight=weight.item())
        metrics["loss"] = loss.item()
        return loss, metrics

    def _apply(self, optimizer: torch.optim.Optimizer, params: list[Tensor]) -> float:
        """Average the gradients over the ranks, unscale (fp16), clip, step; the gradient norm before clipping."""
        average_gradients(params, self.ranks)
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        return float(norm)

    # -- adversarial pieces ---------------------------------------------------------------------------
    def _features(self, latent: Tensor, mask: Tensor) -> Tensor:
        shortest = int(mask.sum(1).min())
        return self.speech_encoder.features(latent[..., :shortest], self.codec)

    def _prompt_features(self, batch: Batch) -> Tensor:
        with torch.no_grad():
            return self._features(batch.prompt, batch.prompt_mask)

    def _generator_adv_loss(self, batch: Batch, fake: Tensor) -> Tensor:
        from flashspeech.training.discriminator import generator_loss

        self.discriminator.requires_grad_(False)
        logits = self.discriminator(self._features(fake, batch.frame_mask), self._prompt_features(batch))
        self.discriminator.requires_grad_(True)
        return generator_loss(logits, self.config.gan_loss)

    def _disc_loss(self, batch: Batch, gen: torch.Generator) -> tuple[Tensor, dict[str, float]]:
        """The discriminator's loss on one micro-batch: real latents against the student's samples."""
        from flashspeech.training.discriminator import discriminator_loss

        cfg = self.config
        self.model.train()
        with torch.no_grad():
            c = conditioning(self.model, batch)
            fake = consistency_loss(self.model, batch, c, cfg.n_sigmas(self.step), gen).student
            f_fake = self._features(fake, batch.frame_mask)
            f_real = self._features(batch.latent, batch.frame_mask)
        prompt = self._prompt_features(batch)
        loss = discriminator_loss(self.discriminator(f_real, prompt), self.discriminator(f_fake, prompt), cfg.gan_loss)
        return loss, {"loss_d": loss.item()}

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "config": self.config.to_dict(),
            "model_config": self.model.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "micro_batches_per_step": self.sampler.per_step,
            "world": self.ranks.world,
        }
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["disc_optimizer"] = self.disc_optimizer.state_dict()
            state["speech_encoder"] = self.speech_encoder.name
        return state

    def save_state(self) -> Path:
        """Write the state atomically (rank 0; the other ranks only wait for it)."""
        path = self.run_dir / STATE
        if not self.ranks.writer:
            self.ranks.barrier()
            return path
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{STATE}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        self.ranks.barrier()
        return path

    def load_state(self, path: Path | None = None) -> None:
        from flashspeech.checkpoint import check_state_dict

        path = Path(path or self.run_dir / STATE)
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved = TrainConfig.from_dict(state["config"])
        bookkeeping = {
            "steps": self.config.steps,
            "checkpoint_every": self.config.checkpoint_every,
            "validate_every": self.config.validate_every,
            "snapshot_every": self.config.snapshot_every,
            "accumulate": self.config.accumulate,  # the product with the world size must match (below)
        }
        if replace(saved, **bookkeeping) != replace(self.config, **bookkeeping):
            raise ValueError(f"{path}: saved with a different training config: {saved} vs {self.config}")
        saved_per_step = int(state.get("micro_batches_per_step", saved.accumulate))
        if saved_per_step != self.sampler.per_step:
            raise ValueError(
                f"{path}: saved with {saved_per_step} micro-batches per step (world x accumulate), this run has "
                f"{self.sampler.per_step} ({self.ranks.world} x {self.config.accumulate}): set accumulate so the "
                "product matches"
            )
        check_state_dict(self.model, state["model"], str(path))
        self.model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminator is not None:
            self.discriminator.load_state_dict(state["discriminator"], strict=True)
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self._truncate_metrics()

    def _truncate_metrics(self) -> None:
        if self.ranks.writer:
            truncate_metrics(self.run_dir / METRICS, self.step)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> dict[str, float]:
        """Train until `config.steps`; checkpoints every `checkpoint_every` steps and at the end."""
        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        # Denormal floats appear in the activations as training goes on and make x86 CPU math several times
        # slower (measured: consistency steps 1.25 s at the start, 2.0 s by step 2,000; 1.28 s with flushing).
        flush = torch.set_flush_denormal(True) if self.device.type == "cpu" else False
        try:
            return self._run(progress)
        finally:
            if flush:
                torch.set_flush_denormal(False)

    def _run(self, progress: bool) -> dict[str, float]:
        from tqdm.auto import tqdm

        cfg = self.config
        self.run_dir.mkdir(parents=True, exist_ok=True)
        window: dict[str, list[float]] = {}
        last: dict[str, float] = {}
        start = time.perf_counter()
        if self.step == 0:
            self._validate()
        progress = progress and self.ranks.writer
        with tqdm(total=cfg.steps, initial=self.step, desc=f"train {cfg.stage}", disable=not progress) as bar:
            while self.step < cfg.steps:
                t0 = time.perf_counter()
                result = self.train_step()
                self.elapsed_s += time.perf_counter() - t0
                for key, value in result.metrics.items():
                    window.setdefault(key, []).append(value)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    last = {k: sum(v) / len(v) for k, v in window.items()}
                    last["seconds_per_step"] = (time.perf_counter() - start) / max(1, sum(1 for _ in window["lr"]))
                    self._log(self.step, last)
                    window, start = {}, time.perf_counter()
                    bar.set_postfix(loss=f"{last.get('loss', last.get('loss_d', math.nan)):.4f}")
                if cfg.validate_every and (self.step % cfg.validate_every == 0 or self.step == cfg.steps):
                    self._validate()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save_state()
                snapshot = cfg.snapshot_every and self.step % cfg.snapshot_every == 0
                if snapshot and self.on_snapshot is not None and self.ranks.writer:
                    self.on_snapshot(self.step, self.run_dir / "snapshots" / f"step-{self.step}")
                bar.update()
        return last

    def _validate(self) -> None:
        if not self.config.validate_every or not self.validation or not self.ranks.writer:
            return
        from flashspeech.training.validation import validate

        self.last_validation = validate(self.model, self.validation, seed=self.config.seed)
        self._log(self.step, self.last_validation)

    def _log(self, step: int, metrics: dict[str, float]) -> None:
        if not self.ranks.writer:
            return
        with (self.run_dir / METRICS).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.on_log is not None:
            self.on_log(step, metrics)
