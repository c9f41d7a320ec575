"""Builders of hand-made volunteer tables: volunteers east of a point in 上城区, requests at it.

``volunteer(i, km=...)`` places volunteer ``v{i}`` ``km`` kilometres east of the point;
``request(j, kind=...)`` is a request at the point starting at ``T0`` (a Monday, 09:00).
Every test builds the frames it needs from these and never modifies shared data.
Imported by the tests as ``builders`` (this folder is put on ``sys.path`` by ``conftest``).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

T0 = pd.Timestamp("2025-07-07 09:00")
LAT, LON = 30.25, 120.18
KM_LON = 96.2  # km per degree of longitude at 30.25 N


def volunteer(i: int, *, km: float = 1.0, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "volunteer_id": f"v{i}",
        "district": "上城区",
        "lat": LAT,
        "lon": LON + km / KM_LON,
        "skills": [],
        "fitness": True,
    }
    row.update(fields)
    return row


def request(
    j: int, *, kind: str = "公共服务", hours: float = 2.0, start: pd.Timestamp = T0, **fields: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": f"r{j}",
        "kind": kind,
        "content": "",
        "skills": [],
        "district": "上城区",
        "lat": LAT,
        "lon": LON,
        "start": start,
        "end": start + pd.Timedelta(hours=hours),
        "headcount": 1,
    }
    row.update(fields)
    return row


def service(
    volunteer_id: str,
    j: int,
    *,
    kind: str = "公共服务",
    days_ago: float = 3.0,
    hours: float = 2.0,
    **fields: Any,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "volunteer_id": volunteer_id,
        "request_id": f"h{j}",
        "kind": kind,
        "served_at": T0 - pd.Timedelta(days=days_ago),
        "hours": hours,
        "no_show": False,
    }
    row.update(fields)
    return row
