"""The member menu: the courses (and lecturers) one member is offered to order.

A menu is the model's ranking shaped by the member's context:

- **exclusions**: courses already seen (default), only those completed, or none;
- **filters**: a channel (course ``category``), ``max_minutes`` for learning in fragments
  of time (only courses known to fit), and only courses already published;
- **pins**: courses the member's branch made compulsory, not yet completed, come first;
- **diversity**: maximal marginal relevance (MMR) across channels with a tunable weight;
- **reasons**: one human-readable line per row, and the **route** that produced it
  (``personal``, ``cold_features``, ``cold_segment``, ``cold_global``).

Each rule lives in the serving engine (``recommend.engine``: one module per rule, see
``docs/architecture.md``); this module turns a call's keyword arguments into one
:class:`~recommend.engine.MenuOptions`, runs the engine and shapes its rows as a frame.

Why a call is fast for one member: the member's scores for all courses come from the
model (``score_block``: one GEMV for a factor model) into an array the call owns;
exclusions and non-selective filters are written into it as ``-inf``, which the shared
top-k kernel (``recommend.topk``) never returns, so the kernel only selects. Per-model
lookups are built once per fitted model (``recommend.engine.serving_state``) and only
read afterwards, so a loaded model serves many threads at once; each call reads the model
inside ``with model.reading():``, so a menu is the one before a concurrent
``model.update`` or the one after it, never a mix.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from recommend.checks import is_scalar, positive_int
from recommend.engine import (
    CHUNK,
    DEFAULT_MAX_CONTINUE,
    DEFAULT_MAX_PINS,
    REASON_BRANCH,
    REASON_COMPULSORY,
    REASON_FEATURES,
    REASON_GLOBAL,
    REASON_SEGMENT,
    ROUTES,
    Experiment,
    MemberRequest,
    MenuOptions,
    MenuRows,
    ServingState,
    exclusion_rows,
    history_rows,
    member_pins,
    menu_rows,
    model_version,
    reason_texts,
    route_groups,
    serving_state,
)
from recommend.engine.fragments import SOURCE_PLATFORM
from recommend.engine.lecturers import LECTURER_COLUMNS, empty_lecturers
from recommend.engine.options import Exclude, Unknown
from recommend.errors import ConfigError
from recommend.frames import result_frame, text_column
from recommend.messages import DEFAULT_LANG, Lang, Message
from recommend.models.base import install_menu, one_snapshot
from recommend.schema import Columns

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "COMPULSORY_COLUMNS",
    "LECTURER_COLUMNS",
    "MENU_COLUMNS",
    "REASON_BRANCH",
    "REASON_COMPULSORY",
    "REASON_FEATURES",
    "REASON_GLOBAL",
    "REASON_SEGMENT",
    "ROUTES",
    "compulsory_courses",
    "experiment_menu",
    "lecturer_menu",
    "member_menu",
    "member_menu_rows",
    "menu_frame",
]

C = Columns

#: Columns of a member menu, in order.
MENU_COLUMNS = (C.MEMBER, C.COURSE, C.SCORE, C.RANK, C.REASON, C.ROUTE)
_ROUTE_NAMES = np.asarray(ROUTES, dtype=object)
_NEG_INF = np.float32(-np.inf)


def member_menu(
    model: Recommender,
    member_ids: Any,
    n: int = 10,
    *,
    exclude: Exclude = "seen",
    channel: str | Sequence[str] | None = None,
    max_minutes: float | Literal["auto"] | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    pin_compulsory: bool = True,
    max_pins: int | None = DEFAULT_MAX_PINS,
    continue_learning: bool = True,
    max_continue: int = DEFAULT_MAX_CONTINUE,
    diversity: float = 0.0,
    with_reasons: bool = True,
    member_attributes: pd.DataFrame | None = None,
    unknown: Unknown = "fallback",
    lang: Lang = DEFAULT_LANG,
) -> pd.DataFrame:
    """Menus of ``n`` courses for each member, best first.

    Parameters
    ----------
    model
        A fitted ``Recommender``.
    member_ids
        One external member id or a sequence of them (duplicates get a menu each).
    n
        Courses per member (fewer when fewer courses pass the filters).
    exclude
        ``"seen"`` (default): no course in the member's history (including events folded
        in with ``model.update``). ``"completed"``: only courses the member completed (a
        ``complete`` event in the training data or, for a member folded in with
        ``model.update``, in the events of their update) are dropped, so a course started
        but not finished can come back. ``"none"``: no exclusion.
    channel
        Keep only courses of this channel (course ``category``) or of any of these.
    max_minutes
        Keep only courses whose ``duration_seconds`` is at most this many minutes (courses
        of unknown duration are dropped: they cannot be promised to fit). ``"auto"``: as
        many minutes as the member usually studies at ``now``'s hour on that kind of day
        (weekday or weekend), learned from the training events, else the platform's
        usual figure (:mod:`recommend.engine.fragments`); the compulsory and
        continue-learning entries are kept whatever their length. The frame's
        ``attrs`` say what was assumed: ``fragment_minutes``, ``fragment_source``
        (``"member"`` or ``"platform"``) and ``notes`` (a line per member).
    only_published
        Keep only courses published at or before ``now`` (courses with no ``published_at``
        count as published).
    now
        Reference time for ``only_published``; the model's data time
        (``model.dataset_.now``) when ``None``. A backend passes the wall clock so that
        courses scheduled for release appear when their time comes.
    pin_compulsory
        Put courses made compulsory for the member's branch (``courses.compulsory_for``
        holds the member's ``org_id``), that pass the filters and that the member has not
        completed (as for ``exclude="completed"``, events folded in with ``model.update``
        included), first (best scored first), whatever ``exclude`` says.
    max_pins
        At most this many pinned courses (default 2; ``None``: up to ``n``), so that a
        branch with a long compulsory list still leaves room for the member's own choices
        (为你推荐). The branch's whole compulsory list is :func:`compulsory_courses`, for a
        backend to show apart (本支部必学).
    continue_learning
        After the compulsory pins, up to ``max_continue`` courses the member started (a
        ``progress`` event) and has not completed (继续学习, the most recent first),
        alternating with the next lecture of each series they follow (下一讲: the
        lecture after the furthest one they completed, series from the courses'
        ``series_id``/``series_order`` or numbered titles such as ``第9讲``), whatever
        ``exclude`` says; each with its own reason. ``False``: none.
    max_continue
        At most this many of those (default 2; ``n`` caps it too).
    diversity
        MMR weight in [0, 1]: each next course maximises ``relevance - diversity *
        max_similarity`` over a pool of the ``3 n`` best, with relevance min-max scaled to
        [0, 1] within the pool and similarity 1 between courses of the same channel
        (pinned courses count as picked). 0 keeps the kernel's order; 1 gives a new channel
        precedence over any relevance. ``score`` stays the model's score, so it need not
        decrease down a diversified menu.
    with_reasons
        Fill ``reason`` (otherwise empty strings): why each course is there (本支部必学,
        因为你学过《...》, 与你同为退休党员的同志常学 ...), and why now where it applies
        (新上线; the minutes a course takes when ``max_minutes`` is set).
    member_attributes
        A members table (``member_id`` plus any of ``org_id``, ``birth_year``,
        ``occupation``, ``district``, ...) for members unknown to the model, or to override
        the training attributes of members without history. Used for cold start and
        branch pins. Validated like any members table (personal data is refused).
    unknown
        ``"fallback"`` (default): members unknown to the model get a cold-start menu and
        never raise. ``"raise"``: a ``DataError`` naming them.
    lang
        Language of the reasons: ``"zh"`` (Simplified Chinese, default) or ``"en"``. The
        wording comes from the message catalogue (:mod:`recommend.messages`), which a
        platform can override.

    Returns
    -------
    pandas.DataFrame
        ``member_id`` (as given), ``course_id``, ``score`` (float32), ``rank`` (int32,
        1..n per member), ``reason`` (str) and ``route`` (``personal``, ``cold_features``,
        ``cold_segment`` or ``cold_global``), members in request order.

    Raises
    ------
    ConfigError
        An option is out of range or a filter names a channel nobody knows.
    DataError
        ``unknown="raise"`` and some members are unknown, or ``member_attributes`` is
        invalid.
    """
    options = MenuOptions(
        n=n,
        exclude=exclude,
        channel=channel,
        max_minutes=max_minutes,
        only_published=only_published,
        now=now,
        pin_compulsory=pin_compulsory,
        max_pins=max_pins,
        continue_learning=continue_learning,
        max_continue=max_continue,
        diversity=diversity,
        with_reasons=with_reasons,
        unknown=unknown,
        lang=lang,
    )
    return serve_member_menus(model, member_ids, options, member_attributes)


def serve_member_menus(
    model: Recommender,
    member_ids: Any,
    options: MenuOptions,
    member_attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`member_menu` with its options as one :class:`~recommend.engine.MenuOptions`
    (what other products call, having validated the options once)."""
    rows, request, state = member_menu_rows(model, member_ids, options, member_attributes)
    menu = menu_frame(rows, request.ids, state)
    if options.auto_minutes:
        _fragment_attrs(menu, state, request, options)
    return menu


