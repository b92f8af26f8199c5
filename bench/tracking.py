"""Logging a benchmark run to MLflow, and reading one back.

`log_results` makes one parent run (config, versions, device; the results tables and reports as artifacts)
and one child run per system (its aggregates as metrics, finite values only; its items as a CSV; a few audio
samples). Children carry the standard ``mlflow.parentRunId`` tag, so the UI nests them. The default store is
SQLite in the output directory (``mlflow.db``, artifacts in ``mlartifacts/``); ``MLFLOW_TRACKING_URI`` or an
explicit URI (a flag) wins. Everything goes through an `MlflowClient` bound to that URI: no global MLflow state
changes, no fluent run is ever left active, and a run that fails mid-way ends FAILED (KILLED on Ctrl-C).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import posixpath
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest.mock import patch

import pandas as pd

from bench.results import Results

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "flashspeech-bench"
KIND_TAG = "flashspeech_bench.kind"
SYSTEM_TAG = "flashspeech_bench.system"
DEVICE_TAG = "flashspeech_bench.device"
UNAVAILABLE_TAG = "unavailable_metrics"
PARENT_TAG = "mlflow.parentRunId"
PROGRESS_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
RESULTS_ARTIFACT_DIR = "results"
MAX_KEY_LENGTH, MAX_PARAM_LENGTH, MAX_TAG_LENGTH = 250, 6000, 8000  # MLflow's limits (mlflow.utils.validation)
_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_\-. /]")


@dataclass
class TrackedRun:
    """Where a benchmark run was logged."""

    run_id: str
    children: dict[str, str]
    uri: str
    experiment_id: str
    artifact_uri: str = ""
    name: str = ""  # the parent run's name (the config's)

    @property
    def url(self) -> str | None:
        """The run's page in the MLflow UI, for an http(s) tracking server."""
        page = f"{self.uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return page if self.uri.startswith(("http://", "https://")) else None

    def describe(self) -> str:
        """One line for a terminal: `run 'smoke' (id 3f2a...) at sqlite:///...`, and the UI page on a server."""
        run = f"run {self.name!r} (id {self.run_id})" if self.name else f"run {self.run_id}"
        return f"{run} at {self.uri}; page: {self.url}" if self.url else f"{run} at {self.uri}"


@dataclass
class _Entries:
    """Params or tags under sanitised, unique keys with values cut to MLflow's limit."""

    limit: int
    values: dict[str, str] = field(default_factory=dict)

    def add(self, key: Any, value: Any) -> None:
        name, text = clean_key(key), truncate(_as_text(value), self.limit)
        base, n = name, 1
        while self.values.get(name, text) != text:  # two keys that sanitise alike: number the later one
            n += 1
            name = f"{base[: MAX_KEY_LENGTH - len(str(n)) - 1]}_{n}"
        self.values[name] = text

    def update(self, items: Mapping[str, Any], prefix: str = "") -> None:
        for key, value in flatten(items, prefix).items():
            self.add(key, value)


def tracking_uri(output_dir: str | Path, override: str | None = None) -> str:
    """An explicit URI, else ``MLFLOW_TRACKING_URI``, else SQLite in `output_dir` (``mlflow.db``)."""
    default = f"sqlite:///{Path(output_dir).expanduser().resolve() / 'mlflow.db'}"
    return override or os.environ.get("MLFLOW_TRACKING_URI", "").strip() or default


