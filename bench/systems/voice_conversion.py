"""The bundled FlashSpeech as a voice converter, one system per configured noise level (`flashspeech.editing`).

The source latent is diffused to the noise level sigma and re-sampled in one consistency step, conditioned on the
target speaker's reference clip (the item's prompt), with the source's phonemes (its text) and durations (the
duration predictor run on the source, rescaled to its frame count) and the pitch predicted for the target voice.
The paper does not state its sigma: lower keeps more of the source (its voice too), higher more of the target
(and less of the content), so a config sweeps several levels and the report plots the trade-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.systems.base import Generated, System, SystemConfig, SystemConfigError, error_text, register_system
from bench.systems.flashspeech import load_model, model_description, reconstruct_prompt, sampling_record
from flashspeech.timing import StageTimer
from suites.item import VC, EvalItem

DURATIONS = "the duration predictor on the source as its own prompt, rescaled to the source's frame count"


@dataclass
class FlashSpeechVCOptions:
    """A consistency checkpoint (as a flashspeech system's), the noise levels to convert at (one system each) and
    the prosody refinement scale (default: the checkpoint's)."""

    noise_levels: list[float] = field(default_factory=list)
    checkpoint: str = "random:tiny"
    alpha: float | None = None
    decoder: str | None = None  # the codec's decoder, as for a flashspeech system (default: the checkpoint's)

    def validate(self, where: str) -> None:
        levels = self.noise_levels
        if not levels or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 for v in levels):
            raise SystemConfigError(
                f"{where}.noise_levels: flashspeech_vc needs a list of noise levels (sigma) > 0, got {levels!r}"
            )
        if len(set(levels)) != len(levels):
            raise SystemConfigError(f"{where}.noise_levels: repeated levels in {levels!r}")


@register_system
class FlashSpeechVCSystem(System):
    """FlashSpeech voice conversion from one noise level (`flashspeech.editing.convert_voice`)."""

    kind = "flashspeech_vc"
    Options = FlashSpeechVCOptions
    reads_target = False  # converts the source, prompted by the target speaker's reference clip
    tasks = frozenset({VC})

    def __init__(self, tts: Any, noise_level: float, series: str, checkpoint: str, sha: str, alpha: float | None):
        self.tts, self.noise_level, self.series = tts, float(noise_level), series
        self.name = f"{series}@sigma{self.noise_level:g}"
        self.checkpoint, self.checkpoint_sha, self.alpha = checkpoint, sha, alpha
        self.plan = tts.plan(sigmas=[self.noise_level])  # checks the level against the model's sigma range
        self.sample_rate = tts.sample_rate

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        """One system per noise level, sharing one loaded model; default names flashspeech-vc@sigma<level>."""
        opts: FlashSpeechVCOptions = config.options
        tts, sha = load_model(opts.checkpoint, device, opts.decoder, f"systems.{config.name or cls.kind}")
        if tts.config.objective != "consistency":
            raise SystemConfigError(
                f"systems.{config.name or cls.kind}.checkpoint: {opts.checkpoint} is a {tts.config.objective} "
                "model; voice conversion re-samples from a noised latent in one step (a consistency model)"
            )
        series = config.name or "flashspeech-vc"
        try:
            return [cls(tts, level, series, opts.checkpoint, sha, opts.alpha) for level in opts.noise_levels]
        except ValueError as exc:
            raise SystemConfigError(f"systems.{series}.noise_levels: {exc}") from exc

    def sampling(self) -> dict[str, Any]:
        return {**sampling_record(self.series, self.plan), "noise_level": self.noise_level}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "noise_level": self.noise_level,
            "sampling": self.plan.describe(),
            "durations": DURATIONS,
            **model_description(self.tts, self.checkpoint, self.checkpoint_sha),
            "alpha": self.alpha if self.alpha is not None else self.tts.config.prosody.alpha,
            "batch_size": self.batch_size,
        }

    def _convert(self, item: EvalItem, seed: int, timer: StageTimer) -> Any:
        from flashspeech.editing import convert_voice

        source = item.load_source(self.sample_rate)
        if source is None:
            raise ValueError(f"item {item.id!r} has no source audio (not a vc item)")
        prompt = item.load_prompt(self.sample_rate)
        return convert_voice(
            self.tts, source, item.text, prompt, sigmas=[self.noise_level], seed=seed, alpha=self.alpha, timer=timer
        )

    def warmup(self, item: EvalItem) -> None:
        self._convert(item, 0, StageTimer())

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        """Item by item (a conversion is one source): a failing item is an error, the others go on."""
        out = []
        for item, seed in zip(items, seeds, strict=True):
            timer = StageTimer(sync=True)
            try:
                result = self._convert(item, seed, timer)
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, error_text(exc)))
                continue
            meta = {
                "durations": result.durations[0].tolist(),
                "phonemes": result.phonemes[0],
                "sigmas": list(result.plan.sigmas),
                "batch_size": 1,
            }
            out.append(Generated(result.waveforms[0].numpy(), result.sample_rate, timings=timer.last(), meta=meta))
        return out

    def reconstruct(self, prompt: np.ndarray) -> np.ndarray | None:
        return reconstruct_prompt(self.tts, prompt)
