"""The system interface: what the runner asks of a TTS system, and the registry of system kinds.

A system kind registers itself with `register_system`, declares its own options (a dataclass: a FlashSpeech
system has a checkpoint and step counts, an external one a command) and builds itself from one config entry
(`System.build`, which may expand into several systems, e.g. one per step count).

A system declares the tasks it does (`tasks`: `tts`, `vc`; `suites.item.TASKS`); the runner gives it only the test
sets of those tasks.

`generate(items, seeds)` returns one `Generated` per (item, seed) in order: audio, or an error message;
a failing item never stops the others. `reconstruct(prompt)` gives the prompt through the system's own
codec (the SIM-r reference), or None when the system has no codec.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import flashspeech
from flashspeech.foundation.fields import FieldError, typed_fields
from flashspeech.foundation.hashing import source_digest
from flashspeech.foundation.registry import Registry
from suites.item import TTS, EvalItem


class SystemConfigError(FieldError):
    """A system entry that cannot be used; the message names the field."""


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


@dataclass
class NoOptions:
    """A system kind without options of its own."""

    def validate(self, where: str) -> None:
        """Raise SystemConfigError naming `where` (e.g. "systems.0") and the field; nothing to check here."""


@dataclass
class SystemConfig:
    """One [[systems]] entry: its kind, name (default: the kind's own), batch size, and the kind's options."""

    kind: str
    name: str | None = None
    batch_size: int = 1  # items per generate() call; 1 = the paper's batch-1 latency convention
    options: Any = field(default_factory=NoOptions)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "systems") -> SystemConfig:
        """Parse a flat TOML table; the kind's Options dataclass takes every key but kind, name, batch_size (known
        keys, typed values: `typed_fields`)."""
        kind = data.get("kind")
        if kind not in SYSTEMS:
            raise SystemConfigError(f"{where}.kind: unknown system kind {kind!r}; known: {', '.join(sorted(SYSTEMS))}")
        name, batch_size = data.get("name"), data.get("batch_size", 1)
        options_type = SYSTEMS[kind].Options
        own = ("kind", "name", "batch_size")
        values = typed_fields(options_type, data, where, skip=own, what=f"{kind} systems", error=SystemConfigError)
        options = options_type(**values)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise SystemConfigError(f"{where}.batch_size: must be an integer >= 1, got {batch_size!r}")
        options.validate(where)
        return cls(kind, name, batch_size, options)

    def to_dict(self) -> dict[str, Any]:
        """The flat table `from_dict` reads."""
        return {"kind": self.kind, "name": self.name, "batch_size": self.batch_size, **dataclasses.asdict(self.options)}


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class System(ABC):
    """A TTS system under test. Subclasses set `kind` (and `Options`, `deterministic`) and register."""

    kind: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    deterministic: ClassVar[bool] = False  # the same audio for every seed: one generation serves them all
    # torch computes its audio here: the CPU thread count changes its rounding (part of the generation key)
    threads_affect_audio: ClassVar[bool] = True
    reads_target: ClassVar[bool] = True  # its audio may depend on item.target_audio (its identity joins the key)
    tasks: frozenset[str] = frozenset({TTS})  # the test-set tasks it does (a kind may set it per instance)
    name: str
    sample_rate: int = 16_000
    batch_size: int = 1  # items per generate() call
    config: SystemConfig | None = None  # the entry it was built from (a worker builds it again from this)

    @classmethod
    @abstractmethod
    def build(cls, config: SystemConfig, device: str) -> list[System]:
        """The systems one config entry stands for (most kinds: one)."""

    def sampling(self) -> dict[str, Any]:
        """What the results record of its sampling: series (the config entry a steps curve joins), family
        (consistency, diffusion), sampler, steps, nfe (denoiser calls); empty for a system that does not sample."""
        return {}

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

    def provenance_note(self) -> str | None:
        """A caveat on what `describe()` can vouch for (e.g. an unfingerprinted external program), for reports."""
        return None

    def code_paths(self) -> list[Path]:
        """The source that produces this system's audio: the `flashspeech` package and the system adapters. A
        kind whose audio comes from elsewhere (an external program) narrows it to the code it runs here."""
        return [FLASHSPEECH_SOURCE, SYSTEMS_SOURCE]

    def code_digest(self) -> str:
        """sha256 (16 hex digits) of `code_paths()`' Python source: part of every generation cache key, so an
        edited generating path regenerates (and re-times) instead of replaying the old code's audio."""
        return source_digest(*self.code_paths())


FLASHSPEECH_SOURCE = Path(flashspeech.__file__).resolve().parent
SYSTEMS_SOURCE = Path(__file__).resolve().parent  # bench/systems: the adapters between the runner and the models


SYSTEMS = Registry("system kind", "kind")
register_system = SYSTEMS.register  # class decorator: make a system kind available by its `kind`


def build_systems(configs: Sequence[SystemConfig], device: str) -> list[System]:
    """Instantiate every entry (an entry may expand into several systems); names must be unique."""
    systems: list[System] = []
    for cfg in configs:
        built = SYSTEMS[cfg.kind].build(cfg, device)
        for system in built:
            system.batch_size, system.config = cfg.batch_size, cfg
        systems.extend(built)
    check_unique_names(systems)
    return systems


def check_unique_names(systems: Sequence[System]) -> None:
    """ValueError unless every system has its own name (they key the caches, results and reports)."""
    names = [s.name for s in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must be unique, got {names}")
