"""Picking a few generated clips per system for the HTML report and embedding them as data URIs.

`audio_path` values in the items table are absolute, or relative to the results directory; relative
paths are tried against each base directory given (the results directory, `metadata["output_dir"]`, ...).
A clip that cannot be found or is too large becomes a `Clip` with `problem` set, shown as a note.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from bench.results import Results
from reports.tables import is_missing, systems

MAX_CLIP_BYTES = 8 * 1024 * 1024
MIME = {".wav": "audio/wav", ".flac": "audio/flac", ".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".opus": "audio/ogg"}


@dataclass(frozen=True)
class Clip:
    """One chosen sample: its data URI, or why it is not embedded."""

    system: str
    item_id: str
    seed: str
    audio_path: str
    data_uri: str | None = None
    problem: str | None = None


def base_dirs(results: Results, *extra: str | Path | None) -> list[Path]:
    """Where relative audio paths may live: the given directories, then the metadata's output_dir."""
    candidates = [*extra, results.metadata.get("output_dir"), results.metadata.get("results_dir")]
    out: list[Path] = []
    for c in candidates:
        if not is_missing(c) and Path(str(c)) not in out:
            out.append(Path(str(c)))
    return out


def resolve(audio_path: str, bases: Sequence[Path]) -> Path | None:
    path = Path(audio_path)
    if path.is_absolute():
        return path if path.is_file() else None
    return next((base / path for base in bases if (base / path).is_file()), None)


def data_uri(path: Path) -> str:
    """The clip as a data URI: 16-bit FLAC when soundfile can read it (about 4x smaller than the cache's
    float WAVs, so the page stays small), else the file's own bytes."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
        buffer = io.BytesIO()
        sf.write(buffer, np.clip(data, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16")
        return f"data:audio/flac;base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"
    except (RuntimeError, ValueError, TypeError):
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _pick(rows: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to n rows, distinct items first (lowest seed of each), then further seeds."""
    rows = rows.sort_values(["item_id", "seed"], kind="stable")
    first = rows.drop_duplicates("item_id")
    rest = rows.drop(first.index)
    return pd.concat([first, rest]).head(n)


def pick_clips(results: Results, per_system: int, bases: Sequence[Path]) -> dict[str, list[Clip]]:
    """System -> up to `per_system` clips from successful generations with an audio path."""
    items = results.items
    needed = {"system", "item_id", "audio_path"}
    out: dict[str, list[Clip]] = {}
    if per_system <= 0 or not needed <= set(items.columns):
        return out
    ok = items[items["audio_path"].notna()]
    if "status" in ok.columns:
        ok = ok[ok["status"] == "ok"]
    if "seed" not in ok.columns:
        ok = ok.assign(seed=0)
    for system in systems(results):
        clips = []
        for _, row in _pick(ok[ok["system"] == system], per_system).iterrows():
            seed = "–" if is_missing(row["seed"]) else str(int(float(row["seed"])))
            clip = Clip(system, str(row["item_id"]), seed, str(row["audio_path"]))
            clips.append(_load(clip, bases))
        if clips:
            out[system] = clips
    return out


def _load(clip: Clip, bases: Sequence[Path]) -> Clip:
    path = resolve(clip.audio_path, bases)
    if path is None:
        where = ", ".join(str(b) for b in bases) or "no base directory"
        return replace(clip, problem=f"audio file not found: {clip.audio_path} (looked in {where})")
    size = path.stat().st_size
    if size > MAX_CLIP_BYTES:
        return replace(clip, problem=f"{clip.audio_path}: {size} bytes, over the {MAX_CLIP_BYTES} byte limit")
    return replace(clip, data_uri=data_uri(path))
