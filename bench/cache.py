"""Content-addressed caches: a finished benchmark regenerates and rescores nothing; an interrupted one resumes.

Generation key = `fingerprint` (sha256 of canonical JSON) of (`GENERATION_KEY_VERSION`, the system's `describe()` —
config, checkpoint sha256, codec — with its `code_digest()` (the source that generates: the `flashspeech` package
and the system adapters; an external program's stated fingerprint), the item's text, prompt file identity and clip,
the target file's identity when the system may read it (`System.reads_target`), a voice-conversion item's task and
source file identity, and the seed). Each entry is
`<key>.wav` plus `<key>.json` (timings, where/when/under what load they were measured, and system metadata), both
written atomically, the JSON last: an entry exists only when its JSON does. Failed generations are not cached
(they are retried next time). A cache hit's audio is reused; its timings are an earlier run's and come back marked
`source: "cache"`, so they are never reported or gated as this run's speed.

Score key = sha256 of (`SCORE_KEY_VERSION`, the suite's description, cross-sample context and code digest (the
`suites` package and `flashspeech.foundation`), and every sample's identity and audio digest). Suites that read
timings (RTF) are never score-cached (they are rescored every run: they load no model): identical audio must
not replay an earlier run's speed.

`CachedSystem` puts a system behind the generation cache (lm-evaluation-harness's `CachingLM` is the model): it
is the one reader of that cache, for the plan (which slots are hits), the units (what an earlier attempt already
made) and the driver (each generation read back after its unit ran).

When what determines a cached value changes, bump the version: old entries are then never hit (they can be
deleted), rather than kept alive by compatibility code.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.systems import Generated, System
from flashspeech.foundation.audio import read_audio, write_wav
from flashspeech.foundation.files import write_text_atomic
from flashspeech.foundation.hashing import canonical_json, fingerprint
from suites.base import ItemScore
from suites.item import EvalItem

GENERATION_KEY_VERSION = 4  # 4: the generating code's digest is part of the key; 3: canonical-JSON key text
SCORE_KEY_VERSION = 4  # 4: the suites' code digest is part of the key; 3: canonical-JSON suite description


def _file_identity(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    p = Path(path)
    try:
        stat = p.stat()
    except OSError:
        return {"path": str(p), "missing": True}
    return {"path": str(p.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def generation_key(system: dict[str, Any], item: EvalItem, seed: int, reads_target: bool = True) -> str:
    """The key of `item` generated at `seed` by the system `system` describes; `reads_target`: whether its audio
    may depend on the item's target recording (`System.reads_target`)."""
    payload = {
        "version": GENERATION_KEY_VERSION,
        "system": system,
        "item": {
            "text": item.text,
            "prompt": _file_identity(item.prompt_audio),
            "prompt_offset_s": item.prompt_offset_s,
            "prompt_duration_s": item.prompt_duration_s,
            "target": _file_identity(item.target_audio) if reads_target else None,
        },
        "seed": seed,
    }
    if item.source_audio is not None:  # a voice-conversion item (a TTS item's key is unchanged)
        payload["item"].update(task=item.task, source=_file_identity(item.source_audio))
    return fingerprint(payload)


@dataclass(frozen=True)
class Entry:
    """One generation to make: an item, the seed it is generated with, and its generation-cache key."""

    item: EvalItem
    seed: int
    key: str


