"""MemberRequest (recommend.engine.request): ids resolved against the model, the unknown
policy, and member attributes from the request and the training data."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from helpers import FixedFactors

from recommend.engine import MemberRequest, serving_state
from recommend.errors import DataError


def _make(model: FixedFactors, ids: object, attrs=None, unknown: str = "fallback") -> MemberRequest:
    return MemberRequest.make(model, serving_state(model), ids, attrs, unknown)


@pytest.mark.parametrize(
    ("ids", "given", "dtype", "idx"),
    [
        (["m1", "ghost", "m3"], ["m1", "ghost", "m3"], object, [1, -1, 3]),
        (["m1", "m1"], ["m1", "m1"], object, [1, 1]),  # duplicates get a menu each
        ("m2", ["m2"], object, [2]),
        (np.str_("m2"), ["m2"], object, [2]),
        (7, [7], np.int64, [-1]),
        (np.int64(7), [7], np.int64, [-1]),
        ([7, 8], [7, 8], np.int64, [-1, -1]),
        (np.array(["m4", "m0"]), ["m4", "m0"], object, [4, 0]),
        (pd.Index(["m0"]), ["m0"], object, [0]),
        (("m3", 5), ["m3", 5], object, [3, -1]),  # mixed ids stay as given
        ([], [], object, []),
    ],
)
def test_ids_are_resolved_as_given(
    tiny_model: FixedFactors, ids: object, given: list, dtype: type, idx: list[int]
) -> None:
    req = _make(tiny_model, ids)
    assert req.ids.tolist() == given
    assert req.ids.dtype == dtype
    assert req.idx.dtype == np.int64 and req.idx.tolist() == idx
    assert req.attributes is None


def test_strings_stay_python_strings(tiny_model: FixedFactors) -> None:
    req = _make(tiny_model, ["m1", "a-much-longer-id"])
    assert [type(v) for v in req.ids.tolist()] == [str, str]


def test_unknown_raise_names_the_unknown_members(tiny_model: FixedFactors) -> None:
    with pytest.raises(
        DataError,
        match=re.escape(
            "1 member id(s) unknown to the model: ['stranger']; pass unknown='fallback' for a "
            "cold-start menu"
        ),
    ):
        _make(tiny_model, ["m1", "stranger", "stranger"], unknown="raise")
    many = [f"x{i}" for i in range(12)]
    with pytest.raises(
        DataError, match=re.escape(f"12 member id(s) unknown to the model: {many[:10]} ...")
    ):
        _make(tiny_model, many, unknown="raise")
    assert _make(tiny_model, ["m1", "m0"], unknown="raise").idx.tolist() == [1, 0]


def test_of_indices() -> None:
    req = MemberRequest.of_indices(np.array([3, 0], dtype=np.int32))
    assert req.idx.dtype == np.int64 and req.idx.tolist() == [3, 0]
    assert req.ids.tolist() == [3, 0] and req.attributes is None


def test_attributes_are_validated_and_indexed_by_member(tiny_model: FixedFactors) -> None:
    attrs = pd.DataFrame({"member_id": ["new"], "org_id": ["b2"], "occupation": ["retired"]})
    req = _make(tiny_model, ["new"], attrs)
    assert req.attributes is not None
    assert req.attributes.index.tolist() == ["new"]
    assert req.attributes.loc["new", "org_id"] == "b2"
    with pytest.raises(DataError, match="personal columns"):
        _make(tiny_model, ["new"], attrs.assign(name="张三"))


def test_attribute_rows_prefer_the_request_then_the_training_members(
    tiny_model: FixedFactors,
) -> None:
    attrs = pd.DataFrame(
        {
            "member_id": ["new", "m4"],
            "org_id": ["b2", None],
            "occupation": ["rural", "student"],
        }
    )
    req = _make(tiny_model, ["m0", "new", "m4", "ghost"], attrs)
    rows = req.attribute_rows(serving_state(tiny_model), np.array([0, 1, 2, 3]))
    assert rows.columns[0] == "member_id"
    assert rows["member_id"].tolist() == ["m0", "new", "m4", "ghost"]
    # m0: training branch only (what a saved model keeps: no personal attributes, so
    # answers do not change with a save); new: given; m4: given occupation, training
    # branch (none given); ghost: nothing known.
    assert pd.isna(rows["occupation"].iloc[0])
    assert rows["occupation"].tolist()[1:3] == ["rural", "student"]
    assert rows["org_id"].tolist()[:3] == ["b1", "b2", "b1"]
    assert "birth_year" not in rows.columns
    assert rows.drop(columns="member_id").iloc[3].isna().all()
    # A subset of the rows, in the order asked.
    sub = req.attribute_rows(serving_state(tiny_model), np.array([2, 0]))
    assert sub["member_id"].tolist() == ["m4", "m0"]
    assert sub["org_id"].tolist() == ["b1", "b1"]
    assert sub["occupation"].tolist()[0] == "student"


def test_attribute_rows_without_any_attributes(tiny_model: FixedFactors) -> None:
    req = _make(tiny_model, ["ghost", "m1"])
    rows = req.attribute_rows(serving_state(tiny_model), np.array([0, 1]))
    assert rows["member_id"].tolist() == ["ghost", "m1"]
    assert rows["org_id"].isna().tolist() == [True, False]


def test_given_orgs(tiny_model: FixedFactors) -> None:
    attrs = pd.DataFrame({"member_id": ["new", "m4", "m1"], "org_id": ["b2", None, "b1"]})
    req = _make(tiny_model, ["m0", "new", "m4", "m1"], attrs)
    assert req.given_orgs(np.arange(4)) == [None, "b2", None, "b1"]
    numbered = pd.DataFrame({"member_id": ["new"], "org_id": [7]})  # integer org ids
    assert _make(tiny_model, ["new"], numbered).given_orgs(np.arange(1)) == ["7"]
    assert req.given_orgs(np.array([1])) == ["b2"]
    no_org = _make(tiny_model, ["new"], pd.DataFrame({"member_id": ["new"], "occupation": ["x"]}))
    assert no_org.given_orgs(np.arange(1)) == [None]
    assert _make(tiny_model, ["m0", "m1"]).given_orgs(np.arange(2)) == [None, None]


@pytest.mark.parametrize(
    ("ids", "normalised", "idx"),
    [
        (" m1 ", ["m1"], [1]),
        ("ｍ1", ["m1"], [1]),
        (np.str_("m\u200b1"), ["m1"], [1]),
        ([" m1", "ｍ２", "m\u200b3", "m4"], ["m1", "m2", "m3", "m4"], [1, 2, 3, 4]),
        (pd.Index(["\ufeffm0 "]), ["m0"], [0]),
        ([" ghost "], ["ghost"], [-1]),
    ],
)
def test_request_ids_are_normalised_as_at_load(
    tiny_model: FixedFactors, ids: object, normalised: list[str], idx: list[int]
) -> None:
    req = _make(tiny_model, ids)
    assert req.ids.tolist() == normalised and req.idx.tolist() == idx


def test_a_spaced_or_full_width_id_gets_the_members_own_menu(tiny_model: FixedFactors) -> None:
    import recommend as rc

    want = rc.member_menu(tiny_model, "m3", n=5)
    assert set(want["route"]) == {"personal"}
    for spelling in (" m3 ", "ｍ３", "m\u200b3"):
        got = rc.member_menu(tiny_model, spelling, n=5)
        pd.testing.assert_frame_equal(got, want)
    # Known under one spelling is known under all: no cold-start error.
    assert len(rc.member_menu(tiny_model, [" m3"], n=5, unknown="raise")) == 5
