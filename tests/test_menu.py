"""The member and lecturer menus (recommend.menu): frames, columns, request order, ids as
given, options wiring, threads, consistent answers while update() folds members in. The
rules themselves are tested in ``tests/engine``."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pandas as pd
import pytest
from helpers import CHANNEL_OF, COURSES, FixedFactors, Hybrid, events_frame, tiny_courses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recommend as rc
from recommend.data.dataset import Dataset
from recommend.engine import MemberRequest, MenuOptions, menu_rows, serving_state
from recommend.errors import ConfigError, DataError
from recommend.menu import (
    COMPULSORY_COLUMNS,
    MENU_COLUMNS,
    ROUTES,
    compulsory_courses,
    lecturer_menu,
    member_menu,
)
from recommend.models import make_model
from recommend.schema import CHANNELS


def _menu(model: FixedFactors, member: object, **kw: object) -> list[str]:
    return member_menu(model, member, **kw)["course_id"].tolist()  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the frame


def test_columns_dtypes_and_ranks(tiny_model: FixedFactors) -> None:
    menu = member_menu(tiny_model, ["m1", "m0"], n=4)
    assert tuple(menu.columns) == MENU_COLUMNS
    assert menu["score"].dtype == np.float32
    assert menu["rank"].dtype == np.int32
    assert pd.api.types.is_string_dtype(menu["reason"])
    assert pd.api.types.is_string_dtype(menu["route"])
    assert menu["member_id"].tolist() == ["m1"] * 4 + ["m0"] * 4  # request order
    for _, rows in menu.groupby("member_id"):
        assert rows["rank"].tolist() == [1, 2, 3, 4]
        assert rows["course_id"].is_unique
    assert (menu["route"] == "personal").all()


@pytest.mark.parametrize(
    "options",
    [
        {"n": 4},
        {"n": 3, "exclude": "completed", "max_pins": 1, "diversity": 0.5},
        {"n": 5, "channel": [CHANNELS[0], CHANNELS[2]], "max_minutes": 12, "now": "2025-07-01"},
        {"n": 2, "pin_compulsory": False, "exclude": "none", "only_published": False},
    ],
)
def test_the_frame_holds_the_engine_rows(tiny_model: FixedFactors, options: dict) -> None:
    ids = ["m3", "ghost", "m0", "m4", "m3"]
    menu = member_menu(tiny_model, ids, **options)
    state = serving_state(tiny_model)
    opts = MenuOptions(**options)
    request = MemberRequest.make(tiny_model, state, ids, None, "fallback")
    rows = menu_rows(tiny_model, state, request, opts, state.course_filter(opts))
    assert menu["member_id"].tolist() == [ids[p] for p in rows.pos.tolist()]
    assert menu["course_id"].tolist() == [COURSES[c] for c in rows.course.tolist()]
    np.testing.assert_array_equal(menu["score"], rows.score)
    np.testing.assert_array_equal(menu["rank"], rows.rank)
    assert menu["reason"].tolist() == rows.reason.tolist()
    assert menu["route"].tolist() == [ROUTES[r] for r in rows.route.tolist()]
    assert set(menu["route"]) == {"personal", "cold_global"}


def test_recommend_delegates_to_the_menu(tiny_model: FixedFactors) -> None:
    pd.testing.assert_frame_equal(
        tiny_model.recommend(["m1"], n=3), member_menu(tiny_model, ["m1"], n=3)
    )


def test_ids_are_shown_as_given(tiny_model: FixedFactors) -> None:
    one = member_menu(tiny_model, "m1", n=2)
    assert one["member_id"].tolist() == ["m1", "m1"]
    unknown = member_menu(tiny_model, [7, 8], n=2)
    assert unknown["member_id"].tolist() == [7, 7, 8, 8]
    assert unknown["member_id"].dtype == np.int64


def test_empty_request(tiny_model: FixedFactors) -> None:
    menu = member_menu(tiny_model, [], n=3)
    assert menu.empty and tuple(menu.columns) == MENU_COLUMNS
    assert menu["score"].dtype == np.float32 and menu["rank"].dtype == np.int32


def test_without_reasons_the_column_is_empty(tiny_model: FixedFactors) -> None:
    menu = member_menu(tiny_model, ["m1", "ghost"], n=3, with_reasons=False)
    assert (menu["reason"] == "").all() and len(menu) == 6


def test_mixed_routes_keep_request_order(tiny_dataset: Dataset) -> None:
    model = Hybrid().fit(tiny_dataset)
    menu = member_menu(model, ["ghost", "m1", "m4", "m0"], n=2)
    assert menu["member_id"].tolist() == ["ghost"] * 2 + ["m1"] * 2 + ["m4"] * 2 + ["m0"] * 2
    assert menu.groupby("member_id", sort=False)["route"].first().tolist() == [
        "cold_global",
        "personal",
        "cold_features",
        "personal",
    ]


# ---------------------------------------------------------------------------- options


def test_options_are_validated(tiny_model: FixedFactors) -> None:
    with pytest.raises(ConfigError, match=r"diversity must be a number in \[0, 1\]"):
        member_menu(tiny_model, "m0", diversity=1.5)
    with pytest.raises(ConfigError, match=r"channel \['cooking'\] is not a channel"):
        member_menu(tiny_model, "m0", channel="cooking")


def test_unknown_members_can_raise(tiny_model: FixedFactors) -> None:
    with pytest.raises(DataError, match=r"unknown to the model: \['stranger'\]"):
        member_menu(tiny_model, ["m1", "stranger"], unknown="raise")


def test_member_attributes_reach_the_engine(tiny_model: FixedFactors) -> None:
    attrs = pd.DataFrame({"member_id": ["new"], "org_id": ["b2"]})
    menu = member_menu(tiny_model, "new", n=3, member_attributes=attrs)
    assert menu["course_id"].tolist()[:2] == ["c10", "c13"]  # b2's compulsory courses


def test_moved_names_warn_and_point_to_the_engine(tiny_model: FixedFactors) -> None:
    import recommend.menu as menu_module

    with pytest.warns(DeprecationWarning, match="recommend.menu.menu_state moved to"):
        moved = menu_module.menu_state
    assert moved(tiny_model) is serving_state(tiny_model)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        menu_module.nothing_here  # noqa: B018


# ---------------------------------------------------------------------------- threads


def test_concurrent_calls_equal_sequential(tiny_dataset: Dataset) -> None:
    m = FixedFactors({"m3": {"c03": 40.0}}).fit(tiny_dataset)  # fresh: caches built under load
    calls = [
        dict(member_ids=["m0", "m1"], n=4),
        dict(member_ids="m2", n=3, exclude="completed", diversity=0.5),
        dict(member_ids=["m3", "ghost"], n=5, channel=CHANNELS[0]),
        dict(member_ids="m4", n=3, max_minutes=8),
        dict(member_ids=["m1", "m2", "m3"], n=6, diversity=1.0, now="2025-12-01"),
    ]
    results: dict[tuple[int, int], pd.DataFrame] = {}
    barrier = threading.Barrier(8)

    def work(t: int) -> None:
        barrier.wait()
        for r in range(10):
            for c, kw in enumerate(calls):
                if (r + t + c) % 3 == 0:
                    results[(t, r * len(calls) + c)] = member_menu(m, **kw)  # type: ignore[arg-type]

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    expected = [member_menu(m, **kw) for kw in calls]  # type: ignore[arg-type]
    assert len(results) > 100
    for (_, key), frame in results.items():
        pd.testing.assert_frame_equal(frame, expected[key % len(calls)])


# ---------------------------------------------------------------------------- menus and update

#: m1's history after an update: two courses studied, two completed (c09 compulsory).
_NEW_M1 = [("m1", "c12", "view"), ("m1", "c13", "complete"), ("m1", "c11", "view")]
_NEW_M1 += [("m1", "c09", "complete")]


def _events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return events_frame([(m, c, e, "2024-03-11") for m, c, e in rows])


def _rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    cols = ["member_id", "course_id", "score", "reason", "route"]
    return list(frame[cols].itertuples(index=False, name=None))


@pytest.mark.parametrize(
    "name", ["ease", "rp3beta", "edlae", "fusion", "als", "bpr", "item_knn", "lightfm"]
)
@pytest.mark.parametrize("menu", ["member", "lecturer"])
def test_an_update_landing_mid_call_leaves_the_menu_before_it(
    name: str, menu: str, tiny_dataset: Dataset
) -> None:
    # The update runs (in a writer thread, to its end) between the moment the call read
    # m1's history and the moment it scores m1: the call still answers from one state.
    model = make_model(name).fit(tiny_dataset)

    def call() -> list[tuple[object, ...]]:
        if menu == "lecturer":
            return list(lecturer_menu(model, "m1", n=4, exclude="seen").itertuples(index=False))
        return _rows(member_menu(model, "m1", n=6))

    before = call()
    score_block = model.score_block
    landed: list[bool] = []

    def scores_after_an_update(idx: np.ndarray) -> np.ndarray:
        if not landed:
            writer = threading.Thread(target=model.update, args=("m1", _events(_NEW_M1)))
            writer.start()
            writer.join()
            landed.append(True)
        return score_block(idx)

    model.score_block = scores_after_an_update  # type: ignore[method-assign]
    during = call()
    del model.score_block
    after = call()
    assert landed and after != before
    assert during == before


@pytest.mark.parametrize("name", ["ease", "als"])
def test_menus_read_during_updates_are_the_before_or_after_menu(
    name: str, tiny_dataset: Dataset
) -> None:
    # A writer folds m1 and m3 in again and again, alternating two histories each; readers
    # in other threads ask for their menus meanwhile. Every menu must be one of the menus
    # computed single-threaded for the two histories.
    model = make_model(name).fit(tiny_dataset)
    histories = {
        "m1": (_events(_NEW_M1), _events([("m1", "c02", "view"), ("m1", "c03", "view")])),
        "m3": (
            _events([("m3", "c00", "complete"), ("m3", "c13", "complete")]),
            _events([("m3", "c06", "view"), ("m3", "c07", "view"), ("m3", "c05", "complete")]),
        ),
    }
    answers: dict[str, list[list[tuple[object, ...]]]] = {m: [] for m in histories}
    for member, pair in histories.items():
        for events in pair:
            model.update(member, events)
            answers[member].append(_rows(member_menu(model, member, n=6)))
        assert answers[member][0] != answers[member][1]
    updates = 60
    done = threading.Event()
    bad: list[tuple[str, list[tuple[object, ...]]]] = []
    reads = [0] * 4
    start = threading.Barrier(5)

    def write() -> None:
        start.wait()
        try:
            for i in range(updates):
                for member, pair in histories.items():
                    model.update(member, pair[i % 2])
        finally:
            done.set()

    def read(t: int) -> None:
        start.wait()
        member = "m1" if t % 2 else "m3"
        while not done.is_set():
            got = _rows(member_menu(model, member, n=6))
            reads[t] += 1
            if got not in answers[member]:
                bad.append((member, got))

    threads = [threading.Thread(target=write)]
    threads += [threading.Thread(target=read, args=(t,)) for t in range(4)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns far more often: more interleavings
    try:
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(switch)
    assert min(reads) > 0
    assert bad == []


# ---------------------------------------------------------------------------- lecturers


def test_lecturer_menu_ranks_the_favourite_lecturer_first(tiny_model: FixedFactors) -> None:
    lect = lecturer_menu(tiny_model, "m3", n=4)
    assert tuple(lect.columns) == ("lecturer_id", "score", "rank", "courses", "top_course_id")
    # m3 scores L3's c03, c11 at 40 and 39; c15 is unpublished. Mean of the top 3 of L3's
    # published courses: (40 + 39 + 9) / 3.
    assert lect["lecturer_id"].iloc[0] == "L3"
    assert lect["top_course_id"].iloc[0] == "c03"
    assert lect["score"].iloc[0] == pytest.approx((40 + 39 + 9) / 3)
    assert lect["courses"].iloc[0] == 3
    assert lect["rank"].tolist() == [1, 2, 3, 4]
    assert lect["score"].is_monotonic_decreasing


def test_lecturer_menu_respects_filters(tiny_model: FixedFactors) -> None:
    lect = lecturer_menu(tiny_model, "m3", channel=CHANNELS[1])  # c04-c07: L0..L3 once each
    assert lect["courses"].tolist() == [1, 1, 1, 1]
    assert lect["lecturer_id"].tolist() == ["L0", "L1", "L2", "L3"]
    lect = lecturer_menu(tiny_model, "m3", exclude="seen", top=1)  # m3 saw c06 and c07
    assert lect.set_index("lecturer_id").loc["L3", "top_course_id"] == "c03"


def test_lecturer_menu_for_a_cold_member(tiny_model: FixedFactors) -> None:
    lect = lecturer_menu(tiny_model, "ghost", n=2)
    assert len(lect) == 2
    with pytest.raises(DataError):
        lecturer_menu(tiny_model, "ghost", unknown="raise")


def test_lecturer_menu_takes_one_member(tiny_model: FixedFactors) -> None:
    with pytest.raises(ConfigError, match="lecturer_menu takes one member id"):
        lecturer_menu(tiny_model, ["m1", "m2"])
    with pytest.raises(ConfigError, match="top must be a positive integer"):
        lecturer_menu(tiny_model, "m1", top=0)


def test_lecturer_menu_without_lecturers(tiny_dataset: Dataset) -> None:
    ds = Dataset.from_frames(
        tiny_dataset.events.drop(columns=["member_idx", "course_idx"]),
        courses=tiny_courses().drop(columns="lecturer_id"),
    )
    lect = lecturer_menu(FixedFactors().fit(ds), "m1")
    assert lect.empty and tuple(lect.columns) == (
        "lecturer_id",
        "score",
        "rank",
        "courses",
        "top_course_id",
    )


# ---------------------------------------------------------------------------- properties


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    member=st.sampled_from(["m0", "m1", "m2", "m3", "m4", "ghost"]),
    n=st.integers(1, 20),
    exclude=st.sampled_from(["seen", "completed", "none"]),
    channel=st.sampled_from([None, CHANNELS[0], CHANNELS[2], list(CHANNELS[1:3])]),
    max_minutes=st.sampled_from([None, 3.0, 9.5]),
    diversity=st.sampled_from([0.0, 0.3, 1.0]),
)
def test_menus_are_well_formed(
    tiny_model: FixedFactors,
    member: str,
    n: int,
    exclude: str,
    channel: object,
    max_minutes: float | None,
    diversity: float,
) -> None:
    menu = member_menu(
        tiny_model,
        member,
        n=n,
        exclude=exclude,  # type: ignore[arg-type]
        channel=channel,  # type: ignore[arg-type]
        max_minutes=max_minutes,
        diversity=diversity,
    )
    courses = tiny_courses().set_index("course_id")
    assert len(menu) <= n
    assert menu["rank"].tolist() == list(range(1, len(menu) + 1))
    assert menu["course_id"].is_unique
    picked = courses.loc[menu["course_id"]]
    if channel is not None:
        wanted = {channel} if isinstance(channel, str) else set(channel)
        assert set(picked["category"]) <= wanted
        assert {CHANNEL_OF[c] for c in menu["course_id"]} <= wanted
    if max_minutes is not None:
        assert (picked["duration_seconds"] <= max_minutes * 60).all()
    assert "c15" not in set(menu["course_id"])


# ---------------------------------------------------------------------------- compulsory


def test_compulsory_courses_list_the_branch_courses_still_to_study(
    tiny_model: FixedFactors,
) -> None:
    got = compulsory_courses(tiny_model, ["m0", "ghost", "m2"], lang="en")
    assert tuple(got.columns) == COMPULSORY_COLUMNS
    # m0 (b1): c09 before c10 by score; m2 (b2) completed c10; ghost has no branch.
    assert got[["member_id", "course_id", "rank"]].values.tolist() == [
        ["m0", "c09", 1],
        ["m0", "c10", 2],
        ["m2", "c13", 1],
    ]
    assert (got["reason"] == "compulsory for your branch").all()
    assert compulsory_courses(tiny_model, ["m0"])["reason"].tolist() == ["本支部必学"] * 2
    # A member's branch given at request time.
    attrs = pd.DataFrame({"member_id": ["new"], "org_id": ["b2"]})
    new = compulsory_courses(tiny_model, ["new"], member_attributes=attrs)
    assert new["course_id"].tolist() == ["c10", "c13"]  # by the branch's popularity
    # The menu pins the first of them; the list keeps them all.
    menu = member_menu(tiny_model, ["m0"], n=4, max_pins=1, lang="en")
    assert menu["course_id"].iloc[0] == "c09"
    assert (menu["reason"] == "compulsory for your branch").sum() == 1


def test_by_default_a_menu_pins_two_compulsory_courses(
    sample_dataset: Dataset,
) -> None:
    """A branch's long compulsory list no longer fills the member's own menu: two pins by
    default, the rest in the compulsory list."""
    model = rc.EASE(l2=300.0).fit(sample_dataset)
    ids = model.member_ids_.external_ids[:300].tolist()
    full = compulsory_courses(model, ids)
    counts = full.groupby("member_id").size()
    crowded = counts[counts >= 5].index.tolist()[:20]
    assert crowded, "the sample has branches with long compulsory lists"
    menu = member_menu(model, crowded, n=5)
    pinned = (menu["reason"].str.startswith("本支部必学")).groupby(menu["member_id"]).sum()
    assert (pinned == 2).all()
    first_two = full[full["member_id"].isin(crowded) & (full["rank"] <= 2)]
    on_menu = menu[menu["rank"] <= 2]
    assert on_menu["course_id"].tolist() == first_two["course_id"].tolist()
    # Up to n, as before, on request.
    old = member_menu(model, crowded, n=5, max_pins=None)
    assert old["reason"].str.startswith("本支部必学").all()
