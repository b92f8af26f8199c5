"""The item a metric scores: one synthesis request of a test set (text, prompt clip, speaker, target).

Test sets (`bench.testsets`) build these from manifests and protocols; systems generate from them; suites
read them through each `Sample`. The item owns its audio (`load_prompt`, `load_target`: the clip at a sample
rate, as lhotse's `Recording.load_audio`) and its JSON form, one manifest line (`to_json`, `from_json`)::

    {"id": "1089-134686-0000", "text": "He hoped there would be stew.", "speaker": "1089",
     "prompt_audio": "1089/134686/1089-134686-0031.flac", "prompt_text": null,
     "prompt_offset_s": 1.25, "prompt_duration_s": 3.0,
     "target_audio": "1089/134686/1089-134686-0000.flac", "meta": {"target_duration_s": 6.2}}

Relative paths are relative to a base directory (the manifest file's). `prompt_text` is null when unknown (e.g.
a 3 s cut from a longer utterance). `prompt_offset_s` / `prompt_duration_s` cut the prompt clip out of
`prompt_audio` (default: the whole file).

An item has a task: `tts` (the default, written by leaving `task` out) or `vc`, voice conversion: say what
`source_audio` says (its text is `text`), spoken by `source_speaker`, in the voice of `speaker`, whose reference clip
is `prompt_audio`; `target_audio` is then that speaker's own reading of `text` (the topline), when it exists::

    {"id": "vc-flite-rms-to-flite-awb-s0060", "task": "vc", "text": "...", "speaker": "flite-awb",
     "prompt_audio": "flite-awb/flite-awb-s0114.flac", "prompt_text": "...",
     "source_audio": "flite-rms/flite-rms-s0060.flac", "source_speaker": "flite-rms",
     "target_audio": "flite-awb/flite-awb-s0060.flac"}
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from flashspeech.foundation.audio import AudioError, audio_info, read_audio

REQUIRED_FIELDS = ("id", "text", "prompt_audio", "speaker")
OPTIONAL_FIELDS = ("prompt_text", "target_audio", "prompt_offset_s", "prompt_duration_s", "meta")
VC_FIELDS = ("task", "source_audio", "source_speaker")  # a voice-conversion item's own (source_*: required)
TTS, VC = "tts", "vc"
TASKS = (TTS, VC)  # what an item asks of a system: synthesis from text, or conversion of a source utterance


@dataclass(frozen=True)
class ItemProblem:
    """What is wrong with one item's JSON: its id (None when unreadable), the field, the message."""

    item_id: str | None
    field: str
    message: str


