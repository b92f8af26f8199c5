"""Speaker similarity: SIM-o, SIM-r and SIM to the ground-truth target, with a named embedding backend.

* `sim_o`: cosine(generated, original prompt clip) -- what seed-tts-eval and F5-TTS report as SIM.
* `sim_r`: cosine(generated, the prompt after the system's own codec round trip,
  `Sample.reconstructed_prompt`) -- the VALL-E / NaturalSpeech / FlashSpeech "Sim-R". Absent for
  systems that give no reconstruction, and the row's details say so.
* `sim_target`: cosine(generated, ground-truth recording of the text) when the test item has one.
* `sim_source`: on a voice-conversion item, cosine(generated, the source utterance): how much of the source speaker
  is left (the unconverted source scores 1). Its `sim_o` is the paper's VC Sim-O: to the target speaker's clip.
* `spk_id_correct` / `spk_id_margin` (aggregate `spk_id_acc`): zero-shot speaker identification against the
  prompt speakers of the same test set. The suite embeds the prompts (each distinct clip once, through the
  prompt embedding cache) per test set; `suites.similarity.identification` turns them into speaker centroids,
  scores each row against them and aggregates the accuracy.

Everything is embedded at 16 kHz. Prompt and target embeddings are cached across samples (many samples
share a prompt). Unusable audio (empty, non-finite, shorter than `min_seconds`, no speech left after a
backend's trimming) makes that sample an error row; the other samples of the batch are still scored.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch

from flashspeech.foundation.audio import DEFAULT_RESAMPLER, resample
from suites.base import CANNOT_RUN, ItemScore, MetricInfo, Need, Sample, Suite, SuiteOptions, register
from suites.similarity import identification
from suites.similarity.backends import SAMPLE_RATE, SPEAKER_BACKENDS, AudioRejected, EmbeddingBackend, backend_options
from suites.similarity.identification import SPK_ID_REFERENCE, SpeakerReference, by_testset, testset_of

NO_RECONSTRUCTION = "no reconstructed prompt from this system"
NO_TARGET = "no ground-truth target audio for this item"
VC_ONLY = ("sim_source",)  # metrics only a voice-conversion item has (no note, no count on TTS rows)


@dataclass(frozen=True)
class SimilarityOptions(SuiteOptions):
    """What `[suites.similarity]` sets: the speaker-embedding backend, its local checkpoint (wavlm-tdnn), the
    shortest clip embedded, and how many embeddings the clip cache keeps."""

    backend: str = "resemblyzer"
    checkpoint: str | None = None
    min_seconds: float = 0.3
    cache_size: int = 4096


class _LRU(OrderedDict):
    """A small LRU map of clip key -> embedding (or the reason the clip could not be embedded)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key: Hashable, value: torch.Tensor | str) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass
class _Batch:
    """Clips to embed for one batch (`pending`) and clips already known: cached vectors or failure reasons."""

    pending: dict[Hashable, np.ndarray] = field(default_factory=dict)
    resolved: dict[Hashable, torch.Tensor | str] = field(default_factory=dict)


