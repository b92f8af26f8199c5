"""Training the mel codec's neural decoder (`flashspeech.codecs.vocos.Vocos`) adversarially, resumably.

Each step draws `batch_size` random `segment_frames`-frame crops of the training waveforms (a random gain each),
encodes them with the codec (the log-mel the decoder will meet) and decodes them. Steps alternate within one
step: the discriminators (multi-period + multi-resolution, hinge loss) on real against decoded audio, then the
generator on `mel_weight` x log-mel L1 + hinge adversarial + feature matching (the multi-resolution terms
scaled by `mrd_weight`, as Vocos does). Before `gan_start` only the log-mel loss trains the generator (a
warm start that reaches intelligible output quickly on a CPU budget).

Determinism: a step's crops and gains come from a generator seeded by (seed, step), so a resumed run draws the
same data; the state (both networks, both optimizers, the step) is saved atomically every `checkpoint_every` steps.
Validation decodes held-out utterances whole and logs the log-mel L1 and a linear log-spectral L1 of the
re-analysed output (`val_mel_l1`, `val_spec_l1`), with Griffin-Lim's on the same utterances as the reference.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch.nn import functional as F

from flashspeech.codecs.vocos import Vocos, VocosConfig
from flashspeech.foundation.fields import typed_fields
from flashspeech.training import vocoder_gan as gan
from flashspeech.training.trainer import METRICS, STATE, truncate_metrics


@dataclass(frozen=True)
class VocoderTrainConfig:
    """The vocoder stage's settings (Vocos / HiFi-GAN values where they fit a CPU budget)."""

    steps: int = 4000
    batch_size: int = 16
    segment_frames: int = 48  # crop length in codec frames (48 x 200 samples = 0.6 s at 16 kHz)
    lr: float = 5e-4
    disc_lr: float = 5e-4
    betas: tuple[float, float] = (0.8, 0.9)
    final_lr_fraction: float = 0.1  # cosine decay from lr to this fraction at `steps`
    warmup: int = 50
    gan_start: int = 0  # generator trained on the log-mel loss alone before this step (no discriminator)
    mel_weight: float = 45.0
    mrd_weight: float = 0.1  # the multi-resolution discriminator's adversarial and feature-matching terms
    fm_weight: float = 1.0
    gain_db: tuple[float, float] = (-12.0, 0.0)  # each crop scaled by a uniform gain in this range (dB)
    grad_clip: float = 100.0
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    mpd_channels: tuple[int, ...] = (16, 64, 128, 128)
    resolutions: tuple[tuple[int, int], ...] = ((256, 64), (512, 128), (1024, 256))  # (n_fft, hop)
    mrd_channels: int = 32
    seed: int = 0
    threads: int | None = None
    checkpoint_every: int = 250
    validate_every: int = 250
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.segment_frames < 4:
            raise ValueError(f"need steps >= 1, batch_size >= 1, segment_frames >= 4, got {self}")
        if not self.gain_db[0] <= self.gain_db[1]:
            raise ValueError(f"gain_db: expected (low, high) with low <= high, got {self.gain_db}")

    def lr_at(self, step: int, base: float) -> float:
        if step < self.warmup:
            return base * (step + 1) / self.warmup
        progress = min(1.0, (step - self.warmup) / max(1, self.steps - self.warmup))
        low = base * self.final_lr_fraction
        return low + (base - low) * 0.5 * (1 + math.cos(math.pi * progress))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "train") -> VocoderTrainConfig:
        return cls(**typed_fields(cls, data, where, what="the vocoder training"))


@dataclass
class WaveformBank:
    """Training waveforms (float32, at the codec's rate) and deterministic random crops of them."""

    waveforms: Sequence[Tensor]

    def __post_init__(self) -> None:
        if not self.waveforms:
            raise ValueError("no training waveforms")
        lengths = torch.tensor([float(w.numel()) for w in self.waveforms])
        self.weights = lengths / lengths.sum()  # utterances drawn in proportion to their length

    def crops(self, n: int, samples: int, gain_db: tuple[float, float], gen: torch.Generator) -> Tensor:
        """[n, samples]: n crops (utterances by length, uniform offsets; shorter ones zero-padded), each gained."""
        picks = torch.multinomial(self.weights, n, replacement=True, generator=gen)
        out = torch.zeros(n, samples)
        for row, index in enumerate(picks.tolist()):
            wav = self.waveforms[index]
            start = int(torch.randint(0, max(1, wav.numel() - samples + 1), (1,), generator=gen))
            piece = wav[start : start + samples].float()
            out[row, : piece.numel()] = piece
        low, high = gain_db
        gains = 10 ** ((low + (high - low) * torch.rand(n, 1, generator=gen)) / 20)
        return out * gains