@lru_cache(maxsize=512)
def _clip(path: str, sample_rate: int, offset_s: float, duration_s: float | None) -> np.ndarray:
    """A clip read once per (file, rate, cut) across items and samples (many share a prompt)."""
    return read_audio(path, sample_rate, offset_s=offset_s, duration_s=duration_s).samples


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
    task: str = TTS  # `vc`: convert `source_audio` (saying `text`) to the voice of `speaker`
    source_audio: str | None = None  # a vc item's source utterance
    source_speaker: str | None = None  # who speaks it (never `speaker`)

    def load_prompt(self, sample_rate: int) -> np.ndarray:
        """The prompt clip (offset and duration applied), mono float32 at `sample_rate`: a copy of the clip
        read once per process, so a caller may change it."""
        return _clip(self.prompt_audio, sample_rate, self.prompt_offset_s, self.prompt_duration_s).copy()

    def load_target(self, sample_rate: int) -> np.ndarray | None:
        """The ground-truth target recording at `sample_rate` (a copy, as `load_prompt`); None when it has none."""
        if self.target_audio is None:
            return None
        return _clip(self.target_audio, sample_rate, 0.0, None).copy()

    def load_source(self, sample_rate: int) -> np.ndarray | None:
        """A voice-conversion item's source utterance at `sample_rate` (a copy, as `load_prompt`); None for TTS."""
        if self.source_audio is None:
            return None
        return _clip(self.source_audio, sample_rate, 0.0, None).copy()

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        def rel(p: str | None) -> str | None:
            if p is None or relative_to is None:
                return p
            try:
                return os.path.relpath(p, relative_to)
            except ValueError:  # another drive on Windows
                return p

        out: dict[str, Any] = {"id": self.id}
        if self.task != TTS:  # a TTS line stays as it always was
            out["task"] = self.task
        out.update(text=self.text, speaker=self.speaker, prompt_audio=rel(self.prompt_audio))
        out["prompt_text"] = self.prompt_text
        if self.source_audio is not None or self.source_speaker is not None:
            out.update(source_audio=rel(self.source_audio), source_speaker=self.source_speaker)
        if self.prompt_offset_s:
            out["prompt_offset_s"] = self.prompt_offset_s
        if self.prompt_duration_s is not None:
            out["prompt_duration_s"] = self.prompt_duration_s
        out["target_audio"] = rel(self.target_audio)
        if self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_json(
        cls, obj: Any, base_dir: Path, *, check_audio: bool = True
    ) -> tuple[EvalItem | None, list[ItemProblem]]:
        """The item of one decoded manifest line (paths relative to `base_dir`), and every problem found on the
        way: (item, []) when it is valid, (None, problems) when not. `check_audio`: open the audio files' headers
        (they exist, are audio, and the prompt cut lies inside the prompt file)."""
        if not isinstance(obj, dict):
            return None, [ItemProblem(None, "<line>", f"expected a JSON object, got {type(obj).__name__}")]
        item_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        problems: list[ItemProblem] = []

        def add(fld: str, msg: str) -> None:
            problems.append(ItemProblem(item_id, fld, msg))

        for key in obj:
            if key not in REQUIRED_FIELDS and key not in OPTIONAL_FIELDS and key not in VC_FIELDS:
                add(key, f"unknown field (known: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS + VC_FIELDS)})")
        for key in REQUIRED_FIELDS:
            if key not in obj or obj[key] is None:
                add(key, "missing required field")
            elif (msg := _non_empty_str(obj[key])) is not None:
                add(key, msg)

        prompt_text = obj.get("prompt_text")
        if prompt_text is not None and (msg := _non_empty_str(prompt_text)) is not None:
            add("prompt_text", msg + " (use null when the prompt's text is unknown)")

        offset = obj.get("prompt_offset_s", 0.0)
        duration = obj.get("prompt_duration_s")
        if isinstance(offset, bool) or not isinstance(offset, (int, float)) or not math.isfinite(offset) or offset < 0:
            add("prompt_offset_s", f"expected a number >= 0, got {offset!r}")
            offset = None
        if duration is not None and (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not math.isfinite(duration)
            or duration <= 0
        ):
            add("prompt_duration_s", f"expected a number > 0 or null, got {duration!r}")
            duration = None
        meta = obj.get("meta", {})
        if not isinstance(meta, dict):
            add("meta", f"wrong type: expected an object, got {type(meta).__name__}")

        def resolve(key: str) -> str | None:
            value = obj.get(key)
            if not isinstance(value, str) or not value.strip():
                return None
            p = Path(value)
            return str(p if p.is_absolute() else (base_dir / p).resolve())

        prompt_audio = resolve("prompt_audio")
        target_audio = resolve("target_audio")
        if obj.get("target_audio") is not None and target_audio is None:
            add("target_audio", "expected a non-empty path string or null")
        task = obj.get("task", TTS)
        source_audio = resolve("source_audio")
        if task not in TASKS:
            add("task", f"unknown task {task!r} (known: {', '.join(TASKS)})")
        elif task == VC:
            for key in ("source_audio", "source_speaker"):
                if obj.get(key) is None:
                    add(key, "missing required field for a vc item (the utterance to convert and who speaks it)")
                elif (msg := _non_empty_str(obj[key])) is not None:
                    add(key, msg)
            source_speaker = obj.get("source_speaker")
            if isinstance(source_speaker, str) and source_speaker.strip() and source_speaker == obj.get("speaker"):
                add("source_speaker", f"the source speaker is the target speaker {source_speaker!r}: nothing to do")
        else:
            for key in ("source_audio", "source_speaker"):
                if obj.get(key) is not None:
                    add(key, 'only a vc item has a source (add "task": "vc", or remove the field)')
        if check_audio:
            if prompt_audio is not None:
                if (msg := check_audio_field(prompt_audio)) is not None:
                    add("prompt_audio", msg)
                elif offset is not None:
                    info = audio_info(prompt_audio)
                    dur, end = info.duration, offset + (duration or 0.0)
                    start = round(offset * info.sample_rate)  # the same sample arithmetic as read_audio
                    stop = start + round((duration or 0.0) * info.sample_rate)
                    if start >= info.frames or stop > info.frames + 1:
                        add("prompt_duration_s", f"clip ends at {end:.3f}s but the audio lasts {dur:.3f}s")
            if target_audio is not None and (msg := check_audio_field(target_audio)) is not None:
                add("target_audio", msg)
            if task == VC and source_audio is not None and (msg := check_audio_field(source_audio)) is not None:
                add("source_audio", msg)

        if problems:
            return None, problems
        item = cls(
            id=obj["id"],
            text=obj["text"].strip(),
            prompt_audio=prompt_audio,  # type: ignore[arg-type]
            speaker=obj["speaker"],
            prompt_text=prompt_text.strip() if prompt_text else None,
            target_audio=target_audio,
            prompt_offset_s=float(offset or 0.0),
            prompt_duration_s=None if duration is None else float(duration),
            meta=dict(meta),
            task=task,
            source_audio=source_audio,
            source_speaker=obj.get("source_speaker"),
        )
        return item, []


def _non_empty_str(value: Any) -> str | None:
    """The problem with a value that must be a non-empty string, or None."""
    if not isinstance(value, str):
        return f"wrong type: expected a string, got {type(value).__name__}"
    if not value.strip():
        return "empty text"
    return None


def check_audio_field(path: str) -> str | None:
    """The problem with an audio path, or None (checks existence and the file header)."""
    try:
        audio_info(path)
    except AudioError as exc:
        return str(exc)
    return None
