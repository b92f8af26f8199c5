"""seed-tts-eval ``meta.lst``: ``utt|prompt_text|prompt_wav|target_text[|gt_wav]``, one item a line.

Relative wav paths are relative to the meta.lst's folder, as in seed-tts-eval. The format has no speaker
ids, so an item's speaker is the prompt wav's file stem (each prompt clip counts as its own speaker). A
4-field line has no ground-truth recording (target_audio is null); so has a 5-field line with an empty
gt_wav (a trailing ``|``). A ``|`` inside a text cannot be represented: such a line has too many fields.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.testsets.manifest import Manifest, ManifestProblem, build_manifest

FORMAT = "utt|prompt_text|prompt_wav|target_text[|gt_wav]"
# manifest field -> meta.lst field, so a problem points at what the user can fix in the file
_COLUMN_OF = {"id": "utt", "text": "target_text", "prompt_audio": "prompt_wav", "target_audio": "gt_wav"}


def manifest_name(meta_lst: Path) -> str:
    """``seedtts-en`` for en/meta.lst, ``seedtts-zh-hardcase`` for zh/hardcase.lst."""
    parts = ["seedtts", meta_lst.parent.name, "" if meta_lst.stem == "meta" else meta_lst.stem]
    return "-".join(p for p in parts if p)


def load_seedtts(meta_lst: str | os.PathLike) -> Manifest:
    """Read a meta.lst; invalid lines become problems (by line and field), valid ones items."""
    meta_lst = Path(meta_lst)
    if not meta_lst.is_file():
        raise FileNotFoundError(f"seed-tts-eval meta.lst not found: {meta_lst}")
    source = str(meta_lst)
    problems: list[ManifestProblem] = []
    rows: list[tuple[int, dict[str, Any]]] = []
    for line_no, raw in enumerate(meta_lst.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        fields = raw.split("|")
        if len(fields) not in (4, 5):
            msg = (
                f"expected 4 or 5 '|'-separated fields ({FORMAT}), got {len(fields)}"
                " (a '|' inside a text cannot be represented in meta.lst)"
            )
            problems.append(ManifestProblem(source, line_no, fields[0].strip() or None, "<line>", msg))
            continue
        utt, prompt_text, prompt_wav, target_text = (f.strip() for f in fields[:4])
        gt_wav = fields[4].strip() if len(fields) == 5 else ""
        rows.append(
            (
                line_no,
                {
                    "id": utt,
                    "text": target_text,
                    # no speaker ids in seed-tts-eval: the prompt clip's stem stands in for one
                    "speaker": Path(prompt_wav).stem or prompt_wav,
                    "prompt_audio": prompt_wav,
                    "prompt_text": prompt_text,
                    "target_audio": gt_wav or None,
                },
            )
        )
    manifest = build_manifest(manifest_name(meta_lst), rows, base_dir=meta_lst.parent, source=source)
    # the speaker is derived from prompt_wav, whose own problem says what is wrong
    generic = [replace(p, field=_COLUMN_OF.get(p.field, p.field)) for p in manifest.problems if p.field != "speaker"]
    manifest.problems = sorted(problems + generic, key=lambda p: p.line)
    return manifest
