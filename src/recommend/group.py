"""Group menus (top-down order-by-menu): courses an organisation orders for a target group.

A branch secretary or a higher organisation orders courses for a group of members: one
branch with its sub-branches, members picked by attributes (retired, mobile, an age band,
a district), or an explicit list. The members' predicted preferences are aggregated into
one menu of ``n`` courses that serves the whole group, within the organisation's
constraints, and the result says how well each member is served.

Scores and normalisation
------------------------
Each member's scores come from the same routes as their own menu (``recommend.menu``):
the model for members with a history, cold-start popularity for the others. Scores are
min-max normalised per member over the candidate courses, so a heavy learner (whose raw
scores are larger) counts as much as anyone. A course the member has already studied is
worth 0 to them: the group menu should bring something new. A member's **personal
top-k** (``personal_k``) is what their own menu would hold (seen courses excluded).

Strategies
----------
``average``       mean normalised score over the group.
``least_misery``  the lowest normalised score in the group (ties: the mean).
``borda``         Borda count over the candidate pool: each member gives a course the
                  number of pool courses they rank below it.
``approval``      share of members with the course in their personal top-k (ties: mean).
``coverage``      greedy: each pick maximises the members newly served (course in their
                  personal top-k) plus the gain in ``sum(sqrt(best score so far))`` over
                  members; the square root favours the least-served members.
``popularity``, ``random``  baselines (platform popularity; a seeded random order) under the
                  same constraints, for evaluation.

Constraints
-----------
A time budget (sum of durations), channel quotas (at least ``q`` courses of a channel),
compulsory courses always included (those compulsory for the branches of at least
``compulsory_share`` of the group, plus ``must_include``), and courses already completed by
at least ``exclude_completed`` of the group left out. Selection is greedy over the pool
with a feasibility check at every pick: a course is taken only if the unmet quotas can
still be filled within the remaining slots and budget by the shortest eligible courses.

How a call runs, and why it is fast: pass 1 scores the members in blocks through the
shared top-k kernel (``recommend.topk``), on the candidate courses only, for their personal
top-k; a hook on each raw block records every member's normalisation (lowest and highest
score), so the full (members x courses) matrix never exists. The per-course sum of the
normalised scores is linear in the scores: for a factor model it is one GEMV on the group's
aggregated member vector (``sum_i scale_i u_i``) instead of a second pass over the blocks;
other models add up each block as it goes by. The best courses by mean score and by
approval (plus pins and quota candidates) form a pool of a few hundred courses; pass 2
scores the members on the pool only (a small GEMM for factor models), and every strategy
works on that (members x pool) matrix, coverage updating its values only for the members
each pick affects. Means and values are float64 sums; they agree with a direct computation
to within float32 rounding of the scores (about 1e-6), which can only reorder courses whose
values tie to that precision.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.checks import minutes_in_seconds, positive_int
from recommend.engine import (
    ROUTE_PERSONAL,
    GroupPins,
    RouteScorer,
    Rows,
    ServingState,
    cold_scorers,
    group_pins,
    history_rows,
    matrix_rows,
    serving_state,
)
from recommend.errors import ConfigError, DataError
from recommend.schema import Columns
from recommend.selection import MemberSpec, describe, group_members
from recommend.topk import single_threaded_blas, topk_factors, topk_scores

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "BASELINES",
    "STRATEGIES",
    "GroupMenu",
    "evaluate_group_strategies",
    "group_members",
    "order_for_group",
]

logger = logging.getLogger(__name__)
C = Columns

#: Aggregation strategies of :func:`order_for_group`.
STRATEGIES = ("average", "least_misery", "borda", "approval", "coverage")
#: Reference menus under the same constraints, for evaluation.
BASELINES = ("popularity", "random")

# Members scored at once in pass 2 for models without factors (bounds the score buffer).
_CHUNK = 512
# Rows summed in float32 before the sum moves to float64 (see _gains).
_SUM_ROWS = 512
_NEG_INF = np.float32(-np.inf)
_EMPTY_I64 = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class GroupMenu:
    """A group menu and how it serves the group.

    Attributes
    ----------
    menu : DataFrame
        ``course_id, rank, group_score`` (the strategy's value for the course),
        ``mean_score`` (mean normalised member score), ``served`` (members with the course
        in their personal top-k), ``channel``, ``minutes``, ``lecturer_id``, ``pinned``.
    members : DataFrame
        ``member_id, route, satisfaction`` (best normalised predicted score over the menu,
        in [0, 1]), ``served`` (a menu course is in their personal top-k),
        ``best_course_id``.
    strategy : str
    notes : tuple of str
        What the caller should know: unknown members, fewer courses than asked, ...
    unknown : ndarray
        Member ids of the request unknown to the model (left out).
    lecturers : DataFrame or None
        Lecturers ranked for the group (``lecturers > 0``), as in ``lecturer_menu``.
    total_minutes : float
        Sum of the menu's durations (NaN when durations are unknown).
    """

    menu: pd.DataFrame
    members: pd.DataFrame
    strategy: str
    notes: tuple[str, ...]
    unknown: np.ndarray
    lecturers: pd.DataFrame | None
    total_minutes: float

    @property
    def coverage(self) -> float:
        """Share of the group with at least one menu course in their personal top-k."""
        return float(self.members["served"].mean()) if len(self.members) else 0.0


# ============================================================================ the group


# ============================================================================ the call


@dataclass(frozen=True)
class _Scores:
    """Pass 1 results for the m known members of the group."""

    lo: NDArray[np.float32]  # per member: lowest candidate score
    inv: NDArray[np.float32]  # per member: 1 / (highest - lowest), 0 when flat
    mean: NDArray[np.float64]  # per candidate column: mean normalised score
    top: NDArray[np.int64]  # (m, k) candidate columns of each personal top-k, -1 padded
    routes: np.ndarray  # per member


def order_for_group(
    model: Recommender,
    members: MemberSpec,
    n: int = 10,
    *,
    strategy: str = "coverage",
    budget_minutes: float | None = None,
    quotas: Mapping[str, int] | None = None,
    pin_compulsory: bool = True,
    compulsory_share: float = 0.5,
    max_pins: int | None = None,
    must_include: Sequence[Any] = (),
    exclude_completed: float | None = 0.5,
    personal_k: int = 20,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    member_table: pd.DataFrame | None = None,
    lecturers: int = 0,
    pool_size: int | None = None,
    seed: int = 0,
) -> GroupMenu:
    """A menu of ``n`` courses for a group of members, and how well it serves each.

    Parameters
    ----------
    model
        A fitted or loaded ``Recommender``.
    members
        The group: member ids, an org id (with its sub-branches) or an attribute filter;
        see :func:`group_members`. Unknown member ids are left out and reported in
        ``notes``/``unknown``.
    n
        Courses on the menu (fewer when fewer fit; a note says so).
    strategy
        One of :data:`STRATEGIES` (or :data:`BASELINES`); see the module docstring.
    budget_minutes
        Total duration the menu may take. Courses of unknown duration are then left out.
    quotas
        Channel (course ``category``) -> at least this many courses, e.g. ``{"理论学习": 2}``.
    pin_compulsory
        Include the courses made compulsory for the branches of at least
        ``compulsory_share`` of the group (unless most of the group completed them).
    max_pins
        At most this many compulsory courses (the most widely compulsory first; a note
        names those left out). ``None``: all of them.
    must_include
        Course ids the organisation wants on the menu whatever the scores.
    exclude_completed
        Leave out courses completed by at least this share of the group (``None``: keep).
    personal_k
        Size of the personal top-k that defines "served" (approval, coverage).
    only_published, now
        As in ``member_menu``: only courses published by ``now`` (the data time).
    member_table
        Members table for attribute filters (see :func:`group_members`).
    lecturers
        Also rank this many lecturers for the group (an offline lecture), by the mean of
        their three best courses' mean group score.
    pool_size
        Candidate pool for the strategies (default ``max(20 n, 200)``).
    seed
        Seed of the ``random`` baseline.

    Returns
    -------
    GroupMenu

    Raises
    ------
    ConfigError
        Unknown strategy or channel, bad option, or constraints that no menu can meet
        (quotas above ``n``, budget below the shortest completion of the quotas or the
        pinned courses); the message names the values.
    DataError
        An empty group, or no member of it known to the model.
    """
    model.check_fitted()
    options = GroupOptions(
        n=n,
        strategy=strategy,
        budget_minutes=budget_minutes,
        quotas=quotas,
        pin_compulsory=pin_compulsory,
        compulsory_share=compulsory_share,
        max_pins=max_pins,
        must_include=tuple(must_include),
        exclude_completed=exclude_completed,
        personal_k=personal_k,
        only_published=only_published,
        now=now,
        lecturers=lecturers,
        pool_size=pool_size,
        seed=seed,
    )
    return serve_group_menu(model, members, options, member_table=member_table)


@dataclass(frozen=True)
class GroupOptions:
    """The options of a group menu (see :func:`order_for_group` for each), validated on
    construction (``ConfigError`` naming the option otherwise)."""

    n: int = 10
    strategy: str = "coverage"
    budget_minutes: float | None = None
    quotas: Mapping[str, int] | None = None
    pin_compulsory: bool = True
    compulsory_share: float = 0.5
    max_pins: int | None = None
    must_include: tuple[Any, ...] = ()
    exclude_completed: float | None = 0.5
    personal_k: int = 20
    only_published: bool = True
    now: pd.Timestamp | str | None = None
    lecturers: int = 0
    pool_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", positive_int(self.n, "n"))
        object.__setattr__(self, "personal_k", positive_int(self.personal_k, "personal_k"))
        if self.strategy not in STRATEGIES + BASELINES:
            raise ConfigError(
                f"strategy={self.strategy!r}; expected one of {list(STRATEGIES + BASELINES)}"
            )
        if not 0.0 < self.compulsory_share <= 1.0:
            raise ConfigError(f"compulsory_share must be in (0, 1], got {self.compulsory_share!r}")
        share = self.exclude_completed
        if share is not None and not 0.0 < share <= 1.0:
            raise ConfigError(f"exclude_completed must be in (0, 1] or None, got {share!r}")
        if self.budget_minutes is not None:
            minutes_in_seconds(self.budget_minutes, "budget_minutes")
        pins = self.max_pins
        if pins is not None and (isinstance(pins, bool) or not isinstance(pins, int) or pins < 0):
            raise ConfigError(f"max_pins must be a non-negative integer or None, got {pins!r}")
        if self.lecturers:
            positive_int(self.lecturers, "lecturers")

    @property
    def budget_seconds(self) -> float | None:
        """``budget_minutes`` in seconds."""
        if self.budget_minutes is None:
            return None
        return minutes_in_seconds(self.budget_minutes, "budget_minutes")

    @property
    def published_by(self) -> pd.Timestamp | str | bool | None:
        """What the course filter checks publication against (``False``: no check)."""
        return self.now if self.only_published else False


@dataclass(frozen=True)
class _Group:
    """The group's members known to the model, and what the caller should know."""

    ids: np.ndarray
    idx: NDArray[np.int64]
    unknown: np.ndarray
    notes: list[str]


def serve_group_menu(
    model: Recommender,
    members: MemberSpec,
    options: GroupOptions,
    *,
    member_table: pd.DataFrame | None = None,
) -> GroupMenu:
    """:func:`order_for_group` with its options as one :class:`GroupOptions`."""
    model.check_fitted()
    state = serving_state(model)
    group = _resolve_group(model, members, member_table)
    seen = history_rows(model.history_, group.idx)
    published = state.filter(None, None, options.published_by).mask  # type: ignore[arg-type]
    done_share = _completed_share(state, group.idx)
    keep = _eligible(state, published, done_share, options)
    pins = group_pins(
        state,
        group.idx,
        requested=_requested(model, options.must_include),
        pin_compulsory=options.pin_compulsory,
        share=options.compulsory_share,
        published=published,
        done_share=done_share,
        exclude_completed=options.exclude_completed,
        max_pins=options.max_pins,
    )
    group.notes.extend(pins.notes)
    quota = _quotas(state, options.quotas)
    _check_pins(state, pins.courses, options.n, options.budget_seconds)
    cand = _candidates(keep, pins, members, options)
    selection = _select_menu(model, state, group, seen, cand, pins, quota, options)
    if selection.picks.size < options.n:
        group.notes.append(
            f"only {selection.picks.size} course(s) fit the constraints (asked for {options.n})"
        )
    for note in group.notes:
        logger.info("group menu: %s", note)
    return _result(state, model, group, selection, pins.courses, options, cand)


def _resolve_group(
    model: Recommender, members: MemberSpec, member_table: pd.DataFrame | None
) -> _Group:
    """The group's member ids and model indices; unknown ids are left out with a note."""
    ids = group_members(model, members, member_table=member_table)
    if ids.size == 0:
        raise DataError(f"the group {describe(members)} has no members")
    idx = model.member_ids_.to_index(ids, unknown="mask").astype(np.int64)
    notes: list[str] = []
    unknown = ids[idx < 0]
    if unknown.size == ids.size:
        raise DataError(
            f"none of the {ids.size} member id(s) of the group is known to the model: "
            f"{unknown[:10].tolist()}"
        )
    if unknown.size:
        notes.append(
            f"{unknown.size} of {ids.size} member id(s) unknown to the model were left out: "
            f"{unknown[:10].tolist()}{' ...' if unknown.size > 10 else ''}"
        )
    return _Group(ids[idx >= 0], idx[idx >= 0], unknown, notes)


def _eligible(
    state: ServingState,
    published: NDArray[np.bool_] | None,
    done_share: NDArray[np.float64],
    options: GroupOptions,
) -> NDArray[np.bool_]:
    """Candidate courses: published, fit the budget, not completed by most of the group."""
    keep = np.ones(state.n_courses, dtype=bool) if published is None else published.copy()
    budget = options.budget_seconds
    if budget is not None:
        if state.durations is None:
            raise ConfigError(
                "budget_minutes needs course durations: the training courses table has no "
                f"{C.DURATION} column"
            )
        with np.errstate(invalid="ignore"):
            keep &= state.durations <= budget
    if options.exclude_completed is not None:
        keep &= done_share < options.exclude_completed
    return keep


def _requested(model: Recommender, must_include: Sequence[Any]) -> NDArray[np.int64]:
    """Course indices of ``must_include``; unknown course ids raise."""
    if not len(must_include):
        return np.empty(0, dtype=np.int64)
    wanted = np.asarray(list(must_include), dtype=object)
    found = model.course_ids_.to_index(wanted, unknown="mask")
    if (found < 0).any():
        raise ConfigError(f"must_include names unknown course id(s): {wanted[found < 0].tolist()}")
    return np.asarray(found, dtype=np.int64)


def _candidates(
    keep: NDArray[np.bool_], pins: GroupPins, members: MemberSpec, options: GroupOptions
) -> NDArray[np.int64]:
    """Eligible courses plus the pinned ones, whatever the filters say."""
    eligible = keep.copy()
    eligible[pins.courses] = True
    cand = np.flatnonzero(eligible).astype(np.int64)
    if cand.size == 0:
        raise ConfigError(
            f"no course is eligible for the group {describe(members)}: every course is "
            f"unpublished, longer than the budget ({options.budget_minutes} minutes) or "
            f"completed by at least {options.exclude_completed} of the group"
        )
    return cand


@dataclass(frozen=True)
class _Selection:
    """What the strategies chose, with the scores the result reports."""

    scores: _Scores
    u: NDArray[np.float32]
    served: _Served
    pool: NDArray[np.int64]
    courses: NDArray[np.int64]
    picks: NDArray[np.int64]
    values: NDArray[np.float64]


def _select_menu(
    model: Recommender,
    state: ServingState,
    group: _Group,
    seen: Rows,
    cand: NDArray[np.int64],
    pins: GroupPins,
    quota: dict[int, int],
    options: GroupOptions,
) -> _Selection:
    """Pass 1 over the candidates, the pool, pass 2 on the pool, and the strategy's picks."""
    idx, n, strategy, seed = group.idx, options.n, options.strategy, options.seed
    k = min(options.personal_k, cand.size)
    # The kernel brings its own threads; the products outside it are small.
    with single_threaded_blas():
        routes = _routes(model, state, idx, seen)
        scores = _pass1(model, state, idx, seen, cand, k, routes)
        pool = _pool(
            state,
            model,
            scores,
            cand,
            pins.courses,
            quota,
            n,
            strategy,
            options.pool_size,
            state.durations,
            seed,
        )
        u = _pool_matrix(model, state, idx, seen, cand[pool], scores, routes)
        served = _served(scores.top, pool, cand.size)
        pool_courses = cand[pool]
        pin_pos = np.flatnonzero(np.isin(pool_courses, pins.courses))
        picks, values = _select(
            strategy,
            u,
            served,
            pool_courses,
            pin_pos,
            state,
            quota,
            n,
            options.budget_seconds,
            scores,
            model,
            seed,
        )
    return _Selection(scores, u, served, pool, pool_courses, picks, values)


def _completed_share(state: ServingState, idx: NDArray[np.int64]) -> NDArray[np.float64]:
    """Per course, the share of the group with a ``complete`` event in training."""
    done = matrix_rows(state.completed(), idx)
    counts = np.bincount(done.indices, minlength=state.n_courses)
    return counts / max(idx.size, 1)


def _quotas(state: ServingState, quotas: Mapping[str, int] | None) -> dict[int, int]:
    """Channel code -> minimum count; unknown channels and bad counts raise."""
    out: dict[int, int] = {}
    for channel, count in (quotas or {}).items():
        code = state.channel_lookup.get(str(channel))
        if code is None:
            raise ConfigError(
                f"quota {channel}={count}: {channel!r} is not a channel of this catalogue; "
                f"known channels: {sorted(state.channel_lookup)}"
            )
        if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
            raise ConfigError(f"quota {channel}={count!r}: expected a non-negative integer")
        if count:
            out[code] = int(count)
    return out


def _check_pins(state: ServingState, pins: NDArray[np.int64], n: int, budget: float | None) -> None:
    if pins.size > n:
        raise ConfigError(
            f"{pins.size} courses must be included (compulsory or must_include: "
            f"{state.course_ext[pins].tolist()}) but n={n}; raise n, or limit them with "
            "max_pins= (CLI: --max-pins) or pin_compulsory=False"
        )
    if budget is not None and pins.size:
        d = state.durations[pins] if state.durations is not None else np.full(pins.size, np.nan)
        total = float(np.nansum(d))
        if np.isnan(d).any() or total > budget:
            raise ConfigError(
                f"the courses that must be included take {total / 60:.0f} minutes (unknown "
                f"durations: {int(np.isnan(d).sum())}), over the budget of {budget / 60:.0f} "
                "minutes"
            )


# ============================================================================ pass 1


@dataclass(frozen=True)
class _Route:
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


def _routes(
    model: Recommender, state: ServingState, idx: NDArray[np.int64], seen: Rows
) -> list[_Route]:
    """The group's members split by how they are scored (as in their own menus).

    Members with a history are scored by the model, thread-safe: a factor model's member
    vectors are gathered once (both passes multiply them), other models score through
    ``score_block``. Members without one take the member menu's cold-start routes, one
    thread (their scorers are not documented as thread-safe). A ``score`` callable takes
    group positions and returns their scores for every course and their routes (``None``:
    personal).
    """
    counts = seen.counts
    out: list[_Route] = []
    personal = np.flatnonzero(counts > 0)
    side = model.course_vectors() if personal.size else None
    if side is not None:
        vectors = np.asarray(model.member_vectors(idx[personal]), dtype=np.float32)
        out.append(_Route(personal, vectors, None, None, side[0], side[1]))
    elif personal.size:

        def personal_scores(at: NDArray[np.int64]) -> tuple[np.ndarray, np.ndarray | None]:
            return np.asarray(model.score_block(idx[at]), dtype=np.float32), None

        out.append(_Route(personal, None, personal_scores, None))
    cold = np.flatnonzero(counts == 0)
    if cold.size:
        inverse = np.full(idx.size, -1, dtype=np.int64)
        inverse[cold] = np.arange(cold.size)
        for where, scorer in cold_scorers(model, state, idx[cold]):

            def cold_scores(
                at: NDArray[np.int64], scorer: RouteScorer = scorer
            ) -> tuple[np.ndarray, np.ndarray | None]:
                return scorer(inverse[at])

            out.append(_Route(cold[where], None, cold_scores, 1))
    return out


def _pass1(
    model: Recommender,
    state: ServingState,
    idx: NDArray[np.int64],
    seen: Rows,
    cand: NDArray[np.int64],
    k: int,
    routes: list[_Route],
) -> _Scores:
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
                scale = _scale(low, high)
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
            hi[pos] = np.maximum(result.scores[:, 0], _row_max(studied_raw, studied_ptr)[pos])
            scale = _scale(lo[pos], hi[pos]).astype(np.float64)
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
    scale = _scale(lo, hi)
    worth = (studied_raw - lo[studied_rows]) * scale[studied_rows]
    total -= np.bincount(studied_cols, worth.astype(np.float64), minlength=width)
    return _Scores(lo, scale, total / m, top, routes_out)


def _row_max(values: NDArray[np.float32], indptr: NDArray[np.int64]) -> NDArray[np.float32]:
    """Per row, the largest of ``values[indptr[r]:indptr[r + 1]]`` (-inf for empty rows)."""
    counts = np.diff(indptr)
    out = np.full(counts.size, _NEG_INF, dtype=np.float32)
    has = counts > 0
    if has.any():
        # Each reduction runs to the next non-empty row's start: exactly the row's run.
        out[has] = np.maximum.reduceat(values, indptr[:-1][has])
    return out


def _scale(low: NDArray[np.float32], high: NDArray[np.float32]) -> NDArray[np.float32]:
    """Per member ``1 / (high - low)``, 0 where the scores are flat (float32)."""
    spread = high - low
    return np.divide(1.0, spread, out=np.zeros_like(spread), where=spread > 0)


# ============================================================================ the pool


def _pool(
    state: ServingState,
    model: Recommender,
    scores: _Scores,
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
    parts = [_best(scores.mean, size)]
    approval = np.bincount(scores.top[scores.top >= 0], minlength=width)
    key = approval + scores.mean * 1e-3
    # A course in someone's top-k (key >= 1) beats every other (key <= 1e-3): when there
    # are enough of them, the best are among them, a much shorter list for small groups.
    approved = np.flatnonzero(approval)
    if approved.size >= size:
        parts.append(approved[_best(key[approved], size)])
    else:
        parts.append(_best(key, size))
    position = np.full(state.n_courses, -1, dtype=np.int64)
    position[cand] = np.arange(width)
    parts.append(position[pins])
    channels = state.channel_codes[cand]
    for code, count in quota.items():
        inside = np.flatnonzero(channels == code)
        parts.append(inside[_best(scores.mean[inside], count + n)])
        if durations is not None:
            # The shortest courses of the channel: what the feasibility check relies on.
            d = np.nan_to_num(durations[cand[inside]], nan=np.inf)
            parts.append(inside[_smallest(d, count + n)])
    if strategy == "popularity":
        parts.append(_best(_popularity(model)[cand], size))
    elif strategy == "random":
        rng = np.random.default_rng(seed)
        parts.append(rng.choice(width, size=min(size, width), replace=False))
    return np.unique(np.concatenate(parts))


def _best(values: np.ndarray, size: int) -> NDArray[np.int64]:
    """Positions of the ``size`` largest values (unordered)."""
    if size >= values.size:
        return np.arange(values.size, dtype=np.int64)
    if size <= 0:
        return _EMPTY_I64
    return np.argpartition(-values, size - 1)[:size].astype(np.int64)


def _smallest(values: NDArray[np.float64], size: int) -> NDArray[np.int64]:
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


def _popularity(model: Recommender) -> NDArray[np.float64]:
    """Members who interacted with each course in training (ties: lower index)."""
    base = model.history_.base
    return np.bincount(base.indices, minlength=base.shape[1]).astype(np.float64)


def _pool_matrix(
    model: Recommender,
    state: ServingState,
    idx: NDArray[np.int64],
    seen: Rows,
    courses: NDArray[np.int64],
    scores: _Scores,
    routes: list[_Route],
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
class _Served:
    """Which pool courses are in each member's personal top-k: ``dense`` (m, P) bool, and
    the same pairs as CSR (``indptr`` (m + 1,), ``cols`` pool positions, by member)."""

    dense: NDArray[np.bool_]
    indptr: NDArray[np.int64]
    cols: NDArray[np.int64]

    @property
    def counts(self) -> NDArray[np.int64]:
        """Members served by each pool course, (P,)."""
        return np.bincount(self.cols, minlength=self.dense.shape[1])


def _served(top: NDArray[np.int64], pool: NDArray[np.int64], width: int) -> _Served:
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
    return _Served(dense, indptr, cols)


# ============================================================================ selection


def _static_values(
    strategy: str,
    u: NDArray[np.float32],
    served: _Served,
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
        pop = _popularity(model)[courses]
        return pop / max(float(pop.max()), 1.0)
    if strategy == "random":
        return np.random.default_rng(seed).random(courses.size)
    raise AssertionError(strategy)


def _select(
    strategy: str,
    u: NDArray[np.float32],
    served: _Served,
    courses: NDArray[np.int64],
    pin_pos: NDArray[np.int64],
    state: ServingState,
    quota: dict[int, int],
    n: int,
    budget: float | None,
    scores: _Scores,
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

    coverage = _Coverage(u, served) if strategy == "coverage" else None
    static = None if coverage else _static_values(strategy, u, served, courses, model, seed)

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
    _check_quotas(state, need, n - len(picks), budget_left, available, channels, durations)

    while len(picks) < n:
        ok = available & _feasible(
            need, n - len(picks), budget_left, available, channels, durations
        )
        if not ok.any():
            break
        value = coverage.values() if coverage is not None else static
        j = int(np.argmax(np.where(ok, value, -np.inf)))
        take(j, float(value[j]))
    return np.asarray(picks, dtype=np.int64), np.asarray(values, dtype=np.float64)


class _Coverage:
    """The coverage strategy's value of every pool course, kept up to date pick by pick.

    The value of course ``j`` is ``(newly_j + lift_j) / m``: ``newly_j`` counts the members
    not yet served whose personal top-k holds ``j``, and ``lift_j = sum_i max(r_ij - b_i,
    0)`` the gain in ``sum(sqrt(best score so far))``, with ``r = sqrt(u)`` and ``b_i`` the
    square root of member ``i``'s best normalised score among the picks (``sqrt(max(u,
    best)) - sqrt(best)`` is that positive part). A pick changes ``b`` only for the members
    whose best it raises, so ``lift`` loses their terms' decrease (:func:`_losses`)
    instead of being summed again over the whole (m x P) matrix (:func:`_gains`).
    When most members are raised, or a course's lift falls below 1% of its last full sum
    (where the updates' rounding would start to show), it is summed again in full. Values
    then agree with a recomputation from scratch to within float32 rounding, and a course
    nobody gains from is worth exactly 0.
    """

    def __init__(self, u: NDArray[np.float32], served: _Served) -> None:
        self.m = u.shape[0]
        self.root = np.sqrt(u)
        self.served = served.dense
        # The served pairs by member: a pick subtracts the courses of the members it
        # newly serves.
        self.indptr, self.cols = served.indptr, served.cols
        self.covered = np.zeros(self.m, dtype=bool)
        self.best = np.zeros(self.m, dtype=np.float32)  # b: sqrt of the best score so far
        self.newly = served.counts
        self.lift = _gains(self.root, self.best)
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
            self.lift = _gains(self.root, self.best)
            self.exact = self.lift.copy()
            return
        self.lift -= _losses(self.root, raised, old, new)
        low = np.flatnonzero(self.lift < 0.01 * self.exact)
        if low.size:
            self.lift[low] = _gains(self.root[:, low], self.best)
            self.exact[low] = self.lift[low]


def _gains(root: NDArray[np.float32], best: NDArray[np.float32]) -> NDArray[np.float64]:
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


def _losses(
    root: NDArray[np.float32],
    rows: NDArray[np.int64],
    old: NDArray[np.float32],
    new: NDArray[np.float32],
) -> NDArray[np.float64]:
    """Per column, how much ``sum_i max(root_ij - b_i, 0)`` falls when ``b`` rises from
    ``old`` to ``new`` for members ``rows``: ``sum_i clip(root_ij, old_i, new_i) - old_i``,
    float64 (P,), summed block by block as in :func:`_gains`."""
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


def _completion(
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


def _check_quotas(
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
            "after the pinned courses; raise n or lower the quotas"
        )
    cost = 0.0
    for code, (d, _) in _completion(need, available, channels, durations).items():
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


def _feasible(
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
    parts = _completion(need, available, channels, durations)
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


# ============================================================================ the result


def _result(
    state: ServingState,
    model: Recommender,
    group: _Group,
    selection: _Selection,
    pins: NDArray[np.int64],
    options: GroupOptions,
    cand: NDArray[np.int64],
) -> GroupMenu:
    """The menu and member tables of a selection."""
    ids, scores, u, served = group.ids, selection.scores, selection.u, selection.served
    courses, picks, values = selection.courses, selection.picks, selection.values
    notes, lecturers = group.notes, options.lecturers
    chosen = courses[picks]
    mean = u[:, picks].mean(axis=0, dtype=np.float64) if picks.size else np.zeros(0)
    # Pinned courses were not chosen by the strategy: their group score is the mean.
    group_score = np.where(np.isnan(values), mean, values)
    channel = state.channel_names[state.channel_codes[chosen]] if state.channel_names.size else None
    minutes = (
        state.durations[chosen] / 60.0
        if state.durations is not None
        else np.full(chosen.size, np.nan)
    )
    lecturer = _lecturer_ids(state, chosen)
    menu = pd.DataFrame(
        {
            C.COURSE: state.course_ext[chosen],
            C.RANK: np.arange(1, chosen.size + 1, dtype=np.int32),
            "group_score": group_score.astype(np.float32),
            "mean_score": mean.astype(np.float32),
            "served": served.dense[:, picks].sum(axis=0).astype(np.int32),
            "channel": channel if channel is not None else np.full(chosen.size, None, object),
            "minutes": np.round(minutes, 1),
            C.LECTURER: lecturer,
            "pinned": np.isin(chosen, pins),
        },
        copy=False,
    )
    menu_u = u[:, picks]
    has = picks.size > 0
    members = pd.DataFrame(
        {
            C.MEMBER: ids,
            C.ROUTE: scores.routes,
            "satisfaction": menu_u.max(axis=1) if has else np.zeros(ids.size, np.float32),
            "served": served.dense[:, picks].any(axis=1) if has else np.zeros(ids.size, bool),
            "best_course_id": state.course_ext[chosen[menu_u.argmax(axis=1)]]
            if has
            else np.full(ids.size, None, object),
        },
        copy=False,
    )
    ranked = None
    if lecturers:
        found = state.lecturers()
        if found is None:
            notes.append("no lecturer_id in the courses table: lecturers not ranked")
        else:
            full = np.full(state.n_courses, _NEG_INF, dtype=np.float32)
            full[cand] = scores.mean
            ranked = found.rank(full, lecturers, 3, state.course_ext)
    total = float(np.sum(minutes)) if chosen.size else 0.0
    return GroupMenu(menu, members, options.strategy, tuple(notes), group.unknown, ranked, total)


def _lecturer_ids(state: ServingState, courses: NDArray[np.int64]) -> np.ndarray:
    """The ``lecturer_id`` of each course, as in the courses table (object array)."""
    table = state.courses
    if table is None or C.LECTURER not in table.columns:
        return np.full(courses.size, None, dtype=object)
    found = state.lecturers()  # the lecturers' courses, built once per model
    if found is not None:
        code = np.full(state.n_courses, -1, dtype=np.int64)
        code[found.order] = found.segment
        own = code[courses]
        if (own >= 0).all():
            return np.asarray(found.ids[own], dtype=object)
    # Some course without a lecturer: the table's own missing value.
    return table[C.LECTURER].array.take(courses).to_numpy(dtype=object)


# ============================================================================ evaluation


def evaluate_group_strategies(
    model: Recommender,
    platform: Any,
    groups: Mapping[str, MemberSpec],
    n: int = 10,
    *,
    strategies: Sequence[str] = STRATEGIES + BASELINES,
    k: int = 20,
    **options: Any,
) -> pd.DataFrame:
    """Each strategy's menus judged by the simulator's true preferences.

    A member's true satisfaction with a menu is the best true utility among its courses,
    min-max normalised per member over all courses (1: the member's favourite course of the
    whole catalogue is on the menu; 0: only their least liked). ``coverage`` is the share of
    members with at least one menu course among their true top-``k``.

    Parameters
    ----------
    model
        A fitted ``Recommender`` on the platform's data.
    platform
        A ``recommend.data.synthetic.Platform`` (``truth`` with ``utility``).
    groups
        Group name -> member spec (see :func:`group_members`).
    n, k
        Menu size; true top-k for coverage (also passed as ``personal_k``).
    strategies
        Strategies and baselines to compare.
    **options
        Passed to :func:`order_for_group` (budget, quotas, ...). Compulsory pins are off
        unless ``pin_compulsory=True`` is passed: they are the same for every strategy and
        would blur the comparison.

    Returns
    -------
    DataFrame
        One row per (group, strategy) plus rows for ``group="all"`` pooling the members of
        every group: ``members, mean_satisfaction, p10_satisfaction, mean_menu_utility,
        coverage``.
    """
    truth = platform.truth
    options.setdefault("pin_compulsory", False)
    rows = []
    pooled: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    pooled_cov: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    pooled_mean: dict[str, list[np.ndarray]] = {s: [] for s in strategies}
    for name, spec in groups.items():
        for strategy in strategies:
            result = order_for_group(model, spec, n, strategy=strategy, personal_k=k, **options)
            member_t = truth.member_index(result.members[C.MEMBER].to_numpy(dtype=object))
            course_t = truth.course_index(result.menu[C.COURSE].to_numpy(dtype=object))
            utility = np.asarray(truth.utility(member_t), dtype=np.float64)
            low = utility.min(axis=1, keepdims=True)
            spread = np.maximum(utility.max(axis=1, keepdims=True) - low, 1e-12)
            norm = (utility - low) / spread
            on_menu = norm[:, course_t]
            sat = on_menu.max(axis=1) if course_t.size else np.zeros(len(member_t))
            menu_mean = on_menu.mean(axis=1) if course_t.size else np.zeros(len(member_t))
            kth = -np.partition(-utility, min(k, utility.shape[1]) - 1, axis=1)[
                :, min(k, utility.shape[1]) - 1
            ]
            cov = (utility[:, course_t] >= kth[:, None]).any(axis=1)
            pooled[strategy].append(sat)
            pooled_cov[strategy].append(cov)
            pooled_mean[strategy].append(menu_mean)
            rows.append(_eval_row(name, strategy, sat, menu_mean, cov))
    for strategy in strategies:
        rows.append(
            _eval_row(
                "all",
                strategy,
                np.concatenate(pooled[strategy]),
                np.concatenate(pooled_mean[strategy]),
                np.concatenate(pooled_cov[strategy]),
            )
        )
    return pd.DataFrame(rows).set_index(["group", "strategy"])


def _eval_row(
    group: str, strategy: str, sat: np.ndarray, menu_mean: np.ndarray, cov: np.ndarray
) -> dict[str, Any]:
    return {
        "group": group,
        "strategy": strategy,
        "members": int(sat.size),
        "mean_satisfaction": float(sat.mean()),
        "p10_satisfaction": float(np.percentile(sat, 10)),
        "mean_menu_utility": float(menu_mean.mean()),
        "coverage": float(cov.mean()),
    }
