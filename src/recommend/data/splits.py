"""Train/test splits of learning events for offline evaluation.

Every splitter is a frozen dataclass of hyper-parameters with one method,
``split(events, courses=None) -> Split``:

- :class:`TimeSplit` — global time threshold: train before ``T``, test at or after ``T``.
- :class:`LeaveLastOut` — per member, the ``n`` most recent courses go to test.
- :class:`RandomHoldout` — per member, a seeded random fraction of courses goes to test.
- :class:`ColdCourseSplit` — a set of courses (random, UGC only, or recently published) is
  held out entirely.

Splits work on (member, course) pairs: all events of a pair land on the same side, so a
course a member studied is never both a training signal and a test target. The one
exception is :class:`TimeSplit`, where a pair can straddle ``T``; its test events of pairs
already seen in train are dropped by default and counted. Nothing is dropped silently: the
counts are in ``Split.info``, and ``train_events + test_events + dropped_events`` always
equals the number of input events.

To carve a validation set, apply the same (or another) splitter to ``split.train``.
"""

from __future__ import annotations

import datetime as dt
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

from recommend.errors import SHOWN_ROWS, ConfigError, DataError, Problem
from recommend.schema import Columns

__all__ = [
    "ColdCourseSplit",
    "LeaveLastOut",
    "RandomHoldout",
    "Split",
    "Splitter",
    "TimeSplit",
]

logger = logging.getLogger(__name__)

C = Columns
TimeLike: TypeAlias = pd.Timestamp | dt.datetime | dt.date | np.datetime64 | str
BoolArray: TypeAlias = npt.NDArray[np.bool_]
IntArray: TypeAlias = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Split:
    """Train and test events produced by a splitter, with counts of what happened.

    ``train`` and ``test`` are row subsets of the input events: same columns, same index
    labels, input row order kept. ``info`` holds aggregates only (event, member and course
    counts per side, dropped events, the threshold used...), ready to log as run
    parameters. ``held_out_courses`` holds the ids of the held-out courses for
    :class:`ColdCourseSplit` and is ``None`` otherwise.
    """

    train: pd.DataFrame
    test: pd.DataFrame
    info: dict[str, Any]
    held_out_courses: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"Split(train=<{len(self.train)} events>, test=<{len(self.test)} events>, "
            f"info={self.info!r})"
        )


class Splitter(ABC):
    """Base class of splitters: parameter access and the shared ``split`` procedure."""

    _needs_time: bool = False

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as a flat dict (what experiment tracking logs)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def split(self, events: pd.DataFrame, courses: pd.DataFrame | None = None) -> Split:
        """Split validated ``events`` into train and test.

        Parameters
        ----------
        events
            Events frame with at least ``member_id``, ``course_id`` (and ``timestamp`` for
            time-based splitters, as tz-naive datetime64). Not modified.
        courses
            Courses frame; only :class:`ColdCourseSplit` with ``source`` or ``after`` uses
            it, other splitters ignore it.

        Raises
        ------
        DataError
            A required column is missing or has nulls, or train or test would be empty.
        ConfigError
            The splitter needs ``courses`` and none was given.
        """
        self._check_courses(courses)
        ev = _Events(events, need_time=self._needs_time)
        test, dropped, info = self._assign(ev, courses)
        name = type(self).__name__
        train = ~(test | dropped)
        if not train.any():
            raise DataError(f"{name}: the train set would be empty with {self!r}")
        if not test.any():
            raise DataError(f"{name}: the test set would be empty with {self!r}")
        held = info.pop("_held_out_courses", None)
        summary = {"splitter": name, **_counts(ev, train, test, dropped), **info}
        result = Split(events[train], events[test], summary, held)
        logger.info(
            "%s: %d train / %d test events, %d dropped",
            name,
            summary["train_events"],
            summary["test_events"],
            summary["dropped_events"],
        )
        return result

    def _check_courses(self, courses: pd.DataFrame | None) -> None:
        """Refuse a missing courses frame before any work (overridden where needed)."""
        return None

    @abstractmethod
    def _assign(
        self, ev: _Events, courses: pd.DataFrame | None
    ) -> tuple[BoolArray, BoolArray, dict[str, Any]]:
        """Return (test mask, dropped mask, splitter-specific info), masks of shape (n,)."""


