"""Vectorised random draws shared by the simulation stages."""

from __future__ import annotations

import numpy as np

FloatArray = np.ndarray
IntArray = np.ndarray


def sigmoid(x: FloatArray) -> FloatArray:
    """The logistic function, elementwise."""
    out: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return out


def categorical(rng: np.random.Generator, probs: FloatArray) -> IntArray:
    """One draw per row of a (n, k) matrix of probabilities; int64 of shape (n,)."""
    cdf: FloatArray = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(int(probs.shape[0]))
    drawn: IntArray = np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1)
    return drawn.astype(np.int64)


def draw_rows(
    rng: np.random.Generator,
    weight: FloatArray,
    group_cdf: FloatArray,
    group: int,
    rows: IntArray,
) -> IntArray:
    """One column per entry of ``rows``, drawn with probability proportional to its weight.

    Two-level inverse-CDF sampling: a group of ``group`` adjacent columns from the per-row
    cumulative group sums, then a column within the group. This avoids a cumulative sum over
    the whole (members x courses) block, which would dominate the run time.

    Parameters
    ----------
    weight : ndarray, shape (b, n), float32
        Non-negative weights.
    group_cdf : ndarray, shape (b, ceil(n / group)), float32
        Row-wise cumulative sums of ``weight`` over consecutive groups of columns.
    rows : ndarray, shape (k,), int64

    Returns
    -------
    ndarray, shape (k,), int64
    """
    n = weight.shape[1]
    x = rng.random(rows.size) * group_cdf[rows, -1].astype(np.float64)
    grp = _row_searchsorted(group_cdf, rows, x)
    before = np.where(grp > 0, group_cdf[rows, np.maximum(grp - 1, 0)], 0.0).astype(np.float64)
    mass = group_cdf[rows, grp].astype(np.float64) - before
    share = np.clip((x - before) / np.maximum(mass, np.finfo(np.float64).tiny), 0.0, 1.0)
    cols = grp[:, None] * group + np.arange(group)
    seg = np.where(cols < n, weight[rows[:, None], np.minimum(cols, n - 1)], 0.0)
    seg_cdf = np.cumsum(seg, axis=1)
    within = (seg_cdf <= (share * seg_cdf[:, -1])[:, None]).sum(axis=1)
    last = np.minimum(group, n - grp * group) - 1
    cols_drawn: IntArray = grp * group + np.minimum(within, last)
    return cols_drawn


def _row_searchsorted(cdf: FloatArray, rows: IntArray, x: FloatArray) -> IntArray:
    """First column ``j`` with ``cdf[rows, j] > x``, for many rows at once.

    A vectorised binary search: one gather per halving step instead of a flattened copy of
    the whole (block x courses) matrix.
    """
    lo = np.zeros(rows.size, dtype=np.int64)
    hi = np.full(rows.size, cdf.shape[1] - 1, dtype=np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        right = cdf[rows, mid] <= x
        lo = np.where(open_ & right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)
