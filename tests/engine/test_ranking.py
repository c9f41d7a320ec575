"""Ranking (recommend.engine.ranking): rank_chunk applies pins, exclusions, the course
filter, the kernel, diversity and reasons; menu_rows runs a request through the routes;
MenuRows holds the rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import (
    COURSES,
    FixedFactors,
    RandomFactors,
    make_tiny_dataset,
    menu_lists,
    rank_members,
    tiny_courses,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend.data.dataset import Dataset
from recommend.engine import (
    REASON_COMPULSORY,
    REASON_GLOBAL,
    ROUTES,
    MemberRequest,
    MenuOptions,
    MenuRows,
    history_rows,
    menu_rows,
    rank_chunk,
    serving_state,
)
from recommend.engine import ranking as ranking_module
from recommend.schema import CHANNELS

# ---------------------------------------------------------------------------- MenuRows


def _rows(pos: list[int], rank: list[int], reason: list[str] | None = None) -> MenuRows:
    n = len(pos)
    return MenuRows(
        np.array(pos, np.int64),
        np.arange(n, dtype=np.int64) + 100,
        np.linspace(1.0, 0.0, n).astype(np.float32),
        np.array(rank, np.int32),
        np.zeros(n, np.int8),
        None if reason is None else np.array(reason, dtype=object),
    )


def test_empty() -> None:
    plain, explained = MenuRows.empty(), MenuRows.empty(with_reasons=True)
    assert plain.pos.size == 0 and plain.reason is None
    assert explained.reason is not None and explained.reason.size == 0
    assert (plain.pos.dtype, plain.course.dtype, plain.score.dtype) == (
        np.int64,
        np.int64,
        np.float32,
    )
    assert (plain.rank.dtype, plain.route.dtype) == (np.int32, np.int8)


def test_in_request_order_sorts_members_stably() -> None:
    rows = _rows([2, 0, 2, 1, 0], [1, 1, 2, 1, 2], ["a", "b", "c", "d", "e"])
    got = rows.in_request_order()
    assert got.pos.tolist() == [0, 0, 1, 2, 2]
    assert got.rank.tolist() == [1, 2, 1, 1, 2]
    assert got.course.tolist() == [101, 104, 103, 100, 102]
    assert got.reason.tolist() == ["b", "e", "d", "a", "c"]
    np.testing.assert_array_equal(got.score, rows.score[[1, 4, 3, 0, 2]])
    ordered = _rows([0, 0, 1], [1, 2, 1])
    assert ordered.in_request_order() is ordered
    one = _rows([3], [1])
    assert one.in_request_order() is one


def test_concat_and_take() -> None:
    a, b = _rows([0, 0], [1, 2], ["x", "y"]), _rows([1], [1], ["z"])
    both = MenuRows.concat([a, b])
    assert both.pos.tolist() == [0, 0, 1] and both.reason.tolist() == ["x", "y", "z"]
    assert MenuRows.concat([a]) is a
    assert MenuRows.concat([]).pos.size == 0
    assert MenuRows.concat([a, _rows([1], [1])]).reason is None  # not all explained
    taken = both.take(np.array([2, 0]))
    assert taken.pos.tolist() == [1, 0] and taken.reason.tolist() == ["z", "x"]
    assert both.take(slice(1, 3)).course.tolist() == [101, 100]


# ---------------------------------------------------------------------------- rank_chunk


def test_rows_of_a_chunk(tiny_model: FixedFactors) -> None:
    rows = rank_members(tiny_model, ["m1", "m3"], n=3)
    assert rows.pos.tolist() == [0, 0, 0, 1, 1, 1]
    assert rows.rank.tolist() == [1, 2, 3] * 2
    assert (rows.route == ROUTES.index("personal")).all()
    # m1: b1's pins, then its best; m3: b2's pins, then its boosted c03 (40).
    assert menu_lists(rows) == [["c09", "c10", "c00"], ["c10", "c13", "c03"]]
    np.testing.assert_array_equal(rows.score, [7, 6, 16, 6, 3, 40])


def test_fewer_courses_than_n(tiny_model: FixedFactors) -> None:
    rows = rank_members(tiny_model, ["m1"], n=10, channel=CHANNELS[1], pin_compulsory=False)
    assert menu_lists(rows) == [["c04", "c05", "c06", "c07"]]


def test_filters_on_a_menu(tiny_model: FixedFactors) -> None:
    def menu(member: str, **options: object) -> list[str]:
        return menu_lists(rank_members(tiny_model, [member], **options), 1)[0]

    assert menu("m1", n=10, channel=CHANNELS[1], pin_compulsory=False) == [
        "c04",
        "c05",
        "c06",
        "c07",
    ]
    two = menu("m1", n=10, channel=[CHANNELS[0], CHANNELS[3]], pin_compulsory=False)
    assert two == ["c00", "c01", "c12", "c13", "c14"]  # c02, c03 seen; c15 unpublished
    # 1, 2, 5 minutes; c02 and c03 are seen.
    assert menu("m1", n=16, max_minutes=5, pin_compulsory=False) == ["c00", "c01", "c04"]
    assert "c14" not in menu("m1", n=16, max_minutes=60, pin_compulsory=False)
    assert "c15" not in menu("m3", n=16)
    assert "c15" in menu("m3", n=16, now="2025-07-01")
    assert "c15" in menu("m3", n=16, only_published=False)
    assert menu("m3", n=16, now="2023-01-01") == []  # nothing published yet


@pytest.mark.parametrize("dense", [True, False])
def test_diversity_spreads_a_menu_over_channels(tiny_model: FixedFactors, dense: bool) -> None:
    # Channels come in runs of four courses; scores fall with the course index.
    def menus(**options: object) -> list[list[str]]:
        return menu_lists(rank_members(tiny_model, ["m1", "m0"], n=4, dense=dense, **options))

    assert menus(pin_compulsory=False) == [
        ["c00", "c01", "c04", "c05"],
        ["c01", "c02", "c03", "c04"],
    ]
    spread = menus(pin_compulsory=False, diversity=0.9)
    assert spread == [["c00", "c04", "c08", "c12"], ["c01", "c04", "c08", "c12"]]
    # Pins come first, and their channel (c09, c10: the third) counts as covered.
    rows = rank_members(tiny_model, ["m1", "m3"], n=4, diversity=0.9, dense=dense)
    assert menu_lists(rows) == [["c09", "c10", "c00", "c04"], ["c10", "c13", "c03", "c04"]]
    np.testing.assert_array_equal(rows.score, [7, 6, 16, 12, 6, 3, 40, 12])


def test_reasons_name_the_most_similar_studied_course(tiny_model: FixedFactors) -> None:
    # m0 studied c00 (first channel, completed) and c05 (second channel, viewed): each
    # course is explained by the studied course of its own channel.
    rows = rank_members(tiny_model, ["m0"], n=8, pin_compulsory=False)
    reasons = dict(zip(menu_lists(rows)[0], rows.reason.tolist(), strict=True))
    assert reasons["c01"].startswith("because you studied ")
    assert reasons["c01"].endswith("课程c00") and reasons["c03"].endswith("课程c00")
    assert reasons["c04"].endswith("课程c05") and reasons["c07"].endswith("课程c05")


def test_a_platform_channel_the_catalogue_lacks_gives_no_rows() -> None:
    model = FixedFactors().fit(make_tiny_dataset(tiny_courses().assign(category=CHANNELS[0])))
    for dense in (True, False):
        rows = rank_members(model, ["m1"], channel=CHANNELS[2], dense=dense)
        assert rows.pos.size == 0 and rows.reason is not None and rows.reason.size == 0


def test_route_reasons_and_given_orgs(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    options = MenuOptions(n=3, lang="en")
    idx = np.array([-1, 1], dtype=np.int64)
    dense = np.tile(np.arange(16, 0, -1, dtype=np.float32), (2, 1))
    rows = rank_chunk(
        tiny_model,
        state,
        options,
        state.course_filter(options),
        idx,
        history_rows(tiny_model.history_, idx),
        dense=dense,
        route_reasons=np.array([REASON_GLOBAL, None], dtype=object),
        orgs=["b2", None],
    )
    # The unknown member in b2 gets b2's pins and the route's reason for the rest.
    assert menu_lists(rows) == [["c10", "c13", "c00"], ["c09", "c10", "c00"]]
    assert rows.reason.tolist()[:3] == [REASON_COMPULSORY.text("en")] * 2 + [
        REASON_GLOBAL.text("en")
    ]
    assert rows.reason.tolist()[5].startswith("because you studied ")


OPTION_SETS = [
    {},
    {"exclude": "completed", "max_pins": 1},
    {"channel": CHANNELS[1], "max_minutes": 20},
    {"pin_compulsory": False, "exclude": "none", "only_published": False},
    {"diversity": 0.5, "max_pins": 2},
    {"with_reasons": False, "channel": [CHANNELS[0], CHANNELS[2]]},
]


@pytest.mark.parametrize("options", OPTION_SETS)
def test_dense_scores_and_factors_give_the_same_rows(
    random_factors: RandomFactors, branches_dataset: Dataset, options: dict
) -> None:
    """The kernel on the factors (the batch job) and on the member's dense scores (the
    member menu) rank alike: pins, exclusions, filter and diversity included."""
    counts = branches_dataset.interactions.getnnz(axis=1)
    members = branches_dataset.member_ids.external_ids[np.flatnonzero(counts > 0)[:150]]
    dense = rank_members(random_factors, members, n=7, dense=True, **options)
    factors = rank_members(random_factors, members, n=7, dense=False, **options)
    for name in ("pos", "course", "rank", "route"):
        np.testing.assert_array_equal(getattr(dense, name), getattr(factors, name), err_msg=name)
    np.testing.assert_allclose(dense.score, factors.score, rtol=1e-5, atol=1e-5)
    if dense.reason is None:
        assert factors.reason is None
    else:
        assert dense.reason.tolist() == factors.reason.tolist()
    # The comparison covered full menus and pins.
    if "channel" not in options:
        assert (np.bincount(dense.pos) == 7).all()
    if options.get("pin_compulsory", True) and dense.reason is not None:
        assert REASON_COMPULSORY.text("en") in set(dense.reason.tolist())


# ---------------------------------------------------------------------------- a reference


_COURSES = tiny_courses()
_BRANCH = {"m0": "b1", "m1": "b1", "m2": "b2", "m3": "b2", "m4": "b1"}
_SEEN = {"m0": {0, 5}, "m1": {2, 3}, "m2": {4, 10}, "m3": {6, 7}, "m4": set()}
_DONE = {"m0": {0}, "m2": {10}}
_COMPULSORY = {"b1": [9, 10], "b2": [10, 13]}
_NOW = pd.Timestamp("2024-03-10")


def _reference(member: str, scores: np.ndarray, options: MenuOptions) -> list[int]:
    """A member's menu worked out course by course from the rules as documented."""
    allowed = []
    for j, course in _COURSES.iterrows():
        if options.channel is not None and course["category"] not in options.channel:
            continue
        if options.max_minutes is not None and not (
            course["duration_seconds"] <= options.max_minutes * 60
        ):
            continue
        if options.only_published and course["published_at"] > (options.now or _NOW):
            continue
        allowed.append(j)

    def best(courses: list[int]) -> list[int]:
        return sorted(courses, key=lambda c: (-scores[c], c))

    pins = []
    if options.pin_compulsory:
        done = _DONE.get(member, set())
        branch = [c for c in _COMPULSORY[_BRANCH[member]] if c in allowed and c not in done]
        pins = best(branch)[: options.pin_limit]
    excluded = {
        "seen": _SEEN[member],
        "completed": _DONE.get(member, set()),
        "none": set(),
    }[options.exclude]
    rest = best([c for c in allowed if c not in excluded and c not in pins])
    return pins + rest[: options.n - len(pins)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.data(),
    n=st.integers(1, 17),
    exclude=st.sampled_from(["seen", "completed", "none"]),
    channel=st.sampled_from([None, CHANNELS[0], CHANNELS[2], (CHANNELS[1], CHANNELS[3])]),
    max_minutes=st.sampled_from([None, 3.0, 9.5, 15.0]),
    pin_compulsory=st.booleans(),
    max_pins=st.sampled_from([None, 0, 1]),
    now=st.sampled_from([None, "2023-06-01", "2025-07-01"]),
    dense=st.booleans(),
)
def test_rank_chunk_equals_the_rules_worked_course_by_course(
    tiny_dataset: Dataset,
    data: st.DataObject,
    n: int,
    exclude: str,
    channel: object,
    max_minutes: float | None,
    pin_compulsory: bool,
    max_pins: int | None,
    now: str | None,
    dense: bool,
) -> None:
    members = ["m0", "m1", "m2", "m3", "m4"]
    # Small integer scores: many ties, broken by course index.
    scores = np.array(
        data.draw(
            st.lists(st.lists(st.integers(-3, 3), min_size=16, max_size=16), min_size=5, max_size=5)
        ),
        dtype=np.float32,
    )
    model = FixedFactors().fit(tiny_dataset)
    model.member_factors_ = model.member_factors_.copy()
    model.member_factors_[:, :16] = scores
    options = MenuOptions(
        n=n,
        exclude=exclude,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        max_minutes=max_minutes,
        pin_compulsory=pin_compulsory,
        max_pins=max_pins,
        now=now,
        with_reasons=False,
    )
    rows = rank_members(model, members, dense=dense, **options.as_dict())
    got = menu_lists(rows, len(members))
    expected = [
        [COURSES[c] for c in _reference(m, scores[i], options)] for i, m in enumerate(members)
    ]
    assert got == expected


