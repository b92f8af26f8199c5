"""What made the numbers: git commit, device, torch, WER and SIM backends, test set (from `Results.metadata`).

Metadata read (each optional; a missing key reads as "not recorded"):

- `run.git_commit` (or `git_commit`, `git.commit`), `run.name`;
- `environment.device` / `gpu` / `torch` (else the rtf suite's `environment`);
- `suites.wer`: `backend`, `model`, `normalizer`; `suites.similarity`: `backend`, `label`, `comparable_to_papers`;
- `test_set` (a name, or a dict with `name` / `protocol` / `path`), else `config.test_set`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.results import Results
from reports.tables import is_missing

NOT_RECORDED = "not recorded"
RESEMBLYZER_LABEL = "resemblyzer (GE2E d-vector, not WavLM-TDNN)"
RESEMBLYZER_CAVEAT = (
    "SIM comes from resemblyzer (GE2E d-vector), NOT WavLM-TDNN: its scores have a different range "
    "and are not comparable to published SIM numbers."
)


def _get(mapping: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(key)
    return None if is_missing(mapping) else mapping


def suite_meta(results: Results, suite: str) -> dict[str, Any]:
    meta = _get(results.metadata, "suites", suite)
    return meta if isinstance(meta, dict) else {}


@dataclass(frozen=True)
class SimBackend:
    """The similarity backend as it must be labelled."""

    name: str | None
    label: str
    comparable_to_papers: bool
    is_resemblyzer: bool

    @property
    def caveat(self) -> str | None:
        if self.is_resemblyzer:
            return RESEMBLYZER_CAVEAT
        if self.name is None:
            return "The similarity backend is not recorded: SIM is not comparable to published numbers."
        if not self.comparable_to_papers:
            return f"SIM backend {self.label} is not marked comparable to papers (WavLM-TDNN is)."
        return None


def sim_backend(results: Results) -> SimBackend:
    meta = suite_meta(results, "similarity")
    name = _get(meta, "backend") or _get(meta, "embedder", "backend")
    label = _get(meta, "label") or _get(meta, "embedder", "label")
    resemblyzer = "resemblyzer" in f"{name} {label}".lower()
    if resemblyzer and "not wavlm-tdnn" not in str(label).lower():
        label = RESEMBLYZER_LABEL  # a resemblyzer run never reads as WavLM-TDNN, whatever was recorded
    comparable = _get(meta, "comparable_to_papers")
    if comparable is None:
        comparable = _get(meta, "embedder", "comparable_to_papers")
    return SimBackend(
        name=None if name is None else str(name),
        label=str(label or name or NOT_RECORDED),
        comparable_to_papers=bool(comparable) and not resemblyzer,
        is_resemblyzer=resemblyzer,
    )


@dataclass(frozen=True)
class WerBackend:
    name: str | None
    model: str | None
    normalizer: str | None

    @property
    def label(self) -> str:
        if self.name is None:
            return NOT_RECORDED
        return self.name if self.model is None else f"{self.name} ({self.model})"


def wer_backend(results: Results) -> WerBackend:
    meta = suite_meta(results, "wer")
    model = _get(meta, "model") or _get(meta, "model_name") or _get(meta, "checkpoint")
    backend, normalizer = _get(meta, "backend"), _get(meta, "normalizer")
    return WerBackend(
        name=None if backend is None else str(backend),
        model=None if model is None else str(model),
        normalizer=None if normalizer is None else str(normalizer),
    )


@dataclass(frozen=True)
class Device:
    name: str | None
    gpu: str | None
    torch: str | None

    @property
    def is_gpu(self) -> bool:
        return self.gpu is not None or (self.name or "").lower().startswith(("cuda", "gpu"))

    @property
    def label(self) -> str:
        if self.name is None and self.gpu is None:
            return NOT_RECORDED
        return " ".join(p for p in (self.name, f"({self.gpu})" if self.gpu else None) if p)


def device(results: Results) -> Device:
    envs = (_get(results.metadata, "environment"), _get(suite_meta(results, "rtf"), "environment"))
    values = []
    for key in ("device", "gpu", "torch"):
        value = next((v for v in (_get(env, key) for env in envs) if v is not None), None)
        values.append(None if value is None else str(value))
    return Device(*values)


def git_commit(results: Results) -> str | None:
    md = results.metadata
    commit = _get(md, "run", "git_commit") or _get(md, "git_commit") or _get(md, "git", "commit")
    return None if commit is None else str(commit)


def test_set(results: Results) -> str | None:
    """The test set's description (name, protocol, path joined), or None when not recorded."""
    md = results.metadata
    value = _get(md, "test_set") or _get(md, "run", "test_set") or _get(md, "config", "test_set")
    if isinstance(value, dict):
        parts = [str(value[k]) for k in ("name", "protocol", "subset", "path") if not is_missing(value.get(k))]
        return " / ".join(dict.fromkeys(parts)) or None
    return None if value is None else str(value)


def provenance(results: Results) -> list[tuple[str, str]]:
    """(label, value) pairs for the report's provenance section."""
    md = results.metadata
    dev, wer, sim = device(results), wer_backend(results), sim_backend(results)
    sim_text = sim.label + ("" if sim.caveat is None else f". {sim.caveat}")
    pairs = [
        ("Run", str(_get(md, "run", "name") or NOT_RECORDED)),
        ("Git commit", git_commit(results) or NOT_RECORDED),
        ("Device", dev.label),
        ("torch", dev.torch or NOT_RECORDED),
        ("Test set", test_set(results) or NOT_RECORDED),
        ("WER backend", wer.label),
        ("WER normaliser", wer.normalizer or NOT_RECORDED),
        ("SIM backend", sim_text),
    ]
    for suite in ("prosody", "rtf"):
        backend = _get(suite_meta(results, suite), "backend") or _get(suite_meta(results, suite), "source")
        if backend is not None:
            pairs.append((f"{suite} backend", str(backend)))
    return pairs
