"""The bundled FlashSpeech (or its diffusion baseline) at one sampling plan per configured step count."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.systems.base import (
    Generated,
    System,
    SystemConfig,
    SystemConfigError,
    error_text,
    register_system,
)
from flashspeech.foundation.hashing import fingerprint
from flashspeech.timing import StageTimer, share_batch_timings
from suites.item import EvalItem

RANDOM = "random:"


@dataclass
class FlashSpeechOptions:
    """A checkpoint directory, `pretrained:<name>` (shipped) or `random:<preset>` (untrained weights, labelled
    so); one system per step count; the prosody refinement scale; a diffusion checkpoint's ODE sampler."""

    steps: list[int] = field(default_factory=list)
    checkpoint: str = "random:tiny"
    alpha: float | None = None  # default: the checkpoint's config (0.2)
    alpha_duration: float | None = None  # override alpha for the duration refinement only (paper Table 5)
    alpha_pitch: float | None = None  # override alpha for the pitch refinement only (paper Table 4)
    sampler: str | None = None  # a diffusion checkpoint's ODE sampler (euler, heun; default heun)
    # The grid's lowest sigma before the final 0 (default: the checkpoint's, 0.002). For a diffusion model the
    # last step jumps from it to D(x, sigma_min): a larger value skips the smallest noise levels.
    sigma_min: float | None = None
    # The codec's decoder: "griffin-lim" or a neural decoder's directory (or `pretrained:<name>`); default: the
    # checkpoint's codec's own (Griffin-Lim for the shipped ones)
    decoder: str | None = None

    def validate(self, where: str) -> None:
        if not self.steps or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in self.steps):
            raise SystemConfigError(
                f"{where}.steps: a flashspeech system needs a list of step counts >= 1, got {self.steps!r}"
            )
        if self.sigma_min is not None and (isinstance(self.sigma_min, bool) or not self.sigma_min > 0):
            raise SystemConfigError(f"{where}.sigma_min: expected a number > 0, got {self.sigma_min!r}")


def load_model(checkpoint: str, device: str, decoder: str | None = None, where: str = "") -> tuple[Any, str]:
    """The `FlashSpeech` of a checkpoint option (a directory, `pretrained:<name>`, `random:<preset>`) on `device`,
    and its weights' identity (sha256; for untrained weights, of their config); `decoder` replaces its codec's
    decoder (a decoder option; an error names the option at `where`)."""
    from flashspeech.codecs import MelCodec
    from flashspeech.config import preset
    from flashspeech.synthesis import FlashSpeech

    if checkpoint.startswith(RANDOM):
        codec = MelCodec()
        tts = FlashSpeech.from_config(preset(checkpoint[len(RANDOM) :], latent_dim=codec.latent_dim), codec)
        sha = fingerprint(tts.config.to_dict())  # the identity of untrained weights: their config
    else:
        from flashspeech.checkpoint import read_description

        tts = FlashSpeech.from_pretrained(checkpoint)
        sha = read_description(checkpoint)["weights_sha256"]
    if decoder is not None:
        tts.codec = with_decoder(tts.codec, decoder, where)
    return tts.to(device), sha


def with_decoder(codec: Any, decoder: str, where: str) -> Any:
    """`codec` with the decoder a system's `decoder` option names; SystemConfigError naming the option."""
    from flashspeech.codecs.vocos import VocoderError

    try:
        return codec.with_decoder(decoder).eval()
    except (VocoderError, ValueError) as exc:
        raise SystemConfigError(f"{where}.decoder: {exc}" if where else f"decoder: {exc}") from exc


def model_description(tts: Any, checkpoint: str, sha: str) -> dict[str, Any]:
    """What a FlashSpeech system's `describe()` says of its model: the checkpoint and its identity, whether it is
    trained, the preset, the codec and the device."""
    return {
        "checkpoint": checkpoint,
        "checkpoint_sha256": sha,
        "trained": not checkpoint.startswith(RANDOM),
        "preset": tts.config.name,
        "codec": tts.codec.describe(),
        "device": str(tts.device),
    }


