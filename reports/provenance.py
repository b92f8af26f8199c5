"""What made the numbers: git commit, device, torch, WER, SIM and MOS backends, test set (from `Results.metadata`).

Metadata read (each optional; a missing key reads as "not recorded"):

- the run record (`Results.record`): commit, device (name, model, torch), each system's test set; `run.name`;
- `suites.wer`: `backend`, `model`, `normalizer`; `suites.similarity`: `backend`, `label`, `comparable_to_papers`;
  `suites.mos`: `backend`, `predictor` (only the `utmos` backend is the paper's UTMOS, whatever else is recorded);
- `testsets` (name -> {items}) and `config.testsets` ({name, manifest}); else a single `test_set` (a name, or a
  dict with `name` / `protocol` / `path`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.results import Results
from bench.testsets.provenance import ImportRecord
from reports.headline import timing_warnings
from reports.tables import is_missing, suites_run

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
    def short(self) -> str:
        """For axis labels: never WavLM-TDNN for a resemblyzer run."""
        if self.is_resemblyzer:
            return "resemblyzer, not WavLM-TDNN"
        return self.name or NOT_RECORDED

    @property
    def caveat(self) -> str | None:
        if self.is_resemblyzer:
            return RESEMBLYZER_CAVEAT
        if self.name is None:
            return "The similarity backend is not recorded: SIM is not comparable to published numbers."
        if not self.comparable_to_papers:
            return f"SIM backend {self.label} is not marked comparable to papers (WavLM-TDNN is)."
        return None


def sim_backend(results: Results) -> SimBackend | None:
    """The similarity suite's backend, or None when no similarity suite ran."""
    meta = suite_meta(results, "similarity")
    if not meta and "similarity" not in suites_run(results):
        return None
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


PAPER_MOS_BACKEND = "utmos"
UTMOS_LABEL = "UTMOS22 strong"


@dataclass(frozen=True)
class MosPredictor:
    """The MOS suite's predictor as it must be labelled: only `utmos` is the paper's UTMOS."""

    name: str | None
    label: str
    weights_sha256: str | None = None

    @property
    def is_utmos(self) -> bool:
        return self.name == PAPER_MOS_BACKEND

    @property
    def short(self) -> str:
        """For column and axis labels: an offline predictor always reads "not UTMOS"."""
        if self.is_utmos:
            return UTMOS_LABEL
        return f"{self.name or 'predictor not recorded'}, not UTMOS"

    @property
    def caveat(self) -> str | None:
        if self.is_utmos:
            return None
        if self.name is None:
            return "The MOS predictor is not recorded: MOS is not comparable to the paper's UTMOS."
        return (
            f"MOS comes from {self.label}, NOT the paper's UTMOS ({UTMOS_LABEL}): a different model on its own "
            "scale, not comparable to published UTMOS numbers."
        )


def mos_predictor(results: Results) -> MosPredictor | None:
    """The `mos` suite's predictor, or None when no mos suite ran."""
    meta = suite_meta(results, "mos")
    if not meta and "mos" not in suites_run(results):
        return None
    name = _get(meta, "backend")
    label = _get(meta, "predictor") or _get(meta, "label")
    if name != PAPER_MOS_BACKEND and name is not None and "not utmos" not in str(label).lower():
        label = f"{name} (offline, not UTMOS)"  # an offline predictor never reads as the paper's UTMOS
    sha = _get(meta, "checkpoint", "sha256") or _get(meta, "weights_sha256")
    return MosPredictor(
        name=None if name is None else str(name),
        label=str(label or name or NOT_RECORDED),
        weights_sha256=None if sha is None else str(sha),
    )


@dataclass(frozen=True)
class WerBackend:
    name: str | None
    model: str | None
    normalizer: str | None
    decoding: str | None = None  # "greedy" / "beam 5", and the compute type where the backend records one

    @property
    def label(self) -> str:
        if self.name is None:
            return NOT_RECORDED
        details = "; ".join(d for d in (self.model, self.decoding) if d)
        return f"{self.name} ({details})" if details else self.name

    @property
    def short(self) -> str:
        """For axis labels: backend and model name without details."""
        if self.name is None:
            return NOT_RECORDED
        model = None if self.model is None else Path(self.model.split(" (")[0]).name
        return self.name if not model else f"{self.name} {model}"


