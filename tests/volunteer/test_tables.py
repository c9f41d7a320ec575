"""Validation of the volunteer tables (``recommend.volunteer.tables``)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from builders import request, service, volunteer

from recommend.errors import DataError
from recommend.volunteer import VolunteerPool
from recommend.volunteer.tables import (
    availability_hours,
    parse_window,
    validate_requests,
    validate_services,
    validate_tables,
    validate_volunteers,
)


def test_defaults_are_filled_in() -> None:
    vol = validate_volunteers(pd.DataFrame([{"volunteer_id": "v1", "district": "上城区"}]))
    row = vol.iloc[0]
    assert row["capacity"] == 1 and row["weekly_hours"] == np.inf and not row["fitness"]
    assert row["skills"] == [] and row["availability"] == [] and np.isnan(row["lat"])
    req = validate_requests(pd.DataFrame([request(1, kind="emergency", hours=3)]))
    assert req.loc[0, "kind"] == "应急救助"  # English codes accepted
    assert req.loc[0, "headcount"] == 1 and req.loc[0, "urgency"] == 1.0
    assert req.loc[0, "hours"] == 3.0 and bool(req.loc[0, "approved"])


@pytest.mark.parametrize("column", ["name", "phone", "requester_name", "联系人"])
def test_personal_columns_are_refused(column: str) -> None:
    frame = pd.DataFrame([request(1)]).assign(**{column: "x"})
    with pytest.raises(DataError, match="personal columns") as err:
        validate_requests(frame)
    assert column in str(err.value)


def test_unknown_kind_names_column_and_value() -> None:
    with pytest.raises(DataError, match=r"requests\.kind: unknown service kinds") as err:
        validate_requests(pd.DataFrame([request(1), request(2, kind="跑腿")]))
    assert "'跑腿'" in str(err.value) and "row 1" in str(err.value)


def test_time_window_must_end_after_start() -> None:
    row = request(1)
    row["end"] = row["start"] - pd.Timedelta(hours=1)
    with pytest.raises(DataError, match=r"requests\.end: time windows that end before"):
        validate_requests(pd.DataFrame([row]))


def test_headcount_below_one_and_no_place_are_refused() -> None:
    rows = [request(1, headcount=0), request(2, district=None, lat=None, lon=None)]
    with pytest.raises(DataError) as err:
        validate_requests(pd.DataFrame(rows))
    text = str(err.value)
    assert "requests.headcount: headcount below 1" in text
    assert "requests.district: requests without a place" in text


def test_unreadable_availability_is_named() -> None:
    rows = [volunteer(1, availability=["6 09:00-12:00"]), volunteer(2, availability=["周八 9-12"])]
    with pytest.raises(DataError, match=r"volunteers\.availability") as err:
        validate_volunteers(pd.DataFrame(rows))
    assert "周八 9-12" in str(err.value) and "row 1" in str(err.value)


def test_unknown_skills_are_refused_against_a_vocabulary() -> None:
    rows = pd.DataFrame([request(1, skills=["法律咨询"]), request(2, skills=["修飞机"])])
    validate_requests(rows)  # without a vocabulary any skill is accepted
    with pytest.raises(DataError, match=r"requests\.skills: unknown skills \['修飞机'\]"):
        validate_requests(rows, skills=["法律咨询", "急救"])


def test_services_must_name_registered_volunteers() -> None:
    vol = pd.DataFrame([volunteer(1)])
    with pytest.raises(DataError, match="services by volunteers missing") as err:
        validate_tables(vol, pd.DataFrame([request(1)]), pd.DataFrame([service("v9", 1)]))
    assert "'v9'" in str(err.value)


def test_null_optional_ids_are_not_reported_as_stripped(caplog: pytest.LogCaptureFixture) -> None:
    rows = [volunteer(1, member_id="m1"), volunteer(2, member_id=None)]
    with caplog.at_level(logging.WARNING):
        vol = validate_volunteers(pd.DataFrame(rows))
    assert "surrounding spaces" not in caplog.text
    assert vol["member_id"].isna().tolist() == [False, True]


def test_services_default_to_shown_up() -> None:
    srv = validate_services(pd.DataFrame([service("v1", 1)]).drop(columns=["no_show"]))
    assert not srv.loc[0, "no_show"] and validate_services(None).empty


def test_windows_cover_the_hours_they_touch_and_overlaps_merge() -> None:
    assert parse_window("1 09:30-11:00").tolist() == [9, 10]
    assert parse_window("周日 23:00-24:00").tolist() == [6 * 24 + 23]
    assert len(parse_window("每天 08:00-10:00")) == 14
    assert parse_window("1 11:00-09:00") is None and parse_window("Monday") is None
    one = availability_hours([["1 09:00-12:00", "1 10:00-11:00"]])
    same = availability_hours([["1 09:00-12:00"]])
    assert (one == same).all() and int(np.bitwise_count(one).sum()) == 3


def test_pool_refuses_or_counts_services_of_unregistered_volunteers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    vol = pd.DataFrame([volunteer(1)])
    srv = pd.DataFrame([service("v1", 1), service("v9", 2), service("v9", 3)])
    with pytest.raises(DataError, match="services by volunteers missing") as err:
        VolunteerPool.build(vol, srv)
    assert "'v9'" in str(err.value) and "in 2 rows" in str(err.value)
    with caplog.at_level(logging.WARNING):
        pool = VolunteerPool.build(vol, srv, on_unknown="drop")
    assert "left out 2 service(s) by 1 volunteer(s)" in caplog.text
    assert pool.history.recent_hours.tolist() == [2.0]
