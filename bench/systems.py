"""Systems under test, behind one adapter interface.

- `FlashSpeechSystem`: the bundled model at one step count (a checkpoint directory, or `random:<preset>`
  for untrained weights, always labelled so). A diffusion checkpoint (the NaturalSpeech 2-style baseline,
  e.g. `random:tiny-diffusion`) is sampled with the system's ODE `sampler` (default heun) for that many
  ODE steps; its description records the sampler and the number of function evaluations.
- `GroundTruthSystem`: the items' recorded targets (the topline).
- `CodecResynthesisSystem`: each target through the codec (encode, decode): the codec's ceiling.
- `ExternalSystem`: any program, through a file contract (see its docstring), to benchmark other
  systems' official code.

`generate(items, seeds)` returns one `Generated` per (item, seed) in order: audio, or an error message;
a failing item never stops the others. `reconstruct(prompt)` gives the prompt through the system's own
codec (the SIM-r reference), or None when the system has no codec.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config import SystemConfig
from bench.data.audio import read_audio, write_wav
from bench.data.manifest import EvalItem


@dataclass
class Generated:
    audio: np.ndarray | None
    sample_rate: int
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # where, when and under what machine load `timings` were measured, and whether in this run or an earlier
    # one ("source": "this run" | "cache"); filled by the runner
    timed: dict[str, Any] = field(default_factory=dict)


def prompt_clip(item: EvalItem, sample_rate: int) -> np.ndarray:
    return read_audio(
        item.prompt_audio, sample_rate, offset_s=item.prompt_offset_s, duration_s=item.prompt_duration_s
    ).samples


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class System(ABC):
    name: str
    kind: str
    steps: int | None = None
    sample_rate: int = 16_000
    batch_size: int = 1  # items per generate() call

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Everything that determines the audio (part of the generation cache key)."""

    @abstractmethod
    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        """One result per (item, seed) pair, in order."""

    def reconstruct(self, prompt: np.ndarray) -> np.ndarray | None:
        return None

    def warmup(self, item: EvalItem) -> None:  # noqa: B027 - optional hook
        """Run once untimed before timed generation (GPU kernels, caches)."""


class FlashSpeechSystem(System):
    kind = "flashspeech"

    def __init__(
        self,
        tts: Any,
        steps: int,
        name: str,
        checkpoint: str,
        checkpoint_sha: str,
        cfg: SystemConfig,
        sampler: str | None = None,
    ):
        from flashspeech.diffusion import resolve_sampler

        self.tts, self.steps, self.name = tts, steps, name
        self.checkpoint, self.checkpoint_sha, self.cfg = checkpoint, checkpoint_sha, cfg
        self.sample_rate = tts.sample_rate
        self.sampler = resolve_sampler(tts.config.objective, sampler)

    def _sampling(self) -> dict[str, Any]:
        """The sampler and its denoiser calls (a consistency model: one call per step)."""
        from flashspeech.diffusion import SAMPLERS, function_evaluations

        calls = function_evaluations(self.sampler, self.steps) if self.sampler in SAMPLERS else self.steps
        return {"sampler": self.sampler, "function_evaluations": calls}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "steps": self.steps,
            **self._sampling(),
            "checkpoint": self.checkpoint,
            "checkpoint_sha256": self.checkpoint_sha,
            "trained": not self.checkpoint.startswith("random:"),
            "preset": self.tts.config.name,
            "alpha": self.cfg.alpha if self.cfg.alpha is not None else self.tts.config.prosody.alpha,
            "codec": self.tts.codec.describe(),
            "batch_size": self.cfg.batch_size,
            "device": str(self.tts.device),
        }

    def _synthesize(self, items: Sequence[EvalItem], seeds: Sequence[int]):
        from flashspeech.timing import StageTimer

        prompts = [prompt_clip(i, self.sample_rate) for i in items]
        timer = StageTimer(sync=True)
        sampler = None if self.sampler == "consistency" else self.sampler
        return self.tts.synthesize(
            [i.text for i in items],
            prompts,
            steps=self.steps,
            sampler=sampler,
            seed=list(seeds),
            alpha=self.cfg.alpha,
            timer=timer,
        )

    def warmup(self, item: EvalItem) -> None:
        self._synthesize([item], [0])

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        from suites.rtf import share_batch_timings

        try:
            out = self._synthesize(items, seeds)
        except Exception as exc:
            if len(items) == 1:
                return [Generated(None, self.sample_rate, _error(exc))]
            return [g for i, s in zip(items, seeds, strict=True) for g in self.generate([i], [s])]
        shares = share_batch_timings(out.timings, out.seconds)
        return [
            Generated(
                out.waveforms[k].numpy(),
                out.sample_rate,
                timings=shares[k],
                meta={
                    "durations": out.durations[k].tolist(),
                    "phonemes": out.phonemes[k],
                    "schedule": list(out.schedule.sigmas),
                    **self._sampling(),
                    "batch_size": len(items),
                },
            )
            for k in range(len(items))
        ]

    @torch.inference_mode()
    def reconstruct(self, prompt: np.ndarray) -> np.ndarray | None:
        codec = self.tts.codec
        wav = torch.from_numpy(np.ascontiguousarray(prompt, dtype=np.float32)).to(self.tts.device)[None]
        return codec.decode(codec.encode(wav))[0].float().cpu().numpy()


