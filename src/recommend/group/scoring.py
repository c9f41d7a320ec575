"""Scoring a group: members' routes, the first pass over the candidates, the pool and the
(members x pool) matrix the strategies work on (see ``recommend.group``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.engine import (
    ROUTE_PERSONAL,
    RouteScorer,
    Rows,
    ServingState,
    cold_scorers,
)
from recommend.schema import Columns
from recommend.topk import topk_factors, topk_scores

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "Route",
    "Scores",
    "Served",
    "best_positions",
    "candidate_pool",
    "first_pass",
    "inverse_range",
    "member_routes",
    "platform_popularity",
    "pool_matrix",
    "row_max",
    "served_by",
    "smallest",
]

logger = logging.getLogger(__name__)
C = Columns

# Members scored at once in pass 2 for models without factors (bounds the score buffer).
_CHUNK = 512
_NEG_INF = np.float32(-np.inf)
_EMPTY_I64 = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Scores:
    """Pass 1 results for the m known members of the group."""

    lo: NDArray[np.float32]  # per member: lowest candidate score
    inv: NDArray[np.float32]  # per member: 1 / (highest - lowest), 0 when flat
    mean: NDArray[np.float64]  # per candidate column: mean normalised score
    top: NDArray[np.int64]  # (m, k) candidate columns of each personal top-k, -1 padded
    routes: np.ndarray  # per member


# ============================================================================ pass 1


@dataclass(frozen=True)
class Route:
    """Members of the group scored alike: factor-model members with a history (``vectors``
    set), other members with a history (``score``, thread-safe), or one cold-start route
    (``score``, one thread)."""

    pos: NDArray[np.int64]  # group positions served by the route
    vectors: NDArray[np.float32] | None  # factor route: member vectors, (len(pos), f)
    score: Callable[[NDArray[np.int64]], tuple[np.ndarray, np.ndarray | None]] | None
    threads: int | None
    # Factor route: the model's course factors (n_courses, f) and bias (n_courses,) or None.
    courses: NDArray[np.float32] | None = None
    bias: NDArray[np.float32] | None = None


def member_routes(
    model: Recommender, state: ServingState, idx: NDArray[np.int64], seen: Rows
) -> list[Route]:
    """The group's members split by how they are scored (as in their own menus).

    Members with a history are scored by the model, thread-safe: a factor model's member
    vectors are gathered once (both passes multiply them), other models score through
    ``score_block``. Members without one take the member menu's cold-start routes, one
    thread (their scorers are not documented as thread-safe). A ``score`` callable takes
    group positions and returns their scores for every course and their routes (``None``:
    personal).
    """
    counts = seen.counts
    out: list[Route] = []
    personal = np.flatnonzero(counts > 0)
    side = model.course_vectors() if personal.size else None
    if side is not None:
        vectors = np.asarray(model.member_vectors(idx[personal]), dtype=np.float32)
        out.append(Route(personal, vectors, None, None, side[0], side[1]))
    elif personal.size:

        def personal_scores(at: NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray | None]:
            return np.asarray(model.score_block(idx[at]), dtype=np.float32), None

        out.append(Route(personal, None, personal_scores, None))
    cold = np.flatnonzero(counts == 0)
    if cold.size:
        inverse = np.full(idx.size, -1, dtype=np.int64)
        inverse[cold] = np.arange(cold.size)
        for where, scorer in cold_scorers(model, state, idx[cold]):

            def cold_scores(
                at: NDArray[np.int64], scorer: RouteScorer = scorer
            ) -> tuple[np.ndarray, np.ndarray | None]:
                return scorer(inverse[at])

            out.append(Route(cold[where], None, cold_scores, 1))
    return out


def first_pass(
    model: Recommender,
    state: ServingState,
    idx: NDArray[np.int64],
    seen: Rows,
    cand: NDArray[np.int64],
    k: int,
    routes: list[Route],
) -> Scores:
    """Normalisation, mean normalised score per candidate and personal top-k, in one
    pass over the members' scores (blocks through the top-k kernel).

    The kernel scores the candidate columns only and hands each raw block to ``observe``
    before masking, which records the members' lowest score and their scores of the
    candidates they studied; with the kernel's best score that gives the highest (their
    min-max normalisation needs both). The sum of the
    normalised scores over the group, per course, is then linear in the scores:
    ``sum_i scale_i (s_ij - lo_i) = (sum_i scale_i u_i) . v_j + b_j sum_i scale_i -
    sum_i scale_i lo_i`` for a factor model, one GEMV on the aggregated member vector
    instead of a pass over the (members x courses) block; other models sum each block
    (``scale @ block``) in ``observe``. Courses a member studied are worth 0 to them: their
    terms are subtracted afterwards from the recorded scores.
    """
    m, width = idx.size, cand.size
    position = np.full(state.n_courses, -1, dtype=np.int64)
    position[cand] = np.arange(width)
    lo = np.zeros(m, dtype=np.float32)
    hi = np.zeros(m, dtype=np.float32)
    routes_out = np.full(m, ROUTE_PERSONAL, dtype=object)
    top = np.full((m, k), -1, dtype=np.int64)
    total = np.zeros(width, dtype=np.float64)
    lock = threading.Lock()

    # The studied candidates of every member: (group position, candidate column), grouped
    # by member in group order, and their raw scores as ``observe`` sees them.
    mapped = position[seen.indices]
    studied = mapped >= 0
    studied_rows = np.repeat(np.arange(m, dtype=np.int64), seen.counts)[studied]
    studied_cols = mapped[studied]
    studied_ptr = np.concatenate(([0], np.cumsum(np.bincount(studied_rows, minlength=m))))
    studied_raw = np.zeros(studied_cols.size, dtype=np.float32)

    for route in routes:
        pos = route.pos

        def observe(
            start: int,
            stop: int,
            block: NDArray[np.float32],
            pos: NDArray[np.int64] = pos,
            summed: bool = route.vectors is None,
        ) -> None:
            at = pos[start:stop]
            low = block.min(axis=1)
            lo[at] = low
            # The block's members' entries: one contiguous run per member.
            lengths = studied_ptr[at + 1] - studied_ptr[at]
            if lengths.any():
                offsets = np.cumsum(lengths) - lengths
                entries = np.repeat(studied_ptr[at] - offsets, lengths)
                entries += np.arange(entries.size)
                rows = np.repeat(np.arange(at.size), lengths)
                studied_raw[entries] = block[rows, studied_cols[entries]]
            if summed:
                high = block.max(axis=1)
                hi[at] = high
                scale = inverse_range(low, high)
                part = (scale @ block).astype(np.float64) - float(np.dot(low, scale))
                with lock:
                    np.add(total, part, out=total)

        if route.vectors is not None:
            # The candidates' factors, gathered once: the kernel scores them (with the
            # studied ones as candidate columns to exclude) and the GEMV below reuses them.
            courses, bias = route.courses, route.bias
            assert courses is not None
            cand_f = courses[cand]
            cand_bias = None if bias is None else bias[cand]
            local = np.full(m, -1, dtype=np.int64)
            local[pos] = np.arange(pos.size)
            own = local[studied_rows]  # ascending where >= 0, as both are sorted
            inside = own >= 0
            indptr = np.concatenate(([0], np.cumsum(np.bincount(own[inside], minlength=pos.size))))
            exclude = sp.csr_matrix(
                (np.ones(int(inside.sum()), np.float32), studied_cols[inside], indptr),
                shape=(pos.size, width),
            )
            result = topk_factors(
                route.vectors,
                cand_f,
                k,
                course_bias=cand_bias,
                exclude=exclude,
                on_block=observe,
                num_threads=route.threads,
            )
            top[pos] = result.indices
            # A row's highest score is its best unmasked one (the kernel's first) or one
            # of the studied candidates the kernel masked: no pass over the blocks for it.
            hi[pos] = np.maximum(result.scores[:, 0], row_max(studied_raw, studied_ptr)[pos])
            scale = inverse_range(lo[pos], hi[pos]).astype(np.float64)
            aggregate = (scale @ route.vectors.astype(np.float64)).astype(np.float32)
            part = (cand_f @ aggregate).astype(np.float64)
            if cand_bias is not None:
                part += cand_bias.astype(np.float64) * scale.sum()
            part -= float(np.dot(lo[pos].astype(np.float64), scale))
            np.add(total, part, out=total)
            continue

        # Other models score every course: the kernel keeps the candidate columns and maps
        # the members' history onto them (dropping courses that are not candidates).
        sub = seen.take(pos)
        exclude = sp.csr_matrix(
            (np.ones(sub.indices.size, np.float32), sub.indices, sub.indptr),
            shape=(pos.size, state.n_courses),
        )
        score = route.score
        assert score is not None

        def block_scores(rows: NDArray[np.int64], pos=pos, score=score) -> np.ndarray:
            at = pos[rows]
            raw, got = score(at)
            if got is not None:
                routes_out[at] = got
            return raw

        result = topk_scores(
            block_scores,
            np.arange(pos.size, dtype=np.int64),
            state.n_courses,
            k,
            exclude=exclude,
            allow=cand,
            on_block=observe,
            num_threads=route.threads,
        )
        found = result.indices >= 0
        top[pos] = np.where(found, position[np.where(found, result.indices, 0)], -1)

    # Studied courses are worth 0: take their normalised scores back out of the sums.
    inv = inverse_range(lo, hi)
    worth = (studied_raw - lo[studied_rows]) * inv[studied_rows]
    total -= np.bincount(studied_cols, worth.astype(np.float64), minlength=width)
    return Scores(lo, inv, total / m, top, routes_out)


def row_max(values: NDArray[np.float32], indptr: NDArray[np.int64]) -> NDArray[np.float32]:
    """Per row, the largest of ``values[indptr[r]:indptr[r + 1]]`` (-inf for empty rows)."""
    counts = np.diff(indptr)
    out = np.full(counts.size, _NEG_INF, dtype=np.float32)
    has = counts > 0
    if has.any():
        # Each reduction runs to the next non-empty row's start: exactly the row's run.
        out[has] = np.maximum.reduceat(values, indptr[:-1][has])
    return out


def inverse_range(low: NDArray[np.float32], high: NDArray[np.float32]) -> NDArray[np.float32]:
    """Per member ``1 / (high - low)``, 0 where the scores are flat (float32)."""
    spread = high - low
    return np.divide(1.0, spread, out=np.zeros_like(spread), where=spread > 0)


# ============================================================================ the pool


def candidate_pool(
    state: ServingState,
    model: Recommender,
    scores: Scores,
    cand: NDArray[np.int64],
    pins: NDArray[np.int64],
    quota: dict[int, int],
    n: int,
    strategy: str,
    pool_size: int | None,
    durations: np.ndarray | None,
    seed: int,
) -> NDArray[np.int64]:
    """Candidate columns the strategies choose from, sorted."""
    width = cand.size
    size = min(width, pool_size if pool_size is not None else max(20 * n, 200))
    parts = [best_positions(scores.mean, size)]
    approval = np.bincount(scores.top[scores.top >= 0], minlength=width)
    key = approval + scores.mean * 1e-3
    # A course in someone's top-k (key >= 1) beats every other (key <= 1e-3): when there
    # are enough of them, the best are among them, a much shorter list for small groups.
    approved = np.flatnonzero(approval)
    if approved.size >= size:
        parts.append(approved[best_positions(key[approved], size)])
    else:
        parts.append(best_positions(key, size))
    position = np.full(state.n_courses, -1, dtype=np.int64)
    position[cand] = np.arange(width)
    parts.append(position[pins])
    channels = state.channel_codes[cand]
    for code, count in quota.items():
        inside = np.flatnonzero(channels == code)
        parts.append(inside[best_positions(scores.mean[inside], count + n)])
        if durations is not None:
            # The shortest courses of the channel: what the feasibility check relies on.
            d = np.nan_to_num(durations[cand[inside]], nan=np.inf)
            parts.append(inside[smallest(d, count + n)])
    if strategy == "popularity":
        parts.append(best_positions(platform_popularity(model)[cand], size))
    elif strategy == "random":
        rng = np.random.default_rng(seed)
        parts.append(rng.choice(width, size=min(size, width), replace=False))
    return np.unique(np.concatenate(parts))


def best_positions(values: np.ndarray, size: int) -> NDArray[np.int64]:
    """Positions of the ``size`` largest values (unordered)."""
    if size >= values.size:
        return np.arange(values.size, dtype=np.int64)
    if size <= 0:
        return _EMPTY_I64
    return np.argpartition(-values, size - 1)[:size].astype(np.int64)


def smallest(values: NDArray[np.float64], size: int) -> NDArray[np.int64]:
    """Positions of the ``size`` smallest values, ties to the lower position: the first
    ``size`` of a stable argsort (as a set), by one partition instead of a sort."""
    if size >= values.size:
        return np.arange(values.size, dtype=np.int64)
    if size <= 0:
        return _EMPTY_I64
    kth = np.partition(values, size - 1)[size - 1]
    below = np.flatnonzero(values < kth)
    tied = np.flatnonzero(values == kth)[: size - below.size]
    return np.concatenate((below, tied))


def platform_popularity(model: Recommender) -> NDArray[np.float64]:
    """Members who interacted with each course in training (ties: lower index)."""
    base = model.history_.base
    return np.bincount(base.indices, minlength=base.shape[1]).astype(np.float64)


def pool_matrix(
    model: Recommender,
    state: ServingState,
    idx: NDArray[np.int64],
    seen: Rows,
    courses: NDArray[np.int64],
    scores: Scores,
    routes: list[Route],
) -> NDArray[np.float32]:
    """Normalised scores of the members for the pool courses, (m, P) float32 in [0, 1],
    0 where the member already studied the course."""
    m, p = idx.size, courses.size
    u = np.empty((m, p), dtype=np.float32)
    for route in routes:
        if route.vectors is not None:
            # Factor models: one small GEMM on the pool's course factors.
            assert route.courses is not None
            pool_t = np.ascontiguousarray(route.courses[courses].T, dtype=np.float32)
            if route.pos.size == m:  # everyone (positions are sorted): write in place
                np.matmul(route.vectors, pool_t, out=u)
            else:
                u[route.pos] = route.vectors @ pool_t
            if route.bias is not None:
                u[route.pos] += route.bias[courses]
        else:
            assert route.score is not None
            for lo in range(0, route.pos.size, _CHUNK):
                at = route.pos[lo : lo + _CHUNK]
                u[at] = route.score(at)[0][:, courses]
    u -= scores.lo[:, None]
    u *= scores.inv[:, None]
    np.clip(u, 0.0, 1.0, out=u)
    position = np.full(state.n_courses, -1, dtype=np.int64)
    position[courses] = np.arange(p)
    cols = position[seen.indices]
    rows = np.repeat(np.arange(m), seen.counts)
    hit = cols >= 0
    u[rows[hit], cols[hit]] = 0.0
    return u


@dataclass(frozen=True)
class Served:
    """Which pool courses are in each member's personal top-k: ``dense`` (m, P) bool, and
    the same pairs as CSR (``indptr`` (m + 1,), ``cols`` pool positions, by member)."""

    dense: NDArray[np.bool_]
    indptr: NDArray[np.int64]
    cols: NDArray[np.int64]

    @property
    def counts(self) -> NDArray[np.int64]:
        """Members served by each pool course, (P,)."""
        return np.bincount(self.cols, minlength=self.dense.shape[1])


def served_by(top: NDArray[np.int64], pool: NDArray[np.int64], width: int) -> Served:
    """The personal top-k (candidate columns, -1 padded) restricted to the pool."""
    position = np.full(width + 1, -1, dtype=np.int64)
    position[pool] = np.arange(pool.size)
    mapped = position[top]  # top's -1 padding maps to position[-1] == -1
    hit = mapped >= 0
    cols = mapped[hit]  # row-major: grouped by member
    rows = np.repeat(np.arange(top.shape[0]), hit.sum(axis=1))
    dense = np.zeros((top.shape[0], pool.size), dtype=bool)
    dense[rows, cols] = True
    indptr = np.concatenate(([0], np.cumsum(hit.sum(axis=1))))
    return Served(dense, indptr, cols)
