"""The one test-set format: a JSONL manifest of `EvalItem`s, validated line by line.

Every protocol loader (LibriSpeech, F5-TTS LibriSpeech-PC, seed-tts-eval, the embedded sets) produces a
`Manifest`. Problems are collected, never raised at the first one: each names the line, the item and the
field, so a user can fix a whole file in one pass and a run can go on with the valid items.

A line looks like::

    {"id": "1089-134686-0000", "text": "He hoped there would be stew.", "speaker": "1089",
     "prompt_audio": "1089/134686/1089-134686-0031.flac", "prompt_text": null,
     "prompt_offset_s": 1.25, "prompt_duration_s": 3.0,
     "target_audio": "1089/134686/1089-134686-0000.flac", "meta": {"target_duration_s": 6.2}}

Relative paths are relative to the manifest file's directory. `prompt_text` is null when unknown (e.g. a
3 s cut from a longer utterance). `prompt_offset_s` / `prompt_duration_s` cut the prompt clip out of
`prompt_audio` (default: the whole file).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flashspeech.foundation.audio import AudioError, audio_info
from flashspeech.foundation.files import write_text_atomic
from suites.item import EvalItem

REQUIRED_FIELDS = ("id", "text", "prompt_audio", "speaker")
OPTIONAL_FIELDS = ("prompt_text", "target_audio", "prompt_offset_s", "prompt_duration_s", "meta")


@dataclass(frozen=True)
class ManifestProblem:
    """What is wrong, where: line number (1-based; 0 when not from a file), item id, field."""

    source: str
    line: int
    item_id: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        item = f" item {self.item_id!r}" if self.item_id else ""
        return f"{where}{item} field {self.field!r}: {self.message}"


class ManifestError(ValueError):
    """Raised by `Manifest.raise_for_problems`; the message lists every problem."""

    def __init__(self, problems: list[ManifestProblem]):
        self.problems = problems
        head = f"{len(problems)} problem(s) in the test set:"
        super().__init__("\n  ".join([head, *map(str, problems)]))


@dataclass
class Manifest:
    """Valid items in file order, plus the problems of the invalid ones."""

    name: str
    items: list[EvalItem] = field(default_factory=list)
    problems: list[ManifestProblem] = field(default_factory=list)
    source: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> Manifest:
        if self.problems:
            raise ManifestError(self.problems)
        return self

    def write(self, path: str | os.PathLike) -> Path:
        return write_manifest(self.items, path)


def _problem(source: str, line: int, item_id: str | None, fld: str, msg: str) -> ManifestProblem:
    return ManifestProblem(source=source, line=line, item_id=item_id, field=fld, message=msg)


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


def parse_item(
    obj: Any,
    *,
    base_dir: Path,
    source: str,
    line: int = 0,
    check_audio: bool = True,
) -> tuple[EvalItem | None, list[ManifestProblem]]:
    """Turn one decoded JSON value into an EvalItem, collecting every problem on the way."""
    if not isinstance(obj, dict):
        return None, [_problem(source, line, None, "<line>", f"expected a JSON object, got {type(obj).__name__}")]
    item_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    problems: list[ManifestProblem] = []

    def add(fld: str, msg: str) -> None:
        problems.append(_problem(source, line, item_id, fld, msg))

    for key in obj:
        if key not in REQUIRED_FIELDS and key not in OPTIONAL_FIELDS:
            add(key, f"unknown field (known: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
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

    if problems:
        return None, problems
    item = EvalItem(
        id=obj["id"],
        text=obj["text"].strip(),
        prompt_audio=prompt_audio,  # type: ignore[arg-type]
        speaker=obj["speaker"],
        prompt_text=prompt_text.strip() if prompt_text else None,
        target_audio=target_audio,
        prompt_offset_s=float(offset or 0.0),
        prompt_duration_s=None if duration is None else float(duration),
        meta=dict(meta),
    )
    return item, []


def build_manifest(
    name: str,
    rows: Iterable[tuple[int, Any]],
    *,
    base_dir: Path,
    source: str,
    check_audio: bool = True,
) -> Manifest:
    """Validate (line, JSON object) rows into a Manifest; duplicate ids are problems too."""
    manifest = Manifest(name=name, source=source)
    seen: dict[str, int] = {}
    for line, obj in rows:
        item, problems = parse_item(obj, base_dir=base_dir, source=source, line=line, check_audio=check_audio)
        if item is not None and item.id in seen:
            problems = [_problem(source, line, item.id, "id", f"duplicate id (first on line {seen[item.id]})")]
            item = None
        manifest.problems.extend(problems)
        if item is not None:
            seen[item.id] = line
            manifest.items.append(item)
    return manifest


def load_manifest(path: str | os.PathLike, *, check_audio: bool = True, name: str | None = None) -> Manifest:
    """Read and validate a JSONL manifest. Invalid lines become problems; valid items are kept."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    source = str(path)

    def rows() -> Iterable[tuple[int, Any]]:
        with path.open(encoding="utf-8") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    yield line_no, json.loads(raw)
                except json.JSONDecodeError as exc:
                    yield line_no, _BadJson(str(exc))

    manifest = Manifest(name=name or path.stem, source=source)
    good_rows = []
    for line_no, obj in rows():
        if isinstance(obj, _BadJson):
            manifest.problems.append(_problem(source, line_no, None, "<line>", f"invalid JSON ({obj.error})"))
        else:
            good_rows.append((line_no, obj))
    parsed = build_manifest(manifest.name, good_rows, base_dir=path.parent, source=source, check_audio=check_audio)
    manifest.items = parsed.items
    manifest.problems = sorted(manifest.problems + parsed.problems, key=lambda p: p.line)
    return manifest


@dataclass(frozen=True)
class _BadJson:
    error: str


def write_manifest(items: Iterable[EvalItem], path: str | os.PathLike, *, relative: bool = True) -> Path:
    """Write items as JSONL atomically; paths become relative to the file's directory if `relative`."""
    path = Path(path)
    base = path.parent.resolve() if relative else None
    lines = [json.dumps(item.to_json(base), ensure_ascii=False) for item in items]
    return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
