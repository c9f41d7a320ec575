"""The simulator (``recommend.volunteer.simulate``), dispatch against baselines on its truth
(``evaluation``), and the member's list (``menu``)."""

from __future__ import annotations

import pandas as pd
import pytest

from recommend.errors import DataError
from recommend.volunteer import (
    RequestBatch,
    VolunteerPool,
    VolunteerWorld,
    simulate_volunteering,
    validate_tables,
)
from recommend.volunteer.evaluation import compare_policies
from recommend.volunteer.menu import volunteer_menu


@pytest.fixture(scope="module")
def world() -> VolunteerWorld:
    return simulate_volunteering(1_200, 500, seed=1)


def test_simulated_tables_validate_and_repeat_with_the_seed(world: VolunteerWorld) -> None:
    tables = validate_tables(world.volunteers, world.requests, world.services)
    assert len(tables.volunteers) == 1_200 and len(tables.requests) == 500
    assert set(tables.requests["kind"]) == {"应急救助", "公共服务", "弱势群体帮扶", "专业技能互助"}
    again = simulate_volunteering(1_200, 500, seed=1)
    pd.testing.assert_frame_equal(world.requests, again.requests)
    pd.testing.assert_frame_equal(world.services, again.services)


def test_simulator_draws_volunteers_from_a_platforms_members(small_platform) -> None:  # type: ignore[no-untyped-def]
    small = simulate_volunteering(100, 20, members=small_platform.members, seed=0)
    assert small.volunteers["member_id"].dropna().isin(small_platform.members["member_id"]).all()


def test_dispatch_beats_nearest_available_on_the_truth(world: VolunteerWorld) -> None:
    table = compare_policies(world, rounds=2)
    best, nearest, rand = (table.loc[p] for p in ("optimal", "nearest", "random"))
    assert best["acceptance"] > nearest["acceptance"] + 0.05
    assert best["acceptance"] > rand["acceptance"]
    assert best["hours_gini"] < nearest["hours_gini"]
    assert best["fill_rate"] >= nearest["fill_rate"] - 0.005
    assert best["continuity"] > nearest["continuity"]


def test_member_list_holds_only_requests_they_can_take(world: VolunteerWorld) -> None:
    pool = VolunteerPool.build(world.volunteers, world.services, now=world.now)
    batch = RequestBatch.build(world.requests, pool)
    menu = volunteer_menu(pool, batch, ["v000003", "v000010"], n=4)
    ranks = menu.groupby("volunteer_id")["rank"].apply(list)
    assert list(ranks.index) == ["v000003", "v000010"]
    assert all(r == list(range(1, len(r) + 1)) and 1 <= len(r) <= 4 for r in ranks)
    assert (menu.groupby("volunteer_id")["score"].diff().dropna() <= 0).all()
    assert (menu["placed"] >= 1).all() and menu["reason"].str.len().gt(0).all()
    me = pool.table.set_index("volunteer_id").loc["v000003"]
    taken = world.requests.set_index("request_id").loc[
        menu.loc[menu.volunteer_id == "v000003", "request_id"]
    ]
    skilled = taken[taken["kind"] == "专业技能互助"]
    assert all(set(s) & set(me["skills"]) for s in skilled["skills"])
    with pytest.raises(DataError, match="unknown volunteer ids"):
        volunteer_menu(pool, batch, ["nobody"])