def check_clip(audio: np.ndarray, what: str, min_seconds: float) -> np.ndarray:
    """The clip as mono float32, or ValueError saying why it cannot be scored."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"{what} must be mono (1-D), got shape {audio.shape}")
    if audio.size == 0:
        raise ValueError(f"{what} is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise ValueError(f"{what} contains NaN or infinite samples")
    seconds = audio.size / SAMPLE_RATE
    if seconds < min_seconds:
        raise ValueError(f"{what} too short: {seconds:.3f} s < {min_seconds} s minimum")
    return audio


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp(min=1e-12))


@register
class SimilaritySuite(Suite):
    """Speaker similarity of generated speech to its prompt (SIM-o), reconstructed prompt (SIM-r), target."""

    name = "similarity"
    Options = SimilarityOptions
    needs = frozenset({Need.GENERATED, Need.PROMPT})
    optional_needs = frozenset({Need.RECONSTRUCTED_PROMPT, Need.TARGET, Need.SOURCE})
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "sim_o": MetricInfo(True, "cosine", "speaker similarity of the generated speech to the original prompt"),
        "sim_r": MetricInfo(True, "cosine", "speaker similarity to the prompt reconstructed by the system's codec"),
        "sim_target": MetricInfo(True, "cosine", "speaker similarity to the ground-truth target recording"),
        "sim_source": MetricInfo(False, "cosine", "voice conversion: speaker similarity to the source utterance"),
        **identification.METRICS,
    }
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {**identification.AGGREGATE_METRICS}

    def __init__(
        self,
        device: str = "cpu",
        batch_size: int = 8,
        backend: str = "resemblyzer",
        checkpoint: str | None = None,
        min_seconds: float = 0.3,
        cache_size: int = 4096,
        embedder: EmbeddingBackend | None = None,
    ):
        super().__init__(device=device, batch_size=batch_size)
        if embedder is None:  # the backend's name and options checked now, the model built on `load`
            SPEAKER_BACKENDS.options(backend, backend_options(backend, checkpoint, batch_size))
        self.backend_name = embedder.name if embedder else backend
        self.checkpoint = checkpoint
        self.min_seconds = min_seconds
        self.embedder = embedder
        self._cache = _LRU(cache_size)
        kind = embedder or SPEAKER_BACKENDS[backend]
        self.label: str = kind.label
        self.comparable_to_papers: bool = kind.comparable_to_papers
        # per instance: every metric's description carries the backend label
        self.metrics = {k: replace(v, description=f"{v.description} [{self.label}]") for k, v in self.metrics.items()}
        self.aggregate_metrics = {
            k: replace(v, description=f"{v.description} [{self.label}]") for k, v in self.aggregate_metrics.items()
        }
        self._reference: dict[str | None, SpeakerReference] | None = None  # per test set, during `score`

    @classmethod
    def check_options(cls, options: dict[str, Any], where: str) -> SimilarityOptions:
        checked = super().check_options(options, where)
        SPEAKER_BACKENDS.options(
            checked.backend, backend_options(checked.backend, checked.checkpoint, checked.batch_size), where
        )
        return checked

    def _load(self) -> None:
        if self.embedder is None:
            options = backend_options(self.backend_name, self.checkpoint, self.batch_size)
            self.embedder = SPEAKER_BACKENDS.build(self.backend_name, device=self.device, **options)

    def describe(self) -> dict[str, Any]:
        try:  # what scores is described whether or not this run needed it (every score from the cache)
            self.load()
            backend = self.embedder.describe()
        except CANNOT_RUN as exc:  # missing weights: the same description every time, and every score fails
            backend = {"backend": self.backend_name, "checkpoint": self.checkpoint, "unavailable": str(exc)}
        return {
            "suite": self.name,
            "backend": self.backend_name,
            "label": self.label,
            "comparable_to_papers": self.comparable_to_papers,
            "embedder": backend,
            "metrics": {k: v.description for k, v in self.metrics.items()},
            "sample_rate": SAMPLE_RATE,
            "resampler": DEFAULT_RESAMPLER.describe(),
            "min_seconds": self.min_seconds,
            "sim_r_reference": "Sample.reconstructed_prompt (the system's codec round trip of the prompt clip)",
            "spk_id_reference": SPK_ID_REFERENCE,
        }

    def _embed(self, clips: dict[Hashable, np.ndarray]) -> dict[Hashable, torch.Tensor | str]:
        """Embed many clips in one backend call; rejected clips get their reason instead of a vector."""
        out: dict[Hashable, torch.Tensor | str] = {}
        keys = list(clips)
        while keys:
            try:
                vectors = self.embedder.embed([clips[k] for k in keys])
            except AudioRejected as exc:
                for i, reason in exc.problems.items():
                    out[keys[i]] = reason
                keys = [k for i, k in enumerate(keys) if i not in exc.problems]
                continue
            out.update(zip(keys, vectors, strict=True))
            break
        return out

    def _embed_prompts(self, pending: dict[Hashable, np.ndarray]) -> dict[Hashable, torch.Tensor | str]:
        """Embed prompt clips (cached); a failing backend call is retried clip by clip, failures become reasons."""
        try:
            embedded = self._embed(pending)
        except CANNOT_RUN:
            raise
        except Exception as exc:
            if len(pending) == 1:
                return {key: f"{type(exc).__name__}: {exc}" for key in pending}
            out: dict[Hashable, torch.Tensor | str] = {}
            for key, clip in pending.items():
                out.update(self._embed_prompts({key: clip}))
            return out
        for key, value in embedded.items():
            self._cache.put(key, value)
        return embedded

    def speaker_reference(self, samples: Sequence[Sample]) -> SpeakerReference:
        """Centroids of the prompt speakers of `samples` (each distinct prompt clip once, in a fixed order)."""
        self.load()
        clips: dict[Hashable, Sample] = {}
        speakers: dict[str, set[Hashable]] = {}
        for sample in samples:
            key = _prompt_key(sample)
            clips.setdefault(key, sample)
            speakers.setdefault(sample.item.speaker, set()).add(key)
        order = sorted(clips, key=repr)
        vectors: dict[Hashable, torch.Tensor | str] = {}
        for start in range(0, len(order), max(self.batch_size, 1)):
            batch = _Batch()
            for key in order[start : start + max(self.batch_size, 1)]:
                load = clips[key].prompt_audio
                self._cached_clip(key, lambda load=load: load(SAMPLE_RATE), "prompt audio", batch)
            vectors.update(batch.resolved)
            if batch.pending:
                vectors.update(self._embed_prompts(batch.pending))
        return SpeakerReference.of(speakers, vectors)

    def speaker_references(self, samples: Sequence[Sample]) -> dict[str | None, SpeakerReference]:
        """Per test set, the reference set of its samples' prompt speakers."""
        return {name: self.speaker_reference(group) for name, group in by_testset(samples).items()}

    def context_key(self, samples: Sequence[Sample]) -> Any:
        """Speaker identification compares with every prompt of a test set: per test set, its prompt clips
        and their speakers (sorted), so adding a system that reuses the same items rescores nothing else."""
        prompts: dict[str, set[tuple[str, str]]] = {}
        for sample in samples:
            prompts.setdefault(str(testset_of(sample)), set()).add((sample.item.speaker, repr(_prompt_key(sample))))
        return {name: sorted(keys) for name, keys in sorted(prompts.items())}

    def score(
        self, samples: Sequence[Sample], progress: bool = False, context: Sequence[Sample] | None = None
    ) -> list[ItemScore]:
        """Per-sample rows; speaker identification is against the prompts of all `context` samples (default:
        `samples`) of the same test set (`suites.similarity.identification`)."""
        self.load()
        self._reference = self.speaker_references(context if context is not None else samples)
        try:
            return super().score(samples, progress=progress)
        finally:
            self._reference = None

    def _cached_clip(self, key: Hashable, load: Callable[[], np.ndarray], what: str, batch: _Batch) -> None:
        """Queue a cacheable clip (prompt or target) unless known: cached vectors and failures are reused."""
        if key in batch.resolved or key in batch.pending:
            return
        if key in self._cache:
            self._cache.move_to_end(key)
            batch.resolved[key] = self._cache[key]
            return
        try:
            batch.pending[key] = check_clip(load(), what, self.min_seconds)
        except Exception as exc:
            batch.resolved[key] = f"{type(exc).__name__}: {exc}"
            self._cache.put(key, batch.resolved[key])

    def _plan(self, n: int, sample: Sample, batch: _Batch) -> dict[str, Any]:
        """Which clips a sample needs (queued in `batch`); raises if its generated audio is unusable."""
        item = sample.item
        plan: dict[str, Any] = {"gen": ("gen", n)}
        batch.pending[("gen", n)] = check_clip(sample.generated_audio(SAMPLE_RATE), "generated audio", self.min_seconds)
        plan["prompt"] = _prompt_key(sample)
        self._cached_clip(plan["prompt"], lambda: sample.prompt_audio(SAMPLE_RATE), "prompt audio", batch)
        if sample.reconstructed_prompt is not None:
            plan["recon"] = ("recon", n)
            try:
                recon = resample(sample.reconstructed_prompt, sample.sample_rate, SAMPLE_RATE)
                batch.pending[plan["recon"]] = check_clip(recon, "reconstructed prompt", self.min_seconds)
            except Exception as exc:
                batch.resolved[plan["recon"]] = f"{type(exc).__name__}: {exc}"
        if item.target_audio is not None:
            plan["target"] = ("target", item.target_audio)
            self._cached_clip(plan["target"], lambda: sample.target_audio(SAMPLE_RATE), "target audio", batch)
        if item.source_audio is not None:
            plan["source"] = ("source", item.source_audio)
            self._cached_clip(plan["source"], lambda: sample.source_audio(SAMPLE_RATE), "source audio", batch)
        return plan

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        """Rows for `samples`; outside `score` the speaker-ID reference set is this batch's prompts."""
        self.load()
        references = self._reference if self._reference is not None else self.speaker_references(samples)
        batch = _Batch()
        plans: list[dict[str, Any] | Exception] = []
        for n, sample in enumerate(samples):
            try:
                plans.append(self._plan(n, sample, batch))
            except Exception as exc:
                plans.append(exc)
        embedded = self._embed(batch.pending)
        for key, value in embedded.items():
            if key[0] in ("prompt", "target", "source"):
                self._cache.put(key, value)
        batch.resolved.update(embedded)
        return [self._row(s, p, batch.resolved, references[testset_of(s)]) for s, p in zip(samples, plans, strict=True)]

    def _row(
        self, sample: Sample, plan: dict[str, Any] | Exception, embedded: dict, speakers: SpeakerReference
    ) -> ItemScore:
        if isinstance(plan, Exception):
            return self.failure(sample, plan)
        gen, prompt = embedded[plan["gen"]], embedded[plan["prompt"]]
        if isinstance(gen, str):
            return self.failure(sample, ValueError(f"generated audio: {gen}"))
        if isinstance(prompt, str):
            return self.failure(sample, ValueError(f"prompt audio: {prompt}"))
        row = ItemScore(self.name, sample.system, sample.item.id, sample.seed, details={"backend": self.backend_name})
        row.metrics["sim_o"] = cosine(gen, prompt)
        for metric, key, missing, what in (
            ("sim_r", "recon", NO_RECONSTRUCTION, "reconstructed prompt"),
            ("sim_target", "target", NO_TARGET, "target"),
            ("sim_source", "source", None, "source"),
        ):
            if key not in plan and missing is None:  # a TTS item has no source: nothing to say
                continue
            if key not in plan:
                row.details[metric] = missing
                continue
            reference = embedded[plan[key]]
            if isinstance(reference, str):
                row.details[metric] = f"{what} unusable: {reference}"
            else:
                row.metrics[metric] = cosine(gen, reference)
        speakers.score(row, gen, sample.item.speaker)
        return row

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        """Means over scored rows, how many rows each is over (`<metric>_n`), and speaker-ID accuracy.

        `spk_id_acc` (the mean of `spk_id_correct`, NaN when no row has it) replaces that mean;
        `spk_id_speakers` is the number of candidate speakers the rows were identified among.
        """
        out = super().aggregate(scores)
        for metric in self.metrics:
            n = sum(1 for s in scores if s.ok and metric in s.metrics)
            if n or metric not in VC_ONLY or any(metric in s.details for s in scores if s.ok):
                out[f"{metric}_n"] = float(n)
        identification.aggregate(out, scores)
        return out

    def aggregate_notes(self, scores: Sequence[ItemScore]) -> dict[str, str]:
        """Why a metric has no aggregate: the most common reason recorded in the scored rows' details."""
        ok = [s for s in scores if s.ok]
        notes = {}
        for metric in self.metrics:
            if metric in VC_ONLY and not any(metric in s.details for s in ok):
                continue  # TTS rows, or every conversion scored
            if ok and not any(metric in s.metrics for s in ok):
                reasons = [str(s.details.get(metric, "")) for s in ok if s.details.get(metric)]
                notes[metric] = max(set(reasons), key=reasons.count) if reasons else "not scored"
        identification.aggregate_note(notes, bool(ok))
        return notes


def _prompt_key(sample: Sample) -> tuple[str, str, float, float | None]:
    """The cache key of a sample's prompt clip (file, offset, duration)."""
    item = sample.item
    return ("prompt", item.prompt_audio, item.prompt_offset_s, item.prompt_duration_s)
