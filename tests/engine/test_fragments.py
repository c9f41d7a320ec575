"""Fragment time (recommend.engine.fragments): ``max_minutes="auto"`` limits each member's
recommendations to the session they usually have at the request's hour and kind of day."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import COURSES, FixedFactors, menu_lists, rank_members, tiny_courses, tiny_members

import recommend as rc
from recommend.data.dataset import Dataset
from recommend.engine import (
    MenuOptions,
    serving_state,
    time_bin,
)
from recommend.engine.fragments import FALLBACK_MINUTES, FLOOR_MINUTES


def _events() -> pd.DataFrame:
    """m0 studies 4 minutes on weekday mornings (08:xx) and 12 minutes on weekday evenings
    (20:xx); m1 has two sessions only (too few of their own); m3 has one long one."""
    rows = []
    for day in range(4, 8):  # 2024-03-04 .. 07, Monday .. Thursday
        rows.append(("m0", "c00", "view", f"2024-03-0{day}T08:10:00", 0.0))
        rows.append(("m0", "c00", "progress", f"2024-03-0{day}T08:14:00", 240.0))
        rows.append(("m0", "c01", "view", f"2024-03-0{day}T20:10:00", 0.0))
        rows.append(("m0", "c01", "progress", f"2024-03-0{day}T20:22:00", 720.0))
    rows += [
        ("m1", "c02", "view", "2024-03-04T08:00:00", 0.0),
        ("m1", "c02", "progress", "2024-03-04T08:06:00", 360.0),
        ("m1", "c03", "view", "2024-03-05T08:00:00", 0.0),
        ("m1", "c03", "progress", "2024-03-05T08:06:00", 360.0),
        ("m3", "c06", "view", "2024-03-09T08:00:00", 0.0),  # a Saturday
        ("m3", "c06", "complete", "2024-03-09T08:07:00", 420.0),
    ]
    frame = pd.DataFrame(
        rows, columns=["member_id", "course_id", "event", "timestamp", "watch_seconds"]
    )
    return frame.assign(timestamp=lambda f: pd.to_datetime(f["timestamp"]))


@pytest.fixture(scope="module")
def model() -> FixedFactors:
    return FixedFactors().fit(
        Dataset.from_frames(_events(), courses=tiny_courses(), members=tiny_members())
    )


def test_time_bins() -> None:
    assert time_bin(pd.Timestamp("2024-03-04T08:10")) == 2  # Monday 06-08
    assert time_bin(pd.Timestamp("2024-03-09T08:10")) == 10  # Saturday
    assert time_bin(pd.Timestamp("2024-03-04T23:59")) == 7


def test_usual_session_per_member_hour_and_day(model: FixedFactors) -> None:
    profile = serving_state(model).session_profile()
    idx = model.member_ids_.to_index(["m0", "m1", "m3", "ghost"], unknown="mask").astype(np.int64)
    morning, src_m = profile.minutes(idx, pd.Timestamp("2024-03-11T08:30"))  # Monday
    evening, _ = profile.minutes(idx, pd.Timestamp("2024-03-11T20:30"))
    # m0: their own medians, 4 in the morning, 12 in the evening.
    assert morning[0] == pytest.approx(4.0) and evening[0] == pytest.approx(12.0)
    # m1 and m3 have too few sessions: the platform's median at that time (weekday
    # 06-08: m0's four 4-minute sessions and m1's two of 6 -> 4), and for the unknown.
    assert morning[1] == pytest.approx(4.0) and morning[3] == pytest.approx(4.0)
    assert src_m.tolist() == [0, 2, 2, 2]
    # A weekend afternoon nobody studied: the platform's overall median.
    weekend, _ = profile.minutes(idx, pd.Timestamp("2024-03-16T15:00"))
    all_sessions = [4.0] * 4 + [12.0] * 4 + [6.0, 6.0, 7.0]
    assert weekend[1] == pytest.approx(float(np.median(all_sessions)))


def test_auto_menus_keep_what_fits(model: FixedFactors) -> None:
    # c<j> lasts j + 1 minutes: a Monday-morning menu for m0 (4 minutes) holds c02, c03
    # (c00 and c01 seen) and nothing longer; in the evening up to 12 minutes.
    morning = rank_members(
        model,
        ["m0"],
        n=6,
        max_minutes="auto",
        now="2024-03-11T08:30",
        pin_compulsory=False,
        continue_learning=False,
    )
    assert menu_lists(morning) == [["c02", "c03"]]
    evening = rank_members(
        model,
        ["m0"],
        n=6,
        max_minutes="auto",
        now="2024-03-11T20:30",
        pin_compulsory=False,
        continue_learning=False,
    )
    assert menu_lists(evening) == [["c02", "c03", "c04", "c05", "c06", "c07"]]
    # The kernel path (factors, batch) agrees.
    assert menu_lists(
        rank_members(
            model,
            ["m0"],
            n=6,
            max_minutes="auto",
            now="2024-03-11T08:30",
            pin_compulsory=False,
            continue_learning=False,
            dense=False,
        )
    ) == [["c02", "c03"]]
    # Compulsory pins (c09, c10 last 10 and 11 minutes) and unfinished courses stay
    # whatever their length.
    pinned = rank_members(model, ["m0"], n=6, max_minutes="auto", now="2024-03-11T08:30")
    assert menu_lists(pinned) == [["c09", "c10", "c01", "c00", "c02", "c03"]]


def test_the_menu_says_what_it_assumed(model: FixedFactors) -> None:
    menu = rc.member_menu(model, ["m0", "m4"], n=6, max_minutes="auto", now="2024-03-11T08:30")
    assert menu.attrs["fragment_minutes"] == {"m0": 4.0, "m4": 4.0}
    assert menu.attrs["fragment_source"] == {"m0": "member", "m4": "platform"}
    assert menu.attrs["notes"]["m0"] == "你平时这个时段一次约学4分钟，为你推荐4分钟内能学完的课程"
    assert "同志们平时" in menu.attrs["notes"]["m4"]
    en = rc.member_menu(model, ["m0"], n=6, max_minutes="auto", now="2024-03-11T08:30", lang="en")
    assert (
        en.attrs["notes"]["m0"] == "courses that fit the 4 minutes you usually study at this time"
    )
    # Without the option nothing is assumed.
    assert "notes" not in rc.member_menu(model, ["m0"], n=6).attrs


def test_options_and_fallbacks() -> None:
    assert MenuOptions(max_minutes="auto").auto_minutes
    assert MenuOptions(max_minutes="auto").max_seconds is None
    assert MenuOptions(max_minutes=15).fixed_minutes == 15.0
    with pytest.raises(rc.ConfigError, match="max_minutes"):
        MenuOptions(max_minutes="soon")
    # No watch times in the training data: the fallback, never under the floor.
    events = _events().drop(columns="watch_seconds")
    plain = FixedFactors().fit(
        Dataset.from_frames(events, courses=tiny_courses(), members=tiny_members())
    )
    minutes, source = (
        serving_state(plain)
        .session_profile()
        .minutes(np.array([0, -1]), pd.Timestamp("2024-03-11"))
    )
    assert minutes.tolist() == [FALLBACK_MINUTES, FALLBACK_MINUTES] and source.tolist() == [2, 2]
    assert FLOOR_MINUTES <= FALLBACK_MINUTES
    # No durations: refused, naming the column.
    courses = tiny_courses().drop(columns="duration_seconds")
    bare = FixedFactors().fit(
        Dataset.from_frames(_events(), courses=courses, members=tiny_members())
    )
    with pytest.raises(rc.ConfigError, match="duration_seconds"):
        rc.member_menu(bare, ["m0"], max_minutes="auto")
    assert COURSES[0] == "c00"
