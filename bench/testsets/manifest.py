"""The one test-set format: a JSONL manifest of `EvalItem`s, validated line by line.

Every protocol loader (LibriSpeech, F5-TTS LibriSpeech-PC, seed-tts-eval, the embedded sets) produces a
`Manifest`. Problems are collected, never raised at the first one: each names the line, the item and the
field, so a user can fix a whole file in one pass and a run can go on with the valid items.

A line is one `EvalItem` as JSON (`EvalItem.to_json` / `EvalItem.from_json` in `suites.item`, which documents
the fields); relative paths are relative to the manifest file's directory. A manifest made by `data import` starts
with its import record, ``{"manifest": {...}}`` (`bench.testsets.provenance.ImportRecord`): how the set was made,
with a digest of the item lines after it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.testsets.provenance import HEADER_KEY, ImportRecord, lines_sha256
from flashspeech.foundation.fields import FieldError
from flashspeech.foundation.files import write_text_atomic
from suites.item import TTS, EvalItem


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
    provenance: ImportRecord | None = None  # how `data import` made it (None: written by hand or another tool)
    items_sha256: str | None = None  # of the item lines as read from the file (compare provenance.items_sha256)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def task(self) -> str:
        """What the set asks of a system: its items' task (`build_manifest` keeps one per set); `tts` when empty."""
        return self.items[0].task if self.items else TTS

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> Manifest:
        if self.problems:
            raise ManifestError(self.problems)
        return self

    def write(self, path: str | os.PathLike) -> Path:
        """Write the items, after the import record when there is one (its item digest set to what is written)."""
        return write_manifest(self.items, path, provenance=self.provenance)


def _problem(source: str, line: int, item_id: str | None, fld: str, msg: str) -> ManifestProblem:
    return ManifestProblem(source=source, line=line, item_id=item_id, field=fld, message=msg)


def parse_item(
    obj: Any,
    *,
    base_dir: Path,
    source: str,
    line: int = 0,
    check_audio: bool = True,
) -> tuple[EvalItem | None, list[ManifestProblem]]:
    """Turn one decoded JSON value into an EvalItem (`EvalItem.from_json`), its problems placed at `source:line`."""
    item, problems = EvalItem.from_json(obj, base_dir, check_audio=check_audio)
    return item, [_problem(source, line, p.item_id, p.field, p.message) for p in problems]


def build_manifest(
    name: str,
    rows: Iterable[tuple[int, Any]],
    *,
    base_dir: Path,
    source: str,
    check_audio: bool = True,
) -> Manifest:
    """Validate (line, JSON object) rows into a Manifest; duplicate ids are problems too, and so is an item of another
    task than the set's first valid item (a test set has one task: its systems and reports are chosen by it)."""
    manifest = Manifest(name=name, source=source)
    seen: dict[str, int] = {}
    for line, obj in rows:
        item, problems = parse_item(obj, base_dir=base_dir, source=source, line=line, check_audio=check_audio)
        if item is not None and item.id in seen:
            problems = [_problem(source, line, item.id, "id", f"duplicate id (first on line {seen[item.id]})")]
            item = None
        elif item is not None and manifest.items and item.task != manifest.task:
            first = manifest.items[0]
            message = f"task {item.task!r} in a {manifest.task} test set (item {first.id!r} on line {seen[first.id]}"
            problems = [_problem(source, line, item.id, "task", message + "): one task per test set")]
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

    item_lines: list[str] = []  # the raw item lines, for their digest (the import record's line left out)

    def rows() -> Iterable[tuple[int, str, Any]]:
        with path.open(encoding="utf-8") as fh:
            for line_no, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    yield line_no, raw, json.loads(raw)
                except json.JSONDecodeError as exc:
                    yield line_no, raw, _BadJson(str(exc))

    manifest = Manifest(name=name or path.stem, source=source)
    good_rows = []
    for line_no, raw, obj in rows():
        if isinstance(obj, _BadJson):
            manifest.problems.append(_problem(source, line_no, None, "<line>", f"invalid JSON ({obj.error})"))
        elif not good_rows and not manifest.problems and isinstance(obj, dict) and set(obj) == {HEADER_KEY}:
            try:
                manifest.provenance = ImportRecord.from_dict(obj[HEADER_KEY])
                continue
            except (FieldError, ValueError) as exc:
                manifest.problems.append(_problem(source, line_no, None, HEADER_KEY, f"bad import record ({exc})"))
        else:
            good_rows.append((line_no, obj))
        item_lines.append(raw)
    manifest.items_sha256 = lines_sha256(item_lines)
    parsed = build_manifest(manifest.name, good_rows, base_dir=path.parent, source=source, check_audio=check_audio)
    manifest.items = parsed.items
    manifest.problems = sorted(manifest.problems + parsed.problems, key=lambda p: p.line)
    return manifest


@dataclass(frozen=True)
class _BadJson:
    error: str


def write_manifest(
    items: Iterable[EvalItem],
    path: str | os.PathLike,
    *,
    relative: bool = True,
    provenance: ImportRecord | None = None,
) -> Path:
    """Write items as JSONL atomically; paths become relative to the file's directory if `relative`. With
    `provenance`, its record (with the digest of the item lines) is the first line."""
    path = Path(path)
    base = path.parent.resolve() if relative else None
    lines = [json.dumps(item.to_json(base), ensure_ascii=False) for item in items]
    if provenance is not None:
        header = {HEADER_KEY: provenance.with_items(lines).to_dict()}
        lines.insert(0, json.dumps(header, ensure_ascii=False))
    return write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))