def member_menu_rows(
    model: Recommender,
    member_ids: Any,
    options: MenuOptions,
    member_attributes: pd.DataFrame | None = None,
) -> tuple[MenuRows, MemberRequest, ServingState]:
    """The member menu as the engine's arrays, before they become a frame: the rows
    (:class:`~recommend.engine.MenuRows`), the resolved request (``request.ids`` are the
    member ids by row position) and the model's serving state (``course_ext``). For a
    caller that writes the rows out itself (an HTTP service); :func:`menu_frame` makes
    them :func:`member_menu`'s frame. ``max_minutes="auto"`` notes are only in the frame."""
    model.check_fitted()
    state = serving_state(model)
    # One snapshot for the whole request: ids, history, completions and scores of one
    # version, whatever ``update`` publishes meanwhile.
    with model.reading():
        request = MemberRequest.make(model, state, member_ids, member_attributes, options.unknown)
        allowed = state.course_filter(options)
        rows = menu_rows(model, state, request, options, allowed)
    return rows, request, state


def _fragment_attrs(
    menu: pd.DataFrame, state: ServingState, request: MemberRequest, options: MenuOptions
) -> None:
    """What ``max_minutes="auto"`` assumed, per member: ``menu.attrs["fragment_minutes"]``
    (minutes), ``["fragment_source"]`` (``"member"``: their own sessions; ``"platform"``:
    everyone's at this time) and ``["notes"]`` (a line for the member, in ``lang``)."""
    when = pd.Timestamp(options.now if options.now is not None else state.now)
    minutes, source = state.session_profile().minutes(request.idx, when)
    shown = np.maximum(np.round(minutes), 1).astype(int)
    own = source != SOURCE_PLATFORM
    ids = request.ids.tolist()
    menu.attrs["fragment_time"] = when.isoformat()
    menu.attrs["fragment_minutes"] = dict(zip(ids, minutes.round(1).tolist(), strict=True))
    menu.attrs["fragment_source"] = dict(
        zip(ids, np.where(own, "member", "platform").tolist(), strict=True)
    )
    menu.attrs["notes"] = {
        member: Message.of(
            "note.fragment_member" if mine else "note.fragment_platform", minutes=int(m)
        ).text(options.lang)
        for member, m, mine in zip(ids, shown.tolist(), own.tolist(), strict=True)
    }