@dataclass(frozen=True)
class TimeSplit(Splitter):
    """Global time split: train is every event before ``T``, test every event at/after it.

    Parameters
    ----------
    at
        The threshold ``T``. Exactly one of ``at`` and ``test_fraction`` is given.
    test_fraction
        Choose ``T`` among event timestamps so that about this fraction of events fall at
        or after it (ties at ``T`` all go to test; the closest achievable fraction wins).
    drop_repeats
        Remove from test the events of (member, course) pairs that already have an event
        in train: re-recommending a course a member has studied is not what is evaluated.
        Counted in ``info["dropped_repeat_events"]``.
    drop_cold_members
        Remove from test the members who have no train event (counted).
    """

    at: TimeLike | None = None
    test_fraction: float | None = None
    drop_repeats: bool = True
    drop_cold_members: bool = False

    _needs_time = True

    def __post_init__(self) -> None:
        if (self.at is None) == (self.test_fraction is None):
            raise ConfigError(
                f"TimeSplit needs exactly one of at= (a timestamp) and test_fraction= "
                f"(a number in (0, 1)); got at={self.at!r}, test_fraction={self.test_fraction!r}"
            )
        if isinstance(self.at, int | float) and not isinstance(self.at, bool) and 0 < self.at < 1:
            raise ConfigError(
                f"TimeSplit({self.at!r}): the first argument is at= (a timestamp, read as "
                f"epoch seconds: 1970-01-01); for the last {self.at:.0%} of events pass "
                f"TimeSplit(test_fraction={self.at!r})"
            )
        if self.at is not None:
            object.__setattr__(self, "at", _timestamp("TimeSplit", "at", self.at))
        if self.test_fraction is not None:
            _check_fraction("TimeSplit", "test_fraction", self.test_fraction)
        _check_bool("TimeSplit", "drop_repeats", self.drop_repeats)
        _check_bool("TimeSplit", "drop_cold_members", self.drop_cold_members)

    def _assign(
        self, ev: _Events, courses: pd.DataFrame | None
    ) -> tuple[BoolArray, BoolArray, dict[str, Any]]:
        if self.at is not None:
            threshold = pd.Timestamp(self.at)
            before = ev.times < threshold.to_datetime64()
        else:
            assert self.test_fraction is not None
            cut = _fraction_threshold(ev.time_ints, self.test_fraction)
            # The cut as a time in the events' own unit (a 0-d array of their dtype).
            threshold = pd.Timestamp(np.array(cut, dtype=ev.times.dtype)[()])
            before = ev.time_ints < cut
        after = ~before
        n_before = int(np.count_nonzero(before))
        if n_before == 0:
            raise DataError(
                f"TimeSplit: the train set would be empty: no event is before {threshold} "
                f"(earliest event {pd.Timestamp(ev.times.min())}); choose a later `at`"
            )
        if n_before == ev.n:
            raise DataError(
                f"TimeSplit: the test set would be empty: no event is at or after {threshold} "
                f"(latest event {pd.Timestamp(ev.times.max())}); choose an earlier `at`"
            )

        pair_seen = np.zeros(ev.n_pairs, dtype=bool)
        pair_seen[ev.pair_codes[before]] = True
        repeat = after & pair_seen[ev.pair_codes]
        member_seen = np.zeros(ev.n_members, dtype=bool)
        member_seen[ev.member_codes[before]] = True
        cold = after & ~member_seen[ev.member_codes]

        dropped = np.zeros(ev.n, dtype=bool)
        if self.drop_repeats:
            dropped |= repeat
        if self.drop_cold_members:
            dropped |= cold
        test = after & ~dropped
        if not test.any():
            raise DataError(
                f"TimeSplit: the test set would be empty: all {int(after.sum())} events at or "
                f"after {threshold} were dropped as repeats of train pairs or cold members; "
                "pass drop_repeats=False or choose an earlier threshold"
            )
        return (
            test,
            dropped,
            {
                "threshold": threshold,
                "repeat_events": int(repeat.sum()),
                "dropped_repeat_events": int(repeat.sum()) if self.drop_repeats else 0,
                "dropped_repeat_pairs": (
                    _n_unique(ev.pair_codes[repeat], ev.n_pairs) if self.drop_repeats else 0
                ),
                "dropped_cold_member_events": int(cold.sum()) if self.drop_cold_members else 0,
                "dropped_cold_members": (
                    _n_unique(ev.member_codes[cold], ev.n_members) if self.drop_cold_members else 0
                ),
            },
        )