# ---------------------------------------------------------------------------- menu_rows


def _request(model: FixedFactors, ids: list[object], **options: object):  # type: ignore[no-untyped-def]
    state = serving_state(model)
    opts = MenuOptions(**{"lang": "en", **options})  # type: ignore[arg-type]
    req = MemberRequest.make(model, state, ids, None, opts.unknown)
    return menu_rows(model, state, req, opts, state.course_filter(opts))


def test_menu_rows_keep_request_order_across_routes(tiny_model: FixedFactors) -> None:
    rows = _request(tiny_model, ["ghost", "m1", "m4", "m1"], n=2)
    assert rows.pos.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert [ROUTES[r] for r in rows.route[::2]] == [
        "cold_global",
        "personal",
        "cold_global",
        "personal",
    ]
    assert menu_lists(rows)[1] == menu_lists(rows)[3] == ["c09", "c10"]


def test_menu_rows_take_branches_from_member_attributes(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    opts = MenuOptions(n=3)
    # A new member and m1 (b1) both said to be in b2; m3 keeps its training branch (b2).
    attrs = pd.DataFrame({"member_id": ["ghost", "m1"], "org_id": ["b2", "b2"]})
    req = MemberRequest.make(tiny_model, state, ["ghost", "m1", "m3"], attrs, opts.unknown)
    rows = menu_rows(tiny_model, state, req, opts, state.course_filter(opts))
    assert menu_lists(rows) == [["c10", "c13", "c00"], ["c10", "c13", "c00"], ["c10", "c13", "c03"]]
    np.testing.assert_array_equal(rows.score[6:], [6, 3, 40])  # m3's own scores
    assert [ROUTES[r] for r in rows.route[::3]] == ["cold_global", "personal", "personal"]
    assert rows.reason.tolist()[2] == REASON_GLOBAL.text("zh")  # the cold route's reason
    assert rows.reason.tolist()[5].startswith("因为你学过《")


@pytest.mark.parametrize(
    "options",
    [
        {"n": 3},
        {"n": 1},
        {"n": 4, "max_pins": 1},
        {"n": 5, "exclude": "none", "pin_compulsory": False},
        {"n": 2, "channel": CHANNELS[2]},
    ],
)
@pytest.mark.parametrize("dense", [True, False])
def test_one_member_is_ranked_as_in_a_chunk(
    tiny_model: FixedFactors, options: dict[str, object], dense: bool
) -> None:
    for member in ("m0", "m1", "m2", "m3", "m4"):
        alone = rank_members(tiny_model, [member], dense=dense, **options)
        chunk = rank_members(tiny_model, [member, "m3"], dense=dense, **options)
        first = chunk.pos == 0
        for name in ("pos", "course", "score", "rank", "route"):
            np.testing.assert_array_equal(getattr(alone, name), getattr(chunk, name)[first])
        assert alone.reason.tolist() == chunk.reason[first].tolist()
    # m1 (b1): the two pins, then the best of the rest, with the model's scores.
    rows = rank_members(tiny_model, ["m1"], n=3, dense=dense)
    assert menu_lists(rows) == [["c09", "c10", "c00"]]
    assert rows.score.dtype == np.float32
    np.testing.assert_array_equal(rows.score, [7, 6, 16])


def test_menu_rows_of_an_empty_request(tiny_model: FixedFactors) -> None:
    rows = _request(tiny_model, [], n=3)
    assert rows.pos.size == 0 and rows.reason is not None
    assert _request(tiny_model, [], n=3, with_reasons=False).reason is None


def test_menu_rows_rank_in_chunks(
    tiny_model: FixedFactors, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ["m0", "ghost", "m1", "m2", "m3", "m4", "m0", "x"]
    whole = _request(tiny_model, ids, n=4, diversity=0.3)
    monkeypatch.setattr(ranking_module, "CHUNK", 2)
    chunked = _request(tiny_model, ids, n=4, diversity=0.3)
    for name in ("pos", "course", "score", "rank", "route"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(chunked, name))
    assert whole.reason.tolist() == chunked.reason.tolist()
