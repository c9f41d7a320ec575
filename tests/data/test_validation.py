"""Bad input gets a clear error naming table, column, rows and what was expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommend.data.validation import check_references, personal_columns, validate
from recommend.errors import DataError


@pytest.fixture
def events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "member_id": ["m1", "m1", "m2", "m3"],
            "course_id": ["c1", "c2", "c1", "c3"],
            "event": ["view", "complete", "like", "view"],
            "timestamp": ["2024-01-01 08:00", "2024-01-02", "2024-02-01", "2024-03-01"],
            "watch_seconds": [60.0, 600.0, np.nan, 30.0],
        }
    )


def _error(table: str, frame: pd.DataFrame, **kw: object) -> DataError:
    with pytest.raises(DataError) as info:
        validate(table, frame, **kw)  # type: ignore[arg-type]
    return info.value


def test_valid_events_are_coerced_to_canonical_dtypes(events: pd.DataFrame) -> None:
    out = validate("events", events)
    assert out["timestamp"].dtype == "datetime64[ns]"
    assert out["watch_seconds"].dtype == np.float64
    assert out.loc[0, "timestamp"] == pd.Timestamp("2024-01-01 08:00")
    assert list(out["member_id"]) == ["m1", "m1", "m2", "m3"]


def test_input_frame_is_not_mutated(events: pd.DataFrame) -> None:
    before = events.copy(deep=True)
    validate("events", events)
    pd.testing.assert_frame_equal(events, before)


def test_missing_required_column_is_named(events: pd.DataFrame) -> None:
    err = _error("events", events.drop(columns=["timestamp"]))
    assert "events" in str(err) and "missing required column" in str(err)
    assert "'timestamp'" in str(err)


def test_uncoercible_dtype_names_column_rows_and_values(events: pd.DataFrame) -> None:
    events["watch_seconds"] = events["watch_seconds"].astype(object)
    events.loc[2, "watch_seconds"] = "ten minutes"
    err = _error("events", events)
    msg = str(err)
    assert "events.watch_seconds" in msg and "cannot be read as numbers" in msg
    assert "row 2" in msg and "'ten minutes'" in msg
    (problem,) = err.problems
    assert problem.rows == (2,) and problem.count == 1


@pytest.mark.parametrize("null", [None, np.nan, "", "  "])
def test_null_ids_are_refused(events: pd.DataFrame, null: object) -> None:
    events["member_id"] = events["member_id"].astype(object)
    events.loc[1, "member_id"] = null
    err = _error("events", events)
    assert "events.member_id: null or empty ids in 1 row (row 1)" in str(err)


@pytest.mark.parametrize("bad", [-5.0, np.inf, -np.inf])
def test_negative_or_nonfinite_watch_seconds(events: pd.DataFrame, bad: float) -> None:
    events.loc[3, "watch_seconds"] = bad
    err = _error("events", events)
    assert "events.watch_seconds" in str(err)
    assert err.problems[0].rows == (3,)
    assert ("negative" in str(err)) or ("non-finite" in str(err))


def test_unparseable_timestamps(events: pd.DataFrame) -> None:
    events.loc[[1, 3], "timestamp"] = ["2024-13-45", "yesterday"]
    err = _error("events", events)
    msg = str(err)
    assert "events.timestamp: unparseable timestamps in 2 rows (rows 1, 3)" in msg
    assert "'2024-13-45'" in msg and "ISO 8601" in msg


def test_epoch_seconds_and_timezones_are_normalised_to_utc() -> None:
    base = dict(member_id=["a", "b"], course_id=["x", "y"], event=["view", "view"])
    epoch = validate("events", pd.DataFrame({**base, "timestamp": [0, 86_400]}))
    assert epoch["timestamp"].tolist() == [pd.Timestamp("1970-01-01"), pd.Timestamp("1970-01-02")]
    aware = pd.to_datetime(["2024-01-01 08:00", "2024-01-01 09:00"]).tz_localize("Asia/Shanghai")
    out = validate("events", pd.DataFrame({**base, "timestamp": aware}))
    assert out["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 00:00")


def test_event_type_without_weight(events: pd.DataFrame) -> None:
    events.loc[[0, 2], "event"] = ["watch", "watch"]
    err = _error("events", events)
    msg = str(err)
    assert "event types with no weight: 'watch' x2" in msg and "rows 0, 2" in msg
    assert "event_weights" in msg
    # A weighting that names the event accepts it.
    weights = {"watch": 1.0, "view": 1.0, "complete": 1.0, "like": 1.0}
    out = validate("events", events, event_weights=weights)
    assert (out["event"] == "watch").sum() == 2


def test_duplicate_course_ids() -> None:
    courses = pd.DataFrame({"course_id": ["c1", "c2", "c1"], "title": ["a", "b", "c"]})
    err = _error("courses", courses)
    assert "courses.course_id: duplicate ids in 2 rows (rows 0, 2)" in str(err)
    assert "exactly once" in str(err)


def test_events_referencing_unknown_courses_raise_by_default(events: pd.DataFrame) -> None:
    ev = validate("events", events)
    courses = pd.DataFrame({"course_id": ["c1", "c2"]})
    with pytest.raises(DataError) as info:
        check_references(ev, courses=courses)
    msg = str(info.value)
    assert "events.course_id" in msg and "1 course(s) missing" in msg and "'c3'" in msg
    assert "on_unknown='drop'" in msg


def test_events_referencing_unknown_ids_drop_is_counted(
    events: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    ev = validate("events", events)
    courses = pd.DataFrame({"course_id": ["c1", "c2"]})
    members = pd.DataFrame({"member_id": ["m1", "m3"]})
    with caplog.at_level("WARNING"):
        kept, report = check_references(ev, courses=courses, members=members, on_unknown="drop")
    # c3 (row 3) and m2 (row 2) are unknown.
    assert report.unknown_course_events == 1 and report.unknown_member_events == 1
    assert report.dropped == 2 and len(kept) == 2 == report.events_out
    assert "dropped 2 of 4 events" in caplog.text
    assert set(kept["course_id"]) <= {"c1", "c2"}


def test_id_kind_mismatch_between_tables_is_explained(events: pd.DataFrame) -> None:
    ev = validate("events", events)
    with pytest.raises(DataError, match=r"ids are strings but courses\.course_id ids are integers"):
        check_references(ev, courses=pd.DataFrame({"course_id": [1, 2]}))


@pytest.mark.parametrize(
    "column", ["name", "Phone", "id_card", "ID-Number", "address", "姓名", "手机号", "email"]
)
def test_personal_columns_are_refused(column: str) -> None:
    members = pd.DataFrame({"member_id": ["a", "b"], column: ["x", "y"]})
    err = _error("members", members)
    assert personal_columns(members) == [column]
    assert "personal columns" in str(err) and f"drop(columns=['{column}'])" in str(err)


def test_phone_numbers_in_mobile_flag_are_refused_without_echoing_them() -> None:
    members = pd.DataFrame({"member_id": ["a", "b"], "mobile": ["13812345678", "no"]})
    err = _error("members", members)
    assert "phone numbers" in str(err)
    assert "13812345678" not in str(err)


@pytest.mark.parametrize("table", ["events", "courses", "members", "orgs", "searches"])
def test_empty_frames_are_refused(table: str) -> None:
    from recommend.schema import TABLES

    frame = pd.DataFrame({c: [] for c in TABLES[table].required})
    assert "the table is empty" in str(_error(table, frame))


def test_all_problems_are_reported_at_once(events: pd.DataFrame) -> None:
    events.loc[0, "member_id"] = None
    events.loc[1, "watch_seconds"] = -1
    events.loc[2, "event"] = "teleport"
    err = _error("events", events)
    columns = {p.column for p in err.problems}
    assert columns == {"member_id", "watch_seconds", "event"}


def test_members_booleans_lists_and_birth_years() -> None:
    members = pd.DataFrame(
        {
            "member_id": [1, 2, 3],
            "mobile": ["是", "false", "1"],
            "skills": ["电工|驾驶", None, ["会计"]],
            "birth_year": [1950, 1988, 2001],
        }
    )
    out = validate("members", members)
    assert out["member_id"].dtype == np.int64
    assert out["mobile"].tolist() == [True, False, True]
    assert out["skills"].tolist() == [["电工", "驾驶"], [], ["会计"]]
    members.loc[1, "birth_year"] = 1850
    assert "implausible birth years" in str(_error("members", members))


def test_mixed_id_types_are_refused() -> None:
    courses = pd.DataFrame({"course_id": pd.Series(["c1", 2], dtype=object)})
    assert "ids mix strings with other types" in str(_error("courses", courses))


def test_unknown_table_name() -> None:
    with pytest.raises(DataError, match="unknown table 'lessons'"):
        validate("lessons", pd.DataFrame({"a": [1]}))


def test_ids_beyond_int64_are_refused_not_wrapped() -> None:
    courses = pd.DataFrame({"course_id": np.array([2**63, 2**63 + 1, 5], dtype=np.uint64)})
    err = _error("courses", courses)
    assert "courses.course_id: integer ids beyond the 64-bit range in 2 rows (rows 0, 1)" in str(
        err
    )
    assert validate("courses", pd.DataFrame({"course_id": np.array([5], np.uint64)}))[
        "course_id"
    ].tolist() == [5]


def test_out_of_range_epoch_seconds_are_a_data_error(events: pd.DataFrame) -> None:
    events["timestamp"] = [0.0, 1e20, 86_400.0, np.inf]
    err = _error("events", events)
    assert "events.timestamp" in str(err) and "out of range" in str(err)
    assert err.problems[0].rows == (1, 3)


def test_missing_and_unparseable_timestamps_are_reported_together(events: pd.DataFrame) -> None:
    events.loc[[0, 2], "timestamp"] = [None, "nope"]
    messages = [p.message for p in _error("events", events).problems]
    assert messages == ["missing timestamps", "unparseable timestamps"]


def test_duplicate_column_names(events: pd.DataFrame) -> None:
    doubled = pd.concat([events, events[["member_id"]]], axis=1)
    assert "duplicate column names ['member_id']" in str(_error("events", doubled))


@pytest.mark.parametrize("column", ["id_card_no", "phone_num", "birth_date", "出生日期"])
def test_more_personal_spellings(column: str) -> None:
    members = pd.DataFrame({"member_id": ["a"], column: ["x"]})
    assert "personal columns" in str(_error("members", members))


def test_spaces_around_ids_are_removed_and_counted(
    events: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    events["member_id"] = ["m1", " m1", "m2 ", "m3"]
    with caplog.at_level("WARNING"):
        out = validate("events", events)
    assert out["member_id"].tolist() == ["m1", "m1", "m2", "m3"]
    assert (
        "events.member_id: ids normalised (Unicode NFKC, zero-width characters and surrounding "
        "spaces removed; 2 distinct id(s) became 2) in 2 rows (rows 1, 2)"
    ) in caplog.text


@pytest.mark.parametrize(
    ("column", "bad"), [("value", 1e300), ("value", -1e7), ("watch_seconds", 1e8)]
)
def test_numbers_too_large_for_float32_confidence_are_refused(
    events: pd.DataFrame, column: str, bad: float
) -> None:
    events["value"] = 1.0
    events.loc[2, column] = bad
    err = _error("events", events)
    (problem,) = err.problems
    assert problem.column == column and problem.rows == (2,) and problem.count == 1
    assert "too large for the confidence matrix" in str(err)


def test_numbers_at_the_bounds_pass(events: pd.DataFrame) -> None:
    from recommend.data.validation import EVENT_BOUNDS

    events["value"] = [EVENT_BOUNDS["value"], -EVENT_BOUNDS["value"], 0.5, 1.0]
    events["watch_seconds"] = [EVENT_BOUNDS["watch_seconds"], 0.0, 1.0, 2.0]
    assert len(validate("events", events)) == 4


@pytest.mark.parametrize(
    "written", ["1714550400", " 1714550400.0 ", 1714550400, 1714550400.0, "1.7145504e9"]
)
def test_epoch_seconds_in_a_text_timestamp_column_are_seconds(
    events: pd.DataFrame, written: object
) -> None:
    events["timestamp"] = events["timestamp"].astype(object)
    events.loc[1, "timestamp"] = written
    out = validate("events", events)
    assert out.loc[1, "timestamp"] == pd.Timestamp("2024-05-01 08:00:00")
    assert out.loc[0, "timestamp"] == pd.Timestamp("2024-01-01 08:00")


def test_compact_dates_and_epoch_milliseconds_in_text(events: pd.DataFrame) -> None:
    events.loc[1, "timestamp"] = "20240501"  # YYYYMMDD stays a date
    assert validate("events", events).loc[1, "timestamp"] == pd.Timestamp("2024-05-01")
    events.loc[1, "timestamp"] = "1714550400000"  # milliseconds: refused, never 1970
    err = _error("events", events)
    assert err.problems[0].rows == (1,)
    assert "epoch milliseconds must be divided by 1000" in str(err)


def test_long_text_is_cut_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    import time

    from recommend.data.validation import MAX_TEXT_CHARS, check_table

    courses = pd.DataFrame(
        {
            "course_id": ["c1", "c2", "c3"],
            "title": ["党" * 5_000_000, "短标题", None],
            "description": ["x" * (MAX_TEXT_CHARS + 1), "y" * MAX_TEXT_CHARS, "z"],
        }
    )
    start = time.perf_counter()
    report = check_table("courses", courses)
    assert time.perf_counter() - start < 2.0
    assert report.ok
    assert report.frame["title"].map(len, na_action="ignore").tolist()[:2] == [MAX_TEXT_CHARS, 3]
    assert report.frame["description"].map(len).tolist() == [MAX_TEXT_CHARS, MAX_TEXT_CHARS, 1]
    assert [(n.column, n.rows, n.count) for n in report.notes] == [
        ("title", (0,), 1),
        ("description", (0,), 1),
    ]
    assert "党党党" not in str(report.notes[0])
    with caplog.at_level("WARNING"):
        validate("courses", courses)
    assert "courses.title: text cut to its first 10,000 characters in 1 row (row 0)" in caplog.text


def test_exact_duplicate_events_are_counted_in_a_note(events: pd.DataFrame) -> None:
    from recommend.data.validation import check_table, duplicate_rows

    copies = pd.concat([events] + [events.iloc[[1]]] * 100, ignore_index=True)
    report = check_table("events", copies)
    assert report.ok
    (note,) = report.notes
    assert note.count == 101 and note.rows == (1, 4, 5, 6, 7)
    assert "exact duplicate events (100 beyond the first of each set)" in note.message
    assert int(duplicate_rows(report.frame, keep="first").sum()) == 100
    # A different watch time is a different event, not a duplicate.
    twin = pd.concat([events.iloc[[0]], events.iloc[[0]].assign(watch_seconds=61.0)])
    assert not duplicate_rows(twin).any()
    assert duplicate_rows(pd.concat([events.iloc[[0]]] * 2)).tolist() == [True, True]


def test_missing_ids_are_not_counted_as_spaces(caplog: pytest.LogCaptureFixture) -> None:
    """Optional id columns with gaps (a course without lecturer or uploader, a top org
    without parent) load without a warning; only real spaces are counted."""
    courses = pd.DataFrame(
        {
            "course_id": ["c1", "c2", "c3"],
            "lecturer_id": ["l1", None, " l2"],
            "org_id": [None, None, "o1"],
        }
    )
    with caplog.at_level("WARNING"):
        out = validate("courses", courses)
    assert out["lecturer_id"].isna().tolist() == [False, True, False]
    assert out["lecturer_id"].iloc[[0, 2]].tolist() == ["l1", "l2"]
    assert caplog.text.count("ids normalised") == 1
    assert "courses.lecturer_id: ids normalised" in caplog.text and "(row 2)" in caplog.text
    orgs = pd.DataFrame({"org_id": ["o1", "o2"], "parent_id": [None, "o1"]})
    with caplog.at_level("WARNING"):
        caplog.clear()
        validate("orgs", orgs)
    assert "ids normalised" not in caplog.text
