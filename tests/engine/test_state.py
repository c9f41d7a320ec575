"""The per-model serving state (recommend.engine.state): lookups, the compulsory table and
the course filter (channel, max_minutes, publication), on the tiny catalogue of ``helpers``."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from helpers import COURSES, FixedFactors, events_frame, make_tiny_dataset, tiny_courses

from recommend.data.dataset import Dataset
from recommend.engine import CompulsoryTable, CourseFilter, MenuOptions, ServingState, serving_state
from recommend.errors import ConfigError
from recommend.schema import CHANNELS


def _allowed(f: CourseFilter) -> list[str]:
    """The course ids a filter lets through."""
    if f.mask is None:
        return list(COURSES)
    return [COURSES[i] for i in np.flatnonzero(f.mask)]


# ---------------------------------------------------------------------------- lookups


def test_lookups_of_the_catalogue(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    assert state.n_courses == 16
    assert state.course_ext.tolist() == COURSES
    assert state.titles.tolist() == [f"课程{c}" for c in COURSES]
    assert state.channel_names.tolist() == list(CHANNELS[:4])
    np.testing.assert_array_equal(state.channel_codes, np.repeat(np.arange(4), 4))
    assert state.channel_codes.dtype == np.int32
    np.testing.assert_array_equal(state.durations[:3], [60.0, 120.0, 180.0])
    assert np.isnan(state.durations[14])
    assert state.now == pd.Timestamp("2024-03-10")
    assert state.member_orgs().tolist() == ["b1", "b1", "b2", "b2", "b1"]


def test_titles_fall_back_to_the_course_id() -> None:
    titles = [f"课程{c}" for c in COURSES]
    titles[2], titles[5] = "", None
    state = serving_state(
        FixedFactors().fit(make_tiny_dataset(tiny_courses().assign(title=titles)))
    )
    assert state.titles[[1, 2, 5]].tolist() == ["课程c01", "c02", "c05"]


class _Flat(FixedFactors):
    """FixedFactors for a catalogue without channels."""

    def _fit(self, dataset: Dataset) -> None:
        n_m, n_c = dataset.n_members, dataset.n_courses
        self.member_factors_ = np.ones((n_m, n_c), np.float32)
        self.course_factors_ = np.eye(n_c, dtype=np.float32)


def test_without_a_courses_table() -> None:
    ds = Dataset.from_frames(events_frame([("m0", "c00", "view", "2024-01-01")]))
    state = serving_state(_Flat().fit(ds))
    assert state.titles.tolist() == ["c00"]
    assert state.channel_codes.tolist() == [-1] and state.durations is None
    assert state.branch_pins() == {}
    assert state.filter(None, None, None) == CourseFilter()  # nothing to filter on
    with pytest.raises(ConfigError, match="max_minutes needs course durations"):
        state.filter(None, 5, None)


def test_completed_holds_the_training_completions(tiny_model: FixedFactors) -> None:
    done = serving_state(tiny_model).completed().toarray()
    expected = np.zeros((5, 16), np.float32)
    expected[0, 0] = expected[2, 10] = 1.0  # m0 completed c00, m2 c10
    np.testing.assert_array_equal(done, expected)


def test_serving_state_is_built_once_per_fitted_model(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    first = serving_state(model)
    assert serving_state(model) is first
    model.fit(tiny_dataset)  # a refit starts a new state
    assert serving_state(model) is not first


def test_lazy_parts_are_built_once_under_concurrent_calls(tiny_dataset: Dataset) -> None:
    state = ServingState(FixedFactors().fit(tiny_dataset))
    built: list[int] = []
    barrier = threading.Barrier(8)
    results: list[object] = []

    def build() -> object:
        built.append(1)
        return object()

    def work() -> None:
        barrier.wait()
        results.append(state.lazy("part", build))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(r) for r in results}) == 1


def test_member_index_of_follows_fold_in(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    state = serving_state(model)
    assert state.member_index_of(model.member_ids_, "m3") == 3
    assert state.member_index_of(model.member_ids_, "fresh") == -1
    assert state.member_index_of(model.member_ids_, 3) == -1  # another id type
    model.update("fresh", events_frame([("fresh", "c01", "view", "2024-03-11")]))
    assert state.member_index_of(model.member_ids_, "fresh") == 5


# ---------------------------------------------------------------------------- compulsory


def test_branch_pins_and_compulsory_table(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    pins = state.branch_pins()
    assert {k: v.tolist() for k, v in pins.items()} == {"b1": [9, 10], "b2": [10, 13]}
    table = state.compulsory_table()
    assert table.names == ("b1", "b2")
    np.testing.assert_array_equal(table.indptr, [0, 2, 4])
    np.testing.assert_array_equal(table.indices, [9, 10, 10, 13])
    np.testing.assert_array_equal(table.member_code, [0, 0, 1, 1, 0])


def test_compulsory_table_codes_and_rows(tiny_model: FixedFactors) -> None:
    table = serving_state(tiny_model).compulsory_table()
    # m3 (b2), unknown, m4 (b1), an index past the training members.
    np.testing.assert_array_equal(table.codes(np.array([3, -1, 4, 99])), [1, -1, 0, -1])
    rows = table.rows(np.array([1, -1, 0]))
    np.testing.assert_array_equal(rows.indptr, [0, 2, 2, 4])
    np.testing.assert_array_equal(rows.indices, [10, 13, 9, 10])


@pytest.mark.parametrize(
    ("org", "code"),
    [("b1", 0), ("b2", 1), ("b0", -1), ("b15", -1), ("zz", -1), ("", -1)],
)
def test_code_of(org: str, code: int) -> None:
    table = CompulsoryTable(
        np.array([0, 2, 4]), np.array([9, 10, 10, 13]), np.array([0, 1]), ("b1", "b2")
    )
    assert table.code_of(org) == code


def test_code_of_with_no_compulsory_course() -> None:
    empty = CompulsoryTable(np.zeros(1, np.int64), np.empty(0, np.int64), np.empty(0, np.int64))
    assert empty.code_of("b1") == -1
    assert empty.rows(np.array([-1, -1])).indptr.tolist() == [0, 0, 0]


def test_catalogue_without_compulsory_courses() -> None:
    courses = tiny_courses().assign(compulsory_for=[[] for _ in COURSES])
    state = serving_state(FixedFactors().fit(make_tiny_dataset(courses)))
    assert state.branch_pins() == {}
    table = state.compulsory_table()
    assert table.names == () and table.indptr.tolist() == [0]
    assert table.member_code.tolist() == [-1] * 5


# ---------------------------------------------------------------------------- filter


@pytest.mark.parametrize(
    ("channel", "max_minutes", "now", "expected"),
    [
        # Published by the data time (2024-03-10): all but c15.
        (None, None, None, COURSES[:15]),
        (None, None, False, COURSES),
        (CHANNELS[1], None, False, ["c04", "c05", "c06", "c07"]),
        ([CHANNELS[0], CHANNELS[3]], None, False, COURSES[:4] + COURSES[12:]),
        # 1 .. 5 minutes; c04 lasts exactly 5.
        (None, 5, False, COURSES[:5]),
        (None, 4.99, False, COURSES[:4]),
        # c14's duration is unknown: never promised to fit.
        (None, 60, False, [*COURSES[:14], "c15"]),
        (None, None, "2025-07-01", COURSES),
        (None, None, "2025-06-01", COURSES),  # published at that very time
        (None, None, "2023-01-01", []),  # nothing published yet
        (None, None, pd.Timestamp("2025-06-01 07:59", tz="Asia/Shanghai"), COURSES[:15]),
        (CHANNELS[3], 14, None, ["c12", "c13"]),
    ],
)
def test_filter_keeps_the_courses_that_pass(
    tiny_model: FixedFactors, channel: object, max_minutes: float | None, now: object, expected
) -> None:
    got = serving_state(tiny_model).filter(channel, max_minutes, now)  # type: ignore[arg-type]
    assert _allowed(got) == list(expected)
    if got.mask is not None:
        np.testing.assert_array_equal(got.allow, np.flatnonzero(got.mask))
        np.testing.assert_array_equal(got.blocked, np.flatnonzero(~got.mask))


def test_a_filter_everything_passes_is_empty(tiny_model: FixedFactors) -> None:
    f = serving_state(tiny_model).filter(None, 60 * 24, "2030-01-01")
    assert _allowed(f) == [*COURSES[:14], "c15"]  # c14: unknown duration
    everything = serving_state(tiny_model).filter(None, None, False)
    assert everything == CourseFilter() and not everything.selective


def test_selective_when_fewer_pass_than_not(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    assert state.filter(CHANNELS[1], None, False).selective  # 4 of 16
    assert not state.filter(None, None, None).selective  # 15 of 16
    assert not CourseFilter().selective


def test_filters_are_cached_and_read_only(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    first = state.filter([CHANNELS[1], CHANNELS[0]], 10, None)
    # The same request said otherwise (order of channels, another "now" between the same
    # publications) is the same filter.
    again = state.filter([CHANNELS[0], CHANNELS[1]], 10.0, "2024-05-01")
    assert again is first
    assert not first.mask.flags.writeable and not first.allow.flags.writeable


def test_course_filter_reads_the_options(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    options = MenuOptions(channel=CHANNELS[2], max_minutes=10, only_published=False)
    assert _allowed(state.course_filter(options)) == ["c08", "c09"]
    assert _allowed(state.course_filter(MenuOptions(now="2023-01-01"))) == []


def test_unknown_channel_raises_naming_it_and_the_known_ones(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    with pytest.raises(ConfigError, match=r"channel \['cooking'\] is not a channel") as err:
        state.filter(["cooking", CHANNELS[0]], None, None)
    assert str(sorted(CHANNELS[:4])) in str(err.value)
    with pytest.raises(ConfigError, match="max_minutes must be a positive number"):
        state.filter(None, -3, None)


def test_channel_of_the_platform_missing_from_the_catalogue_passes_nothing() -> None:
    courses = tiny_courses().assign(category=CHANNELS[0])
    state = serving_state(FixedFactors().fit(make_tiny_dataset(courses)))
    assert state.channel_key(CHANNELS[2]) == ()
    assert _allowed(state.filter(CHANNELS[2], None, False)) == []
    assert _allowed(state.filter([CHANNELS[2], CHANNELS[0]], None, False)) == COURSES