@dataclass(frozen=True)
class LeaveLastOut(Splitter):
    """Per member, the ``n`` most recent distinct courses go to test with all their events.

    A pair's time is the timestamp of its first event; among pairs with the same time the
    larger ``course_id`` counts as the more recent. Members with fewer than
    ``n + min_train`` distinct courses stay entirely in train (counted in
    ``info["train_only_members"]``).
    """

    n: int = 1
    min_train: int = 1

    _needs_time = True

    def __post_init__(self) -> None:
        _check_int("LeaveLastOut", "n", self.n, minimum=1)
        _check_int("LeaveLastOut", "min_train", self.min_train, minimum=0)

    def _assign(
        self, ev: _Events, courses: pd.DataFrame | None
    ) -> tuple[BoolArray, BoolArray, dict[str, Any]]:
        first = np.full(ev.n_pairs, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, ev.pair_codes, ev.time_ints)
        # Pairs are in (member, course) order and the sort is stable, so pairs of a member
        # with equal first times stay ordered by course id.
        order = _group_order(ev.pair_members, ev.n_members, first)
        counts = np.bincount(ev.pair_members, minlength=ev.n_members)
        eligible = counts >= self.n + self.min_train
        # The last n in time order: ranks counts - n .. counts - 1.
        return _hold_out_ranks(
            ev,
            order,
            counts,
            eligible,
            counts - self.n,
            counts,
            f"LeaveLastOut: the test set would be empty: no member has at least "
            f"n + min_train = {self.n + self.min_train} distinct courses",
        )


@dataclass(frozen=True)
class RandomHoldout(Splitter):
    """Per member, a seeded random fraction of their distinct courses goes to test.

    A member with ``c`` distinct courses has ``round(c * test_fraction)`` of them held out
    (half rounds up), at least 1 and at most ``c - min_train``; members with fewer than
    ``1 + min_train`` courses stay entirely in train (counted). The draw depends on the seed
    and the events' content only, not on their row order.
    """

    test_fraction: float = 0.2
    seed: int = 0
    min_train: int = 1

    def __post_init__(self) -> None:
        _check_fraction("RandomHoldout", "test_fraction", self.test_fraction)
        _check_int("RandomHoldout", "seed", self.seed, minimum=0)
        _check_int("RandomHoldout", "min_train", self.min_train, minimum=0)

    def _assign(
        self, ev: _Events, courses: pd.DataFrame | None
    ) -> tuple[BoolArray, BoolArray, dict[str, Any]]:
        # 32 random bits per pair order a member's courses; the rare equal draws fall back
        # to course id order, which keeps the result deterministic.
        draw = np.random.default_rng(self.seed).integers(0, 2**32, ev.n_pairs, dtype=np.int64)
        order = _group_order(ev.pair_members, ev.n_members, draw)
        counts = np.bincount(ev.pair_members, minlength=ev.n_members)
        eligible = counts >= 1 + self.min_train
        k = np.floor(counts * float(self.test_fraction) + 0.5).astype(np.int64)
        k = np.where(eligible, np.clip(k, 1, counts - self.min_train), 0)
        # The first k in random order.
        return _hold_out_ranks(
            ev,
            order,
            counts,
            eligible,
            np.zeros_like(k),
            k,
            f"RandomHoldout: the test set would be empty: no member has at least "
            f"1 + min_train = {1 + self.min_train} distinct courses",
        )


