"""The per-model serving state: lookups every product reads, built once per fitted model.

A :class:`ServingState` is derived from a fitted model's training data (course ids,
titles, channels, durations, publication times, the branch -> compulsory courses map,
completions, member branches) and kept in the model's serving cache
(``Recommender.cached``), so a refit or a restored artifact starts a new one. Parts that
not every request needs are built on first use under a lock; afterwards they are only
read, so a loaded model serves many threads at once.

It holds nothing that ``Recommender.update`` changes, so it needs no invalidation when a
member is folded in: what changes (member ids, histories, folded-in completions) is read
from the request's snapshot of the model and combined here (:meth:`member_index_of` checks
against the request's id map, :meth:`ServingState.completed_rows` takes its history).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.checks import minutes_in_seconds
from recommend.data.dataset import COURSE_IDX, MEMBER_IDX
from recommend.engine.fragments import SessionProfile, session_profile
from recommend.engine.lecturers import Lecturers
from recommend.engine.rows import Rows, completion_rows, gather_rows
from recommend.engine.series import SeriesTable, series_table
from recommend.errors import ConfigError
from recommend.schema import CHANNELS, EVENT_PROGRESS, Columns

if TYPE_CHECKING:
    from recommend.data.dataset import Dataset
    from recommend.data.idmap import IdMap
    from recommend.engine.options import MenuOptions
    from recommend.models.base import History, Recommender

__all__ = ["CompulsoryTable", "CourseFilter", "ServingState", "serving_state"]

C = Columns
T = TypeVar("T")

# Distinct filter combinations kept per model; a backend uses a handful.
_FILTER_CACHE = 64
_EMPTY_I64 = np.empty(0, dtype=np.int64)


def serving_state(model: Recommender) -> ServingState:
    """The model's serving lookups (built once per fitted model, shared, read-only)."""
    return model.cached("serving_state", lambda: ServingState(model))


@dataclass(frozen=True)
class CourseFilter:
    """Courses a menu may contain: sorted ``allow`` indices, the ``blocked`` rest, and a
    boolean ``mask`` over all courses; all ``None`` when every course passes."""

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


