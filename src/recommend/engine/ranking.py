"""Ranking menus: the request's rules applied around the shared top-k kernel.

Every menu row of every product that lists courses for members (member menu, lecturer
scores, batch job, Spark batch job) comes from :func:`rank_chunk`, which applies, for a
chunk of members:

1. the pin rule (:mod:`recommend.engine.pins`): compulsory courses first, then the
   continue-learning rule (:mod:`recommend.engine.continuing`): unfinished courses and
   next lectures;
2. the exclusion rule (:mod:`recommend.engine.exclusions`) and the course filter;
3. the kernel (:mod:`recommend.topk`), asked for the best courses that remain;
4. diversity (:mod:`recommend.engine.diversity`) when asked, then the first ``n``;
5. reasons (:mod:`recommend.engine.reasons`) when asked.

Scores come either as a fresh dense (members, n_courses) matrix that the call may
overwrite (one member's GEMV, a cold-start route) or, for members of a factor model, from
the model's factors through the kernel's blocked GEMM (the batch job). :func:`menu_rows`
runs a whole request through the routes (:mod:`recommend.engine.routes`) chunk by chunk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.engine.continuing import continue_pins
from recommend.engine.diversity import MMR_POOL, mmr
from recommend.engine.exclusions import exclusion_rows
from recommend.engine.pins import PairScorer, Pins, member_pins
from recommend.engine.reasons import pin_reasons, reason_texts, studied_reasons
from recommend.engine.routes import route_codes, route_groups
from recommend.engine.rows import Rows, history_rows, small_isin
from recommend.topk import TopK, topk_scores

if TYPE_CHECKING:
    from recommend.engine.options import MenuOptions
    from recommend.engine.request import MemberRequest
    from recommend.engine.state import CourseFilter, ServingState
    from recommend.models.base import Recommender

__all__ = ["CHUNK", "MenuRows", "menu_rows", "rank_chunk"]

#: Members scored at once by :func:`menu_rows`: bounds the (members x courses) float32
#: score buffer to ~20 MB at 20k courses while keeping the kernel's blocks full.
CHUNK = 256
_NEG_INF = np.float32(-np.inf)


@dataclass(frozen=True)
class MenuRows:
    """Menu rows as arrays, member by member, each member's rows in rank order.

    Attributes
    ----------
    pos : ndarray of int64
        The member of each row (a position in the request or chunk).
    course : ndarray of int64
        Course index.
    score : ndarray of float32
        The model's (or cold-start route's) score.
    rank : ndarray of int32
        1 .. per member.
    route : ndarray of int8
        Index into ``recommend.engine.routes.ROUTES``.
    reason : ndarray of object or None
        One line per row; ``None`` when reasons were not asked for.
    """

    pos: NDArray[np.int64]
    course: NDArray[np.int64]
    score: NDArray[np.float32]
    rank: NDArray[np.int32]
    route: NDArray[np.int8]
    reason: np.ndarray | None

    @classmethod
    def empty(cls, with_reasons: bool = False) -> MenuRows:
        """No rows."""
        none = np.empty(0, np.int64)
        reason = np.empty(0, dtype=object) if with_reasons else None
        return cls(
            none, none, np.empty(0, np.float32), np.empty(0, np.int32), np.empty(0, np.int8), reason
        )

    @classmethod
    def concat(cls, parts: list[MenuRows]) -> MenuRows:
        """Rows of several parts one after the other (all with reasons or none)."""
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        reasons = [p.reason for p in parts]
        return cls(
            np.concatenate([p.pos for p in parts]),
            np.concatenate([p.course for p in parts]),
            np.concatenate([p.score for p in parts]),
            np.concatenate([p.rank for p in parts]),
            np.concatenate([p.route for p in parts]),
            None if any(r is None for r in reasons) else np.concatenate(reasons),  # type: ignore[arg-type]
        )

    def take(self, rows: NDArray[np.int64] | slice) -> MenuRows:
        """A subset of the rows."""
        return MenuRows(
            self.pos[rows],
            self.course[rows],
            self.score[rows],
            self.rank[rows],
            self.route[rows],
            None if self.reason is None else self.reason[rows],
        )

    def in_request_order(self) -> MenuRows:
        """Rows sorted by member position (stable: ranks stay in order)."""
        if self.pos.size < 2 or not (np.diff(self.pos) < 0).any():
            return self
        return self.take(np.argsort(self.pos, kind="stable"))


def rank_chunk(
    model: Recommender,
    state: ServingState,
    options: MenuOptions,
    allowed: CourseFilter,
    idx: NDArray[np.int64],
    seen: Rows,
    *,
    dense: NDArray[np.float32] | None = None,
    route_reasons: np.ndarray | None = None,
    orgs: list[str | None] | None = None,
) -> MenuRows:
    """The menus of a chunk of m members.

    Parameters
    ----------
    model, state
        A fitted model and its serving state. Everything the call reads of the model
        (history, completions, scores) comes from one snapshot when the caller reads inside
        ``with model.reading():``, as the products do.
    options
        The request's options (``n``, ``exclude``, pins, ``diversity``, reasons).
    allowed
        The request's course filter.
    idx : ndarray of int64, shape (m,)
        Model member indices (-1: unknown to the model).
    seen
        The members' history rows (aligned with ``idx``).
    dense : ndarray of float32, shape (m, n_courses), optional
        The members' scores, fresh: exclusions are written into it. Without it the
        members are scored from the model's factors by the kernel (factor models, members
        with a history).
    route_reasons : ndarray of object, shape (m,), optional
        A constant reason per member, a catalogue ``Message`` (``None`` entries: explain
        from their history).
    orgs
        Branch org ids overriding the training branch of each member (see
        :func:`recommend.engine.pins.member_pins`).

    Returns
    -------
    MenuRows
        ``pos`` is the member's row in this chunk (0..m-1), route ``personal`` (the caller
        relabels cold-start rows).
    """
    idx = np.asarray(idx, dtype=np.int64)
    history = model.history_  # the request's snapshot (see Recommender.reading)
    score = _pair_scorer(model, idx, dense)
    pins = member_pins(state, history, idx, options.pin_limit, allowed, score, orgs)
    if options.continue_limit > 0:
        room = np.minimum(options.continue_limit, options.n - pins.counts)
        pins = pins.then(continue_pins(state, history, idx, seen, room, allowed, score, pins))
    excluded = exclusion_rows(state, history, seen, idx, options.exclude)
    diverse = options.diversity > 0
    # With diversity the kernel fills a pool for MMR; pinned courses stay in the kernel's
    # view and are dropped from the pool, so the pool is the same whoever is pinned.
    # Without it, pins are masked like exclusions and the kernel's best fill the rest.
    pool = options.n * (MMR_POOL if diverse else 1)
    k = pool + (int(pins.counts.max(initial=0)) if diverse else 0)
    k = max(1, min(k, state.n_courses))
    masked = excluded if diverse else _with_pins(excluded, pins, idx.size)
    if options.auto_minutes:
        masked = _with_pairs(masked, _too_long(state, options, idx))
    if dense is None:
        top = _factor_top(model, state, idx, masked, allowed, k)
    else:
        top = _dense_top(state, dense, masked, allowed, k)
    rows = _diversified(state, options, top, pins) if diverse else _first_n(options.n, top, pins)
    if options.with_reasons:
        rows = _explained(model, state, rows, pins, seen, route_reasons, options)
    return rows


def menu_rows(
    model: Recommender,
    state: ServingState,
    request: MemberRequest,
    options: MenuOptions,
    allowed: CourseFilter,
) -> MenuRows:
    """The menus of every member of ``request``, in request order.

    Members are split by route (:func:`recommend.engine.routes.route_groups`) and ranked
    :data:`CHUNK` at a time from their dense scores.
    """
    # The same snapshot as the request's id map when the caller reads inside
    # ``model.reading()``: it holds every index the request resolved.
    seen = history_rows(model.history_, request.idx)
    orgs = (
        request.given_orgs(np.arange(request.idx.size)) if request.attributes is not None else None
    )
    parts: list[MenuRows] = []
    for group in route_groups(model, state, request, seen.counts):
        for lo in range(0, len(group.pos), CHUNK):
            chunk = group.take(slice(lo, lo + CHUNK))
            scored = group.scorer(chunk)
            got = rank_chunk(
                model,
                state,
                options,
                allowed,
                chunk.idx,
                seen.take(chunk.pos),
                dense=scored.scores,
                route_reasons=scored.reasons,
                orgs=None if orgs is None else [orgs[p] for p in chunk.pos.tolist()],
            )
            routes = route_codes(scored.routes)
            parts.append(
                MenuRows(
                    chunk.pos[got.pos], got.course, got.score, got.rank, routes[got.pos], got.reason
                )
            )
    if not parts:
        return MenuRows.empty(options.with_reasons)
    return MenuRows.concat(parts).in_request_order()


# ----------------------------------------------------------------------------- steps


def _pair_scorer(
    model: Recommender, idx: NDArray[np.int64], dense: np.ndarray | None
) -> PairScorer:
    """Scores of (row, course) pairs: read from ``dense``, or from the factors."""
    if dense is not None:

        def from_dense(rows: NDArray[np.int64], cols: NDArray[np.int64]) -> NDArray[np.float32]:
            return np.asarray(dense[rows, cols], dtype=np.float32)

        return from_dense

    def from_factors(rows: NDArray[np.int64], cols: NDArray[np.int64]) -> NDArray[np.float32]:
        side = model.course_vectors()
        assert side is not None, "members without dense scores must be of a factor model"
        courses, bias = side
        # One gather per side (member rows repeat, one per candidate).
        members = np.asarray(model.member_vectors(idx[rows]), dtype=np.float32)
        out = np.einsum("ij,ij->i", members, courses.take(cols, axis=0), dtype=np.float32)
        if bias is not None:
            out = out + bias[cols]
        return np.asarray(out, dtype=np.float32)

    return from_factors


def _with_pins(
    excluded: Rows | None, pins: Pins, m: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(row, course) pairs the kernel must not return: exclusions and pins."""
    rows = [pins.rows]
    cols = [pins.courses]
    if excluded is not None:
        rows.append(excluded.row_of_entry)
        cols.append(excluded.indices.astype(np.int64))
    return np.concatenate(rows), np.concatenate(cols)


