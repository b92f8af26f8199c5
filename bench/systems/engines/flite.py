"""CMU Flite (BSD-style licence; Debian's `flite` package) with one of its built-in voices, as an external
system: `python -m bench.systems.engines.flite [--voice slt] REQUESTS.jsonl`.

Flite's command line has no persistent mode, so each request runs `flite -voice V -t TEXT -o WAV` and the
timed call includes that process's start and voice set-up (about 10 ms on a 2-core VM, against about 50 ms
for a 4 s sentence): its RTF is slightly pessimistic. The built-in voices are deterministic and take no
seed (the request's seed is ignored); slt (US female, the default), rms (US male), awb (Scottish male) and
kal16 are 16 kHz, kal is 8 kHz. Without the `flite` program every request fails, saying how to install it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from bench.systems.engines.loop import Engine, fingerprint, main

INSTALL_HINT = "install it with `apt-get install flite` (Debian/Ubuntu) or from http://cmuflite.org"


class FliteEngine(Engine):
    def __init__(self, voice: str = "slt", program: str = "flite", timeout_s: float = 120.0):
        found = shutil.which(program)
        if found is None:
            raise FileNotFoundError(f"the `{program}` program is not on PATH: {INSTALL_HINT}")
        listed = subprocess.run([found, "-lv"], capture_output=True, text=True, timeout=timeout_s)
        voices = listed.stdout.split(":", 1)[-1].split()
        if voice not in voices:
            raise ValueError(f"{program} has no built-in voice {voice!r}; it has {', '.join(voices) or 'none'}")
        self.argv, self.timeout_s = [found, "-voice", voice], timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="fsb-flite-"))

    def synthesize(self, text: str, seed: int) -> tuple[np.ndarray, int]:
        audio, sample_rate, _ = self._run(text, [])
        return audio, sample_rate

    def synthesize_segments(self, text: str) -> tuple[np.ndarray, int, list[tuple[str, float]]]:
        """Audio, its sample rate, and flite's phone segments as (ARPAbet label, end time in s) (`-psdur`)."""
        audio, sample_rate, stdout = self._run(text, ["-psdur"])
        segments = []
        for token in stdout.split():
            label, sep, end = token.rpartition(":")
            try:
                segments.append((label, float(end)))
            except ValueError:
                raise RuntimeError(f"flite -psdur printed {token!r}, not label:end_time") from None
            if not sep or not label:
                raise RuntimeError(f"flite -psdur printed {token!r}, not label:end_time")
        return audio, sample_rate, segments

    def _run(self, text: str, options: list[str]) -> tuple[np.ndarray, int, str]:
        wav = self._dir / "out.wav"
        proc = subprocess.run(
            [*self.argv, *options, "-t", text, "-o", str(wav)], capture_output=True, text=True, timeout=self.timeout_s
        )
        if proc.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"flite exited with status {proc.returncode}: {proc.stderr[-300:]!r}")
        audio, sample_rate = sf.read(str(wav), dtype="float32", always_2d=True)
        wav.unlink()
        return audio.mean(axis=1), int(sample_rate), proc.stdout

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def identify(args: argparse.Namespace, timeout_s: float = 30.0) -> str:
    """The engine's code and what `flite --version` prints (the voice is in the command)."""
    found = shutil.which(args.program)
    if found is None:  # every request fails too, saying how to install it
        return fingerprint(__spec__.name, f"`{args.program}` is not on PATH")
    proc = subprocess.run([found, "--version"], capture_output=True, text=True, timeout=timeout_s)
    version = " ".join((proc.stdout.strip() or proc.stderr.strip()).split())
    return fingerprint(__spec__.name, f"{version[:120]} (exit status {proc.returncode})")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.systems.engines.flite", description=__doc__.split("\n")[0])
    parser.add_argument("--voice", default="slt", help="a built-in flite voice (default: slt; `flite -lv` lists them)")
    parser.add_argument("--program", default="flite", help="the flite executable (default: flite on PATH)")
    return main(parser, lambda args: FliteEngine(args.voice, args.program), argv, identify)


if __name__ == "__main__":
    sys.exit(run())