class GroundTruthSystem(System):
    kind = "ground_truth"

    def __init__(self, name: str = "ground_truth", sample_rate: int = 16_000):
        self.name, self.sample_rate = name, sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "sample_rate": self.sample_rate}

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        out = []
        for item in items:
            if item.target_audio is None:
                out.append(Generated(None, self.sample_rate, "no ground-truth target audio for this item"))
                continue
            try:
                out.append(Generated(read_audio(item.target_audio, self.sample_rate).samples, self.sample_rate))
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, _error(exc)))
        return out


class CodecResynthesisSystem(System):
    kind = "codec_resynthesis"

    def __init__(self, codec: Any, name: str = "codec_resynthesis"):
        self.codec, self.name, self.sample_rate = codec, name, codec.sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "codec": self.codec.describe()}

    @torch.inference_mode()
    def _roundtrip(self, audio: np.ndarray) -> np.ndarray:
        wav = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).to(self.codec.device)[None]
        return self.codec.decode(self.codec.encode(wav))[0].float().cpu().numpy()[: len(audio)]

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        out = []
        for item in items:
            if item.target_audio is None:
                out.append(Generated(None, self.sample_rate, "no ground-truth target audio to resynthesize"))
                continue
            try:
                start = time.perf_counter()
                audio = self._roundtrip(read_audio(item.target_audio, self.sample_rate).samples)
                out.append(Generated(audio, self.sample_rate, timings={"codec": time.perf_counter() - start}))
            except Exception as exc:
                out.append(Generated(None, self.sample_rate, _error(exc)))
        return out

    def reconstruct(self, prompt: np.ndarray) -> np.ndarray | None:
        return self._roundtrip(prompt)


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

    def __init__(self, command: Sequence[str], name: str, sample_rate: int = 16_000):
        self.command, self.name, self.sample_rate = list(command), name, sample_rate

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "command": self.command, "sample_rate": self.sample_rate}

    def generate(self, items: Sequence[EvalItem], seeds: Sequence[int]) -> list[Generated]:
        from suites.rtf import share_batch_timings

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
                    out.append(Generated(None, self.sample_rate, _error(exc) + note))
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


def _default_name(objective: str, sampler: str | None) -> str:
    """flashspeech for a consistency model, diffusion-<sampler> for the diffusion baseline."""
    from flashspeech.diffusion import resolve_sampler

    return "flashspeech" if objective == "consistency" else f"diffusion-{resolve_sampler(objective, sampler)}"


def _random_sha(config: Any) -> str:
    """Identity of untrained weights: sha256 of the model config."""
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()


def build_systems(configs: Sequence[SystemConfig], device: str) -> list[System]:
    """Instantiate systems; a FlashSpeech entry expands to one system per step count (sharing one model)."""
    systems: list[System] = []
    for cfg in configs:
        first = len(systems)
        if cfg.kind == "flashspeech":
            from flashspeech.codec import MelCodec
            from flashspeech.config import preset
            from flashspeech.synthesis import FlashSpeech

            if cfg.checkpoint.startswith("random:"):
                codec = MelCodec()
                tts = FlashSpeech.from_config(
                    preset(cfg.checkpoint.split(":", 1)[1], latent_dim=codec.latent_dim), codec
                )
                sha = _random_sha(tts.config)
            else:
                from flashspeech.checkpoint import read_description

                tts = FlashSpeech.from_pretrained(cfg.checkpoint)
                sha = read_description(cfg.checkpoint)["weights_sha256"]
            tts.to(device)
            sampler = getattr(cfg, "sampler", None)  # a diffusion checkpoint's ODE sampler (euler, heun)
            base = cfg.name or _default_name(tts.config.objective, sampler)
            for steps in cfg.steps:
                systems.append(FlashSpeechSystem(tts, steps, f"{base}@{steps}", cfg.checkpoint, sha, cfg, sampler))
        elif cfg.kind == "ground_truth":
            systems.append(GroundTruthSystem(cfg.name or "ground_truth"))
        elif cfg.kind == "codec_resynthesis":
            from flashspeech.codec import MelCodec

            systems.append(CodecResynthesisSystem(MelCodec().to(device), cfg.name or "codec_resynthesis"))
        else:
            name = cfg.name or Path(shlex.split(cfg.command[0])[0]).name
            systems.append(ExternalSystem(cfg.command, name, cfg.sample_rate))
        for system in systems[first:]:
            system.batch_size = cfg.batch_size
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique, got {names}")
    return systems
