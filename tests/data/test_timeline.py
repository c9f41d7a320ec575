"""Reference time, future-dated and far-past events (recommend.data.timeline), and how time
decay treats them: one mistyped date can neither empty the confidence matrix nor boost an
event."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.data.timeline import (
    FAR_PAST_GAP,
    FUTURE_TOLERANCE,
    check_times,
    far_past_mask,
    reference_time,
)
from recommend.data.validation import check_table
from recommend.data.weighting import Weighting
from recommend.errors import ConfigError, DataError


def _with_row(events: pd.DataFrame, when: str) -> pd.DataFrame:
    """``events`` plus a copy of its first row dated ``when`` (the last row)."""
    extra = events.iloc[[0]].assign(timestamp=pd.Timestamp(when))
    return pd.concat([events, extra], ignore_index=True)


def test_one_event_in_2100_cannot_empty_the_confidence_matrix(
    small_platform: rc.Platform, small_dataset: rc.Dataset
) -> None:
    events = _with_row(small_platform.events, "2100-01-01")
    last = len(events) - 1
    with pytest.raises(DataError) as info:
        rc.Dataset.from_frames(events, courses=small_platform.courses)
    (problem,) = info.value.problems
    assert problem.column == "timestamp" and problem.rows == (last,) and problem.count == 1
    assert "dated after the data's own now" in str(problem)

    dropped = rc.Dataset.from_frames(
        events, courses=small_platform.courses, members=small_platform.members,
        orgs=small_platform.orgs, on_future="drop",
    )  # fmt: skip
    assert dropped.report.future_events == 1 and dropped.report.dropped == 1
    assert dropped.now == small_dataset.now
    # Exactly the matrix of the data without the mistyped row.
    assert (dropped.interactions != small_dataset.interactions).nnz == 0

    kept = rc.Dataset.from_frames(events, courses=small_platform.courses, on_future="keep")
    # Kept, the row decays like an event at now (weight 1); the others keep their weights.
    assert kept.now == small_dataset.now
    assert kept.interactions.nnz == small_dataset.interactions.nnz
    assert kept.interactions.data.min() > 0


def test_a_given_far_now_decays_to_the_floor_not_to_zero(small_platform: rc.Platform) -> None:
    ds = rc.Dataset.from_frames(small_platform.events, now="2100-01-01")
    plain = rc.Dataset.from_frames(small_platform.events, weighting=Weighting(half_life_days=None))
    assert ds.interactions.nnz == plain.interactions.nnz
    # Every event is at the floor: the matrix is the undecayed one times the floor.
    np.testing.assert_allclose(ds.interactions.data, plain.interactions.data * 1e-3, rtol=1e-5)


@pytest.mark.parametrize("after_days", [1, 30, 3650])
def test_events_after_now_weigh_exactly_their_undecayed_weight(after_days: int) -> None:
    now = pd.Timestamp("2024-06-01")
    events = pd.DataFrame(
        {
            "member_id": ["m1", "m2", "m3"],
            "course_id": ["c1", "c1", "c1"],
            "event": ["complete", "complete", "complete"],
            "timestamp": [now + pd.Timedelta(days=after_days), now, now - pd.Timedelta(days=90)],
        }
    )
    conf = Weighting(half_life_days=90).event_confidence(rc.validate("events", events), now=now)
    # After now: never boosted above an event at now; 90 days before: half.
    assert conf.tolist() == [4.0, 4.0, 2.0]
    ds = rc.Dataset.from_frames(events, now=now, on_future="keep")
    assert ds.interactions.toarray().ravel().tolist() == [4.0, 4.0, 2.0]


def test_future_events_after_a_given_now_are_refused_by_default() -> None:
    events = pd.DataFrame(
        {
            "member_id": ["m1", "m2"],
            "course_id": ["c1", "c1"],
            "event": ["view", "view"],
            "timestamp": pd.to_datetime(["2024-01-01", "2024-02-01"]),
        }
    )
    with pytest.raises(DataError, match=r"dated after the given now \(2024-01-15.*row 1\)"):
        rc.Dataset.from_frames(events, now="2024-01-15")
    dropped = rc.Dataset.from_frames(events, now="2024-01-15", on_future="drop")
    assert dropped.report.future_events == 1 and dropped.member_ids.external_ids.tolist() == ["m1"]
    with pytest.raises(ConfigError, match="on_future='later'"):
        check_times(rc.validate("events", events), on_future="later")  # type: ignore[arg-type]


def test_robust_now_ignores_a_lone_outlier_but_not_ordinary_gaps() -> None:
    days = pd.to_datetime(["2024-01-01", "2024-03-01", "2024-05-01"])
    # Ordinary data: the last event is now, even months after the one before.
    assert reference_time(days) == pd.Timestamp("2024-05-01")
    late = days.append(pd.DatetimeIndex([pd.Timestamp("2024-05-01") + FUTURE_TOLERANCE * 2]))
    assert reference_time(late) == pd.Timestamp("2024-05-01")
    within = days.append(pd.DatetimeIndex([pd.Timestamp("2024-05-01") + pd.Timedelta(days=30)]))
    assert reference_time(within) == within.max()
    assert reference_time(late, now="2030-01-01") == pd.Timestamp("2030-01-01")
    aware = reference_time(late, now=pd.Timestamp("2024-01-01 08:00", tz="Asia/Shanghai"))
    assert aware == pd.Timestamp("2024-01-01 00:00")


def test_far_past_rows_are_noted_not_refused(small_platform: rc.Platform) -> None:
    events = _with_row(small_platform.events, "1970-01-01")
    report = check_table("events", events)
    assert report.ok
    (note,) = [n for n in report.notes if n.column == "timestamp"]
    assert note.rows == (len(events) - 1,) and note.count == 1
    assert f"more than {FAR_PAST_GAP.days} days before" in str(note)
    mask = far_past_mask(rc.validate("events", events)["timestamp"])
    assert np.flatnonzero(mask).tolist() == [len(events) - 1]
    # Data that is all old (pseudo-times of a "lines" file) has no far-past rows.
    assert not far_past_mask(pd.to_datetime([0, 1, 2, 3], unit="s")).any()


def test_validation_reports_the_future_row(small_platform: rc.Platform) -> None:
    events = _with_row(small_platform.events, "2100-01-01")
    report = check_table("events", events)
    assert not report.ok
    (problem,) = report.problems
    assert problem.rows == (len(events) - 1,) and "dated after" in problem.message
    assert check_table("events", small_platform.events).ok


def test_a_sparse_tail_of_real_events_is_not_future_dated() -> None:
    # Three busy years, then a few stragglers over the next 400 days (as in MovieLens-1M):
    # the last straggler is the data's now, not an outlier.
    rng = np.random.default_rng(0)
    bulk = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 3 * 365, 10_000), "D")
    tail = pd.Timestamp("2023-01-01") + pd.to_timedelta([30, 100, 200, 300, 400], "D")
    times = bulk.append(tail)
    assert reference_time(times) == times.max()
    # A mistyped year is still one.
    assert reference_time(times.append(pd.DatetimeIndex(["2100-01-01"]))) == times.max()
