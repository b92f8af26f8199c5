"""Prosody diversity across seeds: one row per (system, item) group of samples that differ only in seed.

For a group with >= 2 scored seeds:

- `seed_f0_mean_std_st`: standard deviation (ddof=1) over seeds of the utterance mean log-F0, in semitones;
- `seed_f0_range_std_st`: standard deviation over seeds of the 5-95 % F0 range, in semitones;
- `seed_duration_std_s`: standard deviation over seeds of the utterance duration, in seconds;
- `seed_contour_dist_st`: mean over seed pairs of the RMS difference (semitones) between the two F0
  contours, each the sequence of voiced frames (unvoiced frames dropped) linearly interpolated onto 100
  evenly spaced points. Absolute pitch is kept, so a level shift counts as well as a shape change.

F0 metrics use only seeds with voiced frames (contours: >= 2 voiced frames) and are left out when fewer
than two seeds qualify. A group with one seed, or with fewer than two seeds scored, is an error row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from suites.base import ItemScore, Sample
from suites.prosody.features import CONTOUR_POINTS, UtteranceProsody, mean_pairwise_distance

GroupKey = tuple[str, str]


def _std(values: Sequence[float]) -> float:
    return float(np.std(np.asarray(values, dtype=np.float64), ddof=1))


def group_metrics(features: Sequence[UtteranceProsody], points: int = CONTOUR_POINTS) -> dict[str, float]:
    """Diversity metrics of the features of one item's seeds (>= 2 of them)."""
    if len(features) < 2:
        raise ValueError("diversity needs >= 2 seeds")
    out = {"seed_duration_std_s": _std([f.duration_s for f in features])}
    voiced = [f for f in features if f.f0_mean_hz is not None]
    if len(voiced) >= 2:
        out["seed_f0_mean_std_st"] = _std([f.f0_mean_st for f in voiced])  # type: ignore[misc]
        out["seed_f0_range_std_st"] = _std([f.f0_range_st for f in voiced])  # type: ignore[misc]
    contours = [f.contour_st for f in features if f.contour_st is not None and len(f.contour_st) >= 2]
    if len(contours) >= 2:
        out["seed_contour_dist_st"] = mean_pairwise_distance(contours, points)
    return out


def diversity_rows(
    suite: str,
    samples: Sequence[Sample],
    rows: Sequence[ItemScore],
    features: Callable[[Sample], UtteranceProsody | None],
    points: int = CONTOUR_POINTS,
) -> list[ItemScore]:
    """One seed=None row per (system, item) of `samples`, from the per-sample rows and their features."""
    ok_keys = {(r.system, r.item_id, r.seed) for r in rows if r.ok}
    groups: dict[GroupKey, list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.system, sample.item.id), []).append(sample)
    out = []
    for (system, item_id), members in groups.items():
        seeds = sorted({s.seed for s in members})
        scored = [s for s in members if s.key in ok_keys and features(s) is not None]
        details: dict = {"seeds": seeds, "seeds_scored": len({s.seed for s in scored})}
        error = None
        if len(seeds) < 2:
            error = f"only one seed ({seeds[0]}) for this item: seed diversity needs >= 2 seeds per item"
        elif len({s.seed for s in scored}) < 2:
            error = f"only {details['seeds_scored']} of {len(seeds)} seeds scored: seed diversity needs >= 2"
        metrics: dict[str, float] = {}
        if error is None:
            unique = {s.seed: features(s) for s in scored}  # a repeated seed counts once
            metrics = group_metrics([f for f in unique.values() if f is not None], points)
            if len(seeds) > len(unique):
                details["seeds_failed"] = len(seeds) - len(unique)
            missing = {"seed_f0_mean_std_st", "seed_contour_dist_st"} - metrics.keys()
            if missing:
                details["note"] = f"fewer than 2 seeds with voiced frames: {', '.join(sorted(missing))} left out"
        out.append(ItemScore(suite, system, item_id, None, metrics=metrics, details=details, error=error))
    return out
