"""Any TTS program as a system, through a file contract: to benchmark other systems' official code."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.systems.base import (
    Generated,
    System,
    SystemConfig,
    SystemConfigError,
    error_text,
    prompt_clip,
    register_system,
)
from flashspeech.foundation.audio import read_audio, write_wav
from flashspeech.timing import share_batch_timings
from suites.item import EvalItem


@dataclass
class ExternalOptions:
    """The command (argv with {input} and {output_dir}) and the rate its wavs are resampled to."""

    command: list[str] = field(default_factory=list)
    sample_rate: int = 16_000

    def validate(self, where: str) -> None:
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise SystemConfigError(f"{where}.command: an external system needs a command (a list of strings)")


@register_system
class ExternalSystem(System):
    """Any TTS program, run as a command over a batch of items.

    Contract: the command (argv; `{input}` and `{output_dir}` are substituted) reads the JSONL file
    `{input}`, one request per line: {"id", "text", "prompt_audio" (a 16 kHz mono wav of the prompt clip),
    "prompt_text" (or null), "seed", "output" (the wav path to write)}. It writes one wav per request at
    `output` (any rate; resampled to `sample_rate`), and may write `<output>.json` with
    {"timings": {stage: seconds}}. A request whose wav is missing or unreadable is a failed item (the
    program's exit code and stderr tail are recorded); without per-item timings, the command's wall time
    is shared among its items in proportion to their audio length.
    """

    kind = "external"
    Options = ExternalOptions

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        opts: ExternalOptions = config.options
        name = config.name or Path(shlex.split(opts.command[0])[0]).name
        return [cls(opts.command, name, opts.sample_rate)]

    def __init__(self, command: Sequence[str], name: str, sample_rate: int = 16_000):
        self.command, self.name, self.sample_rate = list(command), name, sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "command": self.command, "sample_rate": self.sample_rate}

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:

        with tempfile.TemporaryDirectory(prefix="fsb-external-") as tmp:
            tmpdir = Path(tmp)
            requests = []
            for k, (item, seed) in enumerate(zip(items, seeds, strict=True)):
                prompt = write_wav(tmpdir / f"prompt-{k}.wav", prompt_clip(item, 16_000), 16_000)
                requests.append(
                    {
                        "id": item.id,
                        "text": item.text,
                        "prompt_audio": str(prompt),
                        "prompt_text": item.prompt_text,
                        "seed": seed,
                        "output": str(tmpdir / "out" / f"{k}.wav"),
                    }
                )
            (tmpdir / "out").mkdir()
            request_file = tmpdir / "requests.jsonl"
            request_file.write_text("".join(json.dumps(r) + "\n" for r in requests), encoding="utf-8")
            argv = [a.format(input=request_file, output_dir=tmpdir / "out") for a in self.command]
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ})
            wall = time.perf_counter() - start
            note = "" if proc.returncode == 0 else f" (command exited {proc.returncode}: {proc.stderr[-500:]!r})"
            out: list[Generated] = []
            for r in requests:
                try:
                    audio = read_audio(r["output"], self.sample_rate).samples
                except Exception as exc:
                    out.append(Generated(None, self.sample_rate, error_text(exc) + note))
                    continue
                sidecar = Path(r["output"] + ".json")
                timings = json.loads(sidecar.read_text())["timings"] if sidecar.is_file() else {}
                out.append(Generated(audio, self.sample_rate, timings=timings))
            missing = [g for g in out if g.audio is not None and not g.timings]
            if missing:
                shares = share_batch_timings({"total": wall}, [len(g.audio) / self.sample_rate for g in missing])
                for g, share in zip(missing, shares, strict=True):
                    g.timings = share
                    g.meta["timing"] = "command wall time shared by audio length"
        return out
