"""The gate's tests (`bench.gate.rows`): resampling and rank statistics of a candidate's change against a baseline.

- `paired_ratio_draws`: the paired cluster bootstrap of a ratio of sums, Σnum/Σden (a mean is the ratio with
  den = 1 per row): both runs' sums are taken over the same resampled clusters (`bench.stats.clusters`).
- `tail_p`: a bootstrap p-value: the share of draws on the null side of a margin, (1 + hits) / (1 + draws). It
  is the exact dual of the percentile interval: p < a/2 iff the (1 - a) percentile interval excludes the margin.
- `sign_flip_test`: the paired randomisation test of a difference of ratios over few units (exact over all 2^n
  label swaps up to 16 units, Monte Carlo above), conditional on the units: what the gate uses when a test set has
  too few clusters (`bench.stats.few_clusters`; the shipped sets: 16 items on a few voices), where a bootstrap
  undercovers.
- `holm`: Holm's step-down adjustment, controlling the family-wise error.
- `ShiftTest`: the Mann-Whitney test of a location shift, its Hodges-Lehmann estimate, the Moses interval (the
  shifts the same test does not reject) and the rank-biserial correlation.
- `GateTest` (`bootstrap_test`, `ShiftTest.gate`): a comparison's interval of the difference and its one-sided
  p-values of "worse" and "better" beyond a margin; the row's p is twice the smaller one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

_CHUNK = 1000  # resamples drawn at once (memory: chunk x clusters counts)


def resample_counts(k: int, resamples: int, rng: np.random.Generator) -> Iterable[np.ndarray]:
    """Chunks of (n, k) arrays: how often each of k clusters is drawn in each of `resamples` bootstrap samples."""
    for start in range(0, resamples, _CHUNK):
        n = min(_CHUNK, resamples - start)
        picks = rng.integers(0, k, (n, k)) + k * np.arange(n)[:, None]
        yield np.bincount(picks.ravel(), minlength=n * k).reshape(n, k).astype(np.float64)


def paired_ratio_draws(
    base: tuple[np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray],
    resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap draws of Σnum_c/Σden_c - Σnum_b/Σden_b; entry j of each array is cluster j's sum, and both runs
    are summed over the same resampled clusters. Draws whose ratio is undefined (Σden = 0) are dropped."""
    (num_b, den_b), (num_c, den_c) = base, cand
    out = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for w in resample_counts(len(num_b), resamples, rng):
            out.append(w @ num_c / (w @ den_c) - w @ num_b / (w @ den_b))
    draws = np.concatenate(out)
    return draws[np.isfinite(draws)]


def tail_p(draws: np.ndarray, threshold: float, upper: bool) -> float:
    """(1 + #draws >= threshold) / (1 + #draws) when `upper`, else with draws <= threshold."""
    hits = np.count_nonzero(draws >= threshold if upper else draws <= threshold)
    return float((1 + hits) / (1 + len(draws)))


@dataclass(frozen=True)
class GateTest:
    """The interval of Δ = candidate - baseline and the one-sided p-values of "worse than the margin" and "better
    than the margin"; `effect_size`: the rank-biserial r of a Mann-Whitney test."""

    ci_low: float
    ci_high: float
    p_worse: float
    p_better: float
    effect_size: float = math.nan

    @property
    def p(self) -> float:
        """Twice the smaller one-sided p (both directions are tested): the comparison's unadjusted p."""
        return min(1.0, 2 * min(self.p_worse, self.p_better))

    def verdict(self, p_value: float, alpha: float, harm: float, margin: float) -> str:
        """Regressed / improved when `p_value` (Holm-adjusted or not) <= alpha, the smaller one-sided p points
        that way and the estimate lies beyond the margin (`harm`: the estimate, positive = worse); an estimate
        beyond the margin that is not significant is "worse (not significant)" / "better (not significant)",
        never "unchanged"."""
        if p_value <= alpha and self.p_worse <= self.p_better and harm > margin:
            return "regressed"
        if p_value <= alpha and self.p_better < self.p_worse and harm < -margin:
            return "improved"
        if harm > margin:
            return "worse (not significant)"
        if harm < -margin:
            return "better (not significant)"
        return "unchanged"


