"""Tests of recommend.data.splits: leakage, time order, completeness, errors."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend.data.splits import (
    ColdCourseSplit,
    LeaveLastOut,
    RandomHoldout,
    Split,
    TimeSplit,
)
from recommend.errors import ConfigError, DataError
from recommend.schema import Columns

C = Columns
DAY0 = pd.Timestamp("2024-03-01")
PROPERTY = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def make_events(rows: list[tuple[object, object, int]], **extra: list[object]) -> pd.DataFrame:
    """Events frame from (member, course, day) rows; day is an offset from DAY0."""
    members, courses, days = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            C.MEMBER: list(members),
            C.COURSE: list(courses),
            C.EVENT: "view",
            C.TIMESTAMP: DAY0 + pd.to_timedelta(list(days), unit="D"),
            **extra,
        }
    )


def pairs(frame: pd.DataFrame) -> set[tuple[object, object]]:
    return set(zip(frame[C.MEMBER], frame[C.COURSE], strict=True))


def positions(events: pd.DataFrame, part: pd.DataFrame) -> np.ndarray:
    return events.index.get_indexer(part.index)


def dropped_positions(events: pd.DataFrame, split: Split) -> set[int]:
    kept = set(positions(events, split.train)) | set(positions(events, split.test))
    return set(range(len(events))) - kept


def assert_partition(events: pd.DataFrame, split: Split) -> None:
    """Train and test are disjoint, ordered row subsets of events; the rest is counted."""
    info = split.info
    for part in (split.train, split.test):
        assert list(part.columns) == list(events.columns)
        pos = positions(events, part)
        assert (pos >= 0).all()
        assert (np.diff(pos) > 0).all(), "input row order must be kept"
        pd.testing.assert_frame_equal(part, events.iloc[pos])
        assert len(part) > 0
    assert not set(positions(events, split.train)) & set(positions(events, split.test))
    assert len(split.train) + len(split.test) + info["dropped_events"] == len(events)
    assert info["events"] == len(events)
    assert info["train_events"] == len(split.train)
    assert info["test_events"] == len(split.test)
    assert info["train_members"] == split.train[C.MEMBER].nunique()
    assert info["test_members"] == split.test[C.MEMBER].nunique()
    assert info["train_courses"] == split.train[C.COURSE].nunique()
    assert info["test_courses"] == split.test[C.COURSE].nunique()
    unseen = set(split.test[C.MEMBER]) - set(split.train[C.MEMBER])
    assert info["test_members_not_in_train"] == len(unseen)
    for value in info.values():  # aggregates only, never id lists
        assert isinstance(value, int | float | str | pd.Timestamp)


@st.composite
def event_frames(draw: st.DrawFn, max_rows: int = 40) -> pd.DataFrame:
    """Random events: few members/courses/days so that pairs repeat and times tie."""
    n = draw(st.integers(1, max_rows))
    ints = st.lists(st.integers(0, 6), min_size=n, max_size=n)
    members, courses = draw(ints), draw(ints)
    days = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    if draw(st.booleans()):
        members = [f"m{m}" for m in members]
        courses = [f"c{c}" for c in courses]
    frame = make_events(
        list(zip(members, courses, days, strict=True)),
        **{C.WATCH_SECONDS: [float(d) * 10 for d in days]},
    )
    # shuffled, non-default labels: the splits must keep labels and positional order
    frame.index = pd.Index(draw(st.permutations(range(n)))) * 3 + 100
    return frame


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def hand_events() -> pd.DataFrame:
    """Hand-worked example.

    member a: c1 first on day 1 (again on day 5), c2 on day 2, c3 and c4 both on day 3
    member b: c2 on day 1, c1 on day 4
    member c: c3 on day 2
    """
    return make_events(
        [
            ("a", "c1", 1),
            ("b", "c1", 4),
            ("a", "c3", 3),
            ("a", "c2", 2),
            ("c", "c3", 2),
            ("a", "c4", 3),
            ("a", "c1", 5),
            ("b", "c2", 1),
            ("a", "c4", 6),
        ]
    )


@pytest.fixture
def many_events() -> pd.DataFrame:
    """40 members x up to 30 courses, deterministic pseudo-random."""
    rng = np.random.default_rng(42)
    n = 3000
    return make_events(
        list(
            zip(
                [f"m{x}" for x in rng.integers(0, 40, n)],
                [f"c{x:02d}" for x in rng.integers(0, 30, n)],
                rng.integers(0, 60, n).tolist(),
                strict=True,
            )
        )
    )


@pytest.fixture
def courses_frame(many_events: pd.DataFrame) -> pd.DataFrame:
    ids = sorted(set(many_events[C.COURSE]))
    return pd.DataFrame(
        {
            C.COURSE: ids,
            C.SOURCE: ["ugc" if i % 3 == 0 else "official" for i in range(len(ids))],
            C.PUBLISHED_AT: [DAY0 + pd.Timedelta(days=2 * i) for i in range(len(ids))],
        }
    )


SPLITTERS = [
    TimeSplit(test_fraction=0.3),
    TimeSplit(at=DAY0 + pd.Timedelta(days=40), drop_repeats=False, drop_cold_members=True),
    LeaveLastOut(n=2),
    RandomHoldout(test_fraction=0.3, seed=3),
    ColdCourseSplit(test_fraction=0.2, seed=1),
    ColdCourseSplit(source="ugc"),
    ColdCourseSplit(after=DAY0 + pd.Timedelta(days=40)),
]


# ---------------------------------------------------------------- all splitters


@pytest.mark.parametrize("splitter", SPLITTERS, ids=repr)
def test_split_is_a_complete_partition(splitter, many_events, courses_frame):
    split = splitter.split(many_events, courses_frame)
    assert_partition(many_events, split)
    assert split.info["splitter"] == type(splitter).__name__


@pytest.mark.parametrize("splitter", SPLITTERS, ids=repr)
def test_input_frames_not_mutated(splitter, many_events, courses_frame):
    events_before = many_events.copy(deep=True)
    courses_before = courses_frame.copy(deep=True)
    split = splitter.split(many_events, courses_frame)
    pd.testing.assert_frame_equal(many_events, events_before)
    pd.testing.assert_frame_equal(courses_frame, courses_before)
    # the parts are independent of the input
    split.train.loc[split.train.index[0], C.EVENT] = "changed"
    split.test.loc[split.test.index[0], C.EVENT] = "changed"
    pd.testing.assert_frame_equal(many_events, events_before)


@pytest.mark.parametrize("splitter", SPLITTERS, ids=repr)
def test_same_parameters_same_split(splitter, many_events, courses_frame):
    first = splitter.split(many_events, courses_frame)
    second = splitter.split(many_events, courses_frame)
    pd.testing.assert_frame_equal(first.train, second.train)
    pd.testing.assert_frame_equal(first.test, second.test)
    assert first.info == second.info


def test_get_params_and_repr():
    assert LeaveLastOut(n=3, min_train=2).get_params() == {"n": 3, "min_train": 2}
    params = TimeSplit(at="2024-01-02").get_params()
    assert params["at"] == pd.Timestamp("2024-01-02")  # normalised to a Timestamp
    split = LeaveLastOut().split(make_events([("a", "x", 1), ("a", "y", 2)]))
    assert "train=<1 events>" in repr(split) and "test=<1 events>" in repr(split)


# ---------------------------------------------------------------- TimeSplit


def test_time_split_hand_worked(hand_events):
    split = TimeSplit(at=DAY0 + pd.Timedelta(days=3)).split(hand_events)
    assert_partition(hand_events, split)
    # before day 3: (a,c1) (a,c2) (c,c3) (b,c2); at/after: (b,c1) (a,c3) (a,c4) x2 (a,c1)
    # (a,c1) on day 5 repeats a train pair: dropped and counted
    assert pairs(split.train) == {("a", "c1"), ("a", "c2"), ("c", "c3"), ("b", "c2")}
    assert pairs(split.test) == {("b", "c1"), ("a", "c3"), ("a", "c4")}
    assert split.info["threshold"] == DAY0 + pd.Timedelta(days=3)
    assert split.info["repeat_events"] == 1
    assert split.info["dropped_repeat_events"] == 1
    assert split.info["dropped_repeat_pairs"] == 1
    assert split.info["dropped_events"] == 1


def test_time_split_keeps_repeats_when_asked(hand_events):
    split = TimeSplit(at=DAY0 + pd.Timedelta(days=3), drop_repeats=False).split(hand_events)
    assert_partition(hand_events, split)
    assert ("a", "c1") in pairs(split.test) & pairs(split.train)
    assert split.info["repeat_events"] == 1
    assert split.info["dropped_events"] == 0


def test_time_split_drops_cold_members():
    events = make_events([("a", "x", 1), ("a", "y", 5), ("b", "x", 6), ("b", "z", 7)])
    split = TimeSplit(at=DAY0 + pd.Timedelta(days=4), drop_cold_members=True).split(events)
    assert set(split.test[C.MEMBER]) == {"a"}
    assert split.info["dropped_cold_members"] == 1
    assert split.info["dropped_cold_member_events"] == 2
    kept = TimeSplit(at=DAY0 + pd.Timedelta(days=4)).split(events)
    assert set(kept.test[C.MEMBER]) == {"a", "b"}
    assert kept.info["test_members_not_in_train"] == 1


def test_time_split_fraction_picks_event_time():
    events = make_events([("a", f"c{i}", i) for i in range(10)])
    split = TimeSplit(test_fraction=0.3).split(events)
    assert split.info["threshold"] == DAY0 + pd.Timedelta(days=7)
    assert split.test[C.TIMESTAMP].min() == split.info["threshold"]
    assert len(split.test) == 3


def test_time_split_threshold_between_whole_seconds():
    # timestamps stored with second resolution; T carries a fraction of a second
    events = make_events([("a", "x", 0), ("a", "y", 1)])
    events[C.TIMESTAMP] = pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:01"]).as_unit(
        "s"
    )
    split = TimeSplit(at="2024-01-01 00:00:00.5").split(events)
    assert list(split.train[C.COURSE]) == ["x"]
    assert list(split.test[C.COURSE]) == ["y"]


@PROPERTY
@given(
    events=event_frames(),
    day=st.integers(-1, 11),
    drop_repeats=st.booleans(),
    drop_cold=st.booleans(),
)
def test_time_split_properties(events, day, drop_repeats, drop_cold):
    cut = DAY0 + pd.Timedelta(days=day)
    splitter = TimeSplit(at=cut, drop_repeats=drop_repeats, drop_cold_members=drop_cold)
    # oracle, row by row
    before = events[events[C.TIMESTAMP] < cut]
    seen_pairs, seen_members = pairs(before), set(before[C.MEMBER])
    expect_test, expect_dropped = set(), set()
    for pos, (m, c, t) in enumerate(
        zip(events[C.MEMBER], events[C.COURSE], events[C.TIMESTAMP], strict=True)
    ):
        if t < cut:
            continue
        repeat = (m, c) in seen_pairs
        cold = m not in seen_members
        if (drop_repeats and repeat) or (drop_cold and cold):
            expect_dropped.add(pos)
        else:
            expect_test.add(pos)
    if before.empty or not expect_test:
        with pytest.raises(DataError, match="empty"):
            splitter.split(events)
        return
    split = splitter.split(events)
    assert_partition(events, split)
    assert split.train[C.TIMESTAMP].max() < cut <= split.test[C.TIMESTAMP].min()
    assert set(positions(events, split.test)) == expect_test
    assert dropped_positions(events, split) == expect_dropped
    if drop_repeats:
        assert not pairs(split.train) & pairs(split.test)
    if drop_cold:
        assert set(split.test[C.MEMBER]) <= set(split.train[C.MEMBER])


@PROPERTY
@given(events=event_frames(), fraction=st.floats(0.01, 0.99), drop_repeats=st.booleans())
def test_time_split_fraction_properties(events, fraction, drop_repeats):
    splitter = TimeSplit(test_fraction=fraction, drop_repeats=drop_repeats)
    times = events[C.TIMESTAMP]
    if times.nunique() < 2:
        with pytest.raises(DataError, match="one timestamp"):
            splitter.split(events)
        return
    try:
        split = splitter.split(events)
    except DataError as exc:
        # only acceptable when every event after T repeats a train pair
        assert drop_repeats and "dropped" in str(exc)
        return
    assert_partition(events, split)
    cut = split.info["threshold"]
    assert split.train[C.TIMESTAMP].max() < cut <= split.test[C.TIMESTAMP].min()
    # T is an event time whose share of events at/after it is closest to the fraction
    n, want = len(events), len(events) * fraction
    counts = [int((times >= t).sum()) for t in times.unique()]
    best = min(abs(c - want) for c in counts if 0 < c < n)
    achieved = split.info["test_events"] + split.info["dropped_events"]
    assert achieved == int((times >= cut).sum())
    assert math.isclose(abs(achieved - want), best)
    if drop_repeats:
        assert not pairs(split.train) & pairs(split.test)


# ---------------------------------------------------------------- LeaveLastOut


@pytest.mark.parametrize(
    ("n", "min_train", "expected_test", "train_only"),
    [
        # a: c3/c4 tie on day 3, larger id is the later; c1's day-5 event does not count
        (1, 1, {("a", "c4"), ("b", "c1")}, 1),
        (2, 1, {("a", "c3"), ("a", "c4")}, 2),
        (1, 0, {("a", "c4"), ("b", "c1"), ("c", "c3")}, 0),
        (3, 1, {("a", "c2"), ("a", "c3"), ("a", "c4")}, 2),
        (1, 3, {("a", "c4")}, 2),
    ],
)
def test_leave_last_out_hand_worked(hand_events, n, min_train, expected_test, train_only):
    split = LeaveLastOut(n=n, min_train=min_train).split(hand_events)
    assert_partition(hand_events, split)
    assert pairs(split.test) == expected_test
    assert split.info["train_only_members"] == train_only
    assert split.info["test_pairs"] == len(expected_test)
    # all events of a test pair go along, including (a, c4) on day 6
    assert (
        len(split.test)
        == (hand_events[C.COURSE] + hand_events[C.MEMBER])
        .isin([c + m for m, c in expected_test])
        .sum()
    )


def naive_leave_last(events: pd.DataFrame, n: int, min_train: int) -> set[tuple]:
    first: dict[tuple, pd.Timestamp] = {}
    for m, c, t in zip(events[C.MEMBER], events[C.COURSE], events[C.TIMESTAMP], strict=True):
        first[m, c] = min(first.get((m, c), t), t)
    by_member = defaultdict(list)
    for (m, c), t in first.items():
        by_member[m].append((t, c))
    test = set()
    for m, items in by_member.items():
        if len(items) >= n + min_train:
            test |= {(m, c) for _, c in sorted(items)[-n:]}
    return test


@PROPERTY
@given(events=event_frames(), n=st.integers(1, 3), min_train=st.integers(0, 2))
def test_leave_last_out_matches_naive(events, n, min_train):
    expected = naive_leave_last(events, n, min_train)
    everything = pairs(events)
    splitter = LeaveLastOut(n=n, min_train=min_train)
    if not expected or expected == everything:
        with pytest.raises(DataError, match="empty"):
            splitter.split(events)
        return
    split = splitter.split(events)
    assert_partition(events, split)
    assert pairs(split.test) == expected
    assert not pairs(split.train) & pairs(split.test)
    assert split.info["dropped_events"] == 0


def test_leave_last_out_mixed_id_types():
    events = make_events([(1, 7, 1), (1, "x", 2), ("b", 7, 1), ("b", "y", 1)])
    events[C.MEMBER] = events[C.MEMBER].astype(object)
    events[C.COURSE] = events[C.COURSE].astype(object)
    split = LeaveLastOut().split(events)
    assert_partition(events, split)
    assert pairs(split.test) == {(1, "x"), ("b", "y")}  # tie on day 1: "y" sorts after "7"


# ---------------------------------------------------------------- RandomHoldout


def test_random_holdout_is_seeded(many_events):
    a = RandomHoldout(seed=5).split(many_events)
    b = RandomHoldout(seed=5).split(many_events)
    c = RandomHoldout(seed=6).split(many_events)
    assert pairs(a.test) == pairs(b.test)
    assert pairs(a.test) != pairs(c.test)
    assert len(pairs(a.test)) == len(pairs(c.test))  # same per-member counts, other courses


def test_random_holdout_ignores_row_order(many_events):
    shuffled = many_events.sample(frac=1.0, random_state=0)
    assert pairs(RandomHoldout(seed=2).split(shuffled).test) == pairs(
        RandomHoldout(seed=2).split(many_events).test
    )


@PROPERTY
@given(
    events=event_frames(),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**32),
    min_train=st.integers(0, 2),
)
def test_random_holdout_properties(events, fraction, seed, min_train):
    courses_of = events.groupby(C.MEMBER)[C.COURSE].nunique()
    expected_k = {}
    for member, count in courses_of.items():
        if count >= 1 + min_train:
            expected_k[member] = min(max(1, math.floor(count * fraction + 0.5)), count - min_train)
    splitter = RandomHoldout(test_fraction=fraction, seed=seed, min_train=min_train)
    if sum(expected_k.values()) in (0, len(pairs(events))):
        with pytest.raises(DataError, match="empty"):
            splitter.split(events)
        return
    split = splitter.split(events)
    assert_partition(events, split)
    assert not pairs(split.train) & pairs(split.test)
    held = split.test.groupby(C.MEMBER)[C.COURSE].nunique().to_dict()
    assert held == {m: k for m, k in expected_k.items() if k > 0}
    assert split.info["train_only_members"] == len(courses_of) - len(expected_k)
    repeat = splitter.split(events.iloc[::-1])
    assert pairs(repeat.test) == pairs(split.test)


# ---------------------------------------------------------------- ColdCourseSplit


def test_cold_course_random(many_events):
    split = ColdCourseSplit(test_fraction=0.2, seed=4).split(many_events)
    assert_partition(many_events, split)
    held = set(split.held_out_courses)
    assert len(held) == 6 == split.info["held_out_courses"]  # 20% of 30 courses
    assert set(split.test[C.COURSE]) == held
    assert not held & set(split.train[C.COURSE])
    assert len(split.test) == many_events[C.COURSE].isin(held).sum()
    other = ColdCourseSplit(test_fraction=0.2, seed=5).split(many_events)
    assert set(other.held_out_courses) != held


def test_cold_course_ugc_only(many_events, courses_frame):
    ugc = set(courses_frame.loc[courses_frame[C.SOURCE] == "ugc", C.COURSE])
    for seed in range(5):
        split = ColdCourseSplit(test_fraction=0.5, seed=seed, source="ugc").split(
            many_events, courses_frame
        )
        assert_partition(many_events, split)
        assert set(split.test[C.COURSE]) <= ugc
        assert not set(split.test[C.COURSE]) & set(split.train[C.COURSE])
        assert split.info["candidate_courses"] == len(ugc) == 10
        assert split.info["held_out_courses"] == 5


def test_cold_course_published_after(many_events, courses_frame):
    after = DAY0 + pd.Timedelta(days=40)
    split = ColdCourseSplit(after=after).split(many_events, courses_frame)
    new = set(courses_frame.loc[courses_frame[C.PUBLISHED_AT] >= after, C.COURSE])
    assert set(split.held_out_courses) == new == set(split.test[C.COURSE])
    assert not new & set(split.train[C.COURSE])
    both = ColdCourseSplit(after=after, source="ugc").split(many_events, courses_frame)
    ugc = set(courses_frame.loc[courses_frame[C.SOURCE] == "ugc", C.COURSE])
    assert set(both.held_out_courses) == new & ugc


def test_cold_course_counts_courses_missing_from_catalogue(many_events, courses_frame):
    partial = courses_frame[courses_frame[C.COURSE] != "c00"]  # c00 is ugc
    split = ColdCourseSplit(test_fraction=0.99, source="ugc").split(many_events, partial)
    assert split.info["courses_without_metadata"] == 1
    assert "c00" not in set(split.test[C.COURSE])
    assert split.info["held_out_courses"] == 9


@PROPERTY
@given(events=event_frames(), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 1000))
def test_cold_course_properties(events, fraction, seed):
    n_courses = events[C.COURSE].nunique()
    k = max(1, math.floor(n_courses * fraction + 0.5))
    splitter = ColdCourseSplit(test_fraction=fraction, seed=seed)
    if k >= n_courses:
        with pytest.raises(DataError, match="train set would be empty"):
            splitter.split(events)
        return
    split = splitter.split(events)
    assert_partition(events, split)
    held = set(split.held_out_courses)
    assert len(held) == k
    assert set(split.test[C.COURSE]) == held
    assert not held & set(split.train[C.COURSE])


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TimeSplit(), "exactly one of at= .* and test_fraction="),
        (lambda: TimeSplit(at="2024-01-01", test_fraction=0.2), "exactly one"),
        (lambda: TimeSplit(test_fraction=0), r"test_fraction .*got 0\b"),
        (lambda: TimeSplit(test_fraction=1.0), r"test_fraction .*got 1\.0"),
        (lambda: TimeSplit(test_fraction=-0.1), r"test_fraction .*got -0\.1"),
        (lambda: TimeSplit(test_fraction=float("nan")), "test_fraction .*got nan"),
        (lambda: TimeSplit(test_fraction=True), "test_fraction .*got True"),
        (lambda: TimeSplit(test_fraction="0.2"), "test_fraction .*got '0.2'"),
        (lambda: TimeSplit(at="not a date"), "at='not a date' is not a timestamp"),
        (lambda: TimeSplit(at=pd.Timestamp("2024-01-01", tz="UTC")), "at=.*time zone"),
        (lambda: TimeSplit(test_fraction=0.2, drop_repeats="yes"), "drop_repeats .*'yes'"),
        (lambda: TimeSplit(test_fraction=0.2, drop_cold_members=1), "drop_cold_members"),
        (lambda: LeaveLastOut(n=0), r"\bn must be an integer >= 1, got 0"),
        (lambda: LeaveLastOut(n=1.5), r"\bn must be .*1\.5"),
        (lambda: LeaveLastOut(n=True), r"\bn must be .*True"),
        (lambda: LeaveLastOut(min_train=-1), "min_train must be .*-1"),
        (lambda: RandomHoldout(test_fraction=1.5), r"test_fraction .*1\.5"),
        (lambda: RandomHoldout(seed=-1), "seed must be .*-1"),
        (lambda: RandomHoldout(seed=0.5), r"seed must be .*0\.5"),
        (lambda: RandomHoldout(min_train=-2), "min_train .*-2"),
        (lambda: ColdCourseSplit(test_fraction=0.0), "test_fraction .*0.0"),
        (lambda: ColdCourseSplit(seed=-3), "seed .*-3"),
        (lambda: ColdCourseSplit(source=""), "source must be a non-empty string"),
        (lambda: ColdCourseSplit(source=3), "source .*got 3"),
        (lambda: ColdCourseSplit(after="soon"), "after='soon' is not a timestamp"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


@pytest.mark.parametrize(
    "splitter", [ColdCourseSplit(source="ugc"), ColdCourseSplit(after="2024-01-01")], ids=repr
)
def test_cold_course_criteria_need_courses(splitter, hand_events):
    with pytest.raises(ConfigError, match="needs the courses frame"):
        splitter.split(hand_events)


@pytest.mark.parametrize(
    ("splitter", "column"),
    [
        (TimeSplit(test_fraction=0.5), C.MEMBER),
        (TimeSplit(test_fraction=0.5), C.TIMESTAMP),
        (LeaveLastOut(), C.COURSE),
        (LeaveLastOut(), C.TIMESTAMP),
        (RandomHoldout(), C.MEMBER),
        (ColdCourseSplit(), C.COURSE),
    ],
    ids=str,
)
def test_missing_column(splitter, column, hand_events):
    with pytest.raises(DataError, match=f"events.{column}: missing required column"):
        splitter.split(hand_events.drop(columns=column))


def test_time_not_needed_for_pair_splits(hand_events):
    events = hand_events.drop(columns=C.TIMESTAMP)
    assert_partition(events, RandomHoldout(test_fraction=0.5).split(events))
    assert_partition(events, ColdCourseSplit(test_fraction=0.3).split(events))


def test_courses_missing_column(many_events, courses_frame):
    with pytest.raises(DataError, match=r"courses\.source: missing required column"):
        ColdCourseSplit(source="ugc").split(many_events, courses_frame.drop(columns=C.SOURCE))
    with pytest.raises(DataError, match=r"courses\.published_at: missing required column"):
        ColdCourseSplit(after="2024-01-01").split(
            many_events, courses_frame.drop(columns=C.PUBLISHED_AT)
        )


def test_null_ids_refused(hand_events):
    events = hand_events.copy()
    events[C.MEMBER] = events[C.MEMBER].astype(object)
    events.iloc[[2, 5], events.columns.get_loc(C.MEMBER)] = None
    with pytest.raises(DataError, match=r"events\.member_id: null values") as caught:
        RandomHoldout().split(events)
    (problem,) = caught.value.problems
    assert (problem.column, problem.count, problem.rows) == (C.MEMBER, 2, (2, 5))


@pytest.mark.parametrize(
    ("convert", "match"),
    [
        (lambda s: s.astype(str), "events.timestamp: has dtype str"),
        (lambda s: s.dt.tz_localize("Asia/Shanghai"), "has dtype datetime64.*Asia/Shanghai"),
    ],
)
def test_timestamps_must_be_naive_datetimes(hand_events, convert, match):
    events = hand_events.assign(**{C.TIMESTAMP: convert(hand_events[C.TIMESTAMP])})
    with pytest.raises(DataError, match=match):
        TimeSplit(test_fraction=0.5).split(events)


@pytest.mark.parametrize(
    ("splitter", "match"),
    [
        (TimeSplit(at="2030-01-01"), "test set would be empty: no event is at or after"),
        (TimeSplit(at="2020-01-01"), "train set would be empty: no event is before"),
        (LeaveLastOut(n=5), "no member has at least n \\+ min_train = 6"),
        (RandomHoldout(min_train=4), "no member has at least 1 \\+ min_train = 5"),
    ],
    ids=repr,
)
def test_empty_side_is_an_error(splitter, match, hand_events):
    with pytest.raises(DataError, match=match):
        splitter.split(hand_events)


def test_time_split_all_test_events_dropped():
    events = make_events([("a", "x", 1), ("a", "x", 5)])
    with pytest.raises(DataError, match="dropped as repeats"):
        TimeSplit(at=DAY0 + pd.Timedelta(days=3)).split(events)
    split = TimeSplit(at=DAY0 + pd.Timedelta(days=3), drop_repeats=False).split(events)
    assert len(split.test) == 1


def test_empty_events_refused():
    with pytest.raises(DataError, match="empty"):
        LeaveLastOut().split(make_events([("a", "x", 1)]).iloc[:0])


def test_not_a_frame_refused():
    with pytest.raises(DataError, match="must be a pandas DataFrame, got list"):
        RandomHoldout().split([("a", "x")])


def test_cold_course_errors(many_events, courses_frame):
    official_only = courses_frame.assign(**{C.SOURCE: "official"})
    with pytest.raises(DataError, match="no course with events matches source == 'ugc'"):
        ColdCourseSplit(source="ugc").split(many_events, official_only)
    numeric = courses_frame.assign(**{C.COURSE: range(len(courses_frame))})
    with pytest.raises(DataError, match="0 of 30 event courses are in the courses frame"):
        ColdCourseSplit(source="ugc").split(many_events, numeric)
    duplicated = pd.concat([courses_frame, courses_frame.iloc[:1]])
    with pytest.raises(DataError, match=r"courses\.course_id: duplicate course ids"):
        ColdCourseSplit(source="ugc").split(many_events, duplicated)
    with pytest.raises(DataError, match="train set would be empty: all 30 courses"):
        ColdCourseSplit(after=DAY0 - pd.Timedelta(days=1)).split(many_events, courses_frame)
