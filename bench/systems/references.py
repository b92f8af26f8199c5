"""Reference systems: the recorded targets (topline), their codec resynthesis (the codec's ceiling) and, for voice
conversion, the source passed through unconverted (the floor: where a conversion starts from)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bench.systems.base import Generated, System, SystemConfig, error_text, register_system
from flashspeech.foundation.audio import read_audio
from suites.item import TASKS, VC, EvalItem


@register_system
class GroundTruthSystem(System):
    """The items' recorded targets: the topline."""

    kind = "ground_truth"
    deterministic = True
    threads_affect_audio = False  # reads the recording
    tasks = frozenset(TASKS)  # a vc item's target is the target speaker's own reading of the source text

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        return [cls(config.name or cls.kind)]

    def __init__(self, name: str = "ground_truth", sample_rate: int = 16_000):
        self.name, self.sample_rate = name, sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sample_rate": self.sample_rate}

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        out = []
        for item in items:
            if item.target_audio is None:
                out.append(Generated(None, self.sample_rate, "no ground-truth target audio for this item"))
                continue
            try:
                out.append(Generated(read_audio(item.target_audio, self.sample_rate).samples, self.sample_rate))
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, error_text(exc)))
        return out


@register_system
class CodecResynthesisSystem(System):
    """Each target through the codec (encode, decode): the codec's ceiling, and the SIM-r reference."""

    kind = "codec_resynthesis"
    deterministic = True
    tasks = frozenset(TASKS)

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        from flashspeech.codecs import MelCodec

        return [cls(MelCodec().to(device), config.name or cls.kind)]

    def __init__(self, codec: Any, name: str = "codec_resynthesis"):
        self.codec, self.name, self.sample_rate = codec, name, codec.sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "codec": self.codec.describe()}

    @torch.inference_mode()
    def _roundtrip(self, audio: np.ndarray) -> np.ndarray:
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.codec.device)[None]
        return self.codec.decode(self.codec.encode(wav))[0].float().cpu().numpy()[: len(audio)]

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        out = []
        for item in items:
            if item.target_audio is None:
                out.append(Generated(None, self.sample_rate, "no ground-truth target audio to resynthesize"))
                continue
            try:
                start = time.perf_counter()
                audio = self._roundtrip(read_audio(item.target_audio, self.sample_rate).samples)
                out.append(Generated(audio, self.sample_rate, timings={"codec": time.perf_counter() - start}))
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, error_text(exc)))
        return out

    def reconstruct(self, prompt: np.ndarray) -> np.ndarray | None:
        return self._roundtrip(prompt)


@register_system
class SourcePassthroughSystem(System):
    """A voice-conversion item's source utterance, unconverted: the floor of a conversion (its similarity to the
    target voice is where a conversion starts from; to the source, about 1; its WER, the source's own)."""

    kind = "source_passthrough"
    deterministic = True
    threads_affect_audio = False  # reads the recording
    reads_target = False
    tasks = frozenset({VC})

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        return [cls(config.name or cls.kind)]

    def __init__(self, name: str = "source_passthrough", sample_rate: int = 16_000):
        self.name, self.sample_rate = name, sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sample_rate": self.sample_rate}

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        out = []
        for item in items:
            try:
                source = item.load_source(self.sample_rate)
                if source is None:
                    raise ValueError(f"item {item.id!r} has no source audio (not a vc item)")
                out.append(Generated(source, self.sample_rate))
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, error_text(exc)))
        return out
