"""Member selection (recommend.selection): a group from ids, an org subtree, an attribute
filter or a callable, on the shared small platform."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.errors import ConfigError, DataError, NotFittedError
from recommend.selection import describe, filter_mask, group_members, org_members


@pytest.fixture(scope="module")
def model(small_dataset: rc.Dataset) -> rc.Popularity:
    """Any fitted model: selection reads only its training members and orgs."""
    return rc.Popularity().fit(small_dataset)


def _orgs_below(orgs: pd.DataFrame, org: str) -> set[str]:
    out, frontier = {org}, {org}
    while frontier:
        frontier = set(orgs.loc[orgs["parent_id"].isin(frontier), "org_id"]) - out
        out |= frontier
    return out


def test_ids_are_kept_as_given_without_duplicates(model: rc.Popularity) -> None:
    got = group_members(model, ["m000003", "ghost", "m000001", "m000003"])
    assert got.tolist() == ["m000003", "ghost", "m000001"] and got.dtype == object
    assert group_members(model, np.array(["b", "a"])).tolist() == ["b", "a"]
    assert group_members(model, []).tolist() == []


def test_org_group_includes_the_orgs_below(
    small_platform: rc.Platform, model: rc.Popularity
) -> None:
    orgs, members = small_platform.orgs, small_platform.members
    committee = orgs.loc[orgs["kind"] == "committee", "org_id"].iloc[0]
    below = _orgs_below(orgs, committee)
    assert len(below) > 1  # the committee really has sub-orgs
    expected = set(members.loc[members["org_id"].isin(below), "member_id"])
    got = group_members(model, committee)
    assert set(got) == expected and len(got) == len(expected)
    # A branch: its own members only.
    branch = members["org_id"].value_counts().index[0]
    own = members.loc[members["org_id"] == branch, "member_id"]
    assert group_members(model, branch).tolist() == own.tolist()
    assert org_members(model, branch, None).tolist() == own.tolist()


def test_unknown_org(model: rc.Popularity) -> None:
    with pytest.raises(DataError, match="org 'nowhere' is unknown"):
        group_members(model, "nowhere")


def test_attribute_filters(small_platform: rc.Platform, model: rc.Popularity) -> None:
    mem = small_platform.members
    retired = group_members(model, {"occupation": "retired"})
    assert set(retired) == set(mem.loc[mem["occupation"] == "retired", "member_id"])
    both = group_members(model, {"occupation": "retired", "mobile": "true"})
    assert set(both) == set(mem.loc[(mem["occupation"] == "retired") & mem["mobile"], "member_id"])
    year = model.dataset_.now.year
    old = group_members(model, {"age_band": ["60-69", "70+"]})
    assert set(old) == set(mem.loc[year - mem["birth_year"] >= 60, "member_id"])
    either = group_members(model, {"occupation": ("retired", "student")})
    assert set(either) == set(mem.loc[mem["occupation"].isin(["retired", "student"]), "member_id"])
    with pytest.raises(ConfigError, match="the members table has no column 'favourite_food'"):
        group_members(model, {"favourite_food": "dumplings"})


def test_callable_filter(small_platform: rc.Platform, model: rc.Popularity) -> None:
    mem = small_platform.members
    got = group_members(model, lambda table: table["birth_year"] < 1960)
    assert set(got) == set(mem.loc[mem["birth_year"] < 1960, "member_id"])
    with pytest.raises(ConfigError, match=r"the member filter returned shape \(3,\)"):
        group_members(model, lambda table: np.ones(3, dtype=bool))


def test_given_member_table(model: rc.Popularity) -> None:
    table = pd.DataFrame(
        {"member_id": ["a", "b", "c"], "occupation": ["retired", "rural", "retired"]}
    )
    got = group_members(model, {"occupation": "retired"}, member_table=table)
    assert got.tolist() == ["a", "c"]
    with pytest.raises(ConfigError, match="member_table has no member_id column"):
        group_members(
            model, {"occupation": "retired"}, member_table=table.drop(columns="member_id")
        )
    with pytest.raises(ConfigError, match="filter age_band needs a birth_year column"):
        group_members(model, {"age_band": "60-69"}, member_table=table)


def test_filter_mask_matches_text_to_values() -> None:
    table = pd.DataFrame(
        {"birth_year": [1960, 1985, 1960], "mobile": [True, False, None], "x": ["a", "B", "b"]}
    )
    now = pd.Timestamp("2024-06-30")
    assert filter_mask(table, {"birth_year": "1960"}, now).tolist() == [True, False, True]
    assert filter_mask(table, {"mobile": "TRUE"}, now).tolist() == [True, False, False]
    assert filter_mask(table, {"x": "b"}, now).tolist() == [False, True, True]  # any case
    assert filter_mask(table, {"age_band": "60-69"}, now).tolist() == [True, False, True]
    assert filter_mask(table, {}, now).tolist() == [True] * 3


def test_refusals(model: rc.Popularity) -> None:
    with pytest.raises(ConfigError, match="pass a list of member ids, an org id or a filter"):
        group_members(model, pd.DataFrame({"member_id": ["a"]}))
    with pytest.raises(NotFittedError):
        group_members(rc.Popularity(), ["a"])


def test_describe() -> None:
    assert describe("b1") == "org 'b1'"
    assert describe(7) == "org 7"
    assert describe({"occupation": "retired", "mobile": True}) == (
        "where occupation='retired', mobile=True"
    )
    assert describe(lambda t: t) == "of the member filter"
    assert describe(["a", "b"]) == "of the given member ids"
