"""Choosing a group menu: the aggregation strategies, coverage's greedy picks and the
quota and budget feasibility checks (see ``recommend.group``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from recommend.engine import (
    ServingState,
)
from recommend.errors import ConfigError
from recommend.group.scoring import Scores, Served, platform_popularity
from recommend.schema import Columns

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "Coverage",
    "check_quotas",
    "coverage_gains",
    "coverage_losses",
    "quotas_feasible",
    "select_courses",
    "shortest_completion",
    "static_values",
]

logger = logging.getLogger(__name__)
C = Columns

#: Aggregation strategies of :func:`recommend.group.order_for_group`.
STRATEGIES = ("average", "least_misery", "borda", "approval", "coverage")
#: Reference menus under the same constraints, for evaluation.
BASELINES = ("popularity", "random")

# Rows summed in float32 before the sum moves to float64 (see coverage_gains).
_SUM_ROWS = 512
_NEG_INF = np.float32(-np.inf)
_EMPTY_I64 = np.empty(0, dtype=np.int64)


# ============================================================================ selection


def static_values(
    strategy: str,
    u: NDArray[np.float32],
    served: Served,
    courses: NDArray[np.int64],
    model: Recommender,
    seed: int,
) -> NDArray[np.float64]:
    mean = u.mean(axis=0, dtype=np.float64)
    if strategy == "average":
        return mean
    if strategy == "least_misery":
        # With many members the minimum is often 0 for all: the mean breaks ties.
        return u.min(axis=0).astype(np.float64) + 1e-6 * mean
    if strategy == "borda":
        p = u.shape[1]
        # The inverse of each row's stable sort order: the rank of every course.
        order = np.argsort(u, axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(p)[None, :], axis=1)
        return ranks.sum(axis=0, dtype=np.float64) / (u.shape[0] * max(p - 1, 1))
    if strategy == "approval":
        return served.counts / u.shape[0] + 1e-6 * mean
    if strategy == "popularity":
        pop = platform_popularity(model)[courses]
        return pop / max(float(pop.max()), 1.0)
    if strategy == "random":
        return np.random.default_rng(seed).random(courses.size)
    raise AssertionError(strategy)


def select_courses(
    strategy: str,
    u: NDArray[np.float32],
    served: Served,
    courses: NDArray[np.int64],
    pin_pos: NDArray[np.int64],
    state: ServingState,
    quota: dict[int, int],
    n: int,
    budget: float | None,
    scores: Scores,
    model: Recommender,
    seed: int,
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Greedy picks (pool positions, in menu order) and their strategy values."""
    p = courses.size
    channels = state.channel_codes[courses]
    durations = (
        np.nan_to_num(state.durations[courses], nan=np.inf)
        if state.durations is not None
        else np.zeros(p)
    )
    if budget is None:
        durations = np.zeros(p)
    budget_left = np.inf if budget is None else float(budget)
    need = dict(quota)
    available = np.ones(p, dtype=bool)
    picks: list[int] = []
    values: list[float] = []

    coverage = Coverage(u, served) if strategy == "coverage" else None
    static = None if coverage else static_values(strategy, u, served, courses, model, seed)

    def take(j: int, value: float) -> None:
        nonlocal budget_left
        picks.append(j)
        values.append(value)
        available[j] = False
        budget_left -= durations[j]
        ch = int(channels[j])
        if need.get(ch, 0) > 0:
            need[ch] -= 1
        if coverage is not None:
            coverage.take(j)

    # Pins first, in their order; they were checked against n and the budget.
    for j in pin_pos.tolist():
        take(int(j), float("nan"))
    check_quotas(state, need, n - len(picks), budget_left, available, channels, durations)

    while len(picks) < n:
        ok = available & quotas_feasible(
            need, n - len(picks), budget_left, available, channels, durations
        )
        if not ok.any():
            break
        if coverage is not None:
            value = coverage.values()
        else:
            assert static is not None, "static values exist for every other strategy"
            value = static
        j = int(np.argmax(np.where(ok, value, -np.inf)))
        take(j, float(value[j]))
    return np.asarray(picks, dtype=np.int64), np.asarray(values, dtype=np.float64)


