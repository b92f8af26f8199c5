"""The item a metric scores: one synthesis request of a test set (text, prompt clip, speaker, target).

Test sets (`bench.testsets`) build these from manifests and protocols; systems generate from them; suites
read them through each `Sample`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvalItem:
    """One synthesis request of a test set: say `text` in the voice of the prompt clip."""

    id: str
    text: str
    prompt_audio: str
    speaker: str
    prompt_text: str | None = None
    target_audio: str | None = None  # ground-truth recording of `text`, when the protocol has one
    prompt_offset_s: float = 0.0
    prompt_duration_s: float | None = None  # None: to the end of prompt_audio
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        def rel(p: str | None) -> str | None:
            if p is None or relative_to is None:
                return p
            try:
                return os.path.relpath(p, relative_to)
            except ValueError:  # another drive on Windows
                return p

        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "speaker": self.speaker,
            "prompt_audio": rel(self.prompt_audio),
            "prompt_text": self.prompt_text,
        }
        if self.prompt_offset_s:
            out["prompt_offset_s"] = self.prompt_offset_s
        if self.prompt_duration_s is not None:
            out["prompt_duration_s"] = self.prompt_duration_s
        out["target_audio"] = rel(self.target_audio)
        if self.meta:
            out["meta"] = self.meta
        return out
