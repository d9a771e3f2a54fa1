"""Statistics behind the verdicts: exact intervals, sequential looks, the bootstrap.

A sampled claim reports the violation rate with an exact Clopper–Pearson interval, and
a mean over a claim's instances a bootstrap interval (:func:`mean_interval`), so that
neither leaves the range its quantity can take. It is
checked in *looks* of growing size and stops as soon as the verdict cannot change; to
keep the stated confidence honest across several looks, each look uses the confidence
1 − α/K for K planned looks (Bonferroni), and the finding reports the n actually used.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

#: The first look's size; later looks double it until the sample is spent.
FIRST_LOOK = 32


def clopper_pearson(violations: int, n: int, confidence: float) -> tuple[float, float]:
    """The exact two-sided interval for a binomial rate."""
    if n == 0:
        return 0.0, 1.0
    from scipy.stats import beta  # imported when needed: it takes most of a second

    alpha = 1 - confidence
    lo = 0.0 if violations == 0 else float(beta.ppf(alpha / 2, violations, n - violations + 1))
    hi = 1.0 if violations == n else float(beta.ppf(1 - alpha / 2, violations + 1, n - violations))
    return lo, hi


def looks(total: int) -> list[int]:
    """Sample sizes at which a sampled claim is examined: 32, 64, … and finally ``total``."""
    sizes, n = [], FIRST_LOOK
    while n < total:
        sizes.append(n)
        n *= 2
    sizes.append(total)
    return sizes


def per_look_confidence(confidence: float, looks_planned: int) -> float:
    """Bonferroni: each of K looks at confidence 1 − α/K keeps the overall level."""
    return 1 - (1 - confidence) / max(1, looks_planned)


def rate_verdict(violations: int, n: int, tolerance: float, confidence: float, exhaustive: bool) -> str:
    """``holds``, ``violated`` or ``inconclusive`` for a violation count (brief's rules)."""
    if n == 0:
        return "inconclusive"
    if exhaustive:
        return "holds" if violations / n <= tolerance else "violated"
    if tolerance == 0 and violations > 0:
        return "violated"  # any violation where none is tolerated
    lo, hi = clopper_pearson(violations, n, confidence)
    if lo > tolerance:
        return "violated"
    if hi <= tolerance:
        return "holds"
    return "inconclusive"


def samples_to_decide(tolerance: float, confidence: float) -> int | None:
    """The smallest sample on which a claim with no violations holds, looks and their
    Bonferroni correction included; None when no sample can (a tolerance of 0).

    With no violations the interval's upper end is 1 − (α/2)^(1/n), so it falls to the
    tolerance once n ≥ ln(α/2) / ln(1 − tolerance); α shrinks as n brings more looks.
    """
    if not 0 < tolerance < 1:
        return None
    n = 1
    for _ in range(100):  # the number of looks grows like log n: a few rounds settle it
        alpha = 1 - per_look_confidence(confidence, len(looks(n)))
        needed = max(1, math.ceil(math.log(alpha / 2) / math.log(1 - tolerance)))
        if needed <= n:
            break
        n = needed
    while rate_verdict(0, n, tolerance, per_look_confidence(confidence, len(looks(n))), exhaustive=False) != "holds":
        n += 1  # rounding at the boundary
    return n


def bootstrap_support(
    n: int, statistic: Callable[[Sequence[int]], bool], rng: random.Random, replicates: int = 400
) -> float:
    """The fraction of bootstrap resamples (indices drawn with replacement) where the
    condition holds; a condition on sample aggregates holds when this reaches the
    confidence and is violated when it falls to 1 − confidence."""
    if n == 0:
        return math.nan
    hits = 0
    for _ in range(replicates):
        hits += bool(statistic([rng.randrange(n) for _ in range(n)]))
    return hits / replicates


#: Resamples of the bootstrap interval of a mean over a claim's instances.
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    """A confidence interval and the method that made it (findings record both)."""

    low: float
    high: float
    method: str


def mean_interval(values: Sequence[float], confidence: float, seed: int) -> Interval | None:
    """A confidence interval for the mean of ``values`` (None for fewer than two).

    An exhaustive claim's verdict is exact on its finite set; this interval says how far
    the mean might move on another draw of inputs like them. It is the BCa bootstrap
    (bias-corrected and accelerated; Efron 1987) with :data:`RESAMPLES` resamples drawn
    from ``seed``, so the same values and seed give the same interval on any machine.
    Why not Student's t: the t interval is symmetric about the mean, so on a skewed
    non-negative quantity (a KL divergence, a probability near 0) with one large value it
    reaches below 0, a value the quantity cannot take. Every bootstrap interval lies
    between the smallest and largest resampled means, hence inside the range of the
    values, and so inside any range the quantity is known to keep ([0, ∞) for KL, [0, 1]
    for a probability); BCa also corrects the percentile interval's skew. Where BCa is
    undefined (its acceleration needs values that are not all equal and a bootstrap
    distribution on both sides of the mean) the percentile interval is used, and values
    that are all equal give the one-point interval.
    """
    data = np.asarray(values, dtype=np.float64)
    if data.size < 2:
        return None
    if np.all(data == data[0]):
        return Interval(float(data[0]), float(data[0]), "constant")
    (low, high), method = _bootstrap(data, confidence, seed, "BCa"), "bootstrap-bca"
    if not (math.isfinite(low) and math.isfinite(high)):
        (low, high), method = _bootstrap(data, confidence, seed, "percentile"), "bootstrap-percentile"
    # resampled means lie among the values up to rounding (an interpolated percentile can
    # fall an ulp below the smallest): the values' range is the guarantee, so hold to it
    smallest, largest = float(data.min()), float(data.max())
    return Interval(min(max(low, smallest), largest), max(min(high, largest), smallest), method)


def _bootstrap(data: np.ndarray, confidence: float, seed: int, method: str) -> tuple[float, float]:
    from scipy.stats import bootstrap

    with warnings.catch_warnings():  # an undefined BCa warns and gives NaN: the caller falls back
        warnings.simplefilter("ignore")
        ci = bootstrap(
            (data,), np.mean, confidence_level=confidence, method=method, n_resamples=RESAMPLES,
            batch=200, rng=np.random.default_rng(seed),
        ).confidence_interval
    return float(ci.low), float(ci.high)
