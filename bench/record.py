"""The typed run record: what a run was (its systems, its device, its provenance), written once by the runner
into `Results.metadata` and read back as fields by results, MLflow, the gate, history and reports.

Labels (`"smoke:flashspeech@2"`) are rendered from a `SystemKey` for people and used as the `system` column's
value; nothing parses them. `RunRecord.of(metadata)` is the one reader of a run's metadata; it also reads runs
written before the record existed (their results directories and MLflow baselines stay comparable), and that
legacy reading lives only here (`_legacy_*`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

# the packages whose versions every run records (one list: the runner and the MLflow logger read it)
PACKAGES = (
    "flashspeech-bench", "torch", "torchaudio", "openai-whisper", "jiwer", "transformers", "mlflow", "numpy",
    "pandas",
)  # fmt: skip
UNRECORDED = "not recorded"  # the device name of a run that recorded none
LOCK_ENV = "FLASHSPEECH_BENCH_LOCK"  # another lock file to hash (an installed, non-editable package has none)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """name -> installed version (None when not installed) of this process's packages."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def lock_file() -> Path | None:
    """The dependency lock this code was installed from: `FLASHSPEECH_BENCH_LOCK`, else the checkout's."""
    if override := os.environ.get(LOCK_ENV, "").strip():
        return Path(override)
    path = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
    return path if path.is_file() else None


def lock_digest(path: Path | None = None) -> str | None:
    """sha256 (16 hex digits) of the lock file; None when there is none."""
    path = path or lock_file()
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] if path else None
    except OSError:
        return None


def evaluator_digest(evaluators: Mapping[str, Any]) -> str | None:
    """One digest over the suites' evaluator fingerprints (suite -> {"digest": ...}); None without suites."""
    digests = {str(k): v.get("digest") for k, v in evaluators.items() if isinstance(v, Mapping)}
    if not digests:
        return None
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SystemKey:
    """Which system produced a row: the test set it ran on, its name (`flashspeech@2`), the series a steps curve
    joins (the config entry: `flashspeech`), its kind, how it samples (family, sampler, steps, NFE; None for a
    system that does not sample), the task of the test set (`tts`, or `vc`: voice conversion) and, for a voice
    conversion system, the noise level it diffuses the source to (the series' sweep axis)."""

    testset: str
    name: str
    kind: str
    series: str | None = None
    family: str | None = None
    sampler: str | None = None
    steps: int | None = None
    nfe: int | None = None
    task: str = "tts"
    noise_level: float | None = None

    @property
    def label(self) -> str:
        """The `system` column's value and the name people read: `<test set>:<system>` (a system recorded without
        a test set: its name)."""
        return f"{self.testset}:{self.name}" if self.testset else self.name

    @property
    def curve(self) -> str:
        """The series a steps curve joins (the system's own name when it has none)."""
        return self.series or self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, system: Any, testset: str, task: str = "tts") -> SystemKey:
        """The key of a built `bench.systems.System` on `testset` of `task` (its `sampling()` says how it samples)."""
        sampling = system.sampling()
        return cls(
            testset=testset,
            task=task,
            noise_level=sampling.get("noise_level"),
            name=system.name,
            kind=system.kind,
            series=sampling.get("series") or system.name,  # a system that does not sample is its own series
            family=sampling.get("family"),
            sampler=sampling.get("sampler"),
            steps=sampling.get("steps"),
            nfe=sampling.get("nfe"),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemKey:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: data.get(k) for k in known if data.get(k) is not None}
        for name in ("steps", "nfe"):
            if name in values:
                values[name] = int(values[name])
        if "noise_level" in values:
            values["noise_level"] = float(values["noise_level"])
        return cls(**values)


@dataclass(frozen=True)
class Device:
    """The device a run generated and timed on: its kind (`cpu`, `cuda`), the name asked for (`cuda:1`), its model
    (the GPU's name, or the CPU's model on a CPU run) and the software and threads it ran with."""

    name: str = "cpu"
    model: str | None = None
    host: str | None = None
    driver: str | None = None
    torch: str | None = None
    cuda: str | None = None
    threads: int | None = None
    cpu_count: int | None = None

    @property
    def kind(self) -> str:
        return self.name.split(":")[0]

    @property
    def identity(self) -> str | None:
        """`<kind>:<model>`: what must match for timings to compare (the index is dropped; unknown model: None)."""
        return f"{self.kind}:{self.model}" if self.model else None

    @property
    def is_gpu(self) -> bool:
        return self.kind == "cuda"

    @property
    def recorded(self) -> bool:
        return self.name != UNRECORDED

    @property
    def label(self) -> str:
        """`cuda:0 (NVIDIA H100 80GB HBM3)`, `cpu (AMD EPYC 7B13)`, for people."""
        return f"{self.name} ({self.model})" if self.model else self.name

    @property
    def slug(self) -> str:
        """`nvidia-h100-80gb-hbm3` for a GPU, `cpu` otherwise (file names)."""
        text = self.model if self.is_gpu and self.model else self.kind
        return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "device"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Device:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{"name": UNRECORDED, **{k: v for k, v in data.items() if k in known and v is not None}})

    @classmethod
    def current(cls, name: str) -> Device:
        """This process's device `name` as it is now."""
        from flashspeech.foundation.environment import cpu_model, environment

        return cls.from_environment(environment(name), cpu=cpu_model(), host=platform.node())

    @classmethod
    def from_environment(cls, env: Mapping[str, Any], cpu: str | None = None, host: str | None = None) -> Device:
        """From a `flashspeech.foundation.environment.environment()` dict (and the CPU model, when known)."""
        name = str(env.get("device") or "cpu")
        gpu = env.get("gpu")
        model = gpu if name.startswith("cuda") else (cpu or env.get("cpu"))
        return cls(
            name=name,
            model=None if model is None else str(model),
            host=host or env.get("host"),
            driver=env.get("driver"),
            torch=env.get("torch"),
            cuda=env.get("cuda"),
            threads=env.get("torch_threads"),
            cpu_count=env.get("cpu_count"),
        )


