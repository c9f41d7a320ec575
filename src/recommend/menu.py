"""The member menu: the courses (and lecturers) one member is offered to order.

A menu is the model's ranking shaped by the member's context:

- **exclusions**: courses already seen (default), only those completed, or none;
- **filters**: a channel (course ``category``), ``max_minutes`` for learning in fragments
  of time (only courses known to fit), and only courses already published;
- **pins**: courses the member's branch made compulsory, not yet completed, come first;
- **diversity**: maximal marginal relevance (MMR) across channels with a tunable weight;
- **reasons**: one human-readable line per row, and the **route** that produced it.

Routes
------
``personal``
    The member has a history: the model's own scores.
``cold_features``
    No history, the model scores members from their attributes (a hybrid model with
    ``uses_features = True`` and ``cold_member_scores``), and attributes are known.
``cold_segment``
    No history: course popularity among members sharing the member's segment (age band,
    occupation, district or branch), from a ``Popularity(segment="auto")`` model fitted
    once per model on the training data (branch counts when that model is unavailable).
``cold_global``
    No history and no usable attribute: popularity on the whole platform.

How a call runs, and why it is fast for one member: the member's scores for all courses
come from the model (``score_block``: one GEMV for a factor model) into an array the call
owns; exclusions and non-selective filters are written into it as ``-inf``, which the
shared top-k kernel (``recommend.topk``) never returns, so the kernel only selects. A
selective filter (fewer than half of the courses pass) goes to the kernel as ``allow``
instead, so that it scores the allowed columns only. Per-model lookups (member index,
titles, channel codes, filter masks, the branch -> compulsory courses map, completed
courses, the cold-start popularity model) are built on first use under a lock and only
read afterwards, so a loaded model serves many threads at once; nothing mutable is shared
between calls.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX
from recommend.errors import ConfigError, DataError
from recommend.schema import CHANNELS, Columns
from recommend.topk import topk_scores

if TYPE_CHECKING:
    from recommend.data.dataset import Dataset
    from recommend.data.idmap import IdMap
    from recommend.models.base import History, Recommender

__all__ = [
    "LECTURER_COLUMNS",
    "MENU_COLUMNS",
    "REASON_BRANCH",
    "REASON_COMPULSORY",
    "REASON_FEATURES",
    "REASON_GLOBAL",
    "REASON_SEGMENT",
    "ROUTES",
    "lecturer_menu",
    "member_menu",
]

logger = logging.getLogger(__name__)
C = Columns

Exclude = Literal["seen", "completed", "none"]
Unknown = Literal["fallback", "raise"]

#: Columns of a member menu, in order.
MENU_COLUMNS = (C.MEMBER, C.COURSE, C.SCORE, C.RANK, C.REASON, C.ROUTE)
#: Columns of a lecturer menu, in order.
LECTURER_COLUMNS = (C.LECTURER, C.SCORE, C.RANK, "courses", "top_course_id")

ROUTE_PERSONAL = "personal"
ROUTE_FEATURES = "cold_features"
ROUTE_SEGMENT = "cold_segment"
ROUTE_GLOBAL = "cold_global"
ROUTES = (ROUTE_PERSONAL, ROUTE_FEATURES, ROUTE_SEGMENT, ROUTE_GLOBAL)

REASON_COMPULSORY = "compulsory for your branch"
REASON_BRANCH = "popular in your branch"
REASON_SEGMENT = "popular with members like you"
REASON_GLOBAL = "popular on the platform"
REASON_FEATURES = "recommended for members like you"
_STUDIED = "because you studied "
_CONTINUE = "continue studying "

# Members scored at once: bounds the (members x courses) float32 score buffer to ~20 MB
# at 20k courses while keeping the kernel's blocks full.
_CHUNK = 256
# Candidate pool for MMR, as a multiple of n: diversity can only promote what is in it.
_MMR_POOL = 3
# History courses considered when explaining a recommendation (the most confident ones):
# a heavy learner's whole history would make the similarity matrix the slowest step.
_REASON_HISTORY = 256
# Distinct filter combinations kept per model; a backend uses a handful.
_FILTER_CACHE = 64
_EMPTY_I64 = np.empty(0, dtype=np.int64)
_NEG_INF = np.float32(-np.inf)


# ============================================================================ public API


def member_menu(
    model: Recommender,
    member_ids: Any,
    n: int = 10,
    *,
    exclude: Exclude = "seen",
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    pin_compulsory: bool = True,
    max_pins: int | None = None,
    diversity: float = 0.0,
    with_reasons: bool = True,
    member_attributes: pd.DataFrame | None = None,
    unknown: Unknown = "fallback",
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
        in with ``model.update``). ``"completed"``: only courses with a ``complete`` event
        in the training data are dropped, so a course started but not finished can come
        back. Completions are read from the training events only: ``update`` replaces a
        member's history as confidences, which do not say what was completed, so a course
        completed after training counts as completed only after a refit. ``"none"``: no
        exclusion.
    channel
        Keep only courses of this channel (course ``category``) or of any of these.
    max_minutes
        Keep only courses whose ``duration_seconds`` is at most this many minutes (courses
        of unknown duration are dropped: they cannot be promised to fit).
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
        completed, first (best scored first), whatever ``exclude`` says.
    max_pins
        At most this many pinned courses (``None``: up to ``n``), so that a branch with a
        long compulsory list still leaves room for the member's own choices.
    diversity
        MMR weight in [0, 1]: each next course maximises ``relevance - diversity *
        max_similarity`` over a pool of the ``3 n`` best, with relevance min-max scaled to
        [0, 1] within the pool and similarity 1 between courses of the same channel
        (pinned courses count as picked). 0 keeps the kernel's order; 1 gives a new channel
        precedence over any relevance. ``score`` stays the model's score, so it need not
        decrease down a diversified menu.
    with_reasons
        Fill ``reason`` (otherwise empty strings).
    member_attributes
        A members table (``member_id`` plus any of ``org_id``, ``birth_year``,
        ``occupation``, ``district``, ...) for members unknown to the model, or to override
        the training attributes of members without history. Used for cold start and
        branch pins. Validated like any members table (personal data is refused).
    unknown
        ``"fallback"`` (default): members unknown to the model get a cold-start menu and
        never raise. ``"raise"``: a ``DataError`` naming them.

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
    opts = _options(model, n, exclude, diversity, unknown, pin_compulsory, max_pins, with_reasons)
    state = _state(model)
    req = _Request.make(model, state, member_ids, member_attributes, unknown)
    # Read after the id map (see _Request.make): holds every index the request resolved.
    history = model.history_
    filt = state.filter(channel, max_minutes, now if only_published else False)
    seen = _history_rows(history, req.idx)
    out = _Output()
    for group in _route_groups(model, state, req, seen.counts):
        for lo in range(0, len(group.pos), _CHUNK):
            chunk = group.take(slice(lo, lo + _CHUNK))
            scored = group.scorer(chunk)
            _menu_chunk(model, state, req, chunk, seen.take(chunk.pos), scored, filt, opts, out)
    return out.frame(req, state)


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
    top = _positive_int(top, "top")
    opts = _options(model, n, exclude, 0.0, unknown, False, None, False)
    if not _is_scalar(member_id):
        raise ConfigError("lecturer_menu takes one member id; call it once per member")
    state = _state(model)
    req = _Request.make(model, state, member_id, member_attributes, unknown)
    history = model.history_
    lecturers = state.lecturers()
    if lecturers is None:
        return _empty_lecturers(state)
    filt = state.filter(channel, max_minutes, now if only_published else False)
    seen = _history_rows(history, req.idx)
    group = _route_groups(model, state, req, seen.counts)[0]
    row = group.scorer(group.take(slice(0, 1))).scores[0]
    if filt.mask is not None:
        row[filt.blocked] = _NEG_INF
    excl = _exclusion_rows(state, seen, req.idx, opts.exclude)
    if excl is not None:
        row[excl.indices] = _NEG_INF
    return lecturers.rank(row, opts.n, top, state.course_ext)


# ============================================================================ options


@dataclass(frozen=True)
class _Opts:
    n: int
    exclude: Exclude
    diversity: float
    pin_compulsory: bool
    max_pins: int
    with_reasons: bool


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _options(
    model: Recommender,
    n: int,
    exclude: str,
    diversity: float,
    unknown: str,
    pin_compulsory: bool,
    max_pins: int | None,
    with_reasons: bool,
) -> _Opts:
    model.check_fitted()
    n = _positive_int(n, "n")
    if exclude not in ("seen", "completed", "none"):
        raise ConfigError(f"exclude={exclude!r}; expected 'seen', 'completed' or 'none'")
    if unknown not in ("fallback", "raise"):
        raise ConfigError(f"unknown={unknown!r}; expected 'fallback' or 'raise'")
    try:
        div = float(diversity)
    except (TypeError, ValueError):
        div = float("nan")
    if not 0.0 <= div <= 1.0:
        raise ConfigError(f"diversity must be a number in [0, 1], got {diversity!r}")
    pins = n
    if max_pins is not None:
        if isinstance(max_pins, bool) or not isinstance(max_pins, int | np.integer):
            raise ConfigError(f"max_pins must be a non-negative integer, got {max_pins!r}")
        if max_pins < 0:
            raise ConfigError(f"max_pins must be a non-negative integer, got {max_pins!r}")
        pins = min(n, int(max_pins))
    return _Opts(n, exclude, div, bool(pin_compulsory), pins, bool(with_reasons))  # type: ignore[arg-type]


# ============================================================================ per-model state

# Keyed by the model object itself (weakly: the state goes with the model), so that the
# menu adds nothing to the model's attributes, parameters or artifacts.
_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(model: Recommender) -> _State:
    """The model's menu lookups, rebuilt when the model is refitted."""
    dataset = getattr(model, "dataset_", None)
    base = model.history_.base
    state = _STATES.get(model)
    if state is not None and state.dataset is dataset and state.base is base:
        return state
    with _STATES_LOCK:
        state = _STATES.get(model)
        if state is None or state.dataset is not dataset or state.base is not base:
            state = _State(model, dataset, base)
            _STATES[model] = state
    return state


