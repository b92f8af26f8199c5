"""Pool per-sample histograms into the system-vs-natural-speech JSDs, each with its sampling floor.

Three comparisons, each its own metric (never one name for two measures):

- ``pitch_jsd``: voiced-frame log-F0 histograms of the generated samples vs their ground-truth targets;
- ``duration_jsd``: phone-duration histograms (the paper's duration JSD). Only when every scored sample
  carries phone durations (`sample.meta["durations"]`) and every item its target's
  (`item.meta["target_durations"]`); otherwise NaN, with the reason in the notes;
- ``utterance_duration_jsd``: utterance lengths in 0.5 s bins vs the targets' lengths: a different, much
  coarser measure (one value per utterance), reported under its own name whenever targets have audio.

**Equal counts.** The generated side is compared seed by seed: for each seed, the samples of that seed
whose item has a reference are pooled and compared with the references of exactly those items, so both
sides hold the same number of utterances (`jsd_items` per side); the metric is the mean over seeds.

**Floor.** A JSD between two finite samples of one distribution is not 0: its sampling bias falls about
as 1/n. `<metric>_floor` is the ground truth against itself: the items with a reference are split at random
into two halves (n//2 items each, `jsd_floor_items`) and the halves' pooled histograms compared, averaged
over `FLOOR_SPLITS` splits drawn with `numpy.random.default_rng(FLOOR_SEED)`. It is measured at half the
count of the JSD it sits next to, so an identical distribution at the JSD's own count would give about
half of it. Measured with this code: mean JSD of two independent samples of n items from one distribution
(200 trials; 50 at n = 1000), and the split-half JSD of 100 items (50 per half); `tests/suites/prosody/test_prosody.py`
re-checks the utterance-duration figures at n = 100:

| measure (model of one item) | n = 50 | n = 100 | n = 1000 | split-half of 100 |
|---|---|---|---|---|
| utterance duration (uniform 4-10 s, the LibriSpeech protocol's targets) | 0.088 | 0.042 (sd 0.017) | 0.0042 | 0.082 |
| pitch (110 or 210 Hz register, speaker sd 2 st; 300 voiced frames, sd 2.5 st) | 0.013 | 0.0067 | 0.0007 | 0.014 |
| phone duration (60 phones, gamma shape 4, mean 7 frames, rate +-15 %) | 0.0037 | 0.0019 | 0.0002 | 0.0037 |

A JSD near its floor cannot be told apart from natural speech by this measure at that count.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from suites.base import ItemScore
from suites.prosody.jsd import jensen_shannon, utterance_duration_counts

FLOOR_SPLITS = 10
FLOOR_SEED = 0
NO_TARGET = (
    "no item has ground-truth target audio (item.target_audio): the JSD compares generated speech with "
    "natural speech of the same items"
)
Hist = Callable[[ItemScore], "np.ndarray | list[int] | None"]


def _utterance(seconds: float | None) -> np.ndarray | None:
    return None if seconds is None else utterance_duration_counts(np.array([seconds]))


# metric -> (generated histogram of a row, reference histogram of a row)
KINDS: dict[str, tuple[Hist, Hist]] = {
    "pitch_jsd": (lambda r: r.details.get("pitch_hist"), lambda r: r.details.get("target_pitch_hist")),
    "duration_jsd": (lambda r: r.details.get("phone_dur_hist"), lambda r: r.details.get("target_phone_dur_hist")),
    "utterance_duration_jsd": (
        lambda r: _utterance(r.metrics.get("duration_s")),
        lambda r: _utterance(r.details.get("target_duration_s")),
    ),
}


@dataclass
class JsdResult:
    """Each JSD and its floor (absent where unavailable, with the reason in `notes`) and the counts used."""

    values: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # metric -> utterances per side per seed (mean over seeds)
    floor_counts: dict[str, int] = field(default_factory=dict)  # metric -> items per half of its floor
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def items(self) -> int:
        """Utterances per side of the pitch JSD (else of the first JSD there is)."""
        return self.counts.get("pitch_jsd", next(iter(self.counts.values()), 0))

    @property
    def floor_items(self) -> int:
        """Items per half of the pitch JSD's floor (else of the first floor there is)."""
        return self.floor_counts.get("pitch_jsd", next(iter(self.floor_counts.values()), 0))


