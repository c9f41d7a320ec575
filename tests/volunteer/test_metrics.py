"""Organiser metrics (``recommend.volunteer.metrics``) and the district map (``geo``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import T0, request, service, volunteer
from hypothesis import given, settings
from hypothesis import strategies as st

from recommend.volunteer import VolunteerPool, dispatch
from recommend.volunteer.geo import HANGZHOU, DistrictMap, Grid, haversine_km
from recommend.volunteer.metrics import dispatch_metrics, gini
from recommend.volunteer.tables import validate_requests


def test_gini_of_hand_worked_examples() -> None:
    assert gini([2, 2, 2, 2]) == 0.0
    assert gini([0, 0, 0, 4]) == pytest.approx(0.75)
    assert gini([1, 2, 3]) == pytest.approx(2 / 9)
    assert gini([]) == 0.0 and gini([0, 0]) == 0.0


def test_metrics_per_kind_and_overall() -> None:
    history = [service("v1", 1, kind="弱势群体帮扶", person_id="p1")]
    vols = pd.DataFrame([volunteer(1), volunteer(2, km=2.0)])
    pool = VolunteerPool.build(vols, pd.DataFrame(history), now=T0)
    reqs = pd.DataFrame(
        [
            request(1, kind="弱势群体帮扶", person_id="p1", posted_at=T0 - pd.Timedelta(hours=5)),
            request(2, kind="公共服务", headcount=4, start=T0 + pd.Timedelta(hours=3)),
        ]
    )
    result = dispatch(pool, reqs)
    table = dispatch_metrics(
        validate_requests(reqs),
        result.assignments,
        services=pd.DataFrame(history),
        volunteers=vols,
        by=("kind",),
    )
    assert list(table.index) == ["公共服务", "弱势群体帮扶", "全部"]
    assert table.loc["公共服务", "fill_rate"] == pytest.approx(2 / 4)
    assert table.loc["弱势群体帮扶", "continuity"] == 1.0  # v1 again for p1
    assert table.loc["弱势群体帮扶", "time_to_fill_h"] == pytest.approx(5.0)
    assert table.loc["全部", "needed"] == 5 and table.loc["全部", "filled"] == 3
    assert np.isnan(table.loc["公共服务", "continuity"])


def test_haversine_one_degree_on_the_equator() -> None:
    assert float(haversine_km(0.0, 0.0, 0.0, 1.0)) == pytest.approx(111.195, abs=0.01)


def test_districts_without_centroids_use_adjacency_hops() -> None:
    dmap = DistrictMap.build({}, {"甲": ["乙"], "乙": ["丙"]}, extra=["丁"])
    codes = dmap.codes(["甲", "乙", "丙", "丁"], "t")
    d = dmap.distance[codes[0]]
    assert d[codes[1]] == 15.0 and d[codes[2]] == 30.0 and np.isinf(d[codes[3]])
    assert HANGZHOU.distance[0, 0] == 3.0  # within a district


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.5, 30.0))
def test_grid_finds_every_point_within_the_radius(seed: int, radius: float) -> None:
    rng = np.random.default_rng(seed)
    lat = 30.2 + rng.normal(0, 0.1, 400)
    lon = 120.2 + rng.normal(0, 0.1, 400)
    grid = Grid.build(lat, lon)
    found = set(grid.near(30.2, 120.2, radius).tolist())
    inside = np.flatnonzero(haversine_km(lat, lon, 30.2, 120.2) <= radius)
    assert set(inside.tolist()) <= found