class Coverage:
    """The coverage strategy's value of every pool course, kept up to date pick by pick.

    The value of course ``j`` is ``(newly_j + lift_j) / m``: ``newly_j`` counts the members
    not yet served whose personal top-k holds ``j``, and ``lift_j = sum_i max(r_ij - b_i,
    0)`` the gain in ``sum(sqrt(best score so far))``, with ``r = sqrt(u)`` and ``b_i`` the
    square root of member ``i``'s best normalised score among the picks (``sqrt(max(u,
    best)) - sqrt(best)`` is that positive part). A pick changes ``b`` only for the members
    whose best it raises, so ``lift`` loses their terms' decrease (:func:`coverage_losses`)
    instead of being summed again over the whole (m x P) matrix (:func:`coverage_gains`).
    When most members are raised, or a course's lift falls below 1% of its last full sum
    (where the updates' rounding would start to show), it is summed again in full. Values
    then agree with a recomputation from scratch to within float32 rounding, and a course
    nobody gains from is worth exactly 0.
    """

    def __init__(self, u: NDArray[np.float32], served: Served) -> None:
        self.m = u.shape[0]
        self.root = np.sqrt(u)
        self.served = served.dense
        # The served pairs by member: a pick subtracts the courses of the members it
        # newly serves.
        self.indptr, self.cols = served.indptr, served.cols
        self.covered = np.zeros(self.m, dtype=bool)
        self.best = np.zeros(self.m, dtype=np.float32)  # b: sqrt of the best score so far
        self.newly = served.counts
        self.lift = coverage_gains(self.root, self.best)
        self.exact = self.lift.copy()  # lift when last summed exactly

    def values(self) -> NDArray[np.float64]:
        """Per pool course, the value of picking it next, float64 (P,)."""
        return (self.newly + self.lift) / self.m

    def take(self, j: int) -> None:
        """Record a pick of pool course ``j``."""
        fresh = np.flatnonzero(self.served[:, j] & ~self.covered)
        if fresh.size:
            self.covered[fresh] = True
            lengths = self.indptr[fresh + 1] - self.indptr[fresh]
            offsets = np.cumsum(lengths) - lengths
            entries = np.repeat(self.indptr[fresh] - offsets, lengths) + np.arange(lengths.sum())
            self.newly -= np.bincount(self.cols[entries], minlength=self.newly.size)
        column = self.root[:, j]
        raised = np.flatnonzero(column > self.best)
        if raised.size == 0:
            return
        old, new = self.best[raised], column[raised]
        self.best[raised] = new
        if 2 * raised.size > self.m or self.root.size <= _SUM_ROWS * self.root.shape[1]:
            # Most members changed (or the group is small): one pass over everyone is
            # cheaper than two over them.
            self.lift = coverage_gains(self.root, self.best)
            self.exact = self.lift.copy()
            return
        self.lift -= coverage_losses(self.root, raised, old, new)
        low = np.flatnonzero(self.lift < 0.01 * self.exact)
        if low.size:
            self.lift[low] = coverage_gains(self.root[:, low], self.best)
            self.exact[low] = self.lift[low]


def coverage_gains(root: NDArray[np.float32], best: NDArray[np.float32]) -> NDArray[np.float64]:
    """Per column, ``sum_i max(root_ij - best_i, 0)``, float64 (P,).

    Blocks of rows are summed in float32 (vectorised across the columns; a block's sum of
    non-negative terms is accurate to about 1e-6 of itself) and the blocks in float64:
    several times faster than a ``dtype=float64`` sum, which converts every element, and
    with no temporary the size of the matrix.
    """
    out = np.zeros(root.shape[1], dtype=np.float64)
    scratch = np.empty((min(_SUM_ROWS, root.shape[0]), root.shape[1]), dtype=np.float32)
    for lo in range(0, root.shape[0], _SUM_ROWS):
        block = root[lo : lo + _SUM_ROWS]
        gain = np.subtract(block, best[lo : lo + _SUM_ROWS, None], out=scratch[: len(block)])
        np.maximum(gain, 0.0, out=gain)
        out += gain.sum(axis=0)
    return out


