"""The suite interface: what a metric needs, how it scores a batch, how failures are kept.

A suite scores `Sample`s (one generated utterance each, with its test item, system, seed and timings)
and returns one `ItemScore` per sample (or per (system, item) group for multi-seed suites). A sample
that cannot be scored gets an `ItemScore` with its error: it is counted, never dropped. Suites load
their models once (`load`), batch their work, and say in `describe()` exactly which backend, model file
and settings produced their numbers.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from flashspeech.foundation.assets import AssetError
from flashspeech.foundation.fields import FieldError, field_names, from_table
from flashspeech.foundation.hashing import canonical_json, fingerprint, source_digest
from flashspeech.foundation.registry import Registry
from suites.item import EvalItem


class Need(enum.Enum):
    """What a suite reads from a sample."""

    GENERATED = "generated audio"
    PROMPT = "prompt audio"
    TEXT = "reference text"
    TARGET = "ground-truth target audio"
    SOURCE = "voice-conversion source audio"
    RECONSTRUCTED_PROMPT = "prompt reconstructed through the system's codec"
    SEEDS = "several seeds per item"
    TIMINGS = "per-stage timings"


@dataclass(frozen=True)
class MetricInfo:
    """How to read a metric: its direction (None: descriptive, no better direction) and unit."""

    higher_is_better: bool | None
    unit: str = ""
    description: str = ""


@dataclass(frozen=True)
class Ratio:
    """An aggregate that is a ratio of sums over the scored rows, Σ numerator / Σ denominator, of the suite's per-row
    metrics (torchmetrics' sum states): corpus WER = Σ(S + D + I) / Σ ref_words, RTF = Σ time_s / Σ audio_s. A suite
    declares its ratios once (`Suite.ratios`); its `aggregate` computes them, and the regression gate compares them
    from the same sums of the items columns (`<suite>.<name>`), paired by cluster."""

    numerator: tuple[str, ...]
    denominator: str

    def sums(self, rows: Iterable[Mapping[str, float]]) -> tuple[float, float]:
        """(Σ numerator, Σ denominator) over per-row metric dicts (`ItemScore.metrics`)."""
        rows = list(rows)
        return sum(sum(r[c] for r in rows) for c in self.numerator), sum(r[self.denominator] for r in rows)

    def of(self, rows: Iterable[Mapping[str, float]]) -> float:
        """The ratio over `rows`; NaN when the denominator sums to 0."""
        num, den = self.sums(rows)
        return num / den if den else float("nan")


@dataclass
class Sample:
    """One generated utterance and what it was generated from."""

    item: EvalItem
    system: str
    audio: np.ndarray  # mono float32
    sample_rate: int
    seed: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds, from the system
    reconstructed_prompt: np.ndarray | None = None  # at sample_rate; for SIM-r
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.system, self.item.id, self.seed)

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def prompt_audio(self, sample_rate: int) -> np.ndarray:
        """The item's prompt clip at `sample_rate` (`EvalItem.load_prompt`)."""
        return self.item.load_prompt(sample_rate)

    def target_audio(self, sample_rate: int) -> np.ndarray | None:
        """The item's ground-truth target at `sample_rate`, None when it has none (`EvalItem.load_target`)."""
        return self.item.load_target(sample_rate)

    def source_audio(self, sample_rate: int) -> np.ndarray | None:
        """A voice-conversion item's source utterance at `sample_rate`, None for TTS (`EvalItem.load_source`)."""
        return self.item.load_source(sample_rate)

    def generated_audio(self, sample_rate: int) -> np.ndarray:
        from flashspeech.foundation.audio import resample

        return resample(self.audio, self.sample_rate, sample_rate)


@dataclass
class ItemScore:
    """A suite's result for one sample (seed None: a row over all seeds of an item)."""

    suite: str
    system: str
    item_id: str
    seed: int | None
    metrics: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the ASR hypothesis
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class SuiteError(RuntimeError):
    """A suite that cannot run at all (e.g. a missing package); the message says how to fix it."""


# What stops a whole suite, not one sample: its own errors, and a model file that is missing or not the pinned one.
CANNOT_RUN = (SuiteError, AssetError)


@dataclass(frozen=True)
class SuiteOptions:
    """What a `[suites.<name>]` table may set for every suite; a suite's own `Options` adds its keys."""

    batch_size: int = 8


class Suite(ABC):
    """Base class: subclasses set `name`, `needs`, `metrics` and implement `_load` and `score_batch`.

    `Options` declares what a config table of the suite may set (the constructor's keywords but `device`);
    a suite that scores through a named model sets `backends`, the registry its `backend` option names, and
    takes that backend's options in the same table (`check_options`)."""

    name: ClassVar[str]
    Options: ClassVar[type] = SuiteOptions
    backends: ClassVar[Registry | None] = None
    needs: ClassVar[frozenset[Need]]
    # needs the suite uses when a sample has them; a metric that needs a missing one is absent for that
    # sample, with the reason in the row's details
    optional_needs: ClassVar[frozenset[Need]] = frozenset()
    metrics: ClassVar[dict[str, MetricInfo]]  # per-row metrics
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {}  # numbers only `aggregate` makes (corpus WER, JSD)
    ratios: ClassVar[dict[str, Ratio]] = {}  # aggregates that are ratios of sums of per-row metrics (`Ratio`)
    # True when a sample's row depends on nothing but its item and its audio (and reconstructed prompt): the
    # runner then scores identical samples of one system (a deterministic system's seeds) once and copies the row
    rows_per_sample: ClassVar[bool] = False

    def __init__(self, device: str = "cpu", batch_size: int = 8):
        self.device = device
        self.batch_size = batch_size
        self._loaded = False

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> Any:
        """Check a config table of this suite (at dotted key `where`) without building or loading anything:
        known keys, typed values, the backend's name and options; FieldError naming the dotted key. Returns
        the suite's own options (an `Options`)."""
        what, passed = f"the {cls.name} suite", []
        if cls.backends is not None:
            backend = options.get("backend", cls.Options.backend)
            if not isinstance(backend, str) or backend not in cls.backends:
                raise FieldError(f"{where}.backend: {cls.backends.unknown(backend)}")
            what, passed = f"{what} with the {backend} backend", field_names(cls.backends[backend].Options)
        checked = from_table(cls.Options, options, where, skip=passed, what=what)
        if passed:
            cls.backends.options(backend, {k: v for k, v in options.items() if k in passed}, where)
        return checked

    def load(self) -> None:
        """Load models once."""
        if not self._loaded:
            self._load()
            self._loaded = True

    def _load(self) -> None:  # noqa: B027 - optional hook
        """Load models (called once)."""

    @abstractmethod
    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        """Score a batch; may raise, in which case `score` retries item by item to isolate failures."""

    def describe(self) -> dict[str, Any]:
        """Provenance: backend, model, checksums, settings (recorded with every result)."""
        return {"suite": self.name}

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        """Suite-level numbers over successful rows (default: mean of each metric) plus failure count."""
        ok = [s for s in scores if s.ok]
        out: dict[str, float] = {"items": float(len(scores)), "failed": float(len(scores) - len(ok))}
        for metric in self.metrics:
            values = [s.metrics[metric] for s in ok if metric in s.metrics and np.isfinite(s.metrics[metric])]
            if values:
                out[metric] = float(np.mean(values))
        return out

    def aggregate_notes(self, scores: Sequence[ItemScore]) -> dict[str, str]:
        """Why an aggregate is unavailable (NaN), per metric; recorded next to the numbers."""
        return {}

    def context_key(self, samples: Sequence[Sample]) -> Any:
        """What a sample's rows depend on beyond its own audio, as JSON-able data (None: nothing). The
        runner caches scores per system, keyed by this over every sample of the run: a suite whose rows
        look across systems (e.g. speaker identification against all prompts) must say so here."""
        return None

    def failure(self, sample: Sample, exc: BaseException) -> ItemScore:
        return ItemScore(self.name, sample.system, sample.item.id, sample.seed, error=f"{type(exc).__name__}: {exc}")

    def score(
        self, samples: Sequence[Sample], progress: bool = False, context: Sequence[Sample] | None = None
    ) -> list[ItemScore]:
        """Score every sample in batches; a failing sample becomes an error row, the rest go on.

        `context`: every sample of the run when only some are scored now (see `context_key`)."""
        self.load()
        from tqdm.auto import tqdm

        out: list[ItemScore] = []
        with tqdm(total=len(samples), desc=f"scoring {self.name}", unit="item", disable=not progress) as bar:
            for start in range(0, len(samples), self.batch_size):
                batch = list(samples[start : start + self.batch_size])
                try:
                    out.extend(self.score_batch(batch))
                except CANNOT_RUN:
                    raise
                except Exception:
                    for sample in batch:
                        try:
                            out.extend(self.score_batch([sample]))
                        except CANNOT_RUN:
                            raise
                        except Exception as exc:
                            out.append(self.failure(sample, exc))
                bar.update(len(batch))
        return out


SUITES = Registry("suite", "name")
register = SUITES.register  # class decorator: make a suite available by its `name`


def build_suite(name: str, **options: Any) -> Suite:
    return SUITES.lookup(name)(**options)


def check_suite_options(name: str, options: dict[str, Any], where: str = "") -> None:
    """Check the options `build_suite(name, **options)` would get, building nothing (a config's check when it
    loads); FieldError naming the dotted key (`where`, default `suites.<name>`), e.g. `suites.wer.beem`."""
    where = where or f"suites.{name}"
    if name not in SUITES:
        raise FieldError(f"{where}: {SUITES.unknown(name)}")
    SUITES[name].check_options(options, where)


def evaluator_fingerprint(description: dict[str, Any]) -> dict[str, Any]:
    """{"digest": 16 hex digits of sha256, "parts": {dotted key: value}} of what in a suite's `describe()` can change
    its scores. Left out: where and how fast it ran (environment, device, batch size, threads) and a file's path
    when a checksum in the same table identifies the file (a path without one is kept: it is the only identity)."""
    volatile = {"environment", "device", "batch_size", "batching", "threads", "num_threads", "torch_threads"}
    volatile |= {"cpu_count", "partials_per_batch"}
    path_keys = {"path", "model_path", "weights", "checkpoint", "download_root", "cache_dir", "root"}

    def flat(table: dict[str, Any], prefix: str) -> dict[str, Any]:
        checksummed = any("sha256" in str(k) for k in table)
        out: dict[str, Any] = {}
        for key, value in table.items():
            key = str(key)
            if key in volatile or (checksummed and (key in path_keys or key.endswith(("_path", "_dir")))):
                continue
            out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
        return out

    parts = json.loads(canonical_json(flat(description, "")))
    return {"digest": fingerprint(parts, 16), "parts": parts}


def suite_code_digest() -> str:
    """sha256 (16 hex digits) of the source that scores: the `suites` package and `flashspeech.foundation` (audio
    loading, resampling). Part of every score cache key, never of the evaluator fingerprint: a scoring change is
    measured by the gate as a shift, not hidden as "not comparable"."""
    import flashspeech.foundation

    return source_digest(Path(__file__).resolve().parent, Path(flashspeech.foundation.__file__).resolve().parent)