def _too_long(
    state: ServingState, options: MenuOptions, idx: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(row, course) pairs longer than each member's usual session (``max_minutes="auto"``;
    unknown durations too: they cannot be promised to fit)."""
    durations = state.durations
    assert durations is not None, "course_filter refuses auto without durations"
    when = options.now if options.now is not None else state.now
    limits, _ = state.session_profile().minutes(idx, pd.Timestamp(when))
    order, ranked = state.lazy("durations_sorted", lambda: _sorted_durations(durations))
    fits = np.searchsorted(ranked, limits * 60.0, side="right")  # NaN sorts last: never fits
    counts = state.n_courses - fits
    rows = np.repeat(np.arange(idx.size, dtype=np.int64), counts)
    starts = np.repeat(fits - (np.cumsum(counts) - counts), counts)
    cols = order[np.arange(rows.size) + starts]
    return rows, cols.astype(np.int64)


def _sorted_durations(durations: np.ndarray) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    order = np.argsort(durations, kind="stable").astype(np.int64)  # NaN last
    return order, np.asarray(durations[order], dtype=np.float64)


def _with_pairs(
    masked: Rows | tuple[np.ndarray, np.ndarray] | None,
    more: tuple[NDArray[np.int64], NDArray[np.int64]],
) -> tuple[np.ndarray, np.ndarray]:
    """``masked`` and ``more`` as one set of (row, course) pairs."""
    pairs = _pairs(masked)
    if pairs is None:
        return more
    return np.concatenate((pairs[0], more[0])), np.concatenate((pairs[1], more[1]))


def _pairs(
    masked: Rows | tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    if masked is None:
        return None
    if isinstance(masked, Rows):
        return masked.row_of_entry, masked.indices.astype(np.int64)
    return masked


def _dense_top(
    state: ServingState,
    dense: NDArray[np.float32],
    masked: Rows | tuple[np.ndarray, np.ndarray] | None,
    allowed: CourseFilter,
    k: int,
) -> TopK:
    """The kernel over fresh dense scores: masked pairs and blocked courses written as
    ``-inf`` (never returned), a selective filter passed as ``allow``."""
    m = dense.shape[0]
    pairs = _pairs(masked)
    if pairs is not None and pairs[0].size:
        dense[pairs[0], pairs[1]] = _NEG_INF
    allow = None
    if allowed.selective:
        allow = allowed.allow
    elif allowed.blocked is not None and allowed.blocked.size:
        dense[:, allowed.blocked] = _NEG_INF
    return topk_scores(
        lambda rows: dense if rows.size == m else dense[rows[0] : rows[-1] + 1],
        np.arange(m),
        state.n_courses,
        k,
        allow=allow,
    )


def _factor_top(
    model: Recommender,
    state: ServingState,
    idx: NDArray[np.int64],
    masked: Rows | tuple[np.ndarray, np.ndarray] | None,
    allowed: CourseFilter,
    k: int,
) -> TopK:
    """The kernel over the model's factors (blocked GEMM on all cores)."""
    m = idx.size
    pairs = _pairs(masked)
    mask = None
    if pairs is not None:
        r, c = pairs
        mask = sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=(m, state.n_courses))
    allow = forbid = None
    if allowed.selective:
        allow = allowed.allow
    elif allowed.blocked is not None and allowed.blocked.size:
        forbid = allowed.blocked
    return model.topk(idx, k, exclude=mask, forbid=forbid, allow=allow)


