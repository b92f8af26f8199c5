"""Declarative benchmark configs: TOML files in `bench/configs/bench/`, dataclasses here, CLI overrides.

A config names the test sets, the systems (with their step counts), the seeds, the suites with their
backends, the device and the output directory. Any field can be overridden from the command line with
`--set dotted.key=<TOML value>`, e.g. `--set seeds=[0,1,2]`, `--set systems.0.steps=[1,2]`,
`--set suites.wer.backend="hubert"`.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.execution import ExecutorConfig, ExecutorError
from bench.systems import SystemConfig, SystemConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A config that cannot be used; the message names the field."""


@dataclass
class TestSetConfig:
    """An embedded set by name (`smoke`, `real`), or a manifest / protocol copy on disk."""

    name: str
    manifest: str | None = None  # a JSONL manifest path (else the embedded set `name`)
    max_items: int | None = None

    __test__ = False  # not a pytest class


@dataclass
class BenchConfig:
    name: str = "bench"
    output_dir: str = "outputs/bench"
    cache_dir: str | None = None  # generation cache; default <output_dir>/../generation-cache
    device: str = "cpu"
    seeds: list[int] = field(default_factory=lambda: [0])
    testsets: list[TestSetConfig] = field(default_factory=list)
    systems: list[SystemConfig] = field(default_factory=list)
    suites: dict[str, dict[str, Any]] = field(default_factory=dict)
    mlflow: bool = True
    tracking_uri: str | None = None  # default: sqlite in output_dir (or $MLFLOW_TRACKING_URI)
    reports: bool = True
    bootstrap_resamples: int = 1000
    retime: bool = False  # regenerate cached generations so that every timing (RTF) is this run's
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where units run: local, or a Ray cluster

    def to_dict(self) -> dict[str, Any]:
        """The table `from_dict` reads (systems flat, as in the TOML files)."""
        return {**asdict(self), "systems": [s.to_dict() for s in self.systems]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchConfig:
        data = copy.deepcopy(data)
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        try:
            data["testsets"] = [TestSetConfig(**t) for t in data.get("testsets", [])]
        except TypeError as exc:
            raise ConfigError(f"bad test set entry: {exc}") from exc
        executor = data.get("executor", {})
        if not isinstance(executor, dict):
            raise ConfigError(f"executor: expected a table, got {executor!r}")
        unknown = set(executor) - set(ExecutorConfig.__dataclass_fields__)
        if unknown:
            known_keys = sorted(ExecutorConfig.__dataclass_fields__)
            raise ConfigError(f"executor: unknown keys {sorted(unknown)}; known: {known_keys}")
        data["executor"] = ExecutorConfig(**executor)
        try:
            data["systems"] = [SystemConfig.from_dict(s, f"systems.{i}") for i, s in enumerate(data.get("systems", []))]
        except SystemConfigError as exc:
            raise ConfigError(str(exc)) from exc
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        if not self.testsets:
            raise ConfigError("no test sets: add at least one [[testsets]] entry")
        if not self.systems:
            raise ConfigError("no systems: add at least one [[systems]] entry")
        if not self.seeds or any(not isinstance(s, int) for s in self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of integers, got {self.seeds!r}")
        try:
            self.executor.validate()
        except ExecutorError as exc:
            raise ConfigError(str(exc)) from exc


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node: Any = data
    for i, key in enumerate(keys[:-1]):
        nxt = keys[i + 1]
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, [] if nxt.isdigit() else {})
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=<TOML value>` -> ("a.b", value); a bare word that is not TOML is taken as a string."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected dotted.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip(), value


def load_toml(
    source: str | Path, overrides: Sequence[str] = (), *, what: str = "config", group: str = "bench"
) -> tuple[dict[str, Any], str]:
    """A TOML file, or the shipped `bench/configs/<group>/<source>.toml`, with `--set` overrides applied.

    Shipped configs are grouped by what runs them: `bench` (runs), `speed` (speed runs), `train` (recipes).

    Returns the table and a name for it (the file's stem, or the shipped name). Errors name the source.
    """
    path = Path(source)
    if path.is_file():
        text, name = path.read_text(encoding="utf-8"), path.stem
    else:
        shipped = resources.files("bench").joinpath(f"configs/{group}/{source}.toml")
        if not shipped.is_file():
            raise ConfigError(f"{what} {source!r}: no such file, and no shipped config of that name")
        text, name = shipped.read_text(encoding="utf-8"), str(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML ({exc})") from exc
    for override in overrides:
        key, value = parse_override(override)
        try:
            _set_dotted(data, key, value)
        except (IndexError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"override {override!r}: {exc}") from exc
    return data, name


def load_config(source: str | Path, overrides: list[str] = ()) -> BenchConfig:
    """A config file, or the name of a shipped one (`smoke`, `paper`), with `--set` overrides applied."""
    return BenchConfig.from_dict(load_toml(source, overrides)[0])