def quiet_mlflow() -> None:
    """MLflow and its database migrations (alembic) log INFO chatter on every store opening: keep warnings."""
    for name in ("mlflow", "alembic"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING:
            logger.setLevel(logging.WARNING)


@contextlib.contextmanager
def _store_warnings_silenced() -> Iterator[None]:
    """SQLAlchemy deprecations raised from MLflow's own store code when it is first opened."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="mlflow")
        yield


def path_like(name: str) -> bool:
    """Whether `name` would resolve to another name as a file path (MLflow rejects such keys)."""
    return posixpath.normpath(name) != name or name.startswith("/") or name in (".", "..")


def clean_key(key: Any) -> str:
    """A valid MLflow param/metric/tag key: [A-Za-z0-9_-. /], not path-like, at most 250 chars (hashed tail)."""
    raw = str(key)
    name = _BAD_KEY_CHARS.sub("_", raw) or "_"
    if path_like(name) or name.startswith("."):
        name = name.replace("/", "_")
        if name.startswith("."):
            name = "_" + name
    if len(name) > MAX_KEY_LENGTH:
        digest = hashlib.sha1(raw.encode("utf-8")).hexdigest()[:8]
        name = f"{name[: MAX_KEY_LENGTH - 9]}_{digest}"
    return name


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, with a marker saying how much was dropped."""
    if len(text) <= limit:
        return text
    marker = f"...[truncated: {len(text)} chars in all]"
    return text[: limit - len(marker)] + marker


def flatten(items: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys; other values (lists included) stay whole."""
    out: dict[str, Any] = {}
    for key, value in items.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _as_text(value: Any) -> str:
    return json.dumps(value, default=str) if isinstance(value, (list, tuple, dict)) else str(value)


def _finite(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    number = float(value)  # a non-numeric value is a bug upstream: let it raise
    return number if math.isfinite(number) else None


def _systems(results: Results) -> list[str]:
    """Systems in metadata order, then any other system found in the tables."""
    names = list((results.metadata.get("systems") or {}).keys())
    for frame in (results.aggregates, results.items):
        if "system" in frame.columns:
            names += [s for s in frame["system"].dropna().astype(str).unique() if s not in names]
    return names


def _rows(frame: pd.DataFrame, system: str) -> pd.DataFrame:
    return frame[frame["system"].astype(str) == system] if "system" in frame.columns else frame.iloc[0:0]


def _metrics(aggregates: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """``<suite>.<metric>`` (+ ``.ci_low``/``.ci_high``) for finite values; the keys whose value is not."""
    metrics: dict[str, float] = {}
    unavailable: list[str] = []
    for row in aggregates.itertuples(index=False):
        key = clean_key(f"{row.suite}.{row.metric}")
        value = _finite(row.value)
        if value is None:
            unavailable.append(key)
            continue
        metrics[key] = value
        for bound in ("ci_low", "ci_high"):
            limit = _finite(getattr(row, bound, None))
            if limit is not None:
                metrics[f"{key}.{bound}"] = limit
    return metrics, sorted(set(unavailable))


def _check_inputs(systems: list[str], artifacts: Mapping[str, Path], audio_samples: Mapping[str, list[Path]]) -> None:
    """Fail before any run exists: missing files, unknown systems, unsafe artifact names."""
    for name, path in artifacts.items():
        top = name.split("/")[0]
        if path_like(name) or name.startswith("..") or top in (RESULTS_ARTIFACT_DIR, "metadata.json"):
            raise ValueError(f"artifact name {name!r}: need a relative path outside results/ and metadata.json")
        if not Path(path).exists():
            raise FileNotFoundError(f"artifact {name!r}: {path} does not exist")
    for system, paths in audio_samples.items():
        if system not in systems:
            raise ValueError(f"audio samples for unknown system {system!r} (systems: {', '.join(systems)})")
        for path in paths:
            if not Path(path).is_file():
                raise FileNotFoundError(f"audio sample of {system}: {path} is not a file")


def _copy(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        shutil.copy2(source, dest)


def _experiment(client: MlflowClient, name: str, uri: str) -> str:
    """The experiment's id, created (artifacts next to a SQLite database) or restored when needed."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is None:
        database = _sqlite_path(uri)
        location = None if database is None else (database.parent / "mlartifacts").as_uri()
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created meanwhile by another process
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    if found.lifecycle_stage == "deleted":
        client.restore_experiment(found.experiment_id)
    return found.experiment_id


@contextlib.contextmanager
def _run(client: MlflowClient, experiment_id: str, name: str, tags: dict[str, str]) -> Iterator[str]:
    """A run that always ends: FINISHED, FAILED on an exception, KILLED on an interrupt."""
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    try:
        yield run_id
    except BaseException as error:
        status = "FAILED" if isinstance(error, Exception) else "KILLED"
        try:
            _terminate(client, run_id, status)
        except Exception as inner:  # keep the original error: it is the one that matters
            logging.getLogger(__name__).warning("could not mark MLflow run %s %s: %s", run_id, status, inner)
        raise
    _terminate(client, run_id, "FINISHED")


def _terminate(client: MlflowClient, run_id: str, status: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # on http stores MLflow prints a "View run" line per run
        client.set_terminated(run_id, status)


def open_client(uri: str, create: bool = False) -> MlflowClient:
    """An `MlflowClient` bound to `uri`, MLflow quieted; a SQLite store that does not exist is an error unless
    `create` (reading must never leave an empty database behind)."""
    from mlflow import MlflowClient

    quiet_mlflow()
    database = _sqlite_path(uri)
    if database is not None and not create and not database.is_file():
        raise FileNotFoundError(f"no MLflow database at {database}: pass the tracking URI the runs were logged to")
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    with _store_warnings_silenced():
        return MlflowClient(uri)


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working directory unless absolute)."""
    return Path(uri.removeprefix("sqlite:///").split("?")[0]).resolve() if uri.startswith("sqlite:///") else None


def _log(client: MlflowClient, run_id: str, params: _Entries, metrics: Mapping[str, float] | None = None) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    values = [Metric(k, v, now, 0) for k, v in (metrics or {}).items()]
    client.log_batch(run_id, metrics=values, params=[Param(k, v) for k, v in params.values.items()])


def log_results(
    results: Results,
    *,
    output_dir: str | Path,
    experiment: str = DEFAULT_EXPERIMENT,
    run_name: str | None = None,
    uri: str | None = None,
    artifacts: Mapping[str, Path] | None = None,
    audio_samples: Mapping[str, list[Path]] | None = None,
) -> TrackedRun:
    """Log `results` as one parent run with a nested run per system; see the module docstring.

    `artifacts` maps a name in the parent run's artifacts (``report.md``, ``plots``) to a file or directory;
    `audio_samples` maps a system to a few audio files, logged under ``audio/`` in its run.
    """
    from bench.lineage import Lineage

    artifacts, audio_samples = dict(artifacts or {}), dict(audio_samples or {})
    systems = _systems(results)
    _check_inputs(systems, artifacts, audio_samples)

    resolved = tracking_uri(output_dir, uri)
    client = open_client(resolved, create=True)
    with _store_warnings_silenced():
        experiment_id = _experiment(client, experiment, resolved)

    meta, record = results.metadata, results.record
    commit, device = record.provenance.commit, record.device.name
    common = {DEVICE_TAG: device} | ({"mlflow.source.git.commit": commit} if commit else {})
    common |= Lineage.of(meta).tags()  # what `--gate auto` and `history` select runs by (commit, device model...)
    name = run_name or str((meta.get("run") or {}).get("name") or DEFAULT_EXPERIMENT)

    params = _Entries(MAX_PARAM_LENGTH)
    params.update({"git_commit": commit or "unknown", "device": device, "systems": ",".join(systems)})
    for section, prefix in (("config", "config."), ("suites", "suite."), ("environment", "env.")):
        if isinstance(meta.get(section), Mapping):
            params.update(meta[section], prefix)
    params.update({k: v for k, v in record.provenance.packages.items() if v}, "version.")  # the run's own

    children: dict[str, str] = {}
    with (
        _run(client, experiment_id, name, {KIND_TAG: "parent", **common}) as parent_id,
        tempfile.TemporaryDirectory(prefix="fsb-mlflow-") as tmp,
    ):
        _log(client, parent_id, params)
        stage = Path(tmp) / "parent"
        results.save(stage / RESULTS_ARTIFACT_DIR)
        (stage / "metadata.json").write_text(json.dumps(meta, indent=1, default=str) + "\n", encoding="utf-8")
        for artifact, path in artifacts.items():
            _copy(Path(path), stage / artifact)
        client.log_artifacts(parent_id, str(stage))
        for system in systems:
            tags = {KIND_TAG: "system", SYSTEM_TAG: system, PARENT_TAG: parent_id, **common}
            with _run(client, experiment_id, system, tags) as child_id:
                children[system] = child_id
                _log_system(client, child_id, results, system, Path(tmp) / system, audio_samples.get(system, []))
        artifact_uri = client.get_run(parent_id).info.artifact_uri
    return TrackedRun(parent_id, children, resolved, experiment_id, artifact_uri or "", name)


def _log_system(
    client: MlflowClient, run_id: str, results: Results, system: str, stage: Path, audio: list[Path]
) -> None:
    """One system's params (kind, steps, task, its config), metrics, item rows and audio samples."""
    config = (results.metadata.get("systems") or {}).get(system) or {}
    key = results.record.key(system)
    items = _rows(results.items, system)
    params = _Entries(MAX_PARAM_LENGTH)
    params.add("kind", None if key is None else key.kind)
    params.add("steps", None if key is None else key.steps)
    params.add("task", None if key is None else key.task)
    params.update({k: v for k, v in config.items() if k not in ("kind", "steps", "key")})  # the key's fields are there
    metrics, unavailable = _metrics(_rows(results.aggregates, system))
    _log(client, run_id, params, metrics)
    client.set_tag(run_id, UNAVAILABLE_TAG, truncate(",".join(unavailable), MAX_TAG_LENGTH))

    stage.mkdir(parents=True)
    items.to_csv(stage / "items.csv", index=False)
    if len(groups := _rows(results.groups, system)):
        groups.to_csv(stage / "groups.csv", index=False)
    _rows(results.aggregates, system).to_csv(stage / "aggregates.csv", index=False)
    for i, path in enumerate(audio):  # same file names from different folders: number them
        dest = stage / "audio" / Path(path).name
        _copy(Path(path), dest.with_name(f"{i:02d}_{dest.name}") if dest.exists() else dest)
    client.log_artifacts(run_id, str(stage))


def load_run_results(run_id: str, uri: str | None = None) -> Results:
    """The `Results` logged with a parent run (a system's run resolves to its parent); `uri`: MLflow's default."""
    import mlflow

    resolved = uri or mlflow.get_tracking_uri()
    client = open_client(resolved)
    with _store_warnings_silenced():
        run = client.get_run(run_id)
    if run.data.tags.get(KIND_TAG) == "system" and run.data.tags.get(PARENT_TAG):
        run_id = run.data.tags[PARENT_TAG]
    names = {Path(f.path).name for f in client.list_artifacts(run_id, RESULTS_ARTIFACT_DIR)}
    if "results.json" not in names:
        raise FileNotFoundError(f"MLflow run {run_id} at {resolved} has no {RESULTS_ARTIFACT_DIR}/results.json")
    # MLflow draws a progress bar on stderr for every download unless told not to (read from the environment)
    with patch.dict(os.environ, {PROGRESS_ENV: "false"}), tempfile.TemporaryDirectory(prefix="fsb-mlflow-") as tmp:
        return Results.load(client.download_artifacts(run_id, RESULTS_ARTIFACT_DIR, tmp))