def bootstrap_test(
    base: tuple[np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray],
    worse: float,
    margin: float,
    alpha: float,
    resamples: int,
    rng: np.random.Generator,
) -> GateTest | None:
    """Paired cluster bootstrap of a difference of ratios (`paired_ratio_draws`): the (1 - alpha) percentile
    interval and the tail p-values beyond the margin; `worse` = 1 when a larger Δ is worse, -1 when smaller.
    None when the ratio is undefined in most resamples."""
    draws = paired_ratio_draws(base, cand, resamples, rng)
    if len(draws) < resamples // 2:
        return None
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    harm = worse * draws
    return GateTest(float(low), float(high), tail_p(harm, margin, upper=False), tail_p(harm, -margin, upper=True))


EXACT_SIGN_FLIPS = 16  # up to this many units every one of the 2^n assignments is enumerated; above, Monte Carlo


def sign_flips(n: int, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """(S, exact): rows of 0/1 swap indicators over n paired units. Exact: all 2^n rows (n <= EXACT_SIGN_FLIPS);
    else `resamples` random rows plus the identity (the observed assignment counts as one of the draws)."""
    if n <= EXACT_SIGN_FLIPS:
        codes = np.arange(2**n, dtype=np.int64)
        return ((codes[:, None] >> np.arange(n)) & 1).astype(np.float64), True
    draws = rng.integers(0, 2, (resamples, n)).astype(np.float64)
    return np.vstack([np.zeros((1, n)), draws]), False


def _swapped_deltas(flips: np.ndarray, base: tuple[np.ndarray, np.ndarray], cand: tuple[np.ndarray, np.ndarray]):
    """Δ = Σnum_c/Σden_c - Σnum_b/Σden_b under each row of swaps (1: unit j's baseline and candidate exchanged)."""
    (num_b, den_b), (num_c, den_c) = base, cand
    keep = 1.0 - flips
    with np.errstate(divide="ignore", invalid="ignore"):
        c = (keep @ num_c + flips @ num_b) / (keep @ den_c + flips @ den_b)
        b = (keep @ num_b + flips @ num_c) / (keep @ den_b + flips @ den_c)
    return c - b


def sign_flip_test(
    base: tuple[np.ndarray, np.ndarray],
    cand: tuple[np.ndarray, np.ndarray],
    worse: float,
    margin: float,
    alpha: float,
    resamples: int,
    rng: np.random.Generator,
) -> GateTest | None:
    """Paired randomisation (sign-flip) test of a difference of ratios over n paired units (entry j: unit j's
    Σnum, Σden in each run), conditional on these units: under "no change beyond the margin" the candidate's
    values, shifted by the margin (num - shift·den), are exchangeable with the baseline's unit by unit, so every
    assignment of the labels within a unit is equally likely. Exact over all 2^n assignments up to
    EXACT_SIGN_FLIPS units (smallest one-sided p 2^-n), else `resamples` random ones. The interval is the
    test's inversion: the shifts neither one-sided test rejects at alpha / 2 (bisection). None when the
    statistic is undefined."""
    (num_b, den_b), (num_c, den_c) = (tuple(np.asarray(a, dtype=np.float64) for a in side) for side in (base, cand))
    n = num_b.size
    if n == 0:
        return None
    flips, _ = sign_flips(n, resamples, rng)

    def p_beyond(shift: float, upper: bool) -> float:
        """One-sided p of "Δ > shift" (upper) or "Δ < shift" against the null "Δ = shift"."""
        deltas = _swapped_deltas(flips, (num_b, den_b), (num_c - shift * den_c, den_c))
        observed = deltas[0]  # row 0 swaps nothing: the runs as observed
        finite = deltas[np.isfinite(deltas)]
        if not math.isfinite(observed) or finite.size < flips.shape[0] // 2:
            return math.nan
        tol = 1e-12 * max(1.0, abs(observed))
        hits = np.count_nonzero(finite >= observed - tol if upper else finite <= observed + tol)
        return float(hits / finite.size)

    p_up, p_down = p_beyond(worse * margin, worse > 0), p_beyond(-worse * margin, worse < 0)
    if not (math.isfinite(p_up) and math.isfinite(p_down)):
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = float(num_c.sum() / den_c.sum() - num_b.sum() / den_b.sum())
    low = _invert(lambda d: p_beyond(d, upper=True), delta, alpha / 2, below=True)
    high = _invert(lambda d: p_beyond(d, upper=False), delta, alpha / 2, below=False)
    return GateTest(low, high, p_up, p_down)


def _invert(p_of: Any, estimate: float, level: float, below: bool) -> float:
    """The interval's end on one side of `estimate`: the shift d beyond which `p_of(d)` (monotone in d) falls to
    `level` or below, by bisection; +-inf when even a far shift is not rejected (too few units)."""
    step = max(abs(estimate), 1e-3)
    sign = -1.0 if below else 1.0
    far = estimate
    for _ in range(40):  # expand until rejected
        far = estimate + sign * step
        if p_of(far) <= level:
            break
        step *= 2
    else:
        return -math.inf if below else math.inf
    near = estimate
    for _ in range(40):
        mid = (near + far) / 2
        if p_of(mid) <= level:
            far = mid
        else:
            near = mid
    end = (near + far) / 2
    return float(estimate if abs(end - estimate) <= 1e-9 * max(1.0, abs(estimate)) else end)  # no spread: a point


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values: the j-th smallest of m is scaled by m - j + 1, then made monotone; rejecting where
    the adjusted p <= alpha keeps the family-wise error <= alpha."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1)))
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


@dataclass(frozen=True)
class ShiftTest:
    """Mann-Whitney test of `y` (candidate) against `x` (baseline) shifted by delta, in y - x units.

    U(delta) = #{y_j - x_i > delta} + 0.5 #{= delta}; normal approximation with continuity correction and
    without tie correction (ties make it conservative). `shift`: Hodges-Lehmann estimate (median of the pairwise
    differences); `ci`: the Moses interval at `level`, i.e. every delta that neither one-sided test rejects at
    (1 - level) / 2; `rank_biserial`: P(y > x) - P(y < x)."""

    diffs: np.ndarray  # sorted y_j - x_i
    n_x: int
    n_y: int

    @classmethod
    def of(cls, x: np.ndarray, y: np.ndarray) -> ShiftTest:
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.size == 0 or y.size == 0:
            raise ValueError("the Mann-Whitney test needs values on both sides")
        return cls(np.sort((y[:, None] - x[None, :]).ravel()), x.size, y.size)

    @property
    def _sigma(self) -> float:
        return float(np.sqrt(self.n_x * self.n_y * (self.n_x + self.n_y + 1) / 12.0))

    def _p(self, u: float) -> float:
        return NormalDist().cdf(-(u - self.diffs.size / 2 - 0.5) / self._sigma)

    def p_greater(self, delta: float) -> float:
        """p-value of H0 "shift <= delta" against "shift > delta"."""
        above = self.diffs.size - np.searchsorted(self.diffs, delta, side="right")
        ties = np.searchsorted(self.diffs, delta, side="right") - np.searchsorted(self.diffs, delta, side="left")
        return self._p(above + 0.5 * ties)

    def p_less(self, delta: float) -> float:
        """p-value of H0 "shift >= delta" against "shift < delta"."""
        below = np.searchsorted(self.diffs, delta, side="left")
        ties = np.searchsorted(self.diffs, delta, side="right") - below
        return self._p(below + 0.5 * ties)

    @property
    def shift(self) -> float:
        return float(np.median(self.diffs))

    @property
    def rank_biserial(self) -> float:
        return float((np.count_nonzero(self.diffs > 0) - np.count_nonzero(self.diffs < 0)) / self.diffs.size)

    def ci(self, level: float) -> tuple[float, float]:
        """Moses interval: between data points U is constant, so its ends are pairwise differences."""
        n = self.diffs.size
        allowed = n / 2 + 0.5 + NormalDist().inv_cdf(1 - (1 - level) / 2) * self._sigma  # largest U not rejected
        j = int(np.ceil(n - allowed)) - 1  # lower end: smallest d with #{diffs > d} <= allowed
        if j < 0:
            return -np.inf, np.inf
        return float(self.diffs[j]), float(self.diffs[n - 1 - j])

    def gate(self, worse: float, margin: float, alpha: float) -> GateTest:
        """The Moses interval at 1 - alpha and the p-values of a shift beyond the margin (`worse` as in
        `bootstrap_test`): the verdict and the interval come from this one test."""
        low, high = self.ci(1 - alpha)
        if worse > 0:
            return GateTest(low, high, self.p_greater(margin), self.p_less(-margin), self.rank_biserial)
        return GateTest(low, high, self.p_less(-margin), self.p_greater(margin), self.rank_biserial)
