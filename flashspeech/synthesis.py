"""The inference API: `FlashSpeech.synthesize(texts, prompts, steps=2, seed=..., alpha=...)`.

Pipeline and timed stages: frontend (text -> phoneme ids, prompt audio -> codec latent), prosody
(encoders, durations, length regulation, pitch, one-step refinement), sampling (the latent network run by
a `SamplingPlan`, resolved once from steps / sampler / sigmas by `FlashSpeech.plan`), decoder (codec
latent -> waveform).

Randomness: every item draws its noise from its own generator seeded with its own seed (an int `seed`
gives item i the seed `seed + i`), on the CPU, in a fixed order. So an item's audio does not depend on
the batch it is in or on the device, and the same seed gives the same audio.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from flashspeech.checkpoint import load_checkpoint, save_checkpoint
from flashspeech.codecs import Codec
from flashspeech.config import FlashSpeechConfig
from flashspeech.model import FlashSpeechModel, durations_from_log, f0_from_log, length_regulate
from flashspeech.modules.common import lengths_to_mask
from flashspeech.sampling import SamplingPlan, plan_sampling, sample
from flashspeech.text.phonemes import Frontend, PhonemeVocab
from flashspeech.timing import StageTimer


@dataclass
class SynthesisOutput:
    waveforms: list[Tensor]  # 1-D float32 on the CPU, at sample_rate
    sample_rate: int
    phonemes: list[list[str]]  # <s> ... </s>
    durations: list[Tensor]  # frames per phoneme (long)
    f0: list[Tensor]  # Hz per frame (0 = unvoiced)
    latents: list[Tensor]  # (latent_dim, frames) sampled latents in the codec's normalised space
    plan: SamplingPlan  # how the latents were sampled
    seeds: list[int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> list[float]:
        return [len(w) / self.sample_rate for w in self.waveforms]


def item_seeds(seed: int | Sequence[int], n: int) -> list[int]:
    if isinstance(seed, int):
        return [seed + i for i in range(n)]
    seeds = [int(s) for s in seed]
    if len(seeds) != n:
        raise ValueError(f"got {len(seeds)} seeds for {n} items")
    return seeds


class BatchNoise:
    """Standard normal noise for a padded batch, each item from its own CPU generator."""

    def __init__(self, seeds: Sequence[int], device: torch.device, dtype: torch.dtype):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.device, self.dtype = device, dtype

    def __call__(self, channels: int, lengths: Sequence[int]) -> Tensor:
        out = torch.zeros(len(lengths), channels, max(max(lengths), 1))
        for i, (gen, length) in enumerate(zip(self.generators, lengths, strict=True)):
            out[i, :, :length] = torch.randn(channels, length, generator=gen)
        return out.to(self.device, self.dtype)


def fit_durations(durations: Tensor, target: int) -> Tensor:
    """Scale integer phone durations (P,) to sum exactly to `target` frames (largest remainder)."""
    total = int(durations.sum())
    if target < 1:
        raise ValueError(f"target length must be >= 1 frame, got {target}")
    weights = durations.double() if total > 0 else torch.ones_like(durations, dtype=torch.double)
    exact = weights / weights.sum() * target
    out = torch.floor(exact).long()
    remainder = target - int(out.sum())
    if remainder:
        order = torch.argsort(exact - out.double(), descending=True, stable=True)
        out[order[:remainder]] += 1
    return out


def _check_durations(durations: Sequence[Tensor], n_phones: Sequence[int]) -> list[Tensor]:
    if len(durations) != len(n_phones):
        raise ValueError(f"got {len(durations)} duration sequences for {len(n_phones)} items")
    out = []
    for i, (d, n) in enumerate(zip(durations, n_phones, strict=True)):
        d = torch.as_tensor(d).long().cpu()
        if d.shape != (n,) or (d < 0).any():
            raise ValueError(f"item {i}: durations must be {n} non-negative frame counts (<s> ... </s>), got {d}")
        out.append(d)
    return out


def _check_latents(latents: Sequence[Tensor], n_frames: Sequence[int], dim: int) -> Tensor:
    if len(latents) != len(n_frames):
        raise ValueError(f"got {len(latents)} start latents for {len(n_frames)} items")
    for i, (z, n) in enumerate(zip(latents, n_frames, strict=True)):
        if tuple(z.shape) != (dim, n):
            raise ValueError(f"item {i}: start latent must have shape ({dim}, {n}), got {tuple(z.shape)}")
    return _pad_stack([z.float().cpu() for z in latents])[0]


def _pad_stack(seqs: Sequence[Tensor], value: float = 0.0) -> tuple[Tensor, Tensor]:
    """Pad 1-D or (C, T) tensors along the last axis; returns batch and (B, T) mask."""
    lengths = torch.tensor([s.shape[-1] for s in seqs])
    out = seqs[0].new_full((len(seqs), *seqs[0].shape[:-1], int(lengths.max())), value)
    for i, s in enumerate(seqs):
        out[i, ..., : s.shape[-1]] = s
    return out, lengths_to_mask(lengths)


class FlashSpeech:
    """A FlashSpeech generator with its codec and phoneme vocabulary, ready to synthesize."""

    def __init__(self, model: FlashSpeechModel, codec: Codec, vocab: PhonemeVocab | None = None):
        self.model = model.eval()
        self.codec = codec.eval()
        self.vocab = vocab or PhonemeVocab.load()
        self.frontend = Frontend(self.vocab)
        if model.cfg.vocab_size != len(self.vocab):
            raise ValueError(f"model vocab_size {model.cfg.vocab_size} != vocabulary size {len(self.vocab)}")
        if model.cfg.latent_dim != codec.latent_dim:
            raise ValueError(f"model latent_dim {model.cfg.latent_dim} != codec latent_dim {codec.latent_dim}")

    @property
    def config(self) -> FlashSpeechConfig:
        return self.model.cfg

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    def to(self, device: str | torch.device) -> FlashSpeech:
        self.model.to(device)
        self.codec.to(device)
        return self

    @classmethod
    def from_config(cls, cfg: FlashSpeechConfig, codec: Codec, seed: int = 0) -> FlashSpeech:
        """Random weights (deterministic given `seed`)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = FlashSpeechModel(cfg)
        return cls(model, codec)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> FlashSpeech:
        """Load a checkpoint directory written by `save_pretrained` (strict; sha256-checked)."""
        model, codec, vocab = load_checkpoint(path, device=device)
        return cls(model, codec, vocab)

    def save_pretrained(self, path: str | Path, **metadata: object) -> Path:
        return save_checkpoint(self.model, self.codec, self.vocab, path, **metadata)

    def plan(
        self,
        steps: int = 2,
        sampler: str | None = None,
        sigmas: Sequence[float] | None = None,
        sigma_min: float | None = None,
    ) -> SamplingPlan:
        """How this model is sampled at `steps` (or explicit `sigmas`, which override steps) with `sampler`,
        within the config's sigma range (`sigma_min` overrides the grid's lowest sigma): see
        `flashspeech.sampling.plan_sampling`."""
        c = self.config.consistency
        low = c.sigma_min if sigma_min is None else sigma_min
        return plan_sampling(self.config.objective, steps, sampler, sigmas, low, c.sigma_max, c.rho)

    # -- the pipeline ----------------------------------------------------------------------------------
    def prompt_latents(self, prompts: Sequence[Tensor | np.ndarray]) -> tuple[Tensor, Tensor]:
        """Encode each prompt waveform alone (so batching cannot change it), normalise, pad."""
        latents = []
        for i, wav in enumerate(prompts):
            wav = torch.as_tensor(np.asarray(wav, dtype=np.float32) if not torch.is_tensor(wav) else wav)
            if wav.dim() != 1 or wav.numel() == 0:
                raise ValueError(f"prompt {i}: expected a non-empty 1-D waveform, got shape {tuple(wav.shape)}")
            z = self.codec.encode(wav.float().to(self.device)[None])[0]
            latents.append(self.codec.normalize(z))
        return _pad_stack(latents)

    @torch.inference_mode()
    def synthesize(
        self,
        texts: Sequence[str],
        prompts: Sequence[Tensor | np.ndarray],
        *,
        steps: int | None = None,
        sigmas: Sequence[float] | None = None,
        sampler: str | None = None,
        plan: SamplingPlan | None = None,
        seed: int | Sequence[int] = 0,
        alpha: float | None = None,
        alpha_duration: float | None = None,
        alpha_pitch: float | None = None,
        total_frames: Sequence[int] | None = None,
        durations: Sequence[Tensor] | None = None,
        start_latents: Sequence[Tensor] | None = None,
        timer: StageTimer | None = None,
    ) -> SynthesisOutput:
        """Say each text in the voice of its prompt (a 1-D waveform at `self.sample_rate`).

        steps: 1 (sigma 80), 2 (80, 2 as in the paper; the default) or N (the official code's Karras grid);
        `sigmas` gives an explicit schedule instead; `plan` (from `self.plan`) gives all of steps, sampler
        and sigmas at once and excludes them. alpha scales the prosody refinement residual for both pitch
        and duration (default from the config, 0.2); alpha_duration / alpha_pitch override one of them.
        total_frames forces each item's length (durations rescaled), for equal-length speed comparisons.
        durations forces each item's frames per phoneme (<s> and </s> included), skipping the duration
        predictor; start_latents (normalised, (latent_dim, frames) each) make sampling start from those
        latents noised to the first sigma instead of from pure noise (see `convert_voice`).

        A diffusion model (config objective "diffusion") is sampled with an ODE `sampler` ("heun" by default,
        or "euler") over `steps` steps of the Karras grid down to 0, or over explicit `sigmas` (descending,
        without the final 0); it takes no start_latents. A consistency model takes no sampler but
        "consistency". The output records the plan it was sampled with.
        """
        if len(texts) != len(prompts):
            raise ValueError(f"{len(texts)} texts but {len(prompts)} prompts")
        if not texts:
            raise ValueError("nothing to synthesize")
        timer = timer or StageTimer()
        device, cfg = self.device, self.model.cfg
        if plan is None:
            plan = self.plan(2 if steps is None else steps, sampler, sigmas)
        elif any(arg is not None for arg in (steps, sampler, sigmas)):
            raise ValueError("give either a plan or steps / sampler / sigmas, not both")
        elif plan.family != cfg.objective:
            raise ValueError(f"a {plan.family} sampling plan cannot sample a {cfg.objective} model")
        if plan.family != "consistency" and start_latents is not None:
            raise ValueError("start_latents are not supported for a diffusion model (consistency models only)")
        base_alpha = cfg.prosody.alpha if alpha is None else alpha
        a_dur = base_alpha if alpha_duration is None else alpha_duration
        a_pitch = base_alpha if alpha_pitch is None else alpha_pitch
        seeds = item_seeds(seed, len(texts))
        dtype = next(self.model.parameters()).dtype
        noise = BatchNoise(seeds, device, dtype)
        model = self.model
        n_calls = {name: len(values) for name, values in timer.records.items()}

        with timer.stage("frontend", device):
            phoneme_ids = [torch.tensor(self.frontend.encode(t), dtype=torch.long) for t in texts]
            phonemes, phone_mask = _pad_stack(phoneme_ids)
            phonemes, phone_mask = phonemes.to(device), phone_mask.to(device)
            prompt, prompt_mask = self.prompt_latents(prompts)
            prompt, prompt_mask = prompt.to(dtype), prompt_mask.to(device)

        with timer.stage("prosody", device):
            spk, style, tokens = model.encode_prompt(prompt, prompt_mask)
            hidden = model.encode_phonemes(phonemes, phone_mask, style)
            n_phones = [len(p) for p in phoneme_ids]
            if durations is None:
                log_dur, _ = model.prosody(
                    "duration", hidden, phone_mask, spk, prompt_mask, a_dur, lambda: noise(1, n_phones)
                )
                predicted = durations_from_log(log_dur, phone_mask).cpu()
                per_item = [predicted[i, :n] for i, n in enumerate(n_phones)]
            else:
                per_item = _check_durations(durations, n_phones)
            for i, d in enumerate(per_item):
                target = None if total_frames is None else int(total_frames[i])
                if target is not None or int(d.sum()) == 0:
                    per_item[i] = fit_durations(d, target or 1)
            durations = _pad_stack(per_item)[0].to(device)
            frames, frame_mask = length_regulate(hidden, durations, phone_mask)
            n_frames = [int(d.sum()) for d in per_item]
            log_f0, _ = model.prosody(
                "pitch", frames, frame_mask, spk, prompt_mask, a_pitch, lambda: noise(1, n_frames)
            )
            f0 = f0_from_log(log_f0, frame_mask)
            cond = model.frame_condition(frames, f0)

        with timer.stage("sampling", device):
            batch = len(texts)
            anchor = model.latent_anchor(cond, frame_mask)  # once per sample, not once per step

            def denoise(x: Tensor, sigma: float) -> Tensor:
                s = torch.full((batch,), sigma, device=device, dtype=dtype)
                return model.denoise(x, s, cond, frame_mask, tokens, anchor)

            start = None
            if start_latents is not None:
                start = _check_latents(start_latents, n_frames, cfg.latent_dim).to(device, dtype)

            def latent_noise() -> Tensor:
                return noise(cfg.latent_dim, n_frames)

            latent = sample(plan, denoise, latent_noise, start=start)

        with timer.stage("decoder", device):
            waveforms = []
            for i, n in enumerate(n_frames):
                z = self.codec.denormalize(latent[i : i + 1, :, :n].float())
                waveforms.append(self.codec.decode(z)[0].float().cpu())

        new = {k: v[-1] for k, v in timer.records.items() if len(v) > n_calls.get(k, 0)}
        return SynthesisOutput(
            waveforms=waveforms,
            sample_rate=self.codec.sample_rate,
            phonemes=[self.vocab.decode(p.tolist()) for p in phoneme_ids],
            durations=per_item,
            f0=[f0[i, :n].float().cpu() for i, n in enumerate(n_frames)],
            latents=[latent[i, :, :n].float().cpu() for i, n in enumerate(n_frames)],
            plan=plan,
            seeds=seeds,
            timings=new,
        )