def sampling_record(series: str, plan: Any) -> dict[str, Any]:
    """What the results record of a FlashSpeech system's sampling (`System.sampling`): its series and plan."""
    return {"series": series, "family": plan.family, "sampler": plan.sampler, "steps": plan.steps, "nfe": plan.nfe}


def default_series(plan: Any) -> str:
    """A FlashSpeech system's default name (before @steps): flashspeech, or diffusion-<sampler> for the baseline."""
    return "flashspeech" if plan.family == "consistency" else f"diffusion-{plan.sampler}"


@register_system
class FlashSpeechSystem(System):
    """One FlashSpeech model sampled with one `SamplingPlan` (family, sampler, sigmas, NFE), decided once here."""

    kind = "flashspeech"
    Options = FlashSpeechOptions
    reads_target = False  # synthesises from the text and the prompt only

    def __init__(
        self, tts: Any, plan: Any, series: str, checkpoint: str, checkpoint_sha: str, opts: FlashSpeechOptions
    ):
        self.tts, self.plan = tts, plan
        self.series, self.name = series, f"{series}@{plan.steps}"  # series: the config entry the steps curve joins
        self.checkpoint, self.checkpoint_sha = checkpoint, checkpoint_sha
        self.alpha, self.alpha_duration, self.alpha_pitch = opts.alpha, opts.alpha_duration, opts.alpha_pitch
        self.sample_rate = tts.sample_rate

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        """One system per step count, sharing one loaded model; default names flashspeech@N, diffusion-heun@N."""
        opts: FlashSpeechOptions = config.options
        tts, sha = load_model(opts.checkpoint, device, opts.decoder, f"systems.{config.name or cls.kind}")
        plans = [tts.plan(steps=steps, sampler=opts.sampler, sigma_min=opts.sigma_min) for steps in opts.steps]
        base = config.name or default_series(plans[0])
        return [cls(tts, plan, base, opts.checkpoint, sha, opts) for plan in plans]

    def sampling(self) -> dict[str, Any]:
        return sampling_record(self.series, self.plan)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "sampling": self.plan.describe(),
            **model_description(self.tts, self.checkpoint, self.checkpoint_sha),
            **self._alphas(),
            "batch_size": self.batch_size,
        }

    def _alphas(self) -> dict[str, float]:
        """The refinement scales this system samples with: alpha, and per stream where they differ."""
        alpha = self.alpha if self.alpha is not None else self.tts.config.prosody.alpha
        out = {"alpha": alpha}
        for key in ("alpha_duration", "alpha_pitch"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def _synthesize(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> Any:
        prompts = [i.load_prompt(self.sample_rate) for i in items]
        return self.tts.synthesize(
            [i.text for i in items],
            prompts,
            plan=self.plan,
            seed=list(seeds),
            alpha=self.alpha,
            alpha_duration=self.alpha_duration,
            alpha_pitch=self.alpha_pitch,
            timer=StageTimer(sync=True),
        )

    def warmup(self, item: EvalItem) -> None:
        self._synthesize([item], [0])

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        try:
            out = self._synthesize(items, seeds)
        except Exception as exc:
            if len(items) == 1:
                return [Generated(None, self.sample_rate, error_text(exc))]
            return [g for i, s in zip(items, seeds, strict=True) for g in self.generate([i], [s])]
        shares = share_batch_timings(out.timings, out.seconds)
        return [
            Generated(
                out.waveforms[k].numpy(),
                out.sample_rate,
                timings=shares[k],
                meta={
                    "durations": out.durations[k].tolist(),
                    "phonemes": out.phonemes[k],
                    "sigmas": list(out.plan.sigmas),
                    "batch_size": len(items),
                },
            )
            for k in range(len(items))
        ]

    def reconstruct(self, prompt: np.ndarray) -> np.ndarray | None:
        return reconstruct_prompt(self.tts, prompt)


@torch.inference_mode()
def reconstruct_prompt(tts: Any, prompt: np.ndarray) -> np.ndarray:
    """A prompt clip through the model's codec (encode, decode): the SIM-r reference."""
    codec = tts.codec
    wav = torch.from_numpy(np.ascontiguousarray(prompt, dtype=np.float32)).to(tts.device)[None]
    return codec.decode(codec.encode(wav))[0].float().cpu().numpy()