@dataclass
class GenerationCache:
    root: Path

    def paths(self, key: str) -> tuple[Path, Path]:
        d = self.root / key[:2]
        return d / f"{key}.wav", d / f"{key}.json"

    def get(self, key: str) -> tuple[Generated, Path] | None:
        wav, meta = self.paths(key)
        if not meta.is_file() or not wav.is_file():
            return None
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
            audio = read_audio(wav, None)
            timed = {**info["timed"], "source": "cache"}
            generated = Generated(audio.samples, audio.sample_rate, timings=info["timings"], meta=info["meta"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged entry is regenerated
        generated.timed = timed
        return generated, wav

    def put(self, key: str, generated: Generated) -> Path:
        if generated.audio is None:
            raise ValueError("failed generations are not cached")
        wav, meta = self.paths(key)
        write_wav(wav, generated.audio, generated.sample_rate, subtype="FLOAT")
        info = {"timings": generated.timings, "timed": generated.timed, "meta": generated.meta}
        write_text_atomic(meta, json.dumps(info, default=str))
        return wav

    def size(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0


@dataclass
class ScoreCache:
    """A suite's rows for an exact set of samples (a run keys one system's samples at a time): key =
    suite description (with its cross-sample context) + every sample's identity and audio digest, so any
    change to a suite's settings or to a sample's audio rescores the samples it concerns."""

    root: Path

    @staticmethod
    def key(suite_description: dict[str, Any], samples: Sequence[Any]) -> str:
        h = hashlib.sha256(canonical_json([SCORE_KEY_VERSION, suite_description]).encode())
        for s in samples:
            h.update(json.dumps([s.system, s.item.id, s.seed, s.item.text], default=str).encode())
            if s.item.source_audio is not None:  # what a voice-conversion row is also scored against
                h.update(canonical_json(_file_identity(s.item.source_audio)).encode())
            h.update(hashlib.sha1(s.audio.tobytes()).digest())
            if s.reconstructed_prompt is not None:
                h.update(hashlib.sha1(s.reconstructed_prompt.tobytes()).digest())
        return h.hexdigest()

    def get(self, key: str) -> list[ItemScore] | None:
        path = self.root / f"{key}.json"
        if not path.is_file():
            return None
        try:
            return [ItemScore(**row) for row in json.loads(path.read_text(encoding="utf-8"))]
        except (OSError, ValueError, TypeError):
            return None

    def put(self, key: str, scores: Sequence[ItemScore]) -> None:
        rows = [asdict(s) for s in scores]
        write_text_atomic(self.root / f"{key}.json", json.dumps(rows, default=_jsonable))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def default_cache_root(output_dir: str | os.PathLike) -> Path:
    return Path(output_dir).resolve().parent / "generation-cache"


class CachedSystem:
    """A system behind the generation cache, in one run (`run_id`): the one reader of that cache.

    `hit`: the cached generation a run plans to use (none when it re-times: `retime`); `done`: whether a unit may
    skip a slot (cached, and with `retime` made by this very run: an earlier attempt of the unit); `generate`: one
    timed batch, each success cached; `collect`: a slot's generation read back after its unit ran. A generation was
    made by this run when its timing context's `run_id` is this run's (an entry without one is an older run's)."""

    def __init__(self, system: System, cache: GenerationCache, run_id: str, retime: bool = False):
        self.system, self.cache, self.run_id, self.retime = system, cache, run_id, retime

    def made_this_run(self, generated: Generated) -> bool:
        return bool(self.run_id) and (generated.timed or {}).get("run_id") == self.run_id

    def _read(self, key: str) -> Generated | None:
        hit = self.cache.get(key)
        return None if hit is None else hit[0]

    def hit(self, key: str) -> Generated | None:
        """The cached generation under `key` when the run plans to use it (never when it re-times)."""
        return None if self.retime else self._read(key)

    def done(self, key: str) -> bool:
        """Whether `key` needs no generating: cached (with `retime`, by this run)."""
        cached = self._read(key)
        return cached is not None and (not self.retime or self.made_this_run(cached))

    def generate(self, entries: Sequence[Entry], context: dict[str, Any], batch_id: str) -> list[Generated]:
        """One batch in one timed call, the machine's load measured over it; each result is stamped with the run's
        timing context (`context`), the run id, the batch id, when and under what load; each success is cached."""
        from bench.contention import LoadMonitor

        with LoadMonitor() as monitor:
            results = self.system.generate([e.item for e in entries], [e.seed for e in entries])
        timed = {
            **context,
            "run_id": self.run_id,
            "source": "this run",
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "batch_id": batch_id,
            "load": monitor.report.as_dict() if monitor.report else None,
        }
        for entry, generated in zip(entries, results, strict=True):
            generated.timed = timed
            if generated.error is None:
                self.cache.put(entry.key, generated)
        return results

    def collect(self, key: str, error: str | None) -> Generated:
        """The generation under `key` after its unit ran (`error`: the unit's for it, None when it reported none):
        this run's is timed "this run"; an entry another run sharing the cache made meanwhile is used as a hit."""
        cached = self._read(key)
        if cached is not None and self.made_this_run(cached):
            cached.timed = {**cached.timed, "source": "this run"}
            return cached
        if error is not None:
            return Generated(None, self.system.sample_rate, error=error)
        if cached is not None:
            return cached
        return Generated(None, self.system.sample_rate, error=NOT_IN_CACHE)


NOT_IN_CACHE = (
    "generated, but not found in the generation cache (with a multi-node executor, cache_dir must be one "
    "directory that every node sees)"
)