@dataclass(frozen=True)
class ColdCourseSplit(Splitter):
    """Hold out a set of courses entirely: all their events go to test, none to train.

    Candidates are the courses that have events, narrowed to ``courses.source == source``
    when ``source`` is given and to ``courses.published_at >= after`` when ``after`` is
    given (both need the ``courses`` frame; courses missing from it are never candidates
    and are counted in ``info["courses_without_metadata"]``). With ``after`` every
    candidate is held out; otherwise a seeded random ``test_fraction`` of the candidates
    (rounded, at least 1).
    """

    test_fraction: float = 0.1
    seed: int = 0
    source: str | None = None
    after: TimeLike | None = None

    def __post_init__(self) -> None:
        _check_fraction("ColdCourseSplit", "test_fraction", self.test_fraction)
        _check_int("ColdCourseSplit", "seed", self.seed, minimum=0)
        if self.source is not None and (not isinstance(self.source, str) or not self.source):
            raise ConfigError(
                f"ColdCourseSplit: source must be a non-empty string such as 'ugc', "
                f"got {self.source!r}"
            )
        if self.after is not None:
            object.__setattr__(self, "after", _timestamp("ColdCourseSplit", "after", self.after))

    def _check_courses(self, courses: pd.DataFrame | None) -> None:
        if courses is not None:
            if not isinstance(courses, pd.DataFrame):
                raise DataError(f"courses must be a pandas DataFrame, got {type(courses).__name__}")
            return
        for name in ("source", "after"):
            value = getattr(self, name)
            if value is not None:
                raise ConfigError(
                    f"ColdCourseSplit: {name}={value!r} needs the courses frame; "
                    "call split(events, courses)"
                )

    def _assign(
        self, ev: _Events, courses: pd.DataFrame | None
    ) -> tuple[BoolArray, BoolArray, dict[str, Any]]:
        candidate = np.ones(ev.n_courses, dtype=bool)
        info: dict[str, Any] = {}
        if self.source is not None or self.after is not None:
            assert courses is not None
            needed = [C.COURSE]
            if self.source is not None:
                needed.append(C.SOURCE)
            if self.after is not None:
                needed.append(C.PUBLISHED_AT)
            _require_columns(courses, "courses", needed, nulls=[C.COURSE])
            catalogue = pd.Index(courses[C.COURSE])
            if not catalogue.is_unique:
                dup = catalogue[catalogue.duplicated()].unique()[:SHOWN_ROWS]
                raise DataError(
                    [
                        Problem(
                            "courses",
                            C.COURSE,
                            "duplicate course ids",
                            expected="one row per course",
                            values=tuple(dup),
                        )
                    ]
                )
            position = catalogue.get_indexer(ev.courses)
            known = position >= 0
            info["courses_without_metadata"] = int(np.count_nonzero(~known))
            candidate &= known
            match = np.ones(len(catalogue), dtype=bool)
            if self.source is not None:
                match &= courses[C.SOURCE].eq(self.source).fillna(False).to_numpy(dtype=bool)
            if self.after is not None:
                published = _times(courses, "courses", C.PUBLISHED_AT)
                # NaT (unknown publication date) compares False: never a candidate
                match &= published >= pd.Timestamp(self.after).to_datetime64()
            candidate &= match[np.where(known, position, 0)]
            if not candidate.any():
                raise DataError(
                    f"ColdCourseSplit: no course with events matches {self._criteria()}; "
                    f"{int(known.sum())} of {ev.n_courses} event courses are in the courses "
                    f"frame (events course_id dtype {ev.course_dtype}, courses course_id dtype "
                    f"{courses[C.COURSE].dtype})"
                )

        pool = np.flatnonzero(candidate)
        if self.after is not None:
            held = candidate
        else:
            k = max(1, int(np.floor(pool.size * float(self.test_fraction) + 0.5)))
            chosen = np.random.default_rng(self.seed).choice(pool, size=k, replace=False)
            held = np.zeros(ev.n_courses, dtype=bool)
            held[chosen] = True
        if held.all():
            raise DataError(
                f"ColdCourseSplit: the train set would be empty: all {ev.n_courses} courses "
                f"would be held out ({self._criteria()})"
            )
        info["candidate_courses"] = int(pool.size)
        info["held_out_courses"] = int(held.sum())
        info["_held_out_courses"] = ev.courses[held].to_numpy()
        return held[ev.course_codes], np.zeros(ev.n, dtype=bool), info

    def _criteria(self) -> str:
        parts = []
        if self.source is not None:
            parts.append(f"source == {self.source!r}")
        if self.after is not None:
            parts.append(f"published_at >= {self.after}")
        return " and ".join(parts) or f"test_fraction={self.test_fraction}"