@dataclass
class VocoderTrainer:
    """Trains `model` against the discriminators on `bank`'s crops; `run_dir` holds state.pt and metrics.jsonl."""

    model: Vocos
    codec: torch.nn.Module  # the MelCodec whose log-mel the vocoder decodes (its encode makes the inputs)
    bank: WaveformBank
    config: VocoderTrainConfig
    run_dir: Path
    validation: Sequence[Tensor] = ()  # held-out waveforms, decoded whole
    on_log: Callable[[int, dict[str, float]], None] | None = None
    step: int = 0
    elapsed_s: float = 0.0
    last_validation: dict[str, float] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        cfg = self.config
        self.run_dir = Path(self.run_dir)
        self.device = next(self.model.parameters()).device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed + 1)
            self.mpd = gan.multi_period(cfg.periods, cfg.mpd_channels).to(self.device)
            self.mrd = gan.multi_resolution(cfg.resolutions, cfg.mrd_channels).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=cfg.betas)
        disc_params = [*self.mpd.parameters(), *self.mrd.parameters()]
        self.disc_optimizer = torch.optim.AdamW(disc_params, lr=cfg.disc_lr, betas=cfg.betas)
        self._griffin_lim: dict[str, float] | None = None

    # -- one step -------------------------------------------------------------------------------------
    def batch_at(self, step: int) -> Tensor:
        cfg = self.config
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        samples = cfg.segment_frames * self.codec.hop_length
        return self.bank.crops(cfg.batch_size, samples, cfg.gain_db, gen).to(self.device)

    def train_step(self) -> dict[str, float]:
        cfg, k = self.config, self.step
        real = self.batch_at(k)
        torch.manual_seed(cfg.seed * 1_000_003 + k)
        with torch.no_grad():
            mel = self.codec.encode(real)
        self.model.train()
        fake = self.model(mel)
        metrics: dict[str, float] = {}
        adversarial = k >= cfg.gan_start
        if adversarial:
            for group in self.disc_optimizer.param_groups:
                group["lr"] = cfg.lr_at(k, cfg.disc_lr)
            self.disc_optimizer.zero_grad(set_to_none=True)
            mp_real, _ = self.mpd(real)
            mp_fake, _ = self.mpd(fake.detach())
            mr_real, _ = self.mrd(real)
            mr_fake, _ = self.mrd(fake.detach())
            loss_mpd, loss_mrd = gan.hinge_d_loss(mp_real, mp_fake), gan.hinge_d_loss(mr_real, mr_fake)
            loss_d = loss_mpd + cfg.mrd_weight * loss_mrd
            loss_d.backward()
            metrics["grad_norm_d"] = float(
                torch.nn.utils.clip_grad_norm_([*self.mpd.parameters(), *self.mrd.parameters()], cfg.grad_clip)
            )
            self.disc_optimizer.step()
            metrics.update(loss_d_mpd=loss_mpd.item(), loss_d_mrd=loss_mrd.item())
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr_at(k, cfg.lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss_mel = gan.log_mel_l1(self.codec, fake, mel)
        loss = cfg.mel_weight * loss_mel
        if adversarial:
            self.mpd.requires_grad_(False)
            self.mrd.requires_grad_(False)
            mp_fake, mp_feat_fake = self.mpd(fake)
            mr_fake, mr_feat_fake = self.mrd(fake)
            with torch.no_grad():
                _, mp_feat_real = self.mpd(real)
                _, mr_feat_real = self.mrd(real)
            self.mpd.requires_grad_(True)
            self.mrd.requires_grad_(True)
            loss_g_mp, loss_g_mr = gan.hinge_g_loss(mp_fake), gan.hinge_g_loss(mr_fake)
            loss_fm_mp = gan.feature_matching_loss(mp_feat_real, mp_feat_fake)
            loss_fm_mr = gan.feature_matching_loss(mr_feat_real, mr_feat_fake)
            loss = (
                loss
                + loss_g_mp
                + cfg.mrd_weight * loss_g_mr
                + cfg.fm_weight * (loss_fm_mp + cfg.mrd_weight * loss_fm_mr)
            )
            metrics.update(
                loss_g_mpd=loss_g_mp.item(),
                loss_g_mrd=loss_g_mr.item(),
                loss_fm_mpd=loss_fm_mp.item(),
                loss_fm_mrd=loss_fm_mr.item(),
            )
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {k}: non-finite generator loss {float(loss)} ({metrics})")
        loss.backward()
        metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip))
        self.optimizer.step()
        metrics.update(loss=loss.item(), loss_mel=loss_mel.item(), lr=cfg.lr_at(k, cfg.lr))
        self.step += 1
        return metrics

    # -- validation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out distances of the decoder's output, and (computed once) Griffin-Lim's on the same audio."""
        self.model.eval()
        out = _distances(self.validation, self.codec, self.model)
        if self._griffin_lim is None:
            self._griffin_lim = _distances(self.validation, self.codec, self.codec.griffin_lim)
        return {
            **{f"val_{k}": v for k, v in out.items()},
            **{f"val_{k}_griffin_lim": v for k, v in self._griffin_lim.items()},
        }

    # -- state ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "step": self.step,
            "elapsed_s": self.elapsed_s,
            "config": self.config.to_dict(),
            "model_config": asdict(self.model.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "mpd": self.mpd.state_dict(),
            "mrd": self.mrd.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
        }

    def save_state(self) -> Path:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / STATE
        tmp = path.with_name(f".{STATE}.tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)
        return path

    def load_state(self, path: Path | None = None) -> None:
        """Resume from a saved state; its training and model configs must match this run's (the number of steps
        and the logging cadence may differ, and `gan_start` while neither value has been reached)."""
        from flashspeech.foundation.weights import check_state_dict

        path = Path(path or self.run_dir / STATE)
        state = torch.load(path, map_location=self.device, weights_only=False)
        saved = VocoderTrainConfig.from_dict(state["config"])
        ignore = ["steps", "checkpoint_every", "validate_every", "log_every", "threads"]
        if min(saved.gan_start, self.config.gan_start) >= int(state["step"]):
            ignore.append("gan_start")  # moving a start not reached yet changes none of the steps already taken
        mine, theirs = self.config.to_dict(), saved.to_dict()
        changed = sorted(k for k in mine if k not in ignore and mine[k] != theirs[k])
        if changed:
            raise ValueError(f"{path}: saved with a different training config ({', '.join(changed)} differ)")
        if VocosConfig(**state["model_config"]) != self.model.config:
            raise ValueError(f"{path}: saved for another decoder shape {state['model_config']}")
        for name, module in (("model", self.model), ("mpd", self.mpd), ("mrd", self.mrd)):
            check_state_dict(module, state[name], f"{path} [{name}]")
            module.load_state_dict(state[name], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.step, self.elapsed_s = int(state["step"]), float(state.get("elapsed_s", 0.0))
        truncate_metrics(self.run_dir / METRICS, self.step)

    # -- the loop -------------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> dict[str, float]:
        """Train until `config.steps`, saving state every `checkpoint_every` steps and at the end."""
        from tqdm.auto import tqdm

        cfg = self.config
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        flush = torch.set_flush_denormal(True) if self.device.type == "cpu" else False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        window: dict[str, list[float]] = {}
        last: dict[str, float] = {}
        try:
            if self.step == 0 and cfg.validate_every and self.validation:
                self._log(0, self.validate())
            with tqdm(total=cfg.steps, initial=self.step, desc="train vocoder", disable=not progress) as bar:
                while self.step < cfg.steps:
                    t0 = time.perf_counter()
                    metrics = self.train_step()
                    seconds = time.perf_counter() - t0
                    self.elapsed_s += seconds
                    metrics["seconds_per_step"] = seconds
                    for key, value in metrics.items():
                        window.setdefault(key, []).append(value)
                    if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                        last = {key: sum(v) / len(v) for key, v in window.items()}
                        self._log(self.step, last)
                        window = {}
                        bar.set_postfix(mel=f"{last['loss_mel']:.3f}")
                    due = cfg.validate_every and (self.step % cfg.validate_every == 0 or self.step == cfg.steps)
                    if due and self.validation:
                        self.last_validation = self.validate()
                        self._log(self.step, self.last_validation)
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.save_state()
                    bar.update()
        finally:
            if flush:
                torch.set_flush_denormal(False)
        return last

    def _log(self, step: int, metrics: dict[str, float]) -> None:
        with (self.run_dir / METRICS).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.on_log is not None:
            self.on_log(step, metrics)


def spectral_distances(codec: torch.nn.Module, decoded: Tensor, reference: Tensor) -> dict[str, float]:
    """Distances of a decoded waveform from its reference, both [S]: log-mel L1 through the codec (`mel_l1`,
    natural log) and the L1 of linear log-magnitude spectra (n_fft 1024, hop 256; `spec_l1`, natural log)."""
    n = min(decoded.numel(), reference.numel())
    decoded, reference = decoded[:n].float(), reference[:n].float()
    mel = F.l1_loss(codec.encode(decoded[None]), codec.encode(reference[None])).item()
    window = torch.hann_window(1024, device=decoded.device)

    def logspec(x: Tensor) -> Tensor:
        return torch.stft(x, 1024, 256, 1024, window, return_complex=True).abs().clamp_min(1e-5).log()

    return {"mel_l1": mel, "spec_l1": F.l1_loss(logspec(decoded), logspec(reference)).item()}


def _distances(waveforms: Sequence[Tensor], codec: torch.nn.Module, decode: Callable[[Tensor], Tensor]) -> dict:
    sums: dict[str, float] = {}
    for wav in waveforms:
        wav = wav.to(codec.device)
        decoded = decode(codec.encode(wav[None]))[0]
        for key, value in spectral_distances(codec, decoded, wav).items():
            sums[key] = sums.get(key, 0.0) + value
    return {key: value / max(1, len(waveforms)) for key, value in sums.items()}