def _target_errors(rows: Sequence[ItemScore]) -> str:
    errors = {r.item_id: r.details["target_error"] for r in rows if "target_error" in r.details}
    if not errors:
        return ""
    item, msg = next(iter(errors.items()))
    return f" ({len(errors)} item(s) had unreadable targets, e.g. {item}: {msg})"


def _compare(pairs: Sequence[tuple[ItemScore, np.ndarray, np.ndarray]]) -> tuple[float | None, float, str]:
    """Mean over seeds of JSD(generated of that seed, references of the same items); mean count; why None."""
    by_seed: dict[int | None, list[tuple[np.ndarray, np.ndarray]]] = {}
    for row, gen, ref in pairs:
        by_seed.setdefault(row.seed, []).append((gen, ref))
    values, why = [], ""
    for group in by_seed.values():
        gen, ref = np.sum([g for g, _ in group], axis=0), np.sum([r for _, r in group], axis=0)
        if gen.sum() > 0 and ref.sum() > 0:
            values.append(jensen_shannon(gen, ref))
        else:
            why = "no voiced frames in the generated audio" if gen.sum() == 0 else "no voiced frames in the targets"
    count = float(np.mean([len(g) for g in by_seed.values()]))
    return (float(np.mean(values)) if values else None), count, why


def split_half_floor(refs: Sequence[np.ndarray], splits: int = FLOOR_SPLITS, seed: int = FLOOR_SEED) -> float | None:
    """Mean JSD between the pooled histograms of two random halves of `refs` (None with fewer than 2 per half)."""
    half = len(refs) // 2
    if half < 2:
        return None
    matrix = np.asarray(refs, dtype=np.float64)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(splits):
        order = rng.permutation(len(refs))
        a, b = matrix[order[:half]].sum(axis=0), matrix[order[half : 2 * half]].sum(axis=0)
        if a.sum() > 0 and b.sum() > 0:
            values.append(jensen_shannon(a, b))
    return float(np.mean(values)) if values else None


def _kind(rows: Sequence[ItemScore], metric: str, result: JsdResult) -> None:
    gen_of, ref_of = KINDS[metric]
    if metric == "duration_jsd":
        missing = sum(gen_of(r) is None for r in rows)
        no_ref = len({r.item_id for r in rows if ref_of(r) is None})
        if missing or no_ref:
            what = (
                f"{missing} sample(s) without phone durations (sample.meta['durations'])"
                if missing
                else f"{no_ref} item(s) without item.meta['target_durations']"
            )
            result.notes[metric] = f"phone-level duration JSD needs phone durations on both sides: {what}; " + (
                "see utterance_duration_jsd (utterance lengths, 0.5 s bins), a different and coarser measure"
            )
            return
    pairs = [
        (r, np.asarray(g), np.asarray(t)) for r in rows if (t := ref_of(r)) is not None and (g := gen_of(r)) is not None
    ]
    if not pairs:
        result.notes[metric] = NO_TARGET + _target_errors(rows)
        return
    value, count, why = _compare(pairs)
    if value is None:
        result.notes[metric] = why
        return
    result.values[metric], result.counts[metric] = value, round(count)
    refs = {r.item_id: t for r, _, t in pairs}
    floor = split_half_floor([refs[k] for k in sorted(refs)])
    if floor is None:
        result.notes[f"{metric}_floor"] = f"the split-half floor needs >= 4 items with a reference, got {len(refs)}"
    else:
        result.values[f"{metric}_floor"], result.floor_counts[metric] = floor, len(refs) // 2


def system_jsd(rows: Sequence[ItemScore]) -> JsdResult:
    """The pitch, phone-duration and utterance-duration JSDs, with floors, of one system's per-sample rows."""
    rows = [r for r in rows if r.ok and r.seed is not None]
    result = JsdResult()
    if not rows:
        for metric in KINDS:
            result.notes[metric] = "no successfully scored samples"
        return result
    systems = {r.system for r in rows}
    if len(systems) > 1:
        result.notes["systems"] = f"rows of {len(systems)} systems pooled ({', '.join(sorted(systems))})"
    for metric in KINDS:
        _kind(rows, metric, result)
    if len(set(result.counts.values())) > 1:
        counts = ", ".join(f"{m} {n}" for m, n in result.counts.items())
        result.notes["jsd_items"] = f"the JSDs compare different numbers of utterances per side: {counts}"
    return result