def coverage_losses(
    root: NDArray[np.float32],
    rows: NDArray[np.int64],
    old: NDArray[np.float32],
    new: NDArray[np.float32],
) -> NDArray[np.float64]:
    """Per column, how much ``sum_i max(root_ij - b_i, 0)`` falls when ``b`` rises from
    ``old`` to ``new`` for members ``rows``: ``sum_i clip(root_ij, old_i, new_i) - old_i``,
    float64 (P,), summed block by block as in :func:`coverage_gains`."""
    out = np.zeros(root.shape[1], dtype=np.float64)
    scratch = np.empty((min(_SUM_ROWS, rows.size), root.shape[1]), dtype=np.float32)
    for lo in range(0, rows.size, _SUM_ROWS):
        at = rows[lo : lo + _SUM_ROWS]
        low, high = old[lo : lo + _SUM_ROWS, None], new[lo : lo + _SUM_ROWS, None]
        loss = np.take(root, at, axis=0, out=scratch[: at.size])
        np.clip(loss, low, high, out=loss)
        loss -= low
        out += loss.sum(axis=0)
    return out


def shortest_completion(
    need: dict[int, int], available: NDArray[np.bool_], channels: np.ndarray, durations: np.ndarray
) -> dict[int, tuple[NDArray[np.float64], NDArray[np.int64]]]:
    """Per channel with unmet quota: sorted durations and positions of available courses."""
    out = {}
    for code, q in need.items():
        if q > 0:
            inside = np.flatnonzero(available & (channels == code))
            order = np.argsort(durations[inside], kind="stable")
            out[code] = (durations[inside][order], inside[order])
    return out


def check_quotas(
    state: ServingState,
    need: dict[int, int],
    slots: int,
    budget_left: float,
    available: NDArray[np.bool_],
    channels: np.ndarray,
    durations: np.ndarray,
) -> None:
    """Raise ``ConfigError`` when the quotas cannot be met at all."""
    total = sum(need.values())
    named = {str(state.channel_names[c]): q for c, q in need.items() if q > 0}
    if total > slots:
        raise ConfigError(
            f"quotas {named} need {total} courses but only {slots} slot(s) are left "
            "after the pinned courses; raise n, lower the quotas or pin fewer with "
            "max_pins= (CLI: --max-pins N)"
        )
    cost = 0.0
    for code, (d, _) in shortest_completion(need, available, channels, durations).items():
        if d.size < need[code] or not np.isfinite(d[: need[code]]).all():
            raise ConfigError(
                f"quota {state.channel_names[code]}={need[code]}: only {d.size} eligible "
                "course(s) of that channel (published, within the budget, not completed by "
                "most of the group)"
            )
        cost += float(d[: need[code]].sum())
    if cost > budget_left:
        raise ConfigError(
            f"quotas {named} need at least {cost / 60:.0f} minutes with the shortest eligible "
            f"courses, but the budget leaves {budget_left / 60:.0f} minutes"
        )


def quotas_feasible(
    need: dict[int, int],
    slots: int,
    budget_left: float,
    available: NDArray[np.bool_],
    channels: np.ndarray,
    durations: np.ndarray,
) -> NDArray[np.bool_]:
    """Courses whose pick still leaves room (slots and budget) to meet the quotas with the
    shortest available courses."""
    p = channels.size
    total_need = sum(need.values())
    helps = np.zeros(p, dtype=bool)
    for code, q in need.items():
        if q > 0:
            helps |= channels == code
    # Slots: a course outside the unmet channels uses a slot the quotas may need.
    ok = np.where(helps, slots - 1 >= total_need - 1, slots - 1 >= total_need)
    if not np.isfinite(budget_left):
        return ok
    parts = shortest_completion(need, available, channels, durations)
    base = 0.0
    cost_q: dict[int, float] = {}
    for code, (d, _) in parts.items():
        cost_q[code] = float(d[: need[code]].sum())
        base += cost_q[code]
    after = np.full(p, base)
    for code, (d, inside) in parts.items():
        q = need[code]
        # Picking a course of this channel: the other q-1 are the cheapest without it.
        among = np.arange(inside.size) < q  # the course itself is one of the q cheapest
        without = np.where(among, cost_q[code] - d, float(d[: q - 1].sum()))
        after[inside] = base - cost_q[code] + without
    ok &= durations + after <= budget_left + 1e-9
    # Prefer picks that still leave room for a full menu: the remaining slots (beyond the
    # quotas) filled with the shortest available courses. When no pick allows that, a
    # shorter menu is better than none.
    rest = np.maximum(slots - 1 - (total_need - helps), 0)
    shortest = np.sort(durations[available])
    prefix = np.concatenate(([0.0], np.cumsum(shortest)))
    full = ok & (durations + after + prefix[np.minimum(rest, shortest.size)] <= budget_left + 1e-9)
    return full if full.any() else ok
