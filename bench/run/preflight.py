"""Preflight: before anything is generated, every piece a run needs is found and loaded, or named.

`preflight(config)` loads each test set (the manifest, and for a set whose config states how it must have been
imported, the manifest's import record against that), builds each system (a checkpoint loads strictly, an engine
finds its program) and loads each suite's models (weights sha256-checked). Each piece that fails is one `Missing`
line naming it, the problem and, from the error, the path to provide and where it comes from; the pieces that
loaded are handed to the run so nothing loads twice. `run` stops before generating when anything is missing
(`PreflightError`, exit 2) and `run --check` does only this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bench.config import BenchConfig, TestSetConfig
from bench.run.plan import load_testset
from bench.systems import System, build_systems, check_unique_names
from bench.testsets.manifest import Manifest
from flashspeech.foundation.fields import FieldError
from suites.base import Suite

T = TypeVar("T")


@dataclass(frozen=True)
class Missing:
    """One piece a run cannot have: what it is (`test set librispeech-test-clean`, `suite wer`) and why."""

    what: str
    problem: str

    def __str__(self) -> str:
        return f"{self.what}: {self.problem}"


class PreflightError(FieldError):
    """Something a run needs is missing; the message has one line per piece."""

    def __init__(self, missing: list[Missing], config: str):
        self.missing = missing
        lines = [f"{config}: {len(missing)} missing piece(s), nothing generated:", *(f"  {m}" for m in missing)]
        super().__init__("\n".join(lines))


@dataclass
class Ready:
    """What loaded, for the run to use, and what is missing."""

    testsets: list[tuple[str, Manifest]] = field(default_factory=list)
    systems: list[System] = field(default_factory=list)
    suites: list[Suite] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)  # one line per piece that loaded, for `run --check`

    def raise_for_missing(self, config: str) -> Ready:
        if self.missing:
            raise PreflightError(self.missing, config)
        return self


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, (FileNotFoundError, FieldError)) else f"{type(exc).__name__}: {text}"


def _attempt(ready: Ready, what: str, load: Callable[[], T]) -> T | None:
    try:
        return load()
    except Exception as exc:  # every failure is named and counted, the check goes on
        ready.missing.append(Missing(what, _one_line(exc)))
        return None


def check_testset(cfg: TestSetConfig) -> Manifest:
    """The test set, checked: items to run, and the import the config asks for (`TestSetConfig.librispeech`)."""
    manifest = load_testset(cfg)
    if not len(manifest):
        raise ValueError(f"no valid item in {manifest.source or cfg.name} ({len(manifest.problems)} problem(s))")
    wanted = cfg.librispeech
    if wanted is not None:
        record = manifest.provenance
        if record is None:
            raise ValueError(
                f"{cfg.manifest} has no import record; make it with `flashspeech-bench data import librispeech "
                f"<LibriSpeech/test-clean> -o {cfg.manifest} --every-nth {wanted.every_nth}`"
            )
        if record.options != wanted:
            raise ValueError(
                f"{cfg.manifest} was imported with {_options(record.options)}, this config needs {_options(wanted)}: "
                "import it again with those options"
            )
    return manifest


def _options(options: Any) -> str:
    return ", ".join(f"{k} {v}" for k, v in vars(options).items())


def preflight(config: BenchConfig, load_suites: bool = True) -> Ready:
    """Load everything `config` needs; `load_suites=False` builds the suites without loading their models (a Ray
    run loads them on its workers, so the driver checks them on the CPU and drops them)."""
    from suites import build_suite

    ready = Ready()
    if config.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ready.missing.append(Missing(f"device {config.device}", "torch sees no CUDA device here (--device cpu?)"))
    for cfg in config.testsets:
        manifest = _attempt(ready, f"test set {cfg.name}", lambda cfg=cfg: check_testset(cfg))
        if manifest is not None:
            ready.testsets.append((cfg.name, manifest))
            ready.loaded.append(f"test set {cfg.name}: {len(manifest)} items from {manifest.source or 'embedded'}")
    for sys_cfg in config.systems:
        what = f"system {sys_cfg.name or sys_cfg.kind}"
        built = _attempt(ready, what, lambda c=sys_cfg: build_systems([c], config.device))
        if built is not None:
            ready.systems += built
            ready.loaded.append(f"{what}: {', '.join(s.name for s in built)}")
    _attempt(ready, "systems", lambda: check_unique_names(ready.systems))
    for name, manifest in ready.testsets:  # once every system built: a set no system can run is named
        if ready.systems and not any(manifest.task in s.tasks for s in ready.systems):
            problem = f"a {manifest.task} set, and no system that loaded does {manifest.task} (`tasks` of each kind)"
            ready.missing.append(Missing(f"test set {name}", problem))
    for name, options in config.suites.items():
        device = config.device if load_suites else "cpu"
        suite = _attempt(ready, f"suite {name}", lambda n=name, o=options, d=device: build_suite(n, device=d, **o))
        if suite is None:
            continue
        if _attempt(ready, f"suite {name}", lambda s=suite: _loaded(s)) is not None:
            ready.loaded.append(f"suite {name}: {_describe(suite)}")
            if load_suites:
                ready.suites.append(suite)
    return ready


def _loaded(suite: Suite) -> Suite:
    suite.load()
    return suite


def _describe(suite: Suite) -> str:
    info = suite.describe()
    parts = [str(info[k]) for k in ("backend", "model", "label") if info.get(k)]
    return ", ".join(dict.fromkeys(parts)) or "ready"