@dataclass(frozen=True)
class _Filter:
    """Courses a menu may contain: sorted ``allow`` indices, the ``blocked`` rest, and a
    mask; all ``None`` when every course passes."""

    allow: NDArray[np.int64] | None = None
    blocked: NDArray[np.int64] | None = None
    mask: NDArray[np.bool_] | None = None

    @property
    def selective(self) -> bool:
        """True when fewer courses pass than not (the kernel then scores only those)."""
        return (
            self.allow is not None
            and self.blocked is not None
            and (self.allow.size < self.blocked.size)
        )


class _State:
    """Read-only lookups for one fitted model; lazy parts are built once under a lock."""

    def __init__(self, model: Recommender, dataset: Dataset | None, base: sp.csr_matrix) -> None:
        self.dataset = dataset
        self.base = base
        self.n_courses = int(base.shape[1])
        self.course_ext: np.ndarray = model.course_ids_.external_ids
        # A hashed index of the member ids known now. ``IdMap.add`` only appends, so its
        # positions stay valid after fold-in; ids added later go through the live map.
        self.member_index = pd.Index(model.member_ids_.external_ids)
        # Build its hash table now, once, rather than racing to build it in the first
        # concurrent lookups.
        _ = self.member_index.is_unique
        # Re-entrant: a lazy part may be built from another (popularity from branch orgs).
        self._lock = threading.RLock()
        self._lazy: dict[str, Any] = {}
        self._filters: dict[tuple[Any, ...], _Filter] = {}
        courses = dataset.courses if dataset is not None else None
        self.courses = courses

        titles = np.array([str(v) for v in self.course_ext.tolist()], dtype=object)
        if courses is not None and C.TITLE in courses.columns:
            given = courses[C.TITLE].to_numpy(dtype=object)
            has = np.array([isinstance(t, str) and t != "" for t in given], dtype=bool)
            titles[has] = given[has]
        self.titles = titles

        self.channel_names: np.ndarray = np.array([], dtype=object)
        self.channel_codes = np.full(self.n_courses, -1, dtype=np.int32)
        if courses is not None and C.CATEGORY in courses.columns:
            codes, uniques = pd.factorize(courses[C.CATEGORY])
            self.channel_codes = codes.astype(np.int32)
            self.channel_names = np.asarray(uniques, dtype=object)
        self.channel_lookup = {str(c): i for i, c in enumerate(self.channel_names.tolist())}

        self.durations: np.ndarray | None = None
        if courses is not None and C.DURATION in courses.columns:
            self.durations = courses[C.DURATION].to_numpy(dtype=np.float64)

        # Published times as int64 ns with "unknown" (NaT) the smallest value, so always
        # published; sorted, they turn any ``now`` into a count that keys the mask cache.
        self.published: np.ndarray | None = None
        self.published_sorted: np.ndarray | None = None
        if courses is not None and C.PUBLISHED_AT in courses.columns:
            pub = courses[C.PUBLISHED_AT].to_numpy(dtype="datetime64[ns]").view(np.int64)
            self.published = pub
            self.published_sorted = np.sort(pub)
        self.now = dataset.now if dataset is not None else None

    def member_index_of(self, id_map: IdMap, value: object) -> int:
        """Model index of one external member id, -1 when unknown."""
        try:
            loc = self.member_index.get_loc(value)
        except (KeyError, TypeError, pd.errors.InvalidIndexError):
            loc = None
        # Checked against the live map: a refit on the same data keeps this state but may
        # drop members folded in before it.
        ids = id_map.external_ids
        if isinstance(loc, int | np.integer) and loc < len(ids) and ids[loc] == value:
            return int(loc)
        # Not known at state creation (folded in since, or of another id type).
        return int(id_map.to_index([value], unknown="mask")[0])

    # ------------------------------------------------------------------ lazy parts
    def _get(self, name: str, build: Callable[[], Any]) -> Any:
        try:
            return self._lazy[name]
        except KeyError:
            pass
        with self._lock:
            if name not in self._lazy:
                self._lazy[name] = build()
            return self._lazy[name]

    def completed(self) -> sp.csr_matrix:
        """(n_training_members, n_courses) CSR: 1 where the training data has a
        ``complete`` event."""
        return self._get("completed", self._build_completed)

    def _build_completed(self) -> sp.csr_matrix:
        shape = self.base.shape
        ds = self.dataset
        if ds is None:
            return sp.csr_matrix(shape, dtype=np.float32)
        ev = ds.events
        done = (ev[C.EVENT] == "complete").to_numpy()
        rows = ev[MEMBER_IDX].to_numpy()[done]
        cols = ev[COURSE_IDX].to_numpy()[done]
        mat = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=shape)
        mat.sum_duplicates()
        mat.sort_indices()
        return mat

    def branch_pins(self) -> dict[str, NDArray[np.int64]]:
        """Branch org id (as str) -> sorted indices of the courses compulsory for it."""
        return self._get("branch_pins", self._build_branch_pins)

    def _build_branch_pins(self) -> dict[str, NDArray[np.int64]]:
        courses = self.courses
        if courses is None or C.COMPULSORY_FOR not in courses.columns:
            return {}
        lists = courses[C.COMPULSORY_FOR].tolist()
        lengths = np.array([len(v) if isinstance(v, list) else 0 for v in lists], np.int64)
        if not lengths.any():
            return {}
        course = np.repeat(np.arange(self.n_courses, dtype=np.int64), lengths)
        orgs = np.array([str(o) for v in lists if isinstance(v, list) for o in v], dtype=object)
        order = np.lexsort((course, orgs))
        orgs, course = orgs[order], course[order]
        keys, starts = np.unique(orgs, return_index=True)
        bounds = np.append(starts, orgs.size)
        return {str(k): np.unique(course[bounds[i] : bounds[i + 1]]) for i, k in enumerate(keys)}

    def compulsory_table(self) -> CompulsoryTable:
        """:meth:`branch_pins` as arrays, with each training member's branch as a code."""
        return self._get("compulsory_table", self._build_compulsory_table)

    def _build_compulsory_table(self) -> CompulsoryTable:
        branch = self.branch_pins()
        names = sorted(branch)
        indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum([branch[k].size for k in names], out=indptr[1:])
        indices = np.concatenate([branch[k] for k in names]) if names else _EMPTY_I64
        code = {k: i for i, k in enumerate(names)}
        orgs = self.member_orgs()
        member_code = np.array([code.get(o, -1) for o in orgs.tolist()], dtype=np.int64)
        return CompulsoryTable(indptr, indices.astype(np.int64), member_code)

    def member_orgs(self) -> np.ndarray:
        """Training members' branch org id as str (``None`` where unknown), by index."""
        return self._get("member_orgs", self._build_member_orgs)

    def _build_member_orgs(self) -> np.ndarray:
        ds = self.dataset
        if ds is None or ds.members is None or C.ORG not in ds.members.columns:
            return np.empty(0, dtype=object)
        raw = ds.members[C.ORG]
        out = np.full(len(raw), None, dtype=object)
        known = raw.notna().to_numpy()
        out[known] = [str(v) for v in raw.to_numpy(dtype=object)[known]]
        return out

    def popularity(self) -> _ColdScorer:
        """The cold-start scorer (segment popularity), fitted on first use."""
        return self._get("popularity", self._build_popularity)

    def _build_popularity(self) -> _ColdScorer:
        ds = self.dataset
        if ds is not None:
            try:
                from recommend.models.popularity import Popularity
            except ImportError:
                logger.info("no popularity model available: cold start uses branch counts")
            else:
                try:
                    model = Popularity(segment="auto").fit(ds)
                    return _PopularityScorer(model, self.n_courses)
                except Exception as err:  # cold start must survive a failing model
                    logger.warning("segment popularity failed (%s); using branch counts", err)
        return _CountScorer(self.base, self.member_orgs())

    def lecturers(self) -> _Lecturers | None:
        return self._get("lecturers", self._build_lecturers)

    def _build_lecturers(self) -> _Lecturers | None:
        courses = self.courses
        if courses is None or C.LECTURER not in courses.columns:
            return None
        return _Lecturers.make(courses[C.LECTURER])

    # ------------------------------------------------------------------ filters
    def filter(
        self,
        channel: str | Sequence[str] | None,
        max_minutes: float | None,
        now: pd.Timestamp | str | Literal[False] | None,
    ) -> _Filter:
        """The course whitelist for these options (``now=False``: published or not)."""
        channels = self._channel_key(channel)
        max_seconds = None
        if max_minutes is not None:
            max_seconds = minutes_in_seconds(max_minutes, "max_minutes")
            if self.durations is None:
                raise ConfigError(
                    "max_minutes needs course durations: the training courses table has no "
                    f"{C.DURATION} column"
                )
        n_published = None
        if now is not False and self.published_sorted is not None:
            ref = self.now if now is None else _as_naive_utc(now)
            if ref is not None:
                n_published = int(np.searchsorted(self.published_sorted, ref.value, "right"))
        key = (channels, max_seconds, n_published)
        found = self._filters.get(key)
        if found is not None:
            return found
        built = self._build_filter(channels, max_seconds, n_published)
        with self._lock:
            if len(self._filters) >= _FILTER_CACHE:
                self._filters.pop(next(iter(self._filters)))
            self._filters[key] = built
        return built

    def _channel_key(self, channel: str | Sequence[str] | None) -> tuple[int, ...] | None:
        if channel is None:
            return None
        wanted = [channel] if isinstance(channel, str) else list(channel)
        known = self.channel_lookup
        strange = [c for c in wanted if str(c) not in known and c not in CHANNELS]
        if strange:
            raise ConfigError(
                f"channel {strange!r} is not a channel of this catalogue; known channels: "
                f"{sorted(known)}"
            )
        return tuple(sorted({known[str(c)] for c in wanted if str(c) in known}))

    def _build_filter(
        self, channels: tuple[int, ...] | None, max_seconds: float | None, n_pub: int | None
    ) -> _Filter:
        keep = np.ones(self.n_courses, dtype=bool)
        if channels is not None:
            keep &= np.isin(self.channel_codes, np.asarray(channels, dtype=np.int32))
        if max_seconds is not None and self.durations is not None:
            with np.errstate(invalid="ignore"):
                keep &= self.durations <= max_seconds
        if n_pub is not None and self.published is not None and self.published_sorted is not None:
            # The n_pub earliest publications are exactly those at or before ``now``.
            if n_pub == 0:
                keep[:] = False
            elif n_pub < self.n_courses:
                keep &= self.published <= self.published_sorted[n_pub - 1]
        if keep.all():
            return _Filter()
        allow = np.flatnonzero(keep).astype(np.int64)
        blocked = np.flatnonzero(~keep).astype(np.int64)
        for array in (keep, allow, blocked):
            array.setflags(write=False)
        return _Filter(allow, blocked, keep)


