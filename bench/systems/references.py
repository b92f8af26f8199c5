"""Reference systems: the recorded targets (topline), their codec resynthesis (the codec's ceiling) and, for voice
conversion, the source passed through unconverted (the floor: where a conversion starts from)."""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from bench.systems.base import Generated, NoOptions, System, SystemConfig, error_text, register_system
from flashspeech.codecs.mel import GRIFFIN_LIM
from flashspeech.foundation.audio import read_audio
from suites.item import TASKS, VC, EvalItem


class RecordingSystem(System):
    """A reference that answers with a recording its item names (the same for every seed); `missing` is the error of
    an item without one."""

    deterministic = True
    threads_affect_audio = False  # reads the recording
    missing: ClassVar[str]

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        return [cls(config.name)]

    def __init__(self, name: str | None = None, sample_rate: int = 16_000):
        self.name, self.sample_rate = name or self.kind, sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sample_rate": self.sample_rate}

    @abstractmethod
    def recording(self, item: EvalItem) -> np.ndarray | None:
        """The item's recording at `sample_rate`, None when it has none."""

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        out = []
        for item in items:
            try:
                audio = self.recording(item)
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, error_text(exc)))
                continue
            out.append(
                Generated(None, self.sample_rate, self.missing) if audio is None else Generated(audio, self.sample_rate)
            )
        return out


@register_system
class GroundTruthSystem(RecordingSystem):
    """The items' recorded targets: the topline."""

    kind = "ground_truth"
    tasks = frozenset(TASKS)  # a vc item's target is the target speaker's own reading of the source text
    missing = "no ground-truth target audio for this item"

    def recording(self, item: EvalItem) -> np.ndarray | None:
        return None if item.target_audio is None else read_audio(item.target_audio, self.sample_rate).samples


@dataclass
class CodecResynthesisOptions(NoOptions):
    """The built-in MelCodec's decoder: "griffin-lim" (the default) or a neural decoder's directory (or
    `pretrained:<name>`)."""

    decoder: str = GRIFFIN_LIM


@register_system
class CodecResynthesisSystem(System):
    """Each target through the codec (encode, decode): the codec's ceiling, and the SIM-r reference."""

    kind = "codec_resynthesis"
    Options = CodecResynthesisOptions
    deterministic = True
    tasks = frozenset(TASKS)

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        from bench.systems.flashspeech import with_decoder
        from flashspeech.codecs import MelCodec

        name = config.name or cls.kind
        codec = with_decoder(MelCodec(), config.options.decoder, f"systems.{name}")
        return [cls(codec.to(device), name)]

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
class SourcePassthroughSystem(RecordingSystem):
    """A voice-conversion item's source utterance, unconverted: the floor of a conversion (its similarity to the
    target voice is where a conversion starts from; to the source, about 1; its WER, the source's own)."""

    kind = "source_passthrough"
    reads_target = False
    tasks = frozenset({VC})
    missing = "no source audio: not a vc item"

    def recording(self, item: EvalItem) -> np.ndarray | None:
        return item.load_source(self.sample_rate)
