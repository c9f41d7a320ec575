"""Uncertainty of the aggregates portraits show: intervals for shares, means and medians.

Every figure a portrait reports comes with how sure it is: a small segment's share is
shown with a wide interval, so an organiser does not read noise as a difference.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import binom, norm

from recommend.errors import ConfigError

__all__ = ["complementary_suppression", "mean_interval", "median_interval", "wilson_interval"]

FloatArray = NDArray[np.float64]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r}; expected a number in (0, 1), e.g. 0.95")
    return float(norm.ppf(0.5 + confidence / 2.0))


def wilson_interval(
    successes: ArrayLike, trials: ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Share with its Wilson score interval, elementwise.

    Parameters
    ----------
    successes, trials : array-like of int, same shape
        Counts; ``0 <= successes <= trials``.
    confidence : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    share, low, high : ndarray of float64, the shape of the inputs
        NaN where ``trials == 0``.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if k.shape != n.shape:
        raise ConfigError(f"successes and trials differ in shape: {k.shape} vs {n.shape}")
    if np.any(k < 0) or np.any(k > n):
        raise ConfigError("successes must lie in [0, trials]")
    z = _z(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    empty = n <= 0
    p, low, high = (np.where(empty, np.nan, a) for a in (p, centre - half, centre + half))
    return p, np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)


def mean_interval(
    total: ArrayLike, total_sq: ArrayLike, count: ArrayLike, confidence: float = 0.95
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean with a normal-approximation interval from sums, elementwise.

    Parameters
    ----------
    total, total_sq, count : array-like, same shape
        Sum of the values, sum of their squares, and how many there are (per group).
    confidence : float
        Coverage of the interval, in (0, 1).

    Returns
    -------
    mean, low, high : ndarray of float64
        NaN where ``count == 0``; the interval collapses to the mean where ``count == 1``.
    """
    s = np.asarray(total, dtype=np.float64)
    s2 = np.asarray(total_sq, dtype=np.float64)
    n = np.asarray(count, dtype=np.float64)
    z = _z(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = np.maximum(s2 / n - mean * mean, 0.0) * n / np.maximum(n - 1.0, 1.0)
        half = z * np.sqrt(var / n)
    empty = n <= 0
    mean = np.where(empty, np.nan, mean)
    half = np.where(empty, np.nan, half)
    return mean, mean - half, mean + half


def median_interval(values: ArrayLike, confidence: float = 0.95) -> tuple[float, float, float]:
    """Median with a distribution-free interval from order statistics.

    The interval runs between the order statistics whose ranks bound the median with the
    given binomial coverage, so it needs no assumption about the distribution.

    Parameters
    ----------
    values : array-like of float, shape (n,)
    confidence : float

    Returns
    -------
    median, low, high : float
        NaN for no values.
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = x.size
    _z(confidence)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    alpha = 1.0 - confidence
    # 1-based ranks j and n - j + 1 cover the median with probability >= confidence.
    j = max(int(binom.ppf(alpha / 2.0, n, 0.5)), 1)
    low, high = x[j - 1], x[n - j]
    return float(np.median(x)), float(low), float(high)


def complementary_suppression(
    sizes: ArrayLike, hidden: ArrayLike, total: int, min_size: int
) -> tuple[NDArray[np.bool_], bool]:
    """Hide more groups until the hidden ones cannot be recovered by subtraction.

    Groups partition (part of) a population whose total is shown elsewhere. Hiding only
    the small groups is not enough: ``total - sum(shown)`` gives the hidden remainder away
    when it is a small group. While that remainder is positive but below ``min_size``, the
    smallest still-shown group is hidden too (first in order on ties).

    Parameters
    ----------
    sizes : array of int, shape (n_groups,)
        Members per group; the groups are disjoint.
    hidden : array of bool, shape (n_groups,)
        Groups already hidden (usually ``sizes < min_size``).
    total : int
        Members of the whole (the parent org, the population).
    min_size : int
        Smallest group whose figures may be shown.

    Returns
    -------
    hidden : array of bool, shape (n_groups,)
        The groups to hide (a superset of the input).
    hide_total : bool
        ``True`` when the remainder is still below ``min_size`` with every group hidden:
        the whole's own figures must be hidden as well.
    """
    size = np.asarray(sizes, dtype=np.int64).ravel()
    out = np.asarray(hidden, dtype=bool).ravel().copy()
    if out.shape != size.shape:
        raise ConfigError(f"hidden has {out.size} entries; expected one per group ({size.size})")
    while True:
        remainder = int(total) - int(size[~out].sum())
        if remainder <= 0 or remainder >= min_size:
            return out, False
        candidates = np.flatnonzero(~out & (size > 0))
        if candidates.size == 0:
            return out, True
        out[candidates[np.argmin(size[candidates])]] = True
