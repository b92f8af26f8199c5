"""The ASR backends the "wer" suite transcribes with, by name: `ASR_BACKENDS.build(name, device=..., **options)`.

- ``whisper``: openai-whisper, offline tiny.en by default; options `model`, `download_root`, `beam_size`
  (`suites.wer.whisper_backend`);
- ``hubert``: HuBERT-large CTC from a local directory, greedy; option `model` (`suites.wer.hubert_backend`).

A backend class declares its options as a dataclass (`Options`); the registry checks them (known keys, typed
values) before building it (`flashspeech.foundation.registry`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from flashspeech.foundation.registry import Registry


@runtime_checkable
class AsrBackend(Protocol):
    """What the suite needs from an ASR model: batched transcription of mono float32 clips."""

    sample_rate: int

    def load(self) -> None: ...

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


ASR_BACKENDS = Registry("WER backend", "name")  # ASR backend classes by `name`; both modules register on import