def experiment_menu(
    models: Mapping[str, Recommender],
    member_ids: Any,
    experiment: Experiment,
    n: int = 10,
    *,
    versions: Mapping[str, str] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Menus of an online experiment: each member served by the model of their arm.

    Parameters
    ----------
    models
        Arm name -> the fitted model that serves it (every arm of ``experiment``).
    member_ids
        One external member id or a sequence of them.
    experiment
        The experiment (:class:`recommend.engine.Experiment`): a member's arm is a salted
        hash of their id, the same in every process and product.
    n
        Courses per member.
    versions
        Arm name -> the ``model_version`` to record (an artifact's version, say); the
        model object's version (:func:`recommend.engine.model_version`) otherwise.
    **options
        Any option of :func:`member_menu`.

    Returns
    -------
    pandas.DataFrame
        :data:`MENU_COLUMNS` plus ``arm`` and ``model_version``, members in request order
        (a repeated id's menus together).
    """
    missing = [arm for arm in experiment.arms if arm not in models]
    if missing:
        raise ConfigError(f"experiment_menu: no model for arm(s) {missing} of {experiment.name!r}")
    ids = [member_ids] if is_scalar(member_ids) else list(member_ids)
    arms = experiment.assign(ids)
    order = {member: i for i, member in reversed(list(enumerate(ids)))}
    parts = []
    for arm in experiment.arms:
        mine = [m for m, a in zip(ids, arms.tolist(), strict=True) if a == arm]
        if not mine:
            continue
        model = models[arm]
        version = (versions or {}).get(arm) or model_version(model)
        menu = member_menu(model, mine, n, **options)
        parts.append(menu.assign(arm=arm, model_version=version))
    columns = [*MENU_COLUMNS, "arm", "model_version"]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    out = pd.concat(parts, ignore_index=True)
    first = out[C.MEMBER].map(order).to_numpy()
    return out.iloc[np.argsort(first, kind="stable")].reset_index(drop=True)[columns]


def menu_frame(rows: MenuRows, ids: np.ndarray, state: ServingState) -> pd.DataFrame:
    """Menu rows as the member menu's frame (``MENU_COLUMNS``); ``ids`` are the request's
    member ids by position."""
    reason = rows.reason if rows.reason is not None else np.full(rows.pos.size, "", dtype=object)
    if rows.pos.size == 0:
        return pd.DataFrame(
            {
                C.MEMBER: ids[:0],
                C.COURSE: state.course_ext[:0],
                C.SCORE: np.empty(0, np.float32),
                C.RANK: np.empty(0, np.int32),
                C.REASON: pd.Series([], dtype=str),
                C.ROUTE: pd.Series([], dtype=str),
            }
        )
    return result_frame(
        {
            C.MEMBER: text_column(ids[rows.pos]),
            C.COURSE: text_column(state.course_ext[rows.course]),
            C.SCORE: rows.score.astype(np.float32, copy=False),
            C.RANK: rows.rank,
            C.REASON: text_column(reason),
            C.ROUTE: text_column(_ROUTE_NAMES[rows.route]),
        },
        rows.pos.size,
    )


COMPULSORY_COLUMNS = (C.MEMBER, C.COURSE, C.SCORE, C.RANK, C.REASON)


@one_snapshot  # ids, histories and completions of one version
def compulsory_courses(
    model: Recommender,
    member_ids: Any,
    *,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    member_attributes: pd.DataFrame | None = None,
    unknown: Unknown = "fallback",
    lang: Lang = DEFAULT_LANG,
) -> pd.DataFrame:
    """Each member's branch's compulsory courses still to study (本支部必学), best first.

    The member menu pins at most ``max_pins`` of them (two by default) so that it stays
    the member's own choice; this is the whole list, for a backend to show apart from the
    menu. The same rule picks them as the menu's pins: compulsory for the member's branch
    (``courses.compulsory_for``), published by ``now``, not completed, ordered by the
    member's predicted interest.

    Parameters
    ----------
    model, member_ids, only_published, now, member_attributes, unknown, lang
        As in :func:`member_menu` (``member_attributes`` may give a member's ``org_id``).

    Returns
    -------
    pandas.DataFrame
        ``member_id, course_id, score, rank, reason`` (本支部必学, with why now), members in
        request order; members without a branch or compulsory courses have no rows.
    """
    options = MenuOptions(
        n=1, only_published=only_published, now=now, max_pins=None, unknown=unknown, lang=lang
    )
    model.check_fitted()
    state = serving_state(model)
    request = MemberRequest.make(model, state, member_ids, member_attributes, options.unknown)
    allowed = state.course_filter(options)
    seen = history_rows(model.history_, request.idx)
    orgs = (
        request.given_orgs(np.arange(request.idx.size)) if request.attributes is not None else None
    )
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    for group in route_groups(model, state, request, seen.counts):
        for lo in range(0, len(group.pos), CHUNK):
            chunk = group.take(slice(lo, lo + CHUNK))
            dense = group.scorer(chunk).scores

            def score(rows: np.ndarray, cols: np.ndarray, d: np.ndarray = dense) -> np.ndarray:
                out: np.ndarray = d[rows, cols]
                return out

            chunk_orgs = None if orgs is None else [orgs[int(p)] for p in chunk.pos]
            pins = member_pins(
                state, model.history_, chunk.idx, state.n_courses, allowed, score, chunk_orgs
            )
            rank = np.arange(pins.rows.size) - np.repeat(pins.starts, pins.counts) + 1
            parts.append((chunk.pos[pins.rows], pins.courses, pins.scores, rank))
    pos, courses, scores, ranks = (
        np.concatenate([p[i] for p in parts]) if parts else np.empty(0, np.int64) for i in range(4)
    )
    order = np.lexsort((ranks, pos))
    pos, courses, scores, ranks = pos[order], courses[order], scores[order], ranks[order]
    reasons = np.full(courses.size, REASON_COMPULSORY, dtype=object)
    return pd.DataFrame(
        {
            C.MEMBER: request.ids[pos],
            C.COURSE: state.course_ext[courses],
            C.SCORE: scores.astype(np.float32),
            C.RANK: ranks.astype(np.int32),
            C.REASON: reason_texts(state, courses.astype(np.int64), reasons, options),
        }
    )


def lecturer_menu(
    model: Recommender,
    member_id: Any,
    n: int = 10,
    *,
    top: int = 3,
    exclude: Exclude = "none",
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    member_attributes: pd.DataFrame | None = None,
    unknown: Unknown = "fallback",
) -> pd.DataFrame:
    """Lecturers ranked by one member's predicted interest in their courses.

    A lecturer's score is the mean of the member's ``top`` best scores among the
    lecturer's courses that pass the filters (fewer when the lecturer has fewer). Scores
    come from the same route as the member's course menu (personal or cold start).

    Parameters
    ----------
    model, member_id
        A fitted ``Recommender`` and one external member id.
    n
        Lecturers to return.
    top
        Courses per lecturer averaged into the score.
    exclude, channel, max_minutes, only_published, now, member_attributes, unknown
        As in :func:`member_menu`; ``exclude`` defaults to ``"none"`` because courses a
        member studied are evidence of interest in their lecturer.

    Returns
    -------
    pandas.DataFrame
        ``lecturer_id``, ``score`` (float32), ``rank`` (int32, 1..), ``courses`` (int32,
        the lecturer's courses that passed the filters) and ``top_course_id`` (the
        lecturer's best course for this member). Empty when the training courses have no
        ``lecturer_id``.
    """
    top = positive_int(top, "top")
    options = MenuOptions(
        n=n,
        exclude=exclude,
        channel=channel,
        max_minutes=max_minutes,
        only_published=only_published,
        now=now,
        pin_compulsory=False,
        continue_learning=False,
        diversity=0.0,
        with_reasons=False,
        unknown=unknown,
    )
    model.check_fitted()
    if not is_scalar(member_id):
        raise ConfigError("lecturer_menu takes one member id; call it once per member")
    state = serving_state(model)
    lecturers = state.lecturers()
    with model.reading():  # one snapshot for the whole request (see member_menu)
        request = MemberRequest.make(model, state, member_id, member_attributes, options.unknown)
        if lecturers is None:
            return empty_lecturers(state.course_ext)
        allowed = state.course_filter(options)
        history = model.history_
        seen = history_rows(history, request.idx)
        group = route_groups(model, state, request, seen.counts)[0]
        row = group.scorer(group.take(slice(0, 1))).scores[0]
        excluded = exclusion_rows(state, history, seen, request.idx, options.exclude)
    if allowed.mask is not None:
        row[allowed.blocked] = _NEG_INF
    if excluded is not None:
        row[excluded.indices] = _NEG_INF
    return lecturers.rank(row, options.n, top, state.course_ext)


install_menu(member_menu)

# Names this module had before the serving rules moved into ``recommend.engine``.
_MOVED = {
    "MenuState": ("recommend.engine", "ServingState"),
    "menu_state": ("recommend.engine", "serving_state"),
    "MenuRequest": ("recommend.engine", "MemberRequest"),
    "Rows": ("recommend.engine", "Rows"),
    "history_rows": ("recommend.engine", "history_rows"),
    "matrix_rows": ("recommend.engine", "matrix_rows"),
    "exclusion_rows": ("recommend.engine", "exclusion_rows"),
    "route_groups": ("recommend.engine", "route_groups"),
    "cold_scorers": ("recommend.engine", "cold_scorers"),
    "RouteScorer": ("recommend.engine", "RouteScorer"),
    "CompulsoryTable": ("recommend.engine", "CompulsoryTable"),
    "studied_reasons": ("recommend.engine", "studied_reasons"),
    "is_scalar": ("recommend.checks", "is_scalar"),
    "positive_int": ("recommend.checks", "positive_int"),
    "minutes_in_seconds": ("recommend.checks", "minutes_in_seconds"),
    "ROUTE_PERSONAL": ("recommend.engine", "ROUTE_PERSONAL"),
    "ROUTE_FEATURES": ("recommend.engine", "ROUTE_FEATURES"),
    "ROUTE_SEGMENT": ("recommend.engine", "ROUTE_SEGMENT"),
    "ROUTE_GLOBAL": ("recommend.engine", "ROUTE_GLOBAL"),
}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        module, new = _MOVED[name]
        warnings.warn(
            f"recommend.menu.{name} moved to {module}.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module), new)
    raise AttributeError(f"module 'recommend.menu' has no attribute {name!r}")
