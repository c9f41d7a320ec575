"""Ordering a group menu: the entry point, its options, the group's members and
constraints, and the result (see ``recommend.group`` for the method)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.checks import minutes_in_seconds, non_negative_int, positive_int, share
from recommend.data.ids import normalise_ids
from recommend.engine import (
    GroupPins,
    Rows,
    ServingState,
    group_pins,
    history_rows,
    serving_state,
)
from recommend.errors import ConfigError, DataError
from recommend.group.scoring import (
    Scores,
    Served,
    candidate_pool,
    first_pass,
    member_routes,
    pool_matrix,
    served_by,
)
from recommend.group.strategies import BASELINES, STRATEGIES, select_courses
from recommend.messages import DEFAULT_LANG, Lang, ListText, Message, check_lang
from recommend.models.base import one_snapshot
from recommend.schema import Columns
from recommend.selection import MemberSpec, describe, group_members
from recommend.topk import single_threaded_blas

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "GroupMenu",
    "GroupOptions",
    "evaluate_group_strategies",
    "order_for_group",
    "serve_group_menu",
]

logger = logging.getLogger(__name__)
C = Columns

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
        What the organiser should know (unknown members, fewer courses than asked, ...),
        in the request's ``lang``.
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
    lang: Lang = DEFAULT_LANG,
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
    lang
        Language of the notes: ``"zh"`` (Simplified Chinese, default) or ``"en"``.

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
        lang=lang,
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
    lang: Lang = DEFAULT_LANG

    def __post_init__(self) -> None:
        object.__setattr__(self, "n", positive_int(self.n, "n"))
        object.__setattr__(self, "lang", check_lang(self.lang))
        object.__setattr__(self, "personal_k", positive_int(self.personal_k, "personal_k"))
        if self.strategy not in STRATEGIES + BASELINES:
            raise ConfigError(
                f"strategy={self.strategy!r}; expected one of {list(STRATEGIES + BASELINES)}"
            )
        set_ = object.__setattr__
        set_(
            self,
            "compulsory_share",
            share(self.compulsory_share, "compulsory_share", low_open=True),
        )
        if self.exclude_completed is not None:
            done = share(self.exclude_completed, "exclude_completed", low_open=True)
            set_(self, "exclude_completed", done)
        if self.budget_minutes is not None:
            minutes_in_seconds(self.budget_minutes, "budget_minutes")
        if self.max_pins is not None:
            set_(self, "max_pins", non_negative_int(self.max_pins, "max_pins"))
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
    notes: list[Message]


@one_snapshot  # the group's histories, completions and scores of one version
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
    published = state.filter(None, None, options.published_by).mask
    done_share = _completed_share(model, state, group.idx)
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
            Message.of("note.group_short", count=int(selection.picks.size), asked=options.n)
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
    if ids.dtype == object:
        ids = np.asarray(normalise_ids(ids)[0], dtype=object)  # as validation does at load
    idx = model.member_ids_.to_index(ids, unknown="mask").astype(np.int64)
    notes: list[Message] = []
    unknown = ids[idx < 0]
    if unknown.size == ids.size:
        raise DataError(
            f"none of the {ids.size} member id(s) of the group is known to the model: "
            f"{unknown[:10].tolist()}"
        )
    if unknown.size:
        shown = [str(u) for u in unknown[:10].tolist()] + (["..."] if unknown.size > 10 else [])
        notes.append(
            Message.of(
                "note.group_unknown",
                count=int(unknown.size),
                total=int(ids.size),
                ids=ListText(tuple(shown)),
            )
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
    wanted = np.asarray(normalise_ids(list(must_include))[0], dtype=object)
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

    scores: Scores
    u: NDArray[np.float32]
    served: Served
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
        routes = member_routes(model, state, idx, seen)
        scores = first_pass(model, state, idx, seen, cand, k, routes)
        pool = candidate_pool(
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
        u = pool_matrix(model, state, idx, seen, cand[pool], scores, routes)
        served = served_by(scores.top, pool, cand.size)
        pool_courses = cand[pool]
        pin_pos = np.flatnonzero(np.isin(pool_courses, pins.courses))
        picks, values = select_courses(
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


def _completed_share(
    model: Recommender, state: ServingState, idx: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Per course, the share of the group that completed it (``ServingState.completed_rows``:
    training events and events folded in with ``update``)."""
    done = state.completed_rows(model.history_, idx)
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
            fit = int(np.searchsorted(np.cumsum(np.nan_to_num(d, nan=np.inf)), budget, "right"))
            raise ConfigError(
                f"the {pins.size} courses that must be included (compulsory or must_include) "
                f"take {total / 60:.0f} minutes (unknown durations: {int(np.isnan(d).sum())}), "
                f"over the budget of {budget / 60:.0f} minutes; raise the budget, or pin fewer "
                f"with max_pins= (CLI: --max-pins N; the first {fit} fit the budget) or "
                "pin_compulsory=False (CLI: --max-pins 0)"
            )


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
            notes.append(Message("note.group_no_lecturers"))
        else:
            full = np.full(state.n_courses, _NEG_INF, dtype=np.float32)
            full[cand] = scores.mean
            ranked = found.rank(full, lecturers, 3, state.course_ext)
    total = float(np.sum(minutes)) if chosen.size else 0.0
    texts = tuple(note.text(options.lang) for note in notes)
    return GroupMenu(menu, members, options.strategy, texts, group.unknown, ranked, total)


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
            cov = np.asarray((utility[:, course_t] >= kth[:, None]).any(axis=1), dtype=bool)
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