@dataclass(frozen=True)
class Provenance:
    """What made the numbers: the commit and branch of the code, the dependency lock, the evaluators (one digest
    over every suite's fingerprint) and the package versions."""

    commit: str | None = None
    branch: str | None = None
    lock_sha256: str | None = None
    evaluator: str | None = None
    packages: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def code_version(self) -> str | None:
        return self.packages.get("flashspeech-bench")

    @property
    def short_commit(self) -> str:
        return (self.commit or "unknown commit")[:10]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "packages": dict(self.packages)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})


@dataclass(frozen=True)
class RunRecord:
    """A run's identity: the config it ran, its device, its provenance and its systems (label -> key)."""

    config: str | None
    device: Device
    provenance: Provenance
    systems: Mapping[str, SystemKey] = field(default_factory=dict)

    def key(self, label: str) -> SystemKey | None:
        return self.systems.get(label)

    def system_keys(self, testset: str | None = None) -> list[SystemKey]:
        """The systems in run order, those of `testset` only when given."""
        return [k for k in self.systems.values() if testset is None or k.testset == testset]

    @property
    def testsets(self) -> list[str]:
        return list(dict.fromkeys(k.testset for k in self.systems.values()))

    def find(self, testset: str, series: str, steps: int | None = None) -> SystemKey | None:
        """The system of `series` (at `steps` when given) on `testset`; a system without a series is its own."""
        for key in self.system_keys(testset):
            if key.curve == series and (steps is None or key.steps == steps):
                return key
        return None

    def steps(self, testset: str, series: str) -> list[int]:
        """The step counts the run has of `series` on `testset`, ascending."""
        return sorted({k.steps for k in self.system_keys(testset) if k.curve == series and k.steps is not None})

    def metadata(self) -> dict[str, Any]:
        """The `record` section of `Results.metadata` (the systems are written under `systems`, one entry each)."""
        return {"config": self.config, "device": self.device.to_dict(), "provenance": self.provenance.to_dict()}

    @classmethod
    def of(cls, metadata: Mapping[str, Any]) -> RunRecord:
        """From a run's `Results.metadata` (as the runner writes it; older runs through `_legacy_*`)."""
        section = _mapping(metadata.get("record"))
        systems = {str(label): _system_key(str(label), _mapping(entry)) for label, entry in _systems(metadata)}
        if section:
            return cls(
                config=section.get("config"),
                device=Device.from_dict(_mapping(section.get("device"))),
                provenance=Provenance.from_dict(_mapping(section.get("provenance"))),
                systems=systems,
            )
        return cls(
            config=_mapping(metadata.get("run")).get("name"),
            device=_legacy_device(metadata),
            provenance=_legacy_provenance(metadata),
            systems=systems,
        )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _systems(metadata: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return list(_mapping(metadata.get("systems")).items())


def _system_key(label: str, entry: Mapping[str, Any]) -> SystemKey:
    """A system's key from its `systems.<label>` entry (`key` since the record; older runs: the entry itself)."""
    key = _mapping(entry.get("key"))
    if key:
        return SystemKey.from_dict(key)
    testset, name = entry.get("testset"), entry.get("name")
    if testset is None or name is None:  # written before systems recorded their test set: the whole label is a name
        testset, name = "", label
    return SystemKey.from_dict({**entry, "testset": testset, "name": name, "kind": entry.get("kind") or "unknown"})


def _legacy_device(metadata: Mapping[str, Any]) -> Device:
    """The device of a run written before the record: its `environment` and timing context."""
    env = _mapping(metadata.get("environment"))
    context = _mapping(_mapping(metadata.get("run")).get("timing_context"))
    merged = {**context, **{k: v for k, v in env.items() if v is not None}}
    if not merged.get("device"):
        merged["device"] = UNRECORDED
    return Device.from_environment(merged, cpu=context.get("cpu"), host=context.get("host"))


def _legacy_provenance(metadata: Mapping[str, Any]) -> Provenance:
    run = _mapping(metadata.get("run"))
    context = _mapping(run.get("timing_context"))
    return Provenance(
        commit=run.get("git_commit") or context.get("git_commit"),
        branch=run.get("branch"),
        lock_sha256=run.get("lock_sha256"),
        evaluator=evaluator_digest(_mapping(metadata.get("evaluators"))),
        packages=dict(_mapping(metadata.get("packages"))),
    )
