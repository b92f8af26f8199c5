"""Declarative benchmark configs: TOML files in `bench/configs/bench/`, dataclasses here, CLI overrides.

A config names the test sets, the systems (with their step counts), the seeds, the suites with their
backends, the device and the output directory. Any field can be overridden from the command line with
`--set dotted.key=<TOML value>`, e.g. `--set seeds=[0,1,2]`, `--set systems.0.steps=[1,2]`,
`--set suites.wer.backend="hubert"`. Every value is checked when the config loads (`typed_fields`; each suite's
table by the suite, `suites.check_suite_options`), before anything runs; an error names the dotted key.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.execution import ExecutorConfig, ExecutorError
from bench.systems import SystemConfig, SystemConfigError
from bench.testsets.provenance import LibriSpeechOptions
from flashspeech.foundation.fields import FieldError, is_int, typed_fields

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# the fewest bootstrap resamples for a 95 % percentile interval: 40 puts one draw beyond each 2.5 % tail
MIN_BOOTSTRAP_RESAMPLES = 40
_TOML_STARTS = ('"', "'", "[", "{")  # an override value starting so must be TOML (else a bare word is a string)


class ConfigError(FieldError):
    """A config that cannot be used; the message names the field."""


@dataclass
class TestSetConfig:
    """An embedded set by name (`smoke`, `real`), or a manifest / protocol copy on disk."""

    name: str
    manifest: str | None = None  # a JSONL manifest path (else the embedded set `name`)
    max_items: int | None = None
    # how the manifest must have been imported (`data import librispeech`): checked against its import record
    # before the run (`bench.run.preflight`), and what `flashspeech-bench paper` imports with
    librispeech: LibriSpeechOptions | None = None

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
        """The config of a TOML table, every value checked (`typed_fields`; systems by `SystemConfig.from_dict`)."""
        data = copy.deepcopy(data)
        values = typed_fields(cls, data, skip=("systems",), error=ConfigError)
        check_suites(values.get("suites", {}))
        systems = data.get("systems", [])
        if not isinstance(systems, list):
            raise ConfigError(f"systems: expected a list of tables, got {systems!r}")
        for i, entry in enumerate(systems):
            if not isinstance(entry, dict):
                raise ConfigError(f"systems.{i}: expected a table, got {entry!r}")
        try:
            values["systems"] = [SystemConfig.from_dict(s, f"systems.{i}") for i, s in enumerate(systems)]
        except SystemConfigError as exc:
            raise ConfigError(str(exc)) from exc
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Check what the types alone do not: something to run, and each value's range."""
        if not self.testsets:
            raise ConfigError("no test sets: add at least one [[testsets]] entry")
        if not self.systems:
            raise ConfigError("no systems: add at least one [[systems]] entry")
        if not self.seeds or any(not is_int(s) for s in self.seeds):
            raise ConfigError(f"seeds: expected a non-empty list of integers, got {self.seeds!r}")
        for i, testset in enumerate(self.testsets):
            if testset.max_items is not None and (not is_int(testset.max_items) or testset.max_items < 1):
                raise ConfigError(f"testsets.{i}.max_items: expected an integer >= 1, got {testset.max_items!r}")
        resamples = self.bootstrap_resamples
        if not is_int(resamples) or resamples < MIN_BOOTSTRAP_RESAMPLES:
            raise ConfigError(
                f"bootstrap_resamples: expected an integer >= {MIN_BOOTSTRAP_RESAMPLES}, got {resamples!r}"
            )
        try:
            self.executor.validate()
        except ExecutorError as exc:
            raise ConfigError(str(exc)) from exc


def check_suites(suites: dict[str, dict[str, Any]]) -> None:
    """Check each `[suites.<name>]` table against what that suite takes (its options, its backend's options)
    without building anything; ConfigError naming the dotted key, e.g. `suites.wer.beem: unknown key ...`."""
    from suites import check_suite_options

    for name, options in suites.items():
        try:
            check_suite_options(name, options, f"suites.{name}")
        except FieldError as exc:
            raise ConfigError(str(exc)) from exc


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, known: Collection[str] | None = None) -> None:
    """Set `dotted` (`a.0.b`: table keys and list indexes) in `data`, making the missing tables on the way;
    `known`: the top-level keys there may be. Raises ConfigError naming the `--set` key."""
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"--set {dotted}: empty key in the dotted path")
    if known is not None and keys[0] not in known:
        raise ConfigError(f"--set {dotted}: unknown key {keys[0]!r} (known: {', '.join(known)})")
    node: Any = data
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[:depth])  # the path of `node`
        if isinstance(node, list):
            if not key.isdigit():
                raise ConfigError(f"--set {dotted}: {where} is a list: expected an index, got {key!r}")
            if int(key) >= len(node):
                label = keys[depth - 1] if depth and not keys[depth - 1].isdigit() else "entries"
                raise ConfigError(f"--set {dotted}: index {key} out of range ({len(node)} {label})")
            index: int | str = int(key)
        elif isinstance(node, dict):
            index = key
            if not last and key not in node:
                node[key] = [] if keys[depth + 1].isdigit() else {}
        else:
            raise ConfigError(f"--set {dotted}: {where} is {node!r}, not a table or a list")
        if last:
            node[index] = value
        else:
            node = node[index]


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=<TOML value>` -> ("a.b", value); a bare word that is not TOML is taken as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text}: expected dotted.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if raw.strip().startswith(_TOML_STARTS):
            problem = str(exc).split(" (at ")[0]
            raise ConfigError(f"--set {key}: {raw.strip()!r} is not a valid TOML value ({problem})") from exc
        value = raw
    return key, value


def load_toml(
    source: str | Path,
    overrides: Sequence[str] = (),
    *,
    what: str = "config",
    group: str = "bench",
    known: Collection[str] | None = None,
) -> tuple[dict[str, Any], str]:
    """A TOML file, or the shipped `bench/configs/<group>/<source>.toml`, with `--set` overrides applied.

    Shipped configs are grouped by what runs them: `bench` (runs), `speed` (speed runs), `train` (recipes).
    `known`: the top-level keys an override may set (None: any).

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
        _set_dotted(data, *parse_override(override), known)
    return data, name


def load_config(source: str | Path, overrides: Sequence[str] = ()) -> BenchConfig:
    """A config file, or the name of a shipped one (`smoke`, `paper`), with `--set` overrides applied."""
    known = [f.name for f in dataclasses.fields(BenchConfig)]
    return BenchConfig.from_dict(load_toml(source, overrides, known=known)[0])