def wer_backend(results: Results) -> WerBackend:
    meta = suite_meta(results, "wer")
    model = _get(meta, "model")  # every ASR backend describes its weights as `model`
    backend, normalizer = _get(meta, "backend"), _get(meta, "normalizer")
    decoding = None
    if isinstance(_get(meta, "decoding"), dict):  # the Whisper backends record their decoding options
        beam = _get(meta, "decoding", "beam_size")
        decoding = "greedy" if beam in (None, 1) else f"beam {beam}"
        compute = _get(meta, "compute_type")
        decoding += "" if compute is None else f", {compute}"
    return WerBackend(
        name=None if backend is None else str(backend),
        model=None if model is None else str(model),
        normalizer=None if normalizer is None else str(normalizer),
        decoding=decoding,
    )


def _describe(value: Any) -> str | None:
    if isinstance(value, dict):
        keys = ("name", "protocol", "subset", "manifest", "path")
        parts = [str(value[k]) for k in keys if not is_missing(value.get(k))]
        return " / ".join(dict.fromkeys(parts)) or None
    return None if is_missing(value) else str(value)


def describe_testsets(results: Results) -> dict[str, str]:
    """Test set name -> description (name, manifest, item count), from `testsets` / `config.testsets` /
    a single `test_set` entry."""
    md = results.metadata
    out: dict[str, str] = {}
    for entry in _get(md, "config", "testsets") or []:
        if isinstance(entry, dict) and not is_missing(entry.get("name")):
            out[str(entry["name"])] = _describe(entry) or str(entry["name"])
    for name, info in (_get(md, "testsets") or {}).items():
        described = out.get(str(name), str(name))
        items = _get(info, "items")
        out[str(name)] = described + (f" ({items} items)" if items is not None else "")
    single = _get(md, "test_set") or _get(md, "run", "test_set") or _get(md, "config", "test_set")
    if single is not None and not out:
        described = _describe(single)
        if described:
            out[described] = described
    return out


@dataclass(frozen=True)
class TestsetImport:
    """What a run recorded of an imported test set: its import record (None: not imported, or not recorded), the
    items that ran and the digest of the manifest's item lines as the run read them."""

    name: str
    record: ImportRecord | None
    ran_items: int | None
    items_sha256: str | None

    __test__ = False  # not a pytest class


def testset_import(results: Results, name: str | None) -> TestsetImport:
    """The import facts of test set `name` from results.json (`testsets.<name>`)."""
    info = (_get(results.metadata, "testsets") or {}).get(name) if name else None
    info = info if isinstance(info, dict) else {}
    raw = info.get("import")
    try:
        record = None if not isinstance(raw, dict) else ImportRecord.from_dict(raw, f"testsets.{name}.import")
    except ValueError:
        record = None
    items = info.get("items")
    return TestsetImport(str(name), record, None if items is None else int(items), info.get("items_sha256"))


def describe_testset(results: Results, system: str | None = None) -> str | None:
    """The description of `system`'s test set (its metadata `testset`), or of the run's only test set."""
    sets = describe_testsets(results)
    key = None if system is None else results.record.key(system)
    if key is not None and key.testset:
        return sets.get(key.testset, key.testset)
    return next(iter(sets.values())) if len(sets) == 1 else None


def report_title(results: Results) -> str:
    name = _get(results.metadata, "run", "name")
    return "flashspeech-bench report" + (f": {name}" if name else "")


def provenance(results: Results) -> list[tuple[str, str]]:
    """(label, value) pairs for the report's provenance section."""
    md, record = results.metadata, results.record
    dev, wer, sim = record.device, wer_backend(results), sim_backend(results)
    pairs = [
        ("Run", str(_get(md, "run", "name") or NOT_RECORDED)),
        ("Git commit", record.provenance.commit or NOT_RECORDED),
        ("Device", dev.label),
        ("torch", dev.torch or NOT_RECORDED),
        ("Test sets", "; ".join(describe_testsets(results).values()) or NOT_RECORDED),
        ("WER backend", wer.label),
        ("WER normaliser", wer.normalizer or NOT_RECORDED),
    ]
    if sim is not None:
        pairs.append(("SIM backend", sim.label + ("" if sim.caveat is None else f". {sim.caveat}")))
    mos = mos_predictor(results)
    if mos is not None:
        digest = f" (weights sha256 {mos.weights_sha256[:12]}…)" if mos.weights_sha256 else ""
        pairs.append(("MOS predictor", mos.label + digest + ("" if mos.caveat is None else f". {mos.caveat}")))
    for suite in ("prosody", "rtf"):
        backend = _get(suite_meta(results, suite), "backend") or _get(suite_meta(results, suite), "source")
        if backend is not None:
            pairs.append((f"{suite} backend", str(backend)))
    return pairs


