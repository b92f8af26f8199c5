"""F5-TTS's LibriSpeech-PC cross-sentence list, resolved against a LibriSpeech test-clean root.

Lines are tab-separated ``ref_utt  ref_dur  ref_text  gen_utt  gen_dur  gen_text`` (a leading header line
starting with ``ref_utt`` is skipped). An utterance id ``1089-134686-0000`` lives at
``<root>/1089/134686/1089-134686-0000.flac``. The whole ref flac is the prompt; gen_text is the text to say.
Problems name the list's columns (``ref_text``, ``gen_utt``, ...), not the manifest's fields; a ref/gen
speaker mismatch is a ``speaker`` problem.
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.testsets.manifest import Manifest, ManifestProblem, build_manifest, parse_item

NAME = "f5-librispeech-pc-test-clean"
COLUMNS = ("ref_utt", "ref_dur", "ref_text", "gen_utt", "gen_dur", "gen_text")
# manifest field -> list column, so a problem points at what the user can fix in the list
_COLUMN_OF = {
    "id": "gen_utt",
    "text": "gen_text",
    "speaker": "gen_utt",
    "prompt_audio": "ref_utt",
    "prompt_text": "ref_text",
    "target_audio": "gen_utt",
}


def utterance_path(root: Path, utt: str) -> Path | None:
    """``<root>/<spk>/<chapter>/<utt>.flac``, or None if `utt` is not SPEAKER-CHAPTER-UTTERANCE."""
    parts = utt.split("-")
    if len(parts) != 3 or not all(parts):
        return None
    return root / parts[0] / parts[1] / f"{utt}.flac"


def _duration(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _parse_line(
    fields: list[str], root: Path, source: str, line_no: int
) -> tuple[dict[str, Any], list[ManifestProblem]]:
    """The manifest row of one six-field line, and its protocol-specific problems."""
    ref_utt, ref_dur, ref_text, gen_utt, gen_dur, gen_text = (f.strip() for f in fields)
    problems: list[ManifestProblem] = []

    def add(column: str, msg: str) -> None:
        problems.append(ManifestProblem(source, line_no, gen_utt or None, column, msg))

    durations = {}
    for column, value in (("ref_dur", ref_dur), ("gen_dur", gen_dur)):
        durations[column] = _duration(value)
        if durations[column] is None:
            add(column, f"expected a duration in seconds > 0, got {value!r}")
    paths = {}
    for column, utt in (("ref_utt", ref_utt), ("gen_utt", gen_utt)):
        paths[column] = utterance_path(root, utt)
        if paths[column] is None:
            add(column, f"expected an utterance id SPEAKER-CHAPTER-UTTERANCE, got {utt!r}")
    ref_speaker, gen_speaker = ref_utt.split("-")[0], gen_utt.split("-")[0]
    if paths["ref_utt"] and paths["gen_utt"] and ref_speaker != gen_speaker:
        add(
            "speaker",
            f"ref_utt's speaker {ref_speaker} differs from gen_utt's {gen_speaker} (same-speaker protocol)",
        )
    row = {
        "id": gen_utt,
        "text": gen_text,
        "speaker": gen_speaker,
        "prompt_audio": str(paths["ref_utt"] or ref_utt),
        "prompt_text": ref_text,
        "target_audio": str(paths["gen_utt"] or gen_utt),
        "meta": {"ref_utt": ref_utt, "ref_dur": durations["ref_dur"], "gen_dur": durations["gen_dur"]},
    }
    return row, problems


def _to_column(problem: ManifestProblem) -> ManifestProblem:
    return replace(problem, field=_COLUMN_OF.get(problem.field, problem.field))


def load_f5_librispeech_pc(list_path: str | os.PathLike, librispeech_root: str | os.PathLike) -> Manifest:
    """Read the list; invalid lines become problems (by line and column), valid ones items."""
    list_path = Path(list_path)
    if not list_path.is_file():
        raise FileNotFoundError(f"F5-TTS LibriSpeech-PC list not found: {list_path}")
    source, base_dir = str(list_path), list_path.parent
    root = Path(librispeech_root)
    check_audio = root.is_dir()
    root = root.resolve()
    problems: list[ManifestProblem] = []
    if not check_audio:
        problems.append(ManifestProblem(str(root), 0, None, "librispeech_root", "LibriSpeech directory not found"))

    clean_rows: list[tuple[int, dict[str, Any]]] = []
    lines = [(n, raw) for n, raw in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1) if raw.strip()]
    if lines and lines[0][1].split("\t")[0].strip() == "ref_utt":
        lines = lines[1:]  # a header
    for line_no, raw in lines:
        fields = raw.split("\t")
        if len(fields) != len(COLUMNS):
            msg = f"expected {len(COLUMNS)} tab-separated fields ({', '.join(COLUMNS)}), got {len(fields)}"
            problems.append(ManifestProblem(source, line_no, None, "<line>", msg))
            continue
        row, own = _parse_line(fields, root, source, line_no)
        if not own:
            clean_rows.append((line_no, row))
            continue
        # a bad line's generic problems too (except for columns already reported), so one pass fixes the file
        _, generic = parse_item(row, base_dir=base_dir, source=source, line=line_no, check_audio=check_audio)
        reported = {p.field for p in own}
        problems += own + [p for p in map(_to_column, generic) if p.field not in reported]

    manifest = build_manifest(NAME, clean_rows, base_dir=base_dir, source=source, check_audio=check_audio)
    if not check_audio:
        manifest.items = []  # nothing can be synthesised against a missing root
    manifest.problems = sorted(problems + [_to_column(p) for p in manifest.problems], key=lambda p: p.line)
    return manifest