def _first_n(n: int, top: TopK, pins: Pins) -> MenuRows:
    """Each member: their pins (ranks 1..p), then the kernel's best n - p (vectorised)."""
    m = pins.counts.size
    if m == 1:
        return _first_n_of_one(n, top, pins)
    slot = np.arange(top.k)[None, :]
    keep = (top.indices >= 0) & (top.scores > _NEG_INF) & (slot < (n - pins.counts)[:, None])
    k_rows = np.broadcast_to(np.arange(m)[:, None], top.indices.shape)[keep]
    k_rank = (slot + pins.counts[:, None])[keep]
    pin_rank = np.arange(pins.rows.size) - np.repeat(pins.starts, pins.counts)
    all_rows = np.concatenate((pins.rows, k_rows))
    all_rank = np.concatenate((pin_rank, k_rank))
    courses = np.concatenate((pins.courses, top.indices[keep].astype(np.int64)))
    scores = np.concatenate((pins.scores, top.scores[keep]))
    # Ranks of a member are 0..len - 1 without gaps (pins, then the kernel's prefix):
    # each row's place in member-then-rank order is its member's start plus its rank.
    lengths = np.bincount(all_rows, minlength=m)
    order = np.empty(all_rows.size, dtype=np.int64)
    order[(np.cumsum(lengths) - lengths)[all_rows] + all_rank] = np.arange(all_rows.size)
    return MenuRows(
        all_rows[order].astype(np.int64),
        courses[order],
        scores[order].astype(np.float32),
        (all_rank[order] + 1).astype(np.int32),
        np.zeros(order.size, dtype=np.int8),
        None,
    )