def _spk_id_legend(results: Results) -> list[str]:
    """The speaker-ID line, only for runs that have the metric (with its candidate count)."""
    agg = results.aggregates
    if agg.empty or not {"suite", "metric", "value"} <= set(agg.columns):
        return []
    sim = agg[agg["suite"] == "similarity"]
    values = pd.to_numeric(sim.loc[sim["metric"] == "spk_id_acc", "value"], errors="coerce").dropna()
    if values.empty:
        return []
    counts = pd.to_numeric(sim.loc[sim["metric"] == "spk_id_speakers", "value"], errors="coerce").dropna()
    among = f"{int(counts.max())} candidate speakers" if not counts.empty else "the candidate speakers"
    return [
        f"spk-ID acc: fraction of samples whose nearest speaker centroid (cosine; centroid = mean prompt embedding "
        f"per speaker over the prompts scored together) is the prompt's speaker, among {among} "
        "(chance = 1 / candidates)."
    ]


def metric_legend(results: Results) -> list[str]:
    """How to read the headline numbers: definitions and the backends behind them."""
    wer, sim, dev = wer_backend(results), sim_backend(results), results.record.device
    lines = [
        f"WER: corpus WER (word errors / reference words, as a fraction) from {wer.label}, "
        f"normaliser {wer.normalizer or NOT_RECORDED}.",
        *(
            []
            if sim is None
            else [
                f"SIM-o / SIM-r / SIM-target: mean cosine similarity to the prompt / the codec-reconstructed "
                f"prompt / the ground-truth recording, embeddings from {sim.label}."
            ]
        ),
        *_spk_id_legend(results),
        f"RTF: total compute seconds / total audio seconds, on {dev.label}.",
        f"[low, high]: 95 % percentile bootstrap CI: {_bootstrap(results)}; every seed of an item resampled "
        "together; [no CI]: too few items for an interval.",
    ]
    mos = mos_predictor(results)
    if mos is not None:
        lines.append(_mos_legend(results, mos))
    if sim is not None and sim.caveat:
        lines.append(f"Caveat: {sim.caveat}")
    if mos is not None and mos.caveat:
        lines.append(f"Caveat: {mos.caveat}")
    return lines


def _mos_legend(results: Results, mos: MosPredictor) -> str:
    """The MOS line: the predictor, and what DNSMOS's extra columns are when it made them."""
    line = f"MOS: mean predicted mean opinion score (1-5, higher is better) per utterance from {mos.label}"
    if mos.name == "dnsmos":
        mos_is = _get(suite_meta(results, "mos"), "mos_is") or "ovrl"
        line += f" (MOS = {mos_is}; SIG / BAK / OVRL: DNSMOS P.835 signal / background / overall; P808: DNSMOS P.808)"
    return line + "."


def _bootstrap(results: Results) -> str:
    """How the run's CIs resampled (results.json: bootstrap); results that do not record it resampled items."""
    scheme = results.metadata.get("bootstrap")
    return str(scheme) if scheme else "items resampled (scheme not recorded)"


def report_warnings(results: Results) -> list[str]:
    """What a reader must know before reading any number: non-comparable SIM, an offline MOS predictor (not the
    paper's UTMOS), untrained systems, external programs the generation cache cannot tell apart, timings."""
    warnings = []
    for caveat in (getattr(sim_backend(results), "caveat", None), getattr(mos_predictor(results), "caveat", None)):
        if caveat:
            warnings.append(caveat)
    systems = results.metadata.get("systems") or {}
    untrained = sorted(n for n, info in systems.items() if isinstance(info, dict) and info.get("trained") is False)
    if untrained:
        warnings.append(
            f"{', '.join(untrained)}: random (untrained) weights ({_get(systems[untrained[0]], 'checkpoint')}); "
            "their quality numbers measure nothing but the harness itself."
        )
    unfingerprinted = sorted(
        n for n, info in systems.items() if isinstance(info, dict) and isinstance(info.get("provenance_note"), str)
    )
    if unfingerprinted:
        note = systems[unfingerprinted[0]]["provenance_note"]
        warnings.append(f"{', '.join(unfingerprinted)}: {note}")
    return warnings + timing_warnings(results)
