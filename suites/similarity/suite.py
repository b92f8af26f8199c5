"""Speaker similarity: SIM-o, SIM-r and SIM to the ground-truth target, with a named embedding backend.

* `sim_o`: cosine(generated, original prompt clip) -- what seed-tts-eval and F5-TTS report as SIM.
* `sim_r`: cosine(generated, the prompt after the system's own codec round trip,
  `Sample.reconstructed_prompt`) -- the VALL-E / NaturalSpeech / FlashSpeech "Sim-R". Absent for
  systems that give no reconstruction, and the row's details say so.
* `sim_target`: cosine(generated, ground-truth recording of the text) when the test item has one.
* `spk_id_correct` / `spk_id_margin`: zero-shot speaker identification. Each candidate speaker's centroid is
  the normalised mean of the (unit-normalised) embeddings of that speaker's distinct prompt clips; the
  reference set is every prompt of the samples of the same test set (`Sample.meta["testset"]`, set by the
  runner) passed to one `score` call (one `score_batch` call when used directly): real recordings only, so
  it is the same for every system scored together, and it does not depend on sample order or on which
  generations failed. The prompt's speaker is `EvalItem.speaker`: a manifest has one speaker per item and
  every protocol prompts with that speaker (seed-tts-eval has no speaker ids: the prompt file's stem stands
  in, so each prompt clip is its own candidate). `spk_id_margin` = cosine(generated, own centroid) - max
  cosine(generated, other centroid); `spk_id_correct` = 1.0 when that margin is > 0 (a tie counts as
  wrong). The aggregate `spk_id_acc` is the mean of `spk_id_correct`; `spk_id_speakers` records the number
  of candidates (chance = 1 / that). With fewer than 2 candidates the row's details and `aggregate_notes`
  say why, and `spk_id_acc` is NaN.

Everything is embedded at 16 kHz. Prompt and target embeddings are cached across samples (many samples
share a prompt). Unusable audio (empty, non-finite, shorter than `min_seconds`, no speech left after a
backend's trimming) makes that sample an error row; the other samples of the batch are still scored.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from bench.data.audio import DEFAULT_RESAMPLER, resample
from suites.base import ItemScore, MetricInfo, Need, Sample, Suite, SuiteError, register
from suites.similarity.backends import (
    SAMPLE_RATE,
    AudioRejected,
    EmbeddingBackend,
    ResemblyzerBackend,
    WavLMTDNNBackend,
    build_backend,
)

NO_RECONSTRUCTION = "no reconstructed prompt from this system"
NO_TARGET = "no ground-truth target audio for this item"
FEW_SPEAKERS = (
    "speaker identification needs at least 2 candidate speakers; the prompts scored together have {n} "
    "with a usable prompt"
)
SPK_ID_REFERENCE = (
    "per-speaker centroids (normalised mean of unit prompt embeddings, each distinct prompt clip once) over "
    "the prompts of all samples scored in one call; prompt speaker = EvalItem.speaker"
)
_BACKEND_CLASSES = {cls.name: cls for cls in (ResemblyzerBackend, WavLMTDNNBackend)}


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


@dataclass(frozen=True)
class SpeakerReference:
    """Candidate speakers for speaker identification: one unit centroid row per speaker (sorted ids)."""

    speakers: tuple[str, ...]
    centroids: torch.Tensor  # (speakers, dim)
    prompts: int  # distinct prompt clips in the centroids
    unusable: int  # distinct prompt clips that could not be embedded (left out)

    def why_not(self, speaker: str) -> str | None:
        """Why `speaker`'s samples cannot be identified against this set (None: they can)."""
        if len(self.speakers) < 2:
            return FEW_SPEAKERS.format(n=len(self.speakers))
        if speaker not in self.speakers:
            return f"prompt speaker {speaker!r} has no usable prompt in the reference set"
        return None

    def identify(self, embedding: torch.Tensor, speaker: str) -> tuple[float, str]:
        """(margin, nearest speaker): cosine to `speaker`'s centroid minus the best other speaker's."""
        sims = self.centroids @ F.normalize(embedding.float(), dim=0)
        own = self.speakers.index(speaker)
        others = sims.clone()
        others[own] = -math.inf
        best_other = int(others.argmax())
        margin = float(sims[own] - sims[best_other])
        return margin, speaker if margin > 0 else self.speakers[best_other]


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
    needs = frozenset({Need.GENERATED, Need.PROMPT})
    optional_needs = frozenset({Need.RECONSTRUCTED_PROMPT, Need.TARGET})
    metrics: ClassVar[dict[str, MetricInfo]] = {
        "sim_o": MetricInfo(True, "cosine", "speaker similarity of the generated speech to the original prompt"),
        "sim_r": MetricInfo(True, "cosine", "speaker similarity to the prompt reconstructed by the system's codec"),
        "sim_target": MetricInfo(True, "cosine", "speaker similarity to the ground-truth target recording"),
        "spk_id_correct": MetricInfo(
            True, "fraction", "1 if the generated speech is nearest to its prompt speaker's centroid, else 0"
        ),
        "spk_id_margin": MetricInfo(
            True, "cosine", "cosine to the prompt speaker's centroid minus the best other speaker's"
        ),
    }
    aggregate_metrics: ClassVar[dict[str, MetricInfo]] = {
        "spk_id_acc": MetricInfo(
            True, "fraction", "zero-shot speaker identification accuracy among the test set's prompt speakers"
        ),
    }

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
        if embedder is None and backend not in _BACKEND_CLASSES:
            raise ValueError(f"unknown similarity backend {backend!r}; known: {', '.join(_BACKEND_CLASSES)}")
        self.backend_name = embedder.name if embedder else backend
        self.checkpoint = checkpoint
        self.min_seconds = min_seconds
        self.embedder = embedder
        self._cache = _LRU(cache_size)
        kind = embedder or _BACKEND_CLASSES[backend]
        self.label: str = kind.label
        self.comparable_to_papers: bool = kind.comparable_to_papers
        # per instance: every metric's description carries the backend label
        self.metrics = {k: replace(v, description=f"{v.description} [{self.label}]") for k, v in self.metrics.items()}
        self.aggregate_metrics = {
            k: replace(v, description=f"{v.description} [{self.label}]") for k, v in self.aggregate_metrics.items()
        }
        self._reference: dict[str | None, SpeakerReference] | None = None  # per test set, during `score`

    def _load(self) -> None:
        if self.embedder is None:
            self.embedder = build_backend(self.backend_name, self.device, self.batch_size, self.checkpoint)

    def describe(self) -> dict[str, Any]:
        backend = self.embedder.describe() if self.embedder else {"backend": self.backend_name, "loaded": False}
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
        except SuiteError:
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
        names, rows = [], []
        for speaker in sorted(speakers):
            usable = [vectors[k] for k in sorted(speakers[speaker], key=repr) if not isinstance(vectors[k], str)]
            if usable:
                names.append(speaker)
                rows.append(F.normalize(F.normalize(torch.stack(usable).float(), dim=1).mean(0), dim=0))
        dim = rows[0].numel() if rows else 0
        return SpeakerReference(
            speakers=tuple(names),
            centroids=torch.stack(rows) if rows else torch.zeros(0, dim),
            prompts=sum(not isinstance(v, str) for v in vectors.values()),
            unusable=sum(isinstance(v, str) for v in vectors.values()),
        )

    def context_key(self, samples: Sequence[Sample]) -> Any:
        """Speaker identification compares with every prompt of a test set: per test set, its prompt clips
        and their speakers (sorted), so adding a system that reuses the same items rescores nothing else."""
        prompts: dict[str, set[tuple[str, str]]] = {}
        for sample in samples:
            prompts.setdefault(str(_testset(sample)), set()).add((sample.item.speaker, repr(_prompt_key(sample))))
        return {name: sorted(keys) for name, keys in sorted(prompts.items())}

    def score(
        self, samples: Sequence[Sample], progress: bool = False, context: Sequence[Sample] | None = None
    ) -> list[ItemScore]:
        """Per-sample rows; speaker identification is against the prompts of all `context` samples (default:
        `samples`) of the same test set (see module doc)."""
        self.load()
        by_testset: dict[str | None, list[Sample]] = {}
        for sample in context if context is not None else samples:
            by_testset.setdefault(_testset(sample), []).append(sample)
        self._reference = {name: self.speaker_reference(group) for name, group in by_testset.items()}
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
        return plan

    def score_batch(self, samples: Sequence[Sample]) -> list[ItemScore]:
        """Rows for `samples`; outside `score` the speaker-ID reference set is this batch's prompts."""
        self.load()
        references = self._reference
        if references is None:
            references = {}
            for sample in samples:
                references.setdefault(_testset(sample), None)
            for name in references:
                references[name] = self.speaker_reference([x for x in samples if _testset(x) == name])
        batch = _Batch()
        plans: list[dict[str, Any] | Exception] = []
        for n, sample in enumerate(samples):
            try:
                plans.append(self._plan(n, sample, batch))
            except Exception as exc:
                plans.append(exc)
        embedded = self._embed(batch.pending)
        for key, value in embedded.items():
            if key[0] in ("prompt", "target"):
                self._cache.put(key, value)
        batch.resolved.update(embedded)
        return [self._row(s, p, batch.resolved, references[_testset(s)]) for s, p in zip(samples, plans, strict=True)]

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
        ):
            if key not in plan:
                row.details[metric] = missing
                continue
            reference = embedded[plan[key]]
            if isinstance(reference, str):
                row.details[metric] = f"{what} unusable: {reference}"
            else:
                row.metrics[metric] = cosine(gen, reference)
        self._identify(row, gen, sample.item.speaker, speakers)
        return row

    @staticmethod
    def _identify(row: ItemScore, gen: torch.Tensor, speaker: str, reference: SpeakerReference) -> None:
        """Add `spk_id_correct` / `spk_id_margin`, or the reason they cannot be computed, to `row`."""
        row.details["spk_id_speakers"] = len(reference.speakers)
        why = reference.why_not(speaker)
        if why is not None:
            row.details["spk_id_correct"] = row.details["spk_id_margin"] = why
            return
        margin, nearest = reference.identify(gen, speaker)
        row.metrics["spk_id_correct"] = float(margin > 0)
        row.metrics["spk_id_margin"] = margin
        row.details["spk_id_nearest"] = nearest

    def aggregate(self, scores: Sequence[ItemScore]) -> dict[str, float]:
        """Means over scored rows, how many rows each is over (`<metric>_n`), and speaker-ID accuracy.

        `spk_id_acc` (the mean of `spk_id_correct`, NaN when no row has it) replaces that mean;
        `spk_id_speakers` is the number of candidate speakers the rows were identified among.
        """
        out = super().aggregate(scores)
        for metric in self.metrics:
            out[f"{metric}_n"] = float(sum(1 for s in scores if s.ok and metric in s.metrics))
        out["spk_id_acc"] = out.pop("spk_id_correct", math.nan)
        out["spk_id_acc_n"] = out.pop("spk_id_correct_n")
        counts = [s.details["spk_id_speakers"] for s in scores if s.ok and "spk_id_speakers" in s.details]
        out["spk_id_speakers"] = float(max(counts)) if counts else math.nan
        return out

    def aggregate_notes(self, scores: Sequence[ItemScore]) -> dict[str, str]:
        """Why a metric has no aggregate: the most common reason recorded in the scored rows' details."""
        ok = [s for s in scores if s.ok]
        notes = {}
        for metric in self.metrics:
            if ok and not any(metric in s.metrics for s in ok):
                reasons = [str(s.details.get(metric, "")) for s in ok if s.details.get(metric)]
                notes[metric] = max(set(reasons), key=reasons.count) if reasons else "not scored"
        if "spk_id_correct" in notes:
            notes["spk_id_acc"] = notes.pop("spk_id_correct")
        elif not ok:
            notes["spk_id_acc"] = "no successfully scored rows"
        return notes


def _prompt_key(sample: Sample) -> tuple[str, str, float, float | None]:
    """The cache key of a sample's prompt clip (file, offset, duration)."""
    item = sample.item
    return ("prompt", item.prompt_audio, item.prompt_offset_s, item.prompt_duration_s)


def _testset(sample: Sample) -> str | None:
    """The test set a sample belongs to (speaker identification compares within one test set)."""
    return sample.meta.get("testset")