@dataclass(frozen=True)
class CompulsoryTable:
    """Branch -> compulsory courses as CSR arrays over branch codes.

    ``indices[indptr[b]:indptr[b + 1]]`` are the sorted course indices compulsory for
    branch code ``b`` (branches in ``names`` order); ``member_code`` (n_training_members,)
    int64 is each training member's branch code, -1 when the member's branch has no
    compulsory course (or is unknown).
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.int64]
    member_code: NDArray[np.int64]
    names: tuple[str, ...] = ()

    def codes(self, idx: NDArray[np.int64]) -> NDArray[np.int64]:
        """Branch codes of members ``idx`` (model indices; -1 for unknown members)."""
        out = np.full(idx.size, -1, dtype=np.int64)
        inside = (idx >= 0) & (idx < self.member_code.size)
        out[inside] = self.member_code[idx[inside]]
        return out

    @cached_property
    def _code(self) -> dict[str, int]:
        return {name: code for code, name in enumerate(self.names)}

    def code_of(self, org: str) -> int:
        """Branch code of an org id (-1: no compulsory course)."""
        return self._code.get(org, -1)

    def rows(self, codes: NDArray[np.int64]) -> Rows:
        """The compulsory courses of branch codes ``codes`` (-1: none), as rows."""
        return gather_rows(self.indptr, self.indices, self.indices, codes, self.indptr.size - 1)


class ServingState:
    """Read-only lookups for one fitted model; lazy parts are built once under a lock.

    Attributes
    ----------
    dataset : Dataset or None
        The model's training data (a loaded artifact keeps what serving needs).
    n_courses : int
    course_ext : ndarray
        External course ids by course index.
    titles : ndarray of object
        Course titles (the course id where no title is known).
    channel_codes : ndarray of int32
        Channel code per course, -1 unknown; ``channel_names[code]`` is its name.
    durations : ndarray of float64 or None
        ``duration_seconds`` per course (NaN unknown).
    published, published_sorted : ndarray of int64 or None
        Publication times (ns; unknown as the smallest int64), and the same sorted.
    now : Timestamp or None
        The data time (latest training event).
    """

    def __init__(self, model: Recommender) -> None:
        dataset: Dataset | None = getattr(model, "dataset_", None)
        base = model.history_.base
        self.dataset = dataset
        self.base = base
        # The one home of the rule: the model builds (and caches) its training completions.
        self._training_completions = model.training_completions
        self.n_courses = int(base.shape[1])
        self.course_ext: np.ndarray = model.course_ids_.external_ids
        # A hashed index of the member ids known now. ``IdMap.add`` only appends, so its
        # positions stay valid after fold-in; ids added later go through the live map.
        self.member_index = pd.Index(model.member_ids_.external_ids)
        # Build its hash table now, once, rather than racing to build it in the first
        # concurrent lookups.
        _ = self.member_index.is_unique
        # Re-entrant: a lazy part may be built from another (the table from branch orgs).
        self._lock = threading.RLock()
        self._lazy: dict[str, Any] = {}
        self._filters: dict[tuple[Any, ...], CourseFilter] = {}
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
        # Checked against the live map: members folded in keep their positions.
        ids = id_map.external_ids
        if isinstance(loc, int | np.integer) and loc < len(ids) and ids[loc] == value:
            return int(loc)
        # Not known at state creation (folded in since, or of another id type).
        return int(id_map.to_index([value], unknown="mask")[0])

    # ------------------------------------------------------------------ lazy parts
    def lazy(self, name: str, build: Callable[[], T]) -> T:
        """``build()`` once per state under its lock; the same object afterwards."""
        try:
            return cast("T", self._lazy[name])
        except KeyError:
            pass
        with self._lock:
            if name not in self._lazy:
                self._lazy[name] = build()
            return cast("T", self._lazy[name])

    def completed(self) -> sp.csr_matrix:
        """(n_training_members, n_courses) CSR: 1 where the training data has a
        ``complete`` event."""
        return self._training_completions()

    def completed_rows(self, history: History, idx: NDArray[np.int64]) -> Rows:
        """The courses members ``idx`` have completed (the rule every product reads):
        their ``complete`` events in the training data or, for a member folded in with
        ``update`` since, in the events of their update (``history.completed``).

        Parameters
        ----------
        history
            The member histories of the request's snapshot (``model.history_``).
        idx : ndarray of int64, shape (m,)
            Model member indices (-1: unknown, nothing completed).
        """
        return completion_rows(history, self.completed(), idx)

    def started_rows(self, idx: NDArray[np.int64]) -> Rows:
        """The courses members ``idx`` started in the training data (a ``progress``
        event), completed or not; values are the time of the last progress (seconds since
        the epoch). Members outside the training data (-1, or first seen through
        ``update``) have none."""
        indptr, indices, when = self.lazy("started", self._build_started)
        return gather_rows(indptr, indices, when, np.asarray(idx, np.int64), indptr.size - 1)

    def _build_started(self) -> tuple[NDArray[np.int64], NDArray[np.int32], NDArray[np.float64]]:
        n_members = self.base.shape[0]
        ds = self.dataset
        empty = (np.zeros(n_members + 1, np.int64), np.empty(0, np.int32), np.empty(0))
        if ds is None:
            return empty
        ev = ds.events
        hit = (ev[C.EVENT] == EVENT_PROGRESS).to_numpy()
        if not hit.any():
            return empty
        rows = ev[MEMBER_IDX].to_numpy()[hit].astype(np.int64)
        cols = ev[COURSE_IDX].to_numpy()[hit].astype(np.int64)
        when = ev[C.TIMESTAMP].to_numpy(dtype="datetime64[ns]")[hit].view(np.int64) / 1e9
        # The last progress of each pair.
        order = np.lexsort((when, cols, rows))
        rows, cols, when = rows[order], cols[order], when[order]
        last = np.ones(rows.size, dtype=bool)
        last[:-1] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        rows, cols, when = rows[last], cols[last], when[last]
        indptr = np.zeros(n_members + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n_members), out=indptr[1:])
        return indptr, cols.astype(np.int32), when.astype(np.float64)

    def session_profile(self) -> SessionProfile:
        """Members' usual session lengths (see :mod:`recommend.engine.fragments`)."""
        return self.lazy(
            "session_profile",
            lambda: session_profile(
                None if self.dataset is None else self.dataset.events, self.base.shape[0]
            ),
        )

    def series(self) -> SeriesTable:
        """Courses in series (see :mod:`recommend.engine.series`)."""
        return self.lazy("series", lambda: series_table(self.courses, self.titles))

    def branch_pins(self) -> dict[str, NDArray[np.int64]]:
        """Branch org id (as str) -> sorted indices of the courses compulsory for it."""
        return self.lazy("branch_pins", self._build_branch_pins)

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
        return self.lazy("compulsory_table", self._build_compulsory_table)

    def _build_compulsory_table(self) -> CompulsoryTable:
        branch = self.branch_pins()
        names = sorted(branch)
        indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum([branch[k].size for k in names], out=indptr[1:])
        indices = np.concatenate([branch[k] for k in names]) if names else _EMPTY_I64
        code = {k: i for i, k in enumerate(names)}
        orgs = self.member_orgs()
        member_code = np.array([code.get(o, -1) for o in orgs.tolist()], dtype=np.int64)
        return CompulsoryTable(indptr, indices.astype(np.int64), member_code, tuple(names))

    def member_orgs(self) -> np.ndarray:
        """Training members' branch org id as str (``None`` where unknown), by index."""
        return self.lazy("member_orgs", self._build_member_orgs)

    def _build_member_orgs(self) -> np.ndarray:
        ds = self.dataset
        if ds is None or ds.members is None or C.ORG not in ds.members.columns:
            return np.empty(0, dtype=object)
        raw = ds.members[C.ORG]
        out = np.full(len(raw), None, dtype=object)
        known = raw.notna().to_numpy()
        out[known] = [str(v) for v in raw.to_numpy(dtype=object)[known]]
        return out

    def lecturers(self) -> Lecturers | None:
        """Courses grouped by lecturer (``None``: the courses table names no lecturer)."""
        return self.lazy("lecturers", self._build_lecturers)

    def _build_lecturers(self) -> Lecturers | None:
        courses = self.courses
        if courses is None or C.LECTURER not in courses.columns:
            return None
        return Lecturers.make(courses[C.LECTURER])

    # ------------------------------------------------------------------ filters
    def course_filter(self, options: MenuOptions) -> CourseFilter:
        """The courses a request with these options may list (checks the options that
        depend on the catalogue: known channels, durations for ``max_minutes``)."""
        if options.auto_minutes and self.durations is None:
            raise ConfigError(
                'max_minutes="auto" needs course durations: the training courses table has no '
                f"{C.DURATION} column"
            )
        return self.filter(options.channel, options.fixed_minutes, options.published_by)

    def filter(
        self,
        channel: str | Sequence[str] | None,
        max_minutes: float | None,
        now: pd.Timestamp | str | Literal[False] | None,
    ) -> CourseFilter:
        """The course whitelist for these options (``now=False``: published or not)."""
        channels = self.channel_key(channel)
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

    def channel_key(self, channel: str | Sequence[str] | None) -> tuple[int, ...] | None:
        """Sorted channel codes of channel names (``None``: any channel).

        Raises ``ConfigError`` for a name that is neither in this catalogue nor one of the
        platform's channels (``recommend.CHANNELS``)."""
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
    ) -> CourseFilter:
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
            return CourseFilter()
        allow = np.flatnonzero(keep).astype(np.int64)
        blocked = np.flatnonzero(~keep).astype(np.int64)
        for array in (keep, allow, blocked):
            array.setflags(write=False)
        return CourseFilter(allow, blocked, keep)


def _as_naive_utc(value: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts
