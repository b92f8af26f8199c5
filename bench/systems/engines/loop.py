"""The request loop every engine program shares: the external system's JSONL contract, timed per item.

`serve(requests_path, load)` loads the engine once (untimed) and warms it up with one untimed synthesis,
then, per request, times `Engine.synthesize` alone and writes the wav at `output` and `<output>.json` with
{"timings": {"synthesis": seconds}}. A request that fails (bad text, an engine error, silent or non-finite
audio) leaves no wav and a sidecar {"error": message} instead; the others go on. An engine that cannot load
or warm up fails every request with the reason. The exit status is 0 when every request got an answer (a wav
or its own error): the external system fails a whole batch on a non-zero status, so it is 1 only when the
engine did not load or warm up or a request line was unusable.

`main` also answers `--fingerprint` (in place of the request file): one line naming what determines the
engine's audio (`fingerprint`: its code's sha256, its synthesizer's version, its voice file's sha256).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.record import package_versions
from bench.systems.base import error_text
from flashspeech.foundation.audio import write_wav
from flashspeech.foundation.hashing import sha256_file, sha256_files

WARMUP_TEXT = "This sentence warms the engine up."


class Engine(ABC):
    """A loaded TTS engine with one fixed voice; loading happens when it is built."""

    @abstractmethod
    def synthesize(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        """Mono float samples in [-1, 1] and their sample rate for `text`."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release processes and files the engine holds."""


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(payload) + "\n", encoding="utf-8")


def _fail(request: dict[str, Any], message: str) -> None:
    output = Path(request["output"])
    output.unlink(missing_ok=True)
    _write_json(Path(f"{output}.json"), {"error": message})
    print(f"{request.get('id', output.name)}: {message}", file=sys.stderr, flush=True)


def _read_requests(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The requests that name an output, and the number of lines that do not (reported, not answerable)."""
    requests, broken = [], 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if not isinstance(request, dict) or not isinstance(request.get("output"), str):
                raise ValueError("not an object with an 'output' path")
        except ValueError as exc:
            print(f"{path}:{number}: unusable request ({exc})", file=sys.stderr, flush=True)
            broken += 1
            continue
        requests.append(request)
    return requests, broken


def _synthesize(engine: Engine, request: dict[str, Any]) -> tuple[np.ndarray, int, float]:
    text = request.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"no text to speak: {text!r}")
    seed = int(request.get("seed") or 0)
    start = time.perf_counter()
    audio, sample_rate = engine.synthesize(text, seed)
    elapsed = time.perf_counter() - start
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if audio.size == 0 or not np.all(np.isfinite(audio)) or float(np.max(np.abs(audio))) < 1e-4:
        raise ValueError(f"the engine returned empty, silent or non-finite audio ({audio.size} samples)")
    return np.clip(audio, -1.0, 1.0), int(sample_rate), elapsed


def serve(requests_path: str | Path, load: Callable[[], Engine]) -> int:
    """Answer every request in the JSONL file; returns the exit status (see the module's docstring)."""
    requests, broken = _read_requests(Path(requests_path))
    try:
        engine = load()
    except Exception as exc:
        for request in requests:
            _fail(request, f"the engine did not load: {error_text(exc)}")
        return 1
    try:
        try:
            engine.synthesize(WARMUP_TEXT, 0)
        except Exception as exc:
            for request in requests:
                _fail(request, f"the engine failed its warm-up synthesis: {error_text(exc)}")
            return 1
        for request in requests:
            try:
                audio, sample_rate, elapsed = _synthesize(engine, request)
                write_wav(request["output"], audio, sample_rate)
            except Exception as exc:
                _fail(request, error_text(exc))
                continue
            _write_json(Path(request["output"] + ".json"), {"timings": {"synthesis": elapsed}})
    finally:
        engine.close()
    return 1 if broken else 0


def code_digest(*modules: str) -> str:
    """sha256 (12 hex digits) of the named modules' source files, in order: an engine's own code."""
    paths = []
    for module in modules:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"no source for module {module!r}")
        paths.append(spec.origin)
    return sha256_files(paths)[:12]


def file_digest(path: str | Path) -> str:
    """sha256 (16 hex digits) of a file, e.g. a voice model."""
    return sha256_file(path)[:16]


def dist_version(name: str) -> str:
    """An installed distribution's version, or "not installed"."""
    return package_versions((name,))[name] or "not installed"


def fingerprint(engine_module: str, *parts: str) -> str:
    """One line: the engine's code digest (its module, this loop) and `parts` (versions, voice digests)."""
    return "; ".join([f"code {code_digest(engine_module, __name__)}", *parts])


def main(
    parser: argparse.ArgumentParser,
    load: Callable[[argparse.Namespace], Engine],
    argv: Sequence[str] | None,
    identify: Callable[[argparse.Namespace], str],
) -> int:
    """Parse an engine program's options plus the request file, then `serve` it; or, with `--fingerprint`, print
    `identify(options)`: what determines the engine's audio (see `fingerprint`)."""
    parser.add_argument("input", nargs="?", help="the JSONL request file ({input} in the external system's command)")
    parser.add_argument("--fingerprint", action="store_true", help="print what determines the audio, and exit")
    args = parser.parse_args(argv)
    if args.fingerprint:
        print(identify(args))
        return 0
    if args.input is None:
        parser.error("the request file is required (or --fingerprint)")
    return serve(args.input, lambda: load(args))
