"""Zero-shot speaker identification for the similarity suite: `spk_id_correct` / `spk_id_margin` / `spk_id_acc`.

Each candidate speaker's centroid is the normalised mean of the (unit-normalised) embeddings of that speaker's
distinct prompt clips; the reference set is every prompt of the samples of the same test set
(`Sample.meta["testset"]`, set by the runner) passed to one `score` call (one `score_batch` call when used
directly): real recordings only, so it is the same for every system scored together, and it does not depend on
sample order or on which generations failed. The prompt's speaker is `EvalItem.speaker`: a manifest has one
speaker per item and every protocol prompts with that speaker (seed-tts-eval has no speaker ids: the prompt
file's stem stands in, so each prompt clip is its own candidate). `spk_id_margin` = cosine(generated, own
centroid) - max cosine(generated, other centroid); `spk_id_correct` = 1.0 when that margin is > 0 (a tie counts
as wrong). The aggregate `spk_id_acc` is the mean of `spk_id_correct`; `spk_id_speakers` records the number of
candidates (chance = 1 / that). With fewer than 2 candidates the row's details and `aggregate_notes` say why,
and `spk_id_acc` is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from suites.base import ItemScore, MetricInfo, Sample

FEW_SPEAKERS = (
    "speaker identification needs at least 2 candidate speakers; the prompts scored together have {n} "
    "with a usable prompt"
)
SPK_ID_REFERENCE = (
    "per-speaker centroids (normalised mean of unit prompt embeddings, each distinct prompt clip once) over "
    "the prompts of all samples scored in one call; prompt speaker = EvalItem.speaker"
)
METRICS = {
    "spk_id_correct": MetricInfo(
        True, "fraction", "1 if the generated speech is nearest to its prompt speaker's centroid, else 0"
    ),
    "spk_id_margin": MetricInfo(
        True, "cosine", "cosine to the prompt speaker's centroid minus the best other speaker's"
    ),
}
AGGREGATE_METRICS = {
    "spk_id_acc": MetricInfo(
        True, "fraction", "zero-shot speaker identification accuracy among the test set's prompt speakers"
    ),
}


@dataclass(frozen=True)
class SpeakerReference:
    """Candidate speakers for speaker identification: one unit centroid row per speaker (sorted ids)."""

    speakers: tuple[str, ...]
    centroids: torch.Tensor  # (speakers, dim)
    prompts: int  # distinct prompt clips in the centroids
    unusable: int  # distinct prompt clips that could not be embedded (left out)

    @classmethod
    def of(cls, clips: dict[str, set[Hashable]], vectors: dict[Hashable, torch.Tensor | str]) -> SpeakerReference:
        """Centroids from speaker -> prompt clip keys and clip key -> embedding (or why it has none); a speaker
        without a usable clip is no candidate."""
        names, rows = [], []
        for speaker in sorted(clips):
            usable = [vectors[k] for k in sorted(clips[speaker], key=repr) if not isinstance(vectors[k], str)]
            if usable:
                names.append(speaker)
                rows.append(F.normalize(F.normalize(torch.stack(usable).float(), dim=1).mean(0), dim=0))
        dim = rows[0].numel() if rows else 0
        return cls(
            speakers=tuple(names),
            centroids=torch.stack(rows) if rows else torch.zeros(0, dim),
            prompts=sum(not isinstance(v, str) for v in vectors.values()),
            unusable=sum(isinstance(v, str) for v in vectors.values()),
        )

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

    def score(self, row: ItemScore, gen: torch.Tensor, speaker: str) -> None:
        """Add `spk_id_correct` / `spk_id_margin`, or the reason they cannot be computed, to `row`."""
        row.details["spk_id_speakers"] = len(self.speakers)
        why = self.why_not(speaker)
        if why is not None:
            row.details["spk_id_correct"] = row.details["spk_id_margin"] = why
            return
        margin, nearest = self.identify(gen, speaker)
        row.metrics["spk_id_correct"] = float(margin > 0)
        row.metrics["spk_id_margin"] = margin
        row.details["spk_id_nearest"] = nearest


def testset_of(sample: Sample) -> str | None:
    """The test set a sample belongs to (speaker identification compares within one test set)."""
    return sample.meta.get("testset")


def by_testset(samples: Iterable[Sample]) -> dict[str | None, list[Sample]]:
    """The samples per test set, test sets in order of first appearance, samples in their order."""
    groups: dict[str | None, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(testset_of(sample), []).append(sample)
    return groups


def aggregate(out: dict[str, float], scores: Sequence[ItemScore]) -> None:
    """Replace the mean of `spk_id_correct` (and its count) in `out` by `spk_id_acc` (NaN when no row has it);
    add `spk_id_speakers`, the number of candidate speakers the rows were identified among."""
    out["spk_id_acc"] = out.pop("spk_id_correct", math.nan)
    out["spk_id_acc_n"] = out.pop("spk_id_correct_n")
    counts = [s.details["spk_id_speakers"] for s in scores if s.ok and "spk_id_speakers" in s.details]
    out["spk_id_speakers"] = float(max(counts)) if counts else math.nan


def aggregate_note(notes: dict[str, str], any_ok: bool) -> None:
    """File the reason `spk_id_correct` has no mean under `spk_id_acc` (or say that no row was scored)."""
    if "spk_id_correct" in notes:
        notes["spk_id_acc"] = notes.pop("spk_id_correct")
    elif not any_ok:
        notes["spk_id_acc"] = "no successfully scored rows"