class _Events:
    """Integer codes of an events frame, computed once and shared by a splitter's steps.

    Member and course codes follow the sorted order of the ids, and pair codes the sorted
    (member, course) order, so that results never depend on the frame's row order.
    """

    def __init__(self, events: pd.DataFrame, need_time: bool) -> None:
        if not isinstance(events, pd.DataFrame):
            raise DataError(f"events must be a pandas DataFrame, got {type(events).__name__}")
        columns = [C.MEMBER, C.COURSE] + ([C.TIMESTAMP] if need_time else [])
        _require_columns(events, "events", columns, nulls=columns)
        if len(events) == 0:
            raise DataError("events: the frame is empty; there is nothing to split")
        self.n = len(events)
        self.member_codes, self.members = _codes(events[C.MEMBER])
        self.course_codes, self.courses = _codes(events[C.COURSE])
        self.course_dtype = events[C.COURSE].dtype
        self.n_members = len(self.members)
        self.n_courses = len(self.courses)
        if need_time:
            self.times = _times(events, "events", C.TIMESTAMP)
            self.time_ints: IntArray = self.times.view(np.int64)

    @cached_property
    def _pairs(self) -> tuple[IntArray, IntArray]:
        key = self.member_codes * np.int64(self.n_courses) + self.course_codes
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.empty(self.n, dtype=bool)
        starts[0] = True
        np.not_equal(sorted_key[1:], sorted_key[:-1], out=starts[1:])
        codes = np.empty(self.n, dtype=np.int64)
        codes[order] = np.cumsum(starts) - 1
        return codes, sorted_key[starts] // self.n_courses

    @property
    def pair_codes(self) -> IntArray:
        """Dense (member, course) pair code of each event, shape (n,)."""
        return self._pairs[0]

    @property
    def pair_members(self) -> IntArray:
        """Member code of each pair, shape (n_pairs,), non-decreasing."""
        return self._pairs[1]

    @property
    def n_pairs(self) -> int:
        return len(self._pairs[1])