def _as_naive_utc(value: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts


# ============================================================================ cold start


@dataclass(frozen=True)
class _Scored:
    """Scores of a chunk of members, fresh and writable (members, n_courses) float32,
    with each member's route and constant reason (``None``: explain from history)."""

    scores: np.ndarray
    routes: np.ndarray
    reasons: np.ndarray


class _ColdScorer:
    """Popularity for members without history, from their attributes."""

    def score(self, attributes: pd.DataFrame) -> _Scored:
        raise NotImplementedError

    def global_scores(self) -> np.ndarray:
        """What a member with no attributes gets, (n_courses,) float32 (read-only)."""
        raise NotImplementedError

    def score_global(self, m: int) -> _Scored:
        return _Scored(
            np.tile(self.global_scores(), (m, 1)), *_constant(m, ROUTE_GLOBAL, REASON_GLOBAL)
        )


def _cold_labels(segment: np.ndarray, branch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    routes = np.where(segment, ROUTE_SEGMENT, ROUTE_GLOBAL).astype(object)
    reasons = np.where(
        branch, REASON_BRANCH, np.where(segment, REASON_SEGMENT, REASON_GLOBAL)
    ).astype(object)
    return routes, reasons


class _PopularityScorer(_ColdScorer):
    """Adapter over ``recommend.models.popularity.Popularity``.

    The model gives a member one segment or, when no segment applies (attribute missing,
    segment too small or unknown), global popularity. Which one it was shows in the scores
    themselves: a row equal to the row of a member without attributes is global. A member
    whose scores equal those from their branch alone was served by their branch.
    """

    def __init__(self, model: Any, n_courses: int) -> None:
        self.model = model
        self.n_courses = n_courses
        self.kinds = tuple(getattr(model, "kinds", ()) or ())
        self._fallback = self._segment_scores(pd.DataFrame(index=range(1)))[0]
        self._fallback.setflags(write=False)

    def global_scores(self) -> np.ndarray:
        return self._fallback

    def _segment_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        # A copy: the menu writes exclusions into the scores it gets.
        out = np.array(self.model.segment_scores(attributes), dtype=np.float32)
        if out.shape != (len(attributes), self.n_courses):
            raise DataError(
                f"segment_scores returned shape {out.shape}; expected "
                f"({len(attributes)}, {self.n_courses})"
            )
        return out

    def score(self, attributes: pd.DataFrame) -> _Scored:
        with_kinds = getattr(self.model, "segment_scores_with_kinds", None)
        if with_kinds is None:
            return self._score_probing(attributes)
        got, kinds = with_kinds(attributes)
        # A fresh array (no copy needed for the exclusions the menu writes into it).
        scores = np.asarray(got, dtype=np.float32)
        if scores.shape != (len(attributes), self.n_courses):
            raise DataError(
                f"segment_scores returned shape {scores.shape}; expected "
                f"({len(attributes)}, {self.n_courses})"
            )
        kinds = np.asarray(kinds, dtype=object)
        # The same labels as probing: a member not served by a segment has the global
        # scores; a segment's scores may still equal them, which counts as global. The
        # branch is the first kind tried, so whoever its probe (the branch alone) would
        # give the member's own scores was served by the branch.
        segment = np.not_equal(kinds, None)
        if segment.any():
            at = np.flatnonzero(segment)
            segment[at] = _rows_differ(scores, at, self._fallback)
        branch = segment & (kinds == C.ORG)
        return _Scored(scores, *_cold_labels(segment, branch))

    def _score_probing(self, attributes: pd.DataFrame) -> _Scored:
        """Labels from the scores alone, for a model that does not tell the kind."""
        scores = self._segment_scores(attributes)
        segment = _rows_differ(scores, np.arange(len(scores)), self._fallback)
        branch = np.zeros(len(attributes), dtype=bool)
        if segment.any() and C.ORG in self.kinds and C.ORG in attributes.columns:
            probe = attributes.loc[segment, [C.ORG]].reset_index(drop=True)
            branch[segment] = (self._segment_scores(probe) == scores[segment]).all(axis=1)
        return _Scored(scores, *_cold_labels(segment, branch))


def minutes_in_seconds(minutes: object, name: str) -> float:
    """``minutes`` (a positive number of minutes) in seconds; a ``ConfigError`` naming
    ``name`` for anything else (zero, negative, NaN, text)."""
    try:
        seconds = float(minutes) * 60.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        raise ConfigError(f"{name} must be a positive number, got {minutes!r}")
    return seconds


def _rows_differ(scores: np.ndarray, rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whether each of ``scores[rows]`` ((m, n) scores, int row numbers) differs from
    ``reference`` (n,) anywhere.

    Rows that differ usually do so in their first columns already (segment scores are the
    global counts scaled down plus the segment's own), so a first look at a few columns
    settles most of them; only the rest are compared in full.
    """
    head = min(_DIFFER_HEAD, scores.shape[1])
    differ = (scores[rows, :head] != reference[:head]).any(axis=1)
    open_ = np.flatnonzero(~differ)
    if open_.size and head < scores.shape[1]:
        differ[open_] = (scores[rows[open_], head:] != reference[head:]).any(axis=1)
    return differ


_DIFFER_HEAD = 256


class _CountScorer(_ColdScorer):
    """Fallback when no popularity model is available: how many members studied each
    course, in the member's branch (platform counts breaking ties) or on the platform."""

    def __init__(self, base: sp.csr_matrix, member_orgs: np.ndarray) -> None:
        seen = base.copy()
        seen.data = np.ones_like(seen.data)
        counts = np.asarray(seen.sum(axis=0), dtype=np.float64).reshape(-1)
        self._global = counts.astype(np.float32)
        self._tiebreak = (counts / (counts.max() + 1.0) if counts.size else counts).astype(
            np.float32
        )
        self._orgs: dict[str, int] = {}
        self._by_org = sp.csr_matrix((0, base.shape[1]), dtype=np.float32)
        n = min(len(member_orgs), base.shape[0])
        if n:
            known = np.array([o is not None for o in member_orgs[:n]], dtype=bool)
            codes, uniques = pd.factorize(member_orgs[:n][known])
            self._orgs = {str(o): i for i, o in enumerate(uniques)}
            assign = sp.csr_matrix(
                (np.ones(codes.size, np.float32), (codes, np.flatnonzero(known))),
                shape=(len(uniques), base.shape[0]),
            )
            self._by_org = (assign @ seen).tocsr()

    def score(self, attributes: pd.DataFrame) -> _Scored:
        m = len(attributes)
        scores = np.tile(self._global, (m, 1))
        branch = np.zeros(m, dtype=bool)
        orgs = attributes[C.ORG].tolist() if C.ORG in attributes.columns else [None] * m
        for i, org in enumerate(orgs):
            row = None if org is None or pd.isna(org) else self._orgs.get(str(org))
            if row is not None:
                lo, hi = self._by_org.indptr[row], self._by_org.indptr[row + 1]
                scores[i] = self._tiebreak
                scores[i, self._by_org.indices[lo:hi]] += self._by_org.data[lo:hi]
                branch[i] = True
        return _Scored(scores, *_cold_labels(branch, branch))

    def global_scores(self) -> np.ndarray:
        return self._global


# ============================================================================ requests


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bytes | int | np.integer | np.str_) or np.ndim(value) == 0


@dataclass
class _Request:
    """The members asked for: their ids as given, model indices (-1 unknown), attributes."""

    ids: np.ndarray  # as given (object or int64), shape (m,)
    idx: NDArray[np.int64]  # model member index, -1 when unknown
    attributes: pd.DataFrame | None  # validated member_attributes indexed by member_id

    @classmethod
    def make(
        cls,
        model: Recommender,
        state: _State,
        member_ids: Any,
        member_attributes: pd.DataFrame | None,
        unknown: str,
    ) -> _Request:
        # Read the id map before the history: ``update`` publishes a member's factors and
        # history first and their id last, so every index resolved here has both.
        id_map = model.member_ids_
        if _is_scalar(member_ids):
            value = member_ids.item() if isinstance(member_ids, np.generic) else member_ids
            integer = isinstance(value, int) and not isinstance(value, bool)
            ids = np.array([value], dtype=np.int64 if integer else object)
            idx = np.array([state.member_index_of(id_map, value)], dtype=np.int64)
        else:
            # Through pandas: it keeps integer ids integers and strings Python strings,
            # where numpy would turn a mixed list into fixed-width text.
            series = pd.Series(
                member_ids if isinstance(member_ids, np.ndarray | pd.Index) else list(member_ids)
            )
            integer = series.dtype.kind in "iu"
            ids = series.to_numpy(dtype=np.int64 if integer else object)
            idx = id_map.to_index(ids, unknown="mask").astype(np.int64) if ids.size else _EMPTY_I64
        if unknown == "raise" and (idx < 0).any():
            missing = pd.unique(ids[idx < 0])
            raise DataError(
                f"{missing.size} member id(s) unknown to the model: {missing[:10].tolist()}"
                f"{' ...' if missing.size > 10 else ''}; pass unknown='fallback' for a "
                "cold-start menu"
            )
        attrs = None
        if member_attributes is not None:
            from recommend.data.validation import validate

            attrs = validate("members", member_attributes)
            attrs = attrs.drop_duplicates(C.MEMBER, keep="last").set_index(C.MEMBER)
        return cls(ids, idx, attrs)

    def attribute_rows(self, state: _State, rows: NDArray[np.int64]) -> pd.DataFrame:
        """Attributes of request rows ``rows``: ``member_attributes`` first, the training
        members table for the rest; a ``member_id`` column plus whatever is known."""
        ids = self.ids[rows]
        idx = self.idx[rows]
        ds = state.dataset
        known = None
        if ds is not None and ds.members is not None:
            ok = (idx >= 0) & (idx < len(ds.members))
            known = ds.members.iloc[idx[ok]].drop(columns=[C.MEMBER])
            known.index = np.flatnonzero(ok)
            known = known.reindex(range(len(rows)))
        given = None
        if self.attributes is not None:
            pos = pd.Index(self.attributes.index).get_indexer(pd.Index(ids))
            found = self.attributes.iloc[pos[pos >= 0]]
            found.index = np.flatnonzero(pos >= 0)
            given = found.reindex(range(len(rows)))
        if given is not None and known is not None:
            frame = given.combine_first(known)
        else:
            frame = given if given is not None else known
        if frame is None:
            frame = pd.DataFrame(index=range(len(rows)))
        frame = frame.reset_index(drop=True)
        frame.insert(0, C.MEMBER, ids)
        return frame

    def given_orgs(self, rows: NDArray[np.int64]) -> list[str | None]:
        """Branch org ids from ``member_attributes`` for request rows (``None``: not given)."""
        out: list[str | None] = [None] * len(rows)
        if self.attributes is None or C.ORG not in self.attributes.columns:
            return out
        given = self.attributes[C.ORG]
        pos = pd.Index(given.index).get_indexer(pd.Index(self.ids[rows]))
        values = given.to_numpy(dtype=object)
        for i, p in enumerate(pos.tolist()):
            if p >= 0 and pd.notna(values[p]):
                out[i] = str(values[p])
        return out


# ============================================================================ history rows


@dataclass(frozen=True)
class _Rows:
    """Rows of a CSR matrix for some members, as its three arrays.

    For the one or few members of a request, slicing the arrays is several times cheaper
    than building scipy matrices.
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.int32]
    data: NDArray[np.float32]

    @property
    def counts(self) -> NDArray[np.int64]:
        return np.diff(self.indptr)

    def row(self, i: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.data[lo:hi]

    def take(self, rows: NDArray[np.int64]) -> _Rows:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == len(self.indptr) - 1 and (rows == np.arange(rows.size)).all():
            return self
        return _gather(self.indptr, self.indices, self.data, rows, len(self.indptr) - 1)


def _gather(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, idx: np.ndarray, n_rows: int
) -> _Rows:
    """Rows ``idx`` of a CSR (given by its arrays); empty rows for indices outside it."""
    idx = np.asarray(idx, dtype=np.int64)
    valid = (idx >= 0) & (idx < n_rows)
    if not valid.any():  # also the CSR with no rows at all (e.g. no compulsory courses)
        return _Rows(np.zeros(idx.size + 1, dtype=np.int64), indices[:0], data[:0])
    safe = np.where(valid, idx, 0)
    starts = indptr[safe].astype(np.int64)
    lengths = np.where(valid, indptr[safe + 1] - starts, 0)
    out_ptr = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    if idx.size == 1:
        take = slice(int(starts[0]), int(starts[0] + lengths[0]))
        return _Rows(out_ptr, indices[take], data[take])
    pos = np.repeat(starts - out_ptr[:-1], lengths) + np.arange(out_ptr[-1])
    return _Rows(out_ptr, indices[pos], data[pos])


def _matrix_rows(mat: sp.csr_matrix, idx: NDArray[np.int64]) -> _Rows:
    return _gather(mat.indptr, mat.indices, mat.data, idx, mat.shape[0])


def _history_rows(history: History, idx: NDArray[np.int64]) -> _Rows:
    """History rows of ``idx`` (unknown or never-seen members give empty rows)."""
    if history.extra:
        hit = np.isin(idx, np.fromiter(history.extra, dtype=np.int64))
        if hit.any():
            # Folded-in members are few: splice their replacement rows in one by one.
            parts = [
                _matrix_rows(history.extra[int(i)], np.zeros(1, np.int64))
                if h
                else _matrix_rows(history.base, np.array([i], np.int64))
                for i, h in zip(idx.tolist(), hit.tolist(), strict=True)
            ]
            indptr = np.zeros(len(parts) + 1, dtype=np.int64)
            np.cumsum([p.indices.size for p in parts], out=indptr[1:])
            indices = np.concatenate([p.indices for p in parts]).astype(np.int32, copy=False)
            data = np.concatenate([p.data for p in parts]).astype(np.float32, copy=False)
            return _Rows(indptr, indices, data)
    return _matrix_rows(history.base, idx)


def _exclusion_rows(
    state: _State, seen: _Rows, idx: NDArray[np.int64], exclude: str
) -> _Rows | None:
    if exclude == "seen":
        return seen
    if exclude == "completed":
        return _matrix_rows(state.completed(), idx)
    return None


# ============================================================================ routes


@dataclass
class _Chunk:
    """Up to ``_CHUNK`` members of one group: request positions, model indices, and
    attribute rows where the group uses them."""

    pos: NDArray[np.int64]
    idx: NDArray[np.int64]
    attributes: pd.DataFrame | None


@dataclass
class _Group:
    """Members served alike, and how to score a chunk of them."""

    pos: NDArray[np.int64]
    idx: NDArray[np.int64]
    scorer: Callable[[_Chunk], _Scored]
    attributes: pd.DataFrame | None = None

    def take(self, part: slice) -> _Chunk:
        attrs = None
        if self.attributes is not None:
            attrs = self.attributes.iloc[part].reset_index(drop=True)
        return _Chunk(self.pos[part], self.idx[part], attrs)


def _constant(m: int, route: str, reason: str | None) -> tuple[np.ndarray, np.ndarray]:
    return np.full(m, route, dtype=object), np.full(m, reason, dtype=object)


def _route_groups(
    model: Recommender, state: _State, req: _Request, history_counts: NDArray[np.int64]
) -> list[_Group]:
    """Split the request into groups by how members are scored (see the module routes)."""
    personal = history_counts > 0
    groups: list[_Group] = []
    if personal.any():
        rows = np.flatnonzero(personal)

        def personal_scores(chunk: _Chunk) -> _Scored:
            # score_block returns a new array (protocol), which the menu may overwrite.
            scores = np.asarray(model.score_block(chunk.idx), dtype=np.float32)
            return _Scored(scores, *_constant(len(chunk.pos), ROUTE_PERSONAL, None))

        groups.append(_Group(rows, req.idx[rows], personal_scores))
    if personal.all():
        return groups

    cold = np.flatnonzero(~personal)
    hybrid = bool(getattr(model, "uses_features", False))
    if hybrid:
        # A hybrid model already places the members it was trained with by their
        # attributes (their identity part learned nothing without history): score their
        # vectors as they are. This also keeps menus identical after an artifact round
        # trip, which stores no personal attributes.
        known = req.idx[cold] >= 0
        if known.any():
            rows = cold[known]

            def trained_rows(chunk: _Chunk) -> _Scored:
                scores = np.asarray(model.score_block(chunk.idx), dtype=np.float32)
                return _Scored(scores, *_constant(len(chunk.pos), ROUTE_FEATURES, REASON_FEATURES))

            groups.append(_Group(rows, req.idx[rows], trained_rows))
            cold = cold[~known]
            if not cold.size:
                return groups

    members = state.dataset.members if state.dataset is not None else None
    if req.attributes is None and (members is None or (req.idx[cold] < 0).all()):
        # Unknown members and nothing said about them: platform popularity, without
        # assembling attribute frames (the common cold request of a backend).
        scorer = state.popularity()
        groups.append(_Group(cold, req.idx[cold], lambda c: scorer.score_global(len(c.pos))))
        return groups
    attrs = req.attribute_rows(state, cold)
    described = attrs.drop(columns=[C.MEMBER]).notna().any(axis=1).to_numpy(dtype=bool)
    popular = np.ones(len(cold), dtype=bool)

    cold_fn = getattr(model, "cold_member_scores", None)
    if hybrid and callable(cold_fn) and described.any():
        sub = attrs[described].reset_index(drop=True)
        try:
            feature_scores = np.asarray(cold_fn(sub), dtype=np.float32)
            if feature_scores.shape != (len(sub), state.n_courses):
                raise DataError(
                    f"cold_member_scores returned shape {feature_scores.shape}; expected "
                    f"({len(sub)}, {state.n_courses})"
                )
        except Exception as err:  # a failing hybrid model falls back to popularity
            logger.warning("cold_member_scores failed (%s); using segment popularity", err)
        else:
            rows = cold[described]
            offset = {int(p): i for i, p in enumerate(rows.tolist())}

            def feature_rows(chunk: _Chunk, s: np.ndarray = feature_scores) -> _Scored:
                picked = s[[offset[int(p)] for p in chunk.pos]]  # fancy indexing copies
                return _Scored(picked, *_constant(len(chunk.pos), ROUTE_FEATURES, REASON_FEATURES))

            groups.append(_Group(rows, req.idx[rows], feature_rows))
            popular &= ~described

    if popular.any():
        scorer = state.popularity()
        rows = cold[popular]

        def popularity_rows(chunk: _Chunk) -> _Scored:
            assert chunk.attributes is not None
            return scorer.score(chunk.attributes)

        groups.append(
            _Group(rows, req.idx[rows], popularity_rows, attrs[popular].reset_index(drop=True))
        )
    return groups


# ============================================================================ the menu


def _isin(values: np.ndarray, among: np.ndarray) -> NDArray[np.bool_]:
    """``np.isin`` for the short arrays of one member's menu, where broadcasting beats
    isin's sorting by an order of magnitude."""
    if values.size * among.size <= 4096:
        return (values[:, None] == among[None, :]).any(axis=1)
    return np.isin(values, among)


class _Output:
    """Menu rows accumulated member by member, as arrays."""

    def __init__(self) -> None:
        self.pos: list[np.ndarray] = []
        self.courses: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.reasons: list[np.ndarray] = []
        self.routes: list[np.ndarray] = []

    def add(
        self, pos: int, courses: np.ndarray, scores: np.ndarray, reasons: np.ndarray, route: str
    ) -> None:
        self.pos.append(np.full(courses.size, pos, dtype=np.int64))
        self.courses.append(courses)
        self.scores.append(scores)
        self.reasons.append(reasons)
        self.routes.append(np.full(courses.size, route, dtype=object))

    def frame(self, req: _Request, state: _State) -> pd.DataFrame:
        if not self.pos:
            return _empty_menu(req, state)
        if len(self.pos) == 1:
            pos, courses, scores = self.pos[0], self.courses[0], self.scores[0]
            reasons, routes = self.reasons[0], self.routes[0]
            rank = np.arange(1, pos.size + 1, dtype=np.int32)
        else:
            pos = np.concatenate(self.pos)
            courses = np.concatenate(self.courses)
            scores = np.concatenate(self.scores)
            reasons = np.concatenate(self.reasons)
            routes = np.concatenate(self.routes)
            if (np.diff(pos) < 0).any():
                # Route groups come out one after the other: restore the request order.
                order = np.argsort(pos, kind="stable")
                pos, courses, scores = pos[order], courses[order], scores[order]
                reasons, routes = reasons[order], routes[order]
            starts = np.flatnonzero(np.r_[True, pos[1:] != pos[:-1]])
            first = np.repeat(starts, np.diff(np.r_[starts, pos.size]))
            rank = (np.arange(pos.size) - first + 1).astype(np.int32)
        return pd.DataFrame(
            {
                C.MEMBER: req.ids[pos],
                C.COURSE: state.course_ext[courses],
                C.SCORE: scores.astype(np.float32, copy=False),
                C.RANK: rank,
                C.REASON: reasons,
                C.ROUTE: routes,
            },
            copy=False,
        )


def _empty_menu(req: _Request, state: _State) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.MEMBER: req.ids[:0],
            C.COURSE: state.course_ext[:0],
            C.SCORE: np.empty(0, np.float32),
            C.RANK: np.empty(0, np.int32),
            C.REASON: pd.Series([], dtype=str),
            C.ROUTE: pd.Series([], dtype=str),
        }
    )


def _menu_chunk(
    model: Recommender,
    state: _State,
    req: _Request,
    chunk: _Chunk,
    seen: _Rows,
    scored: _Scored,
    filt: _Filter,
    opts: _Opts,
    out: _Output,
) -> None:
    """Rank one chunk of members and append their menus to ``out``.

    ``scored.scores`` is the chunk's fresh (members, n_courses) float32 matrix: exclusions
    and filters are written into it as ``-inf`` and the kernel may overwrite it.
    """
    m, n = len(chunk.pos), opts.n
    scores = scored.scores
    pins: list[NDArray[np.int64]] = [_EMPTY_I64] * m
    if opts.pin_compulsory and opts.max_pins:
        branch = state.branch_pins()
        if branch:
            pins = _pins(state, req, chunk, scores, filt, branch, opts.max_pins)
    pin_scores = [scores[i, p] for i, p in enumerate(pins)]  # before any masking
    max_pins = max((p.size for p in pins), default=0)

    excl = _exclusion_rows(state, seen, chunk.idx, opts.exclude)
    if excl is not None and excl.indices.size:
        scores[np.repeat(np.arange(m), excl.counts), excl.indices] = _NEG_INF
    allow = None
    if filt.selective:
        allow = filt.allow
    elif filt.blocked is not None and filt.blocked.size:
        scores[:, filt.blocked] = _NEG_INF

    # Pinned courses may come back from the kernel too: ask for that many more.
    pool = n * (_MMR_POOL if opts.diversity > 0 else 1) + max_pins
    k = max(1, min(pool, state.n_courses))
    top = topk_scores(
        lambda rows: scores if rows.size == m else scores[rows],
        np.arange(m),
        state.n_courses,
        k,
        allow=allow,
    )

    course_vectors = None
    if opts.with_reasons and any(r is None for r in scored.reasons.tolist()):
        # Course factors only: the member side of an updated model is never assembled here.
        side = model.course_vectors()
        course_vectors = None if side is None else side[0]
    for i in range(m):
        pinned = pins[i]
        cand = top.indices[i]
        cand_scores = top.scores[i]
        keep = (cand >= 0) & (cand_scores > _NEG_INF)
        if pinned.size:
            keep &= ~_isin(cand, pinned)
        cand = cand[keep].astype(np.int64)
        cand_scores = cand_scores[keep]
        need = n - pinned.size
        if opts.diversity > 0 and cand.size > 1 and need > 0:
            order = _mmr(
                cand_scores,
                state.channel_codes[cand],
                state.channel_codes[pinned],
                need,
                opts.diversity,
            )
            cand, cand_scores = cand[order], cand_scores[order]
        else:
            cand, cand_scores = cand[:need], cand_scores[:need]

        reasons = np.empty(pinned.size + cand.size, dtype=object)
        if not opts.with_reasons:
            reasons[:] = ""
        else:
            reasons[: pinned.size] = REASON_COMPULSORY
            if scored.reasons[i] is None:
                history, confidence = seen.row(i)
                reasons[pinned.size :] = _studied_reasons(
                    state, course_vectors, cand, history, confidence
                )
            else:
                reasons[pinned.size :] = scored.reasons[i]
        out.add(
            int(chunk.pos[i]),
            np.concatenate((pinned, cand)),
            np.concatenate((pin_scores[i], cand_scores)),
            reasons,
            scored.routes[i],
        )


def _pins(
    state: _State,
    req: _Request,
    chunk: _Chunk,
    scores: np.ndarray,
    filt: _Filter,
    branch: dict[str, NDArray[np.int64]],
    limit: int,
) -> list[NDArray[np.int64]]:
    """Per member, the compulsory courses of their branch to pin, best scored first."""
    training = state.member_orgs()
    given = req.given_orgs(chunk.pos) if req.attributes is not None else [None] * len(chunk.pos)
    completed = state.completed()
    out: list[NDArray[np.int64]] = []
    for i, j in enumerate(chunk.idx.tolist()):
        org = given[i] or (training[j] if 0 <= j < len(training) else None)
        courses = branch.get(org) if org is not None else None
        if courses is None:
            out.append(_EMPTY_I64)
            continue
        if filt.mask is not None:
            courses = courses[filt.mask[courses]]
        if courses.size and 0 <= j < completed.shape[0]:
            done = completed.indices[completed.indptr[j] : completed.indptr[j + 1]]
            if done.size:
                courses = courses[~_isin(courses, done)]
        if courses.size > 1:
            # Best scored first; ties by course index (the kernel's rule): a stable sort.
            courses = courses[np.argsort(-scores[i, courses], kind="stable")]
        out.append(courses[:limit])
    return out


def _mmr(
    scores: NDArray[np.float32],
    channels: NDArray[np.int32],
    pinned_channels: NDArray[np.int32],
    need: int,
    weight: float,
) -> NDArray[np.int64]:
    """Greedy MMR over a pool sorted best first; positions of the ``need`` picks in order.

    Similarity is 1 between courses of the same (known) channel, else 0, so the maximal
    similarity to the picks so far is just "is this channel covered yet".
    """
    need = min(need, scores.size)
    s = scores.astype(np.float64)
    lo, hi = float(s.min()), float(s.max())
    rel = (s - lo) / (hi - lo) if hi > lo else np.ones(s.size)
    covered = _isin(channels, pinned_channels[pinned_channels >= 0]) & (channels >= 0)
    value = rel - weight * covered
    picks = np.empty(need, dtype=np.int64)
    for step in range(need):
        # argmax takes the first maximum: among equals, the better-ranked course.
        j = int(np.argmax(value))
        picks[step] = j
        value[j] = -np.inf
        c = channels[j]
        if c >= 0:
            newly = (channels == c) & ~covered
            if newly.any():
                covered |= newly
                value[newly] -= weight
    return picks


def _studied_reasons(
    state: _State,
    course_vectors: np.ndarray | None,
    recommended: NDArray[np.int64],
    history: np.ndarray,
    confidence: np.ndarray,
) -> np.ndarray:
    """ "because you studied <title>", naming the history course most like each course.

    Factor models: cosine similarity of course factors. Other models: a history course of
    the same channel, the most confident one (confidence carries recency when the
    weighting decays); the most confident of all otherwise. A recommended course that is
    itself in the history (``exclude`` other than "seen") reads "continue studying".
    """
    out = np.empty(recommended.size, dtype=object)
    if recommended.size == 0:
        return out
    hist = history.astype(np.int64)
    conf = confidence.astype(np.float64)
    if hist.size > _REASON_HISTORY:
        keep = np.argpartition(-conf, _REASON_HISTORY)[:_REASON_HISTORY]
        hist, conf = hist[keep], conf[keep]
    if course_vectors is not None and course_vectors.shape[0] == state.n_courses:
        rec_f = np.asarray(course_vectors[recommended], dtype=np.float32)
        hist_f = np.asarray(course_vectors[hist], dtype=np.float32)
        norms = np.linalg.norm(rec_f, axis=1)[:, None] * np.linalg.norm(hist_f, axis=1)[None, :]
        sim = (rec_f @ hist_f.T) / np.maximum(norms, 1e-12)
    else:
        rec_c = state.channel_codes[recommended]
        hist_c = state.channel_codes[hist]
        same = (rec_c[:, None] == hist_c[None, :]) & (rec_c[:, None] >= 0)
        sim = same + 0.5 * (conf / max(float(conf.max()), 1e-12))[None, :]
    itself = recommended[:, None] == hist[None, :]
    best = hist[np.argmax(np.where(itself, -np.inf, sim), axis=1)]
    again = itself.any(axis=1)
    titles = state.titles
    for i in range(recommended.size):
        if again[i]:
            out[i] = _CONTINUE + titles[recommended[i]]
        else:
            out[i] = _STUDIED + titles[best[i]]
    return out


# ============================================================================ lecturers


@dataclass(frozen=True)
class _Lecturers:
    """Courses grouped by lecturer: ``order`` lists course indices lecturer by lecturer,
    ``starts`` where each lecturer's run begins, ``segment`` the lecturer of each slot."""

    ids: np.ndarray
    order: NDArray[np.int64]
    starts: NDArray[np.int64]
    segment: NDArray[np.int64]

    @classmethod
    def make(cls, lecturer: pd.Series) -> _Lecturers | None:
        codes, uniques = pd.factorize(lecturer)
        if len(uniques) == 0:
            return None
        has = np.flatnonzero(codes >= 0)
        order = has[np.argsort(codes[has], kind="stable")].astype(np.int64)
        segment = codes[order].astype(np.int64)
        starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]]).astype(np.int64)
        return cls(np.asarray(uniques, dtype=object), order, starts, segment)

    def rank(
        self, scores: NDArray[np.float32], n: int, top: int, course_ext: np.ndarray
    ) -> pd.DataFrame:
        """Lecturers by the mean of their ``top`` best course scores (``-inf``: filtered).

        Vectorised over lecturers: ``top`` rounds of a segmented maximum
        (``np.maximum.reduceat``), each knocking out the maximum it found.
        """
        values = scores[self.order].astype(np.float64)
        values[np.isnan(values)] = -np.inf
        eligible = np.add.reduceat(np.isfinite(values).astype(np.int64), self.starts)
        total = np.zeros(self.starts.size)
        best_slot = np.zeros(self.starts.size, dtype=np.int64)
        for round_ in range(top):
            peak = np.maximum.reduceat(values, self.starts)
            hits = np.flatnonzero(values == peak[self.segment])
            first = hits[np.r_[True, self.segment[hits][1:] != self.segment[hits][:-1]]]
            live = np.isfinite(peak)
            total[live] += peak[live]
            if round_ == 0:
                best_slot[self.segment[first]] = first
            values[first] = -np.inf
        ok = np.flatnonzero(eligible > 0)
        mean = np.zeros(self.starts.size)
        mean[ok] = total[ok] / np.minimum(eligible[ok], top)
        # Best mean first; ties by lecturer order of first appearance.
        order = ok[np.lexsort((ok, -mean[ok]))][:n]
        return pd.DataFrame(
            {
                C.LECTURER: self.ids[order],
                C.SCORE: mean[order].astype(np.float32),
                C.RANK: np.arange(1, order.size + 1, dtype=np.int32),
                "courses": eligible[order].astype(np.int32),
                "top_course_id": course_ext[self.order[best_slot[order]]],
            }
        )