def _first_n_of_one(n: int, top: TopK, pins: Pins) -> MenuRows:
    """:func:`_first_n` for one member (a backend's request): plain slices."""
    cand, cand_scores = top.indices[0], top.scores[0]
    keep = (cand >= 0) & (cand_scores > _NEG_INF)
    need = n - int(pins.counts[0])
    courses = np.concatenate((pins.courses, cand[keep][:need].astype(np.int64)))
    scores = np.concatenate((pins.scores, cand_scores[keep][:need])).astype(np.float32)
    size = courses.size
    return MenuRows(
        np.zeros(size, dtype=np.int64),
        courses,
        scores,
        np.arange(1, size + 1, dtype=np.int32),
        np.zeros(size, dtype=np.int8),
        None,
    )


def _diversified(state: ServingState, options: MenuOptions, top: TopK, pins: Pins) -> MenuRows:
    """Each member: their pins, then MMR picks from the kernel's pool minus the pins."""
    n = options.n
    parts: list[MenuRows] = []
    for i in range(pins.counts.size):
        pinned, pin_scores = pins.of(i)
        cand = top.indices[i]
        cand_scores = top.scores[i]
        keep = (cand >= 0) & (cand_scores > _NEG_INF)
        if pinned.size:
            keep &= ~small_isin(cand, pinned)
        cand = cand[keep].astype(np.int64)
        cand_scores = cand_scores[keep]
        need = n - pinned.size
        if cand.size > 1 and need > 0:
            order = mmr(
                cand_scores,
                state.channel_codes[cand],
                state.channel_codes[pinned],
                need,
                options.diversity,
            )
            cand, cand_scores = cand[order], cand_scores[order]
        else:
            cand, cand_scores = cand[:need], cand_scores[:need]
        size = pinned.size + cand.size
        parts.append(
            MenuRows(
                np.full(size, i, dtype=np.int64),
                np.concatenate((pinned, cand)),
                np.concatenate((pin_scores, cand_scores)).astype(np.float32),
                np.arange(1, size + 1, dtype=np.int32),
                np.zeros(size, dtype=np.int8),
                None,
            )
        )
    return MenuRows.concat(parts) if parts else MenuRows.empty()


def _explained(
    model: Recommender,
    state: ServingState,
    rows: MenuRows,
    pins: Pins,
    seen: Rows,
    route_reasons: np.ndarray | None,
    options: MenuOptions,
) -> MenuRows:
    """The rows with a reason each, as text in the request's language: pins say what
    pinned them (compulsory, continue learning, next lecture), the rest carry their
    route's constant reason or name the studied course they are most like."""
    m = pins.counts.size
    reasons = np.empty(rows.pos.size, dtype=object)
    bounds = np.searchsorted(rows.pos, np.arange(m + 1))
    constant = route_reasons if route_reasons is not None else np.full(m, None, dtype=object)
    course_vectors = None
    if any(r is None for r in constant.tolist()):
        # Course factors only: the member side of an updated model is never assembled here.
        side = model.course_vectors()
        course_vectors = None if side is None else side[0]
    pinned = pin_reasons(state, pins)
    starts = pins.starts
    for i in range(m):
        lo, hi = int(bounds[i]), int(bounds[i + 1])
        p = int(pins.counts[i])
        reasons[lo : lo + p] = pinned[int(starts[i]) : int(starts[i]) + p]
        if constant[i] is None:
            history, confidence = seen.row(i)
            reasons[lo + p : hi] = studied_reasons(
                state, course_vectors, rows.course[lo + p : hi], history, confidence
            )
        else:
            reasons[lo + p : hi] = constant[i]
    texts = reason_texts(state, rows.course, reasons, options)
    return MenuRows(rows.pos, rows.course, rows.score, rows.rank, rows.route, texts)