def _codes(values: pd.Series) -> tuple[IntArray, pd.Index]:
    """Dense codes of ``values`` in sorted id order, and the ids they stand for."""
    try:
        codes, uniques = pd.factorize(values, sort=True)
    except TypeError:  # ids of mixed types cannot be compared; order them by their text
        codes, uniques = pd.factorize(values)
        order = np.argsort(uniques.astype(str).to_numpy(), kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        codes, uniques = rank[codes], uniques[order]
    return np.asarray(codes, dtype=np.int64), pd.Index(uniques)


def _require_columns(frame: pd.DataFrame, table: str, columns: list[str], nulls: list[str]) -> None:
    problems = [
        Problem(table, col, "missing required column", expected=f"a '{col}' column")
        for col in columns
        if col not in frame.columns
    ]
    if problems:
        raise DataError(problems)
    for col in nulls:
        missing = frame[col].isna().to_numpy()
        if missing.any():
            problems.append(
                Problem.at(
                    table, col, "null values", "no nulls (validate the frame first)", missing
                )
            )
    if problems:
        raise DataError(problems)


def _times(frame: pd.DataFrame, table: str, column: str) -> np.ndarray:
    """The datetime64 values of ``frame[column]``, refusing other dtypes and time zones."""
    series = frame[column]
    if not pd.api.types.is_datetime64_dtype(series.dtype):
        raise DataError(
            [
                Problem(
                    table,
                    column,
                    f"has dtype {series.dtype}",
                    expected="tz-naive datetime64 timestamps (validate the frame first)",
                )
            ]
        )
    return series.to_numpy()


def _group_order(groups: IntArray, n_groups: int, values: IntArray) -> IntArray:
    """Stable order of items by (group, value), shape (n_items,).

    One argsort of a combined int64 key when it fits (after removing the common step of the
    values, e.g. whole seconds stored as microseconds), else a two-key lexsort.
    """
    if values.size == 0:
        return np.arange(0, dtype=np.int64)
    offsets = values - values.min()
    step = np.gcd.reduce(offsets)
    if step > 1:
        offsets = offsets // step
    span = int(offsets.max()) + 1
    if n_groups <= (np.iinfo(np.int64).max - span) // span:
        return np.argsort(groups * np.int64(span) + offsets, kind="stable")
    return np.lexsort((values, groups))


def _hold_out_ranks(
    ev: _Events,
    order: IntArray,
    counts: IntArray,
    eligible: BoolArray,
    low: IntArray,
    high: IntArray,
    empty_message: str,
) -> tuple[BoolArray, BoolArray, dict[str, Any]]:
    """Test = pairs of eligible members whose rank within their member, in ``order`` (pairs
    grouped by member), lies in ``[low[m], high[m])``; all events of a pair follow it."""
    members = ev.pair_members[order]
    rank = np.arange(ev.n_pairs) - (np.cumsum(counts) - counts)[members]
    test_pair = np.empty(ev.n_pairs, dtype=bool)
    test_pair[order] = (rank >= low[members]) & (rank < high[members]) & eligible[members]
    test = test_pair[ev.pair_codes]
    if not test.any():
        raise DataError(empty_message)
    return (
        test,
        np.zeros(ev.n, dtype=bool),
        {
            "test_pairs": int(test_pair.sum()),
            "train_only_members": int(np.count_nonzero((counts > 0) & ~eligible)),
        },
    )


def _fraction_threshold(times: IntArray, fraction: float) -> int:
    """The event time ``T`` that puts the share of events at/after it closest to ``fraction``."""
    n = times.size
    want = n * float(fraction)
    k = min(max(n - round(want), 0), n - 1)
    low = int(np.partition(times, k)[k])
    candidates = [(low, int(np.count_nonzero(times >= low)))]
    higher = times[times > low]
    if higher.size:
        candidates.append((int(higher.min()), int(higher.size)))
    usable = [(t, m) for t, m in candidates if 0 < m < n]
    if not usable:
        raise DataError(
            "TimeSplit: all events share one timestamp, so no threshold separates train from test"
        )
    return min(usable, key=lambda tm: abs(tm[1] - want))[0]


def _counts(ev: _Events, train: BoolArray, test: BoolArray, dropped: BoolArray) -> dict[str, int]:
    members_train = np.bincount(ev.member_codes[train], minlength=ev.n_members) > 0
    members_test = np.bincount(ev.member_codes[test], minlength=ev.n_members) > 0
    return {
        "events": ev.n,
        "train_events": int(train.sum()),
        "test_events": int(test.sum()),
        "dropped_events": int(dropped.sum()),
        "train_members": int(members_train.sum()),
        "test_members": int(members_test.sum()),
        "test_members_not_in_train": int(np.count_nonzero(members_test & ~members_train)),
        "train_courses": _n_unique(ev.course_codes[train], ev.n_courses),
        "test_courses": _n_unique(ev.course_codes[test], ev.n_courses),
    }


def _n_unique(codes: IntArray, size: int) -> int:
    return int(np.count_nonzero(np.bincount(codes, minlength=size)))


def _timestamp(owner: str, name: str, value: object) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{owner}: {name}={value!r} is not a timestamp") from exc
    if stamp is pd.NaT:
        raise ConfigError(f"{owner}: {name}={value!r} is not a timestamp")
    if stamp.tz is not None:
        raise ConfigError(
            f"{owner}: {name}={value!r} has a time zone but event timestamps are tz-naive; "
            "pass a naive timestamp in the events' local time"
        )
    return stamp


def _check_fraction(owner: str, name: str, value: object) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not 0 < value < 1
    ):
        raise ConfigError(f"{owner}: {name} must be a number in (0, 1), got {value!r}")


def _check_int(owner: str, name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{owner}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{owner}: {name} must be True or False, got {value!r}")