def _empty_lecturers(state: _State) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.LECTURER: pd.Series([], dtype=object),
            C.SCORE: np.empty(0, np.float32),
            C.RANK: np.empty(0, np.int32),
            "courses": np.empty(0, np.int32),
            "top_course_id": state.course_ext[:0],
        }
    )


# ============================================================================ internal API
# What the group menu, the batch job and search ranking build on: the per-model lookups,
# history rows, compulsory courses, cold-start routing and reasons, as plain arrays. Not
# public (not exported), but kept stable for those modules, unlike the underscored helpers.

#: The per-model lookups (course ids, channels, durations, filters, completions...).
MenuState = _State
#: Rows of a CSR matrix for some members (``indptr``, ``indices``, ``data``, ``counts``).
Rows = _Rows
#: One menu request resolved against a model (member indices, attributes, routes).
MenuRequest = _Request
#: ``exclusion_rows(state, seen, idx, exclude)``: courses to leave out per member, or None.
exclusion_rows = _exclusion_rows
#: ``route_groups(model, state, request, history_counts)``: members grouped by cold route.
route_groups = _route_groups
#: ``studied_reasons(state, course_vectors, courses, history, confidence)``: "because you
#: studied <title>" for each course.
studied_reasons = _studied_reasons
#: ``is_scalar(value)``: one id rather than a sequence of them.
is_scalar = _is_scalar
#: ``positive_int(value, name)``: the value as an int, or ConfigError naming ``name``.
positive_int = _positive_int
#: Scores of some members for every course and their routes:
#: ``scorer(positions) -> (scores (len, n_courses) float32, fresh; routes (len,) object)``.
RouteScorer = Callable[[NDArray[np.int64]], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class CompulsoryTable:
    """Branch -> compulsory courses as CSR arrays over branch codes.

    ``indices[indptr[b]:indptr[b + 1]]`` are the sorted course indices compulsory for
    branch code ``b``; ``member_code`` (n_training_members,) int64 is each training member's
    branch code, -1 when the member's branch has no compulsory course (or is unknown).
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    member_code: NDArray[np.int64]

    def codes(self, idx: NDArray[np.int64]) -> NDArray[np.int64]:
        """Branch codes of members ``idx`` (model indices; -1 for unknown members)."""
        out = np.full(idx.size, -1, dtype=np.int64)
        inside = (idx >= 0) & (idx < self.member_code.size)
        out[inside] = self.member_code[idx[inside]]
        return out

    def rows(self, idx: NDArray[np.int64]) -> _Rows:
        """The compulsory courses of each member's branch, as rows aligned with ``idx``."""
        codes = self.codes(idx)
        return _gather(self.indptr, self.indices, self.indices, codes, self.indptr.size - 1)


def menu_state(model: Recommender) -> _State:
    """The model's menu lookups (built once per fitted model, shared, read-only)."""
    return _state(model)


def history_rows(history: History, idx: NDArray[np.int64]) -> _Rows:
    """History rows of members ``idx`` (model indices; -1 or never seen: empty rows)."""
    return _history_rows(history, idx)


def matrix_rows(matrix: sp.csr_matrix, idx: NDArray[np.int64]) -> _Rows:
    """Rows ``idx`` of a CSR matrix; empty rows for indices outside it."""
    return _matrix_rows(matrix, idx)


def cold_scorers(
    model: Recommender, state: _State, idx: NDArray[np.int64]
) -> list[tuple[NDArray[np.int64], RouteScorer]]:
    """How the member menu scores members without a history, as plain arrays.

    Parameters
    ----------
    model, state
        The model and its :func:`menu_state`.
    idx : ndarray of int64, shape (m,)
        Model indices of members without history (-1 for members unknown to the model).

    Returns
    -------
    list of (positions, scorer)
        ``positions`` (int64) into ``idx`` of the members served by one cold-start route
        (hybrid features, segment or global popularity), and their ``scorer``, which takes
        any subset of those positions. Scorers are not documented as thread-safe: call
        them from one thread.
    """
    idx = np.asarray(idx, dtype=np.int64)
    req = _Request(idx, idx, None)
    out: list[tuple[NDArray[np.int64], RouteScorer]] = []
    for group in _route_groups(model, state, req, np.zeros(idx.size, dtype=np.int64)):
        offset = np.full(idx.size, -1, dtype=np.int64)
        offset[group.pos] = np.arange(group.pos.size)

        def scorer(
            positions: NDArray[np.int64], group: _Group = group, offset: np.ndarray = offset
        ) -> tuple[np.ndarray, np.ndarray]:
            local = offset[positions]
            attrs = None
            if group.attributes is not None:
                attrs = group.attributes.iloc[local].reset_index(drop=True)
            scored = group.scorer(_Chunk(group.pos[local], group.idx[local], attrs))
            return scored.scores, scored.routes

        out.append((group.pos, scorer))
    return out
