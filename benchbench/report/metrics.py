"""Effective context length, with a bootstrap confidence interval.

A configuration's effective context length is the longest tested length at
which it still scores at least ``threshold`` times its own short-context score
(its score at the shortest tested length), interpolated linearly between the
two tested lengths where it crosses that level. Lengths are scanned from short
to long and the first drop below the level ends the scan, so a recovery at a
longer length does not count. RULER (Hsieh et al. 2024) uses
a fixed absolute threshold instead; measuring each configuration against
itself makes a 135M model and an 8B model comparable.

The interval resamples the samples of every length with replacement and
recomputes the length; its percentiles give the bounds.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EffectiveLength:
    value: float  # tokens; nan when the short-context score is 0
    low: float
    high: float
    # true when even the longest tested length holds the level, so the true
    # effective length may be longer than anything measured
    at_least: bool


def effective_length(
    lengths: list[int], means: list[float], threshold: float
) -> tuple[float, bool]:
    """The crossing point of ``means`` with ``threshold * means[0]``.

    Returns (length, at_least); at_least is true when no length falls below.
    """
    baseline = means[0]
    if baseline <= 0:
        return float("nan"), False
    level = threshold * baseline
    for i in range(1, len(lengths)):
        if means[i] < level:
            # linear interpolation between the last length above and this one
            fraction = (means[i - 1] - level) / (means[i - 1] - means[i])
            return lengths[i - 1] + fraction * (lengths[i] - lengths[i - 1]), False
    return float(lengths[-1]), True


def effective_length_ci(
    scores: dict[int, np.ndarray],
    threshold: float,
    resamples: int = 1000,
    seed: int = 0,
) -> EffectiveLength:
    """Effective length of per-length sample scores, with a 95% bootstrap interval."""
    lengths = sorted(scores)
    value, at_least = effective_length(
        lengths, [float(scores[n].mean()) for n in lengths], threshold
    )
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        means = [
            float(rng.choice(scores[n], size=len(scores[n])).mean()) for n in lengths
        ]
        draws.append(effective_length(lengths, means, threshold)[0])
    draws = np.asarray(draws)
    draws = draws[~np.isnan(draws)]
    if draws.size == 0:
        return EffectiveLength(value, float("nan"), float("nan"), at_least)
    low, high = np.percentile(draws, [2.5, 97.5])
    return EffectiveLength(value, float(low), float(high), at_least)
