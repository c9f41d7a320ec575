"""The continue-learning rule (recommend.engine.continuing): unfinished courses (继续学习)
and next lectures (下一讲) after the compulsory pins.

On the tiny catalogue of ``helpers`` (scores 16 - j for c<j>; b1 made c09 and c10
compulsory) with series added: c04 .. c07 are lectures 1 .. 4 of series ``s1`` (by
``series_id``), c11 and c12 lectures 1 and 2 of 党史十讲 (by their titles only).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest
from helpers import COURSES, FixedFactors, events_frame, menu_lists, rank_members, tiny_courses

import recommend as rc
from recommend.data.dataset import Dataset
from recommend.data.synthetic import PRESETS
from recommend.engine import (
    DEFAULT_MAX_CONTINUE,
    MenuOptions,
    lecture_number,
    serving_state,
)
from recommend.errors import ConfigError


def _courses() -> pd.DataFrame:
    courses = tiny_courses()
    series = [None] * len(courses)
    order = [np.nan] * len(courses)
    for j, course in enumerate(("c04", "c05", "c06", "c07"), start=1):
        series[COURSES.index(course)] = "s1"
        order[COURSES.index(course)] = float(j)
    courses["series_id"] = series
    courses["series_order"] = order
    courses.loc[11, "title"] = "党史十讲（第一讲）"
    courses.loc[12, "title"] = "党史十讲（第2讲）"
    return courses


def _events() -> pd.DataFrame:
    return events_frame(
        [
            # m0 (b1): completed c00; started c02, c05, c01 (newest last), finished none.
            ("m0", "c00", "view", "2024-03-01T00:00:00"),
            ("m0", "c00", "complete", "2024-03-01T00:00:00"),
            ("m0", "c02", "view", "2024-03-01T00:00:00"),
            ("m0", "c02", "progress", "2024-03-01T00:05:00"),
            ("m0", "c05", "view", "2024-03-02T00:00:00"),
            ("m0", "c05", "progress", "2024-03-02T00:05:00"),
            ("m0", "c01", "view", "2024-03-05T00:00:00"),
            ("m0", "c01", "progress", "2024-03-05T00:05:00"),
            # m1 (b1): lectures 1 and 3 of s1 and lecture 1 of 党史十讲 completed.
            ("m1", "c04", "progress", "2024-03-03T00:00:00"),
            ("m1", "c04", "complete", "2024-03-03T00:00:00"),
            ("m1", "c06", "complete", "2024-03-04T00:00:00"),
            ("m1", "c11", "complete", "2024-03-05T00:00:00"),
            # m2 (b2): started and completed c03 (nothing to continue); viewed c08.
            ("m2", "c03", "progress", "2024-03-04T00:00:00"),
            ("m2", "c03", "complete", "2024-03-04T00:00:00"),
            ("m2", "c08", "view", "2024-03-06T00:00:00"),
            ("m3", "c15", "view", "2024-03-10T00:00:00"),
        ]
    )


@pytest.fixture(scope="module")
def model() -> FixedFactors:
    members = pd.DataFrame(
        {"member_id": ["m0", "m1", "m2", "m3"], "org_id": ["b1", "b1", "b2", "b2"]}
    )
    ds = Dataset.from_frames(_events(), courses=_courses(), members=members)
    return FixedFactors().fit(ds)


def test_lecture_numbers_from_titles() -> None:
    assert lecture_number("习近平新时代中国特色社会主义思想（第9讲）") == (
        "习近平新时代中国特色社会主义思想",
        9,
    )
    assert lecture_number("党章学习第十二课：党的纪律") == ("党章学习：党的纪律", 12)
    assert lecture_number("第二十三讲 基层治理") == ("基层治理", 23)
    assert lecture_number("基层治理（第１０讲）") == ("基层治理", 10)
    assert lecture_number("三会一课怎么开") is None
    assert lecture_number("（第3讲）") is None  # a number and nothing else: no series


def test_series_from_ids_and_titles(model: FixedFactors) -> None:
    series = serving_state(model).series()
    nxt = {
        COURSES[c]: COURSES[int(series.next_course[c])]
        for c in np.flatnonzero(series.next_course >= 0)
    }
    assert nxt == {"c04": "c05", "c05": "c06", "c06": "c07", "c11": "c12"}
    assert series.code[COURSES.index("c07")] >= 0 and series.next_course[COURSES.index("c07")] == -1
    # Ranks: each series in its order, one series after the other; none outside series.
    ranks = [int(series.rank[COURSES.index(c)]) for c in ("c04", "c05", "c06", "c07")]
    assert ranks == sorted(ranks) and ranks[-1] - ranks[0] == 3
    assert series.rank[COURSES.index("c12")] == series.rank[COURSES.index("c11")] + 1
    assert sorted(series.rank[series.rank >= 0].tolist()) == list(range(6))
    assert (series.rank[series.code < 0] == -1).all()


@pytest.mark.parametrize("dense", [True, False])
def test_unfinished_courses_after_the_compulsory_ones(model: FixedFactors, dense: bool) -> None:
    rows = rank_members(model, ["m0"], n=6, dense=dense)
    # Compulsory c09, c10; then the two most recently started (c01, then c05: c02 is
    # over the cap); then the best unseen courses.
    assert menu_lists(rows) == [["c09", "c10", "c01", "c05", "c03", "c04"]]
    assert rows.reason is not None
    assert rows.reason.tolist()[2:4] == [
        "continue learning: you have not finished 课程c01",
        "continue learning: you have not finished 课程c05",
    ]


def test_next_lecture_after_the_furthest_completed(model: FixedFactors) -> None:
    rows = rank_members(model, ["m1"], n=6, lang="zh")
    # s1: lectures 1 and 3 completed -> lecture 4 (c07), not the skipped c05; 党史十讲
    # lecture 1 -> lecture 2 (c12); best scored first.
    assert menu_lists(rows) == [["c09", "c10", "c07", "c12", "c00", "c01"]]
    assert rows.reason is not None
    assert rows.reason.tolist()[2:4] == [
        "下一讲：接着《课程c06》往下学",
        "下一讲：接着《党史十讲（第一讲）》往下学",
    ]


def test_kinds_alternate_up_to_the_cap() -> None:
    events = pd.concat(
        [
            _events(),
            events_frame(
                [
                    ("m1", "c01", "progress", "2024-03-06T00:00:00"),
                    ("m1", "c02", "progress", "2024-03-07T00:00:00"),
                ]
            ),
        ]
    )
    members = pd.DataFrame(
        {"member_id": ["m0", "m1", "m2", "m3"], "org_id": ["b1", "b1", "b2", "b2"]}
    )
    model = FixedFactors().fit(Dataset.from_frames(events, courses=_courses(), members=members))
    rows = rank_members(model, ["m1"], n=8, max_continue=3, pin_compulsory=False)
    # continue (newest first: c02), next (best: c07), continue (c01); c12 over the cap.
    assert menu_lists(rows)[0][:4] == ["c02", "c07", "c01", "c00"]


def test_off_and_cap_options(model: FixedFactors) -> None:
    off = rank_members(model, ["m0", "m1"], n=6, continue_learning=False)
    assert menu_lists(off) == [
        ["c09", "c10", "c03", "c04", "c06", "c07"],
        ["c09", "c10", "c00", "c01", "c02", "c03"],
    ]
    one = rank_members(model, ["m0"], n=6, max_continue=1)
    assert menu_lists(one) == [["c09", "c10", "c01", "c03", "c04", "c06"]]
    # The compulsory pins come first and the rest share what is left of n.
    small = rank_members(model, ["m0"], n=3)
    assert menu_lists(small) == [["c09", "c10", "c01"]]
    assert MenuOptions().continue_limit == DEFAULT_MAX_CONTINUE == 2
    assert MenuOptions(n=1).continue_limit == 1
    with pytest.raises(ConfigError, match="max_continue"):
        MenuOptions(max_continue=-1)


def test_filters_and_completions_folded_in(model: FixedFactors) -> None:
    # c05 lasts 6 minutes: a 5-minute request keeps only c01 (2 minutes).
    short = rank_members(model, ["m0"], n=6, max_minutes=5)
    assert "c05" not in menu_lists(short)[0] and "c01" in menu_lists(short)[0]
    # Completing c01 in events folded in with update() takes it off at once.
    folded = FixedFactors().fit(model.dataset_)
    events = _events()
    mine = pd.concat(
        [
            events[events["member_id"] == "m0"],
            events_frame([("m0", "c01", "complete", "2024-03-08T00:00:00")]),
        ]
    )
    folded.update("m0", mine)
    with folded.reading():
        rows = rank_members(folded, ["m0"], n=6)
    assert menu_lists(rows)[0][:4] == ["c09", "c10", "c05", "c02"]


def test_products_share_the_rule(model: FixedFactors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    menu = rc.member_menu(model, ["m0", "m1", "m2"], n=6)
    assert menu.groupby("member_id")["course_id"].apply(list).to_dict() == {
        "m0": ["c09", "c10", "c01", "c05", "c03", "c04"],
        "m1": ["c09", "c10", "c07", "c12", "c00", "c01"],
        "m2": ["c10", "c13", "c00", "c01", "c02", "c04"],
    }
    result = rc.run_batch(model, tmp_path / "out", n=6, progress=False)
    batch = pd.concat(pd.read_parquet(f) for f in result.files)
    assert batch.groupby("member_id")["course_id"].apply(list).to_dict() == (
        menu.groupby("member_id")["course_id"].apply(list).to_dict()
        | {"m3": rc.member_menu(model, ["m3"], n=6)["course_id"].tolist()}
    )
    # Search and lecturer menus do not carry them.
    assert (
        "c01"
        not in rc.member_menu(model, ["m0"], n=6, continue_learning=False)["course_id"].tolist()
    )


def test_a_saved_model_keeps_what_was_started(model: FixedFactors, tmp_path) -> None:  # type: ignore[no-untyped-def]
    als = rc.ALS(n_factors=4, iterations=2, random_state=0).fit(model.dataset_)
    rc.save(als, tmp_path / "als")
    loaded = rc.load(tmp_path / "als")
    before = rc.member_menu(als, ["m0", "m1"], n=6)
    after = rc.member_menu(loaded, ["m0", "m1"], n=6)
    pd.testing.assert_frame_equal(before, after)
    assert before["reason"].str.startswith("继续学习").sum() == 2
    assert before["reason"].str.startswith("下一讲").sum() == 2


def test_simulator_plants_series_that_members_follow() -> None:
    plain = rc.synthesize("small", seed=3)
    cfg = dataclasses.replace(PRESETS["small"], plant_series=True)
    planted = rc.synthesize(cfg, seed=3)
    courses = planted.courses
    assert courses["series_id"].notna().sum() >= 6
    # The other tables, and the events up to the follow-ups, are what they were.
    pd.testing.assert_frame_equal(plain.members, planted.members)
    assert len(planted.events) > len(plain.events)
    sid = courses.set_index("course_id")["series_id"]
    order = courses.set_index("course_id")["series_order"]
    titles = courses.set_index("course_id")["title"]
    for course in sid[sid.notna()].index[:10]:
        assert titles[course].endswith(f"（第{int(order[course])}讲）")
    # Members who complete lecture k study lecture k + 1 afterwards far more often than
    # members who did not complete it.
    ev = planted.events
    done = set(
        zip(*ev.loc[ev["event"] == "complete", ["member_id", "course_id"]].T.values, strict=True)
    )
    studied = set(zip(ev["member_id"], ev["course_id"], strict=True))
    follow = tries = 0
    for _, group in courses[sid.notna().to_numpy()].groupby("series_id"):
        lectures = group.sort_values("series_order")["course_id"].tolist()
        for a, b in itertools.pairwise(lectures):
            for member, course in done:
                if course == a:
                    tries += 1
                    follow += (member, b) in studied
    assert tries > 0 and follow / tries > 0.4


def test_many_members_at_once_equal_one_at_a_time() -> None:
    """The rule reads every member of a request at once (a batch chunk): each member's
    entries are what a request for that member alone gives, on a simulated platform with
    series and unfinished courses."""
    cfg = dataclasses.replace(PRESETS["small"], plant_series=True)
    data = rc.synthesize(cfg, seed=5)
    model = rc.ItemKNN(k=20).fit(Dataset.from_frames(data.events, courses=data.courses))
    members = sorted(set(data.events["member_id"]))
    together = rc.member_menu(model, members, n=8, max_continue=3)
    alone = pd.concat([rc.member_menu(model, [m], n=8, max_continue=3) for m in members])
    pd.testing.assert_frame_equal(together, alone.reset_index(drop=True))
    kinds = together["reason"].str.extract(r"^(继续学习|下一讲)")[0].value_counts()
    # Both kinds are served, several members get both (their order alternates).
    assert kinds.get("继续学习", 0) >= 20 and kinds.get("下一讲", 0) >= 20
    both = together[together["reason"].str.match(r"^(继续学习|下一讲)")].groupby("member_id")
    assert (both["reason"].agg(lambda r: r.str[:2].nunique()) == 2).sum() >= 5
