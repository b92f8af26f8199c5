"""Any TTS program as a system, through a file contract: to benchmark other systems' official code."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
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

FIXED_VOICE_NOTE = "fixed voice: ignores the prompt, so similarity to the prompt does not measure voice cloning"


def _sidecar(path: Path) -> dict[str, Any]:
    """A request's `<output>.json`, or {} when it is missing or not a JSON object."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


@dataclass
class ExternalOptions:
    """The command (argv with {input}, {output_dir} and {python}), the rate its wavs are resampled to, and whether it
    clones the prompt's voice (`prompted = false`: a fixed-voice system that ignores the prompt)."""

    command: list[str] = field(default_factory=list)
    sample_rate: int = 16_000
    prompted: bool = True

    def validate(self, where: str) -> None:
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise SystemConfigError(f"{where}.command: an external system needs a command (a list of strings)")
        if not isinstance(self.prompted, bool):
            raise SystemConfigError(f"{where}.prompted: must be true or false, got {self.prompted!r}")


@register_system
class ExternalSystem(System):
    """Any TTS program, run as a command over a batch of items.

    Contract: the command (argv; `{input}`, `{output_dir}` and `{python}`, the interpreter running the
    benchmark, are substituted) reads the JSONL file `{input}`, one request per line: {"id", "text",
    "prompt_audio" (a 16 kHz mono wav of the prompt clip), "prompt_text" (or null), "seed", "output" (the
    wav path to write)}. It writes one wav per request at `output` (any rate; resampled to `sample_rate`),
    and may write `<output>.json` with {"timings": {stage: seconds}}, or {"error": message} for a request
    it could not answer (a sidecar that is not a JSON object is ignored). A request whose wav is missing or
    unreadable is a failed item, with the program's message if it wrote one, else the read error and the
    program's exit code and stderr tail; without per-item timings, the command's wall time is shared among
    its items in proportion to their audio length.

    A fixed-voice system (`prompted=False`, e.g. `bench.systems.engines`) still receives the prompts but
    ignores them: describe() says so with a note (speaker similarity to the prompt measures nothing about
    it) and each result's meta carries "prompted": False. Prompted systems' descriptions are unchanged.
    """

    kind = "external"
    Options = ExternalOptions

    @classmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        opts: ExternalOptions = config.options
        name = config.name or Path(shlex.split(opts.command[0])[0]).name
        return [cls(opts.command, name, opts.sample_rate, prompted=opts.prompted)]

    def __init__(self, command: Sequence[str], name: str, sample_rate: int = 16_000, prompted: bool = True):
        self.command, self.name, self.sample_rate, self.prompted = list(command), name, sample_rate, prompted

    def describe(self) -> dict[str, Any]:
        described = {"kind": self.kind, "command": self.command, "sample_rate": self.sample_rate}
        if not self.prompted:  # only then: prompted systems keep their description (and generation cache keys)
            described.update(prompted=False, note=FIXED_VOICE_NOTE)
        return described

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
            argv = [
                a.format(input=request_file, output_dir=tmpdir / "out", python=sys.executable) for a in self.command
            ]
            start = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ})
            wall = time.perf_counter() - start
            note = "" if proc.returncode == 0 else f" (command exited {proc.returncode}: {proc.stderr[-500:]!r})"
            out: list[Generated] = []
            for r in requests:
                info = _sidecar(Path(r["output"] + ".json"))
                try:
                    audio = read_audio(r["output"], self.sample_rate).samples
                except Exception as exc:
                    message = info.get("error") if isinstance(info.get("error"), str) else None
                    out.append(Generated(None, self.sample_rate, message or error_text(exc) + note))
                    continue
                out.append(Generated(audio, self.sample_rate, timings=info.get("timings") or {}))
            if not self.prompted:
                for g in out:
                    g.meta["prompted"] = False
            missing = [g for g in out if g.audio is not None and not g.timings]
            if missing:
                shares = share_batch_timings({"total": wall}, [len(g.audio) / self.sample_rate for g in missing])
                for g, share in zip(missing, shares, strict=True):
                    g.timings = share
                    g.meta["timing"] = "command wall time shared by audio length"
        return out
