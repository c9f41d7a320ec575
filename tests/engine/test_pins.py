"""The pin rules (recommend.engine.pins): a member's branch's compulsory courses first; a
group's widely compulsory courses. On the tiny catalogue of ``helpers``: b1 made c09 and
c10 compulsory, b2 c10 and c13; m2 (b2) completed c10; scores are 16 - j for c<j>."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import (
    COURSES,
    FixedFactors,
    events_frame,
    make_tiny_dataset,
    menu_lists,
    rank_members,
    tiny_courses,
)

from recommend.data.dataset import Dataset
from recommend.engine import (
    REASON_COMPULSORY,
    CourseFilter,
    MenuOptions,
    Pins,
    group_pins,
    member_pins,
    serving_state,
)
from recommend.menu import member_menu
from recommend.models import MODEL_NAMES
from recommend.schema import CHANNELS

DEFAULT = np.arange(16, 0, -1, dtype=np.float32)  # c00 16 ... c15 1


def _scorer(dense: np.ndarray):  # type: ignore[no-untyped-def]
    return lambda rows, cols: dense[rows, cols].astype(np.float32)


def _pins(
    model: FixedFactors,
    idx: list[int],
    limit: int = 10,
    allowed: CourseFilter | None = None,
    scores: np.ndarray | None = None,
    orgs: list[str | None] | None = None,
) -> list[list[str]]:
    state = serving_state(model)
    dense = np.tile(DEFAULT, (len(idx), 1)) if scores is None else scores
    got = member_pins(
        state,
        model.history_,
        np.array(idx),
        limit,
        allowed or CourseFilter(),
        _scorer(dense),
        orgs=orgs,
    )
    assert got.rows.tolist() == sorted(got.rows.tolist())
    np.testing.assert_array_equal(got.counts, np.bincount(got.rows, minlength=len(idx)))
    np.testing.assert_array_equal(got.scores, dense[got.rows, got.courses])
    return [[COURSES[c] for c in got.of(i)[0].tolist()] for i in range(len(idx))]


# ---------------------------------------------------------------------------- member pins


def test_branch_courses_best_scored_first(tiny_model: FixedFactors) -> None:
    # m1 (b1): c09 (7) before c10 (6); m0 too (b1, completed only c00); m4 (b1, no
    # history); m3 (b2): c10, c13.
    assert _pins(tiny_model, [1, 0, 4, 3]) == [
        ["c09", "c10"],
        ["c09", "c10"],
        ["c09", "c10"],
        ["c10", "c13"],
    ]
    flipped = np.tile(DEFAULT, (1, 1))
    flipped[0, 10] = 50.0
    assert _pins(tiny_model, [1], scores=flipped) == [["c10", "c09"]]
    tied = np.ones((1, 16), np.float32)
    tied[0, 10] = tied[0, 9] = 3.0
    assert _pins(tiny_model, [1], scores=tied) == [["c09", "c10"]]  # ties: course index


def test_limit(tiny_model: FixedFactors) -> None:
    assert _pins(tiny_model, [1, 3], limit=1) == [["c09"], ["c10"]]
    none = member_pins(
        serving_state(tiny_model),
        tiny_model.history_,
        np.array([1, 3]),
        0,
        CourseFilter(),
        _scorer(np.eye(16)),
    )
    assert none.counts.tolist() == [0, 0] and none.courses.size == 0


def test_completed_courses_are_not_pinned(tiny_model: FixedFactors) -> None:
    assert _pins(tiny_model, [2]) == [["c13"]]  # m2 (b2) completed c10
    # In a chunk, m2's completion is the last of the chunk's completions (m0: c00).
    assert _pins(tiny_model, [0, 2]) == [["c09", "c10"], ["c13"]]
    assert _pins(tiny_model, [2, 0, 3]) == [["c13"], ["c09", "c10"], ["c10", "c13"]]


def test_pins_pass_the_course_filter(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    # Only the third channel (c08-c11): c13 is not pinned.
    third = state.filter(CHANNELS[2], None, None)
    assert _pins(tiny_model, [1, 3], allowed=third) == [["c09", "c10"], ["c10"]]
    # c10 lasts 11 minutes, c13 14: only c10 fits in 11 (and m2 completed it).
    assert _pins(tiny_model, [2, 3], allowed=state.filter(None, 11, None)) == [[], ["c10"]]


def test_given_org_overrides_the_training_branch(tiny_model: FixedFactors) -> None:
    # m1 (b1) said to be in b2; m2 (b2, completed c10) said to be in b1: completions stay;
    # None keeps m3's training branch; an unknown member is pinned by the given org; an
    # org without compulsory courses pins nothing.
    got = _pins(tiny_model, [1, 2, 3, -1, 0], orgs=["b2", "b1", None, "b1", "b9"])
    assert got == [["c10", "c13"], ["c09"], ["c10", "c13"], ["c09", "c10"], []]
    assert _pins(tiny_model, [-1]) == [[]]  # unknown, no org given: nothing


def test_no_pins_without_compulsory_courses() -> None:
    courses = tiny_courses().assign(compulsory_for=[[] for _ in COURSES])
    model = FixedFactors().fit(make_tiny_dataset(courses))
    assert _pins(model, [0, 1, 2]) == [[], [], []]
    model = FixedFactors().fit(make_tiny_dataset(tiny_courses().drop(columns="compulsory_for")))
    assert _pins(model, [0, 1, 2], orgs=["b1", "b1", "b2"]) == [[], [], []]


def test_pins_none_starts_and_of() -> None:
    none = Pins.none(3)
    assert none.counts.tolist() == [0, 0, 0] and none.starts.tolist() == [0, 0, 0]
    assert none.of(2)[0].size == 0
    pins = Pins(
        np.array([0, 0, 2]),
        np.array([9, 10, 13]),
        np.array([7.0, 6.0, 3.0], np.float32),
        np.array([2, 0, 1]),
    )
    assert pins.starts.tolist() == [0, 2, 2]
    courses, scores = pins.of(2)
    assert courses.tolist() == [13] and scores.tolist() == [3.0]
    assert pins.of(1)[0].size == 0


# ---------------------------------------------------------------------------- on a menu


def test_compulsory_courses_come_first_with_their_reason(tiny_model: FixedFactors) -> None:
    rows = rank_members(tiny_model, ["m1"], n=4)  # branch b1: c09, c10
    assert menu_lists(rows) == [["c09", "c10", "c00", "c01"]]
    assert rows.reason is not None
    assert rows.reason.tolist()[:2] == [REASON_COMPULSORY.text("en")] * 2
    assert REASON_COMPULSORY.text("en") not in rows.reason.tolist()[2:]
    np.testing.assert_array_equal(rows.score, [7.0, 6.0, 16.0, 15.0])  # the model's scores


def test_pins_on_a_menu_skip_completed_and_respect_filters(tiny_model: FixedFactors) -> None:
    # m2 (branch b2) completed c10: only c13 is pinned.
    assert menu_lists(rank_members(tiny_model, ["m2"], n=3)) == [["c13", "c00", "c01"]]
    # A channel filter without c13's channel pins nothing.
    assert menu_lists(rank_members(tiny_model, ["m2"], n=2, channel=CHANNELS[2])) == [
        ["c08", "c09"]
    ]
    # Fragment time: c13 takes 14 minutes and does not fit in 10.
    (short,) = menu_lists(rank_members(tiny_model, ["m2"], n=3, max_minutes=10))
    assert short == ["c00", "c01", "c02"]


def test_pins_never_exceed_n_nor_max_pins(tiny_model: FixedFactors) -> None:
    assert menu_lists(rank_members(tiny_model, ["m1"], n=1)) == [["c09"]]
    assert menu_lists(rank_members(tiny_model, ["m1"], n=3, max_pins=1)) == [["c09", "c00", "c01"]]
    assert menu_lists(rank_members(tiny_model, ["m1"], n=3, max_pins=0)) == [["c00", "c01", "c04"]]
    assert menu_lists(rank_members(tiny_model, ["m1"], n=3, pin_compulsory=False)) == [
        ["c00", "c01", "c04"]
    ]


def test_a_seen_compulsory_course_is_pinned_whatever_exclude_says(
    tiny_dataset: Dataset,
) -> None:
    model = FixedFactors().fit(tiny_dataset)
    model.update("m1", events_frame([("m1", "c09", "view", "2024-03-11")]))
    for exclude in ("seen", "completed", "none"):
        (menu,) = menu_lists(rank_members(model, ["m1"], n=3, exclude=exclude))
        assert menu[:2] == ["c09", "c10"], exclude
    assert menu_lists(rank_members(model, ["m1"], n=3, pin_compulsory=False)) == [
        ["c00", "c01", "c02"]  # c09 is seen: not on the menu unless pinned
    ]


def test_pin_limit_comes_from_the_options(tiny_model: FixedFactors) -> None:
    state = serving_state(tiny_model)
    options = MenuOptions(n=5, max_pins=1, lang="en")
    got = member_pins(
        state,
        tiny_model.history_,
        np.array([1]),
        options.pin_limit,
        state.course_filter(options),
        _scorer(np.tile(DEFAULT, (1, 1))),
    )
    assert got.courses.tolist() == [9]


# ---------------------------------------------------------------------------- group pins


def _group(
    model: FixedFactors, idx: list[int], lang: str = "en", **kw: object
) -> tuple[list[str], tuple]:
    options: dict[str, object] = {
        "requested": np.empty(0, np.int64),
        "pin_compulsory": True,
        "share": 0.5,
        "published": None,
        "done_share": np.zeros(16),
        "exclude_completed": None,
        "max_pins": None,
    }
    options.update(kw)
    got = group_pins(serving_state(model), np.array(idx), **options)  # type: ignore[arg-type]
    assert got.courses.dtype == np.int64
    return [COURSES[c] for c in got.courses.tolist()], tuple(n.text(lang) for n in got.notes)


def test_group_pins_courses_compulsory_for_a_share_of_the_group(tiny_model: FixedFactors) -> None:
    # m0, m1 in b1 and m2, m3 in b2: c10 is compulsory for all four, c09 and c13 for two.
    assert _group(tiny_model, [0, 1, 2, 3]) == (["c10", "c09", "c13"], ())
    assert _group(tiny_model, [0, 1, 2, 3], share=0.75) == (["c10"], ())
    # Three of four in b1 (m0, m1, m4): c09 is compulsory for three, c10 for all.
    assert _group(tiny_model, [0, 1, 4, 3], share=0.75) == (["c10", "c09"], ())
    assert _group(tiny_model, [2, 3]) == (["c10", "c13"], ())
    assert _group(tiny_model, [0, 1, 2, 3], pin_compulsory=False) == ([], ())


def test_group_pins_only_published_courses(tiny_model: FixedFactors) -> None:
    published = np.ones(16, dtype=bool)
    published[9] = False
    assert _group(tiny_model, [0, 1, 2, 3], published=published)[0] == ["c10", "c13"]


def test_group_pins_leave_out_what_most_completed_and_say_so(tiny_model: FixedFactors) -> None:
    done = np.zeros(16)
    done[10] = 0.5
    pins, notes = _group(tiny_model, [0, 1, 2, 3], done_share=done, exclude_completed=0.5)
    assert pins == ["c09", "c13"]
    assert notes == (
        "1 compulsory course(s) already completed by most of the group were not pinned: c10",
    )
    # Below the share, or without the rule, it stays.
    assert _group(tiny_model, [0, 1, 2, 3], done_share=done, exclude_completed=0.75)[0] == [
        "c10",
        "c09",
        "c13",
    ]
    assert _group(tiny_model, [0, 1, 2, 3], done_share=done)[0] == ["c10", "c09", "c13"]


def test_group_max_pins_keeps_the_most_widely_compulsory(tiny_model: FixedFactors) -> None:
    pins, notes = _group(tiny_model, [0, 1, 2, 3], max_pins=1)
    assert pins == ["c10"]
    assert notes == ("2 compulsory course(s) left out by max_pins=1: c09, c13",)
    _, notes = _group(tiny_model, [0, 1, 2, 3], lang="zh", max_pins=1)
    assert notes == ("受置顶上限（1门）限制，2门必学课程未置顶：c09、c13",)
    assert _group(tiny_model, [0, 1, 2, 3], max_pins=3) == (["c10", "c09", "c13"], ())
    assert _group(tiny_model, [0, 1, 2, 3], max_pins=0)[0] == []


def test_requested_courses_come_first_once(tiny_model: FixedFactors) -> None:
    requested = np.array([13, 2], dtype=np.int64)
    assert _group(tiny_model, [0, 1, 2, 3], requested=requested)[0] == [
        "c13",
        "c02",
        "c10",
        "c09",
    ]
    assert _group(tiny_model, [0, 1], requested=requested, pin_compulsory=False) == (
        ["c13", "c02"],
        (),
    )


def test_group_pins_of_one_branch(tiny_model: FixedFactors) -> None:
    # Only b1's members: b2 counts nobody.
    assert _group(tiny_model, [0, 1]) == (["c09", "c10"], ())
    assert _group(tiny_model, [0, 1, 4], share=1.0) == (["c09", "c10"], ())


def test_group_pins_when_one_branch_has_compulsory_courses() -> None:
    courses = tiny_courses()
    courses["compulsory_for"] = [["b1"] if c in ("c09", "c10") else [] for c in COURSES]
    model = FixedFactors().fit(make_tiny_dataset(courses))
    assert _group(model, [0, 1, 2, 3]) == (["c09", "c10"], ())
    assert _group(model, [0, 2, 3]) == ([], ())  # one of three in b1


def test_group_notes_name_the_first_five_courses() -> None:
    courses = tiny_courses()
    courses["compulsory_for"] = [["b1"] if j < 8 else [] for j in range(len(COURSES))]
    model = FixedFactors().fit(make_tiny_dataset(courses))
    pins, notes = _group(model, [0, 1], max_pins=1)
    assert pins == ["c00"]
    assert notes == ("7 compulsory course(s) left out by max_pins=1: c01, c02, c03, c04, c05",)
    done = np.zeros(16)
    done[:7] = 1.0
    pins, notes = _group(model, [0, 1], done_share=done, exclude_completed=0.5)
    assert pins == ["c07"]
    assert notes == (
        "7 compulsory course(s) already completed by most of the group were not pinned: "
        "c00, c01, c02, c03, c04",
    )


def test_group_pins_without_compulsory_courses() -> None:
    courses = tiny_courses().assign(compulsory_for=[[] for _ in COURSES])
    model = FixedFactors().fit(make_tiny_dataset(courses))
    assert _group(model, [0, 1, 2], requested=np.array([4])) == (["c04"], ())


@pytest.mark.parametrize("share", [0.5, 1.0])
def test_group_pins_follow_the_branch_counts(tiny_model: FixedFactors, share: float) -> None:
    """Against a count done member by member."""
    idx = [0, 1, 2, 3, 4, 4]
    orgs = serving_state(tiny_model).member_orgs()
    compulsory = {"b1": {9, 10}, "b2": {10, 13}}
    need = {c: sum(c in compulsory[orgs[i]] for i in idx) for c in (9, 10, 13)}
    expected = sorted((c for c in need if need[c] >= share * len(idx)), key=lambda c: -need[c])
    assert _group(tiny_model, idx, share=share)[0] == [COURSES[c] for c in expected]


def test_group_pins_take_a_requested_course_once(tiny_model: FixedFactors) -> None:
    requested = np.array([5, 5, 10], np.int64)
    got, _ = _group(tiny_model, [0, 1, 2, 3], requested=requested)
    assert got == ["c05", "c10", "c09", "c13"]


# ---------------------------------------------------------------------------- after update


def _fitted(name: str, dataset: Dataset):  # type: ignore[no-untyped-def]
    from recommend.models import make_model

    return make_model(name).fit(dataset)


def _pinned(menu: pd.DataFrame) -> list[str]:
    pinned = menu["reason"].str.startswith(REASON_COMPULSORY.text("zh"))
    return menu.loc[pinned, "course_id"].tolist()


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_course_completed_through_update_is_no_longer_pinned(
    name: str, tiny_dataset: Dataset
) -> None:
    # m1 (b1: c09, c10 compulsory) completes c09 after training; a newcomer said to be in b1
    # completes c10. Their menus pin only what is left, for every kind of model.
    model = _fitted(name, tiny_dataset)
    newcomer = pd.DataFrame({"member_id": ["new"], "org_id": ["b1"]})
    assert sorted(_pinned(member_menu(model, "m1", n=5))) == ["c09", "c10"]
    assert sorted(_pinned(member_menu(model, "new", n=5, member_attributes=newcomer))) == [
        "c09",
        "c10",
    ]
    model.update(
        "m1",
        events_frame(
            [
                ("m1", "c02", "view", "2024-03-11"),
                ("m1", "c03", "view", "2024-03-11"),
                ("m1", "c09", "complete", "2024-03-12"),
            ]
        ),
    )
    model.update("new", events_frame([("new", "c10", "complete", "2024-03-12")]))
    for exclude in ("seen", "completed", "none"):
        m1 = member_menu(model, "m1", n=5, exclude=exclude)
        assert _pinned(m1) == ["c10"], (name, exclude)
        new = member_menu(model, "new", n=5, exclude=exclude, member_attributes=newcomer)
        assert _pinned(new) == ["c09"], (name, exclude)
    # Batched requests (the vectorised path) agree with one-member ones.
    both = member_menu(model, ["m1", "m0", "new"], n=5, member_attributes=newcomer)
    assert _pinned(both[both["member_id"] == "m1"]) == ["c10"]
    assert sorted(_pinned(both[both["member_id"] == "m0"])) == ["c09", "c10"]
    assert _pinned(both[both["member_id"] == "new"]) == ["c09"]


def test_update_replaces_the_training_completions(tiny_dataset: Dataset) -> None:
    # update() takes all of a member's events: m2 (b2) completed c10 in training; events
    # that only view it make it compulsory for them again.
    model = FixedFactors().fit(tiny_dataset)
    assert _pins(model, [2]) == [["c13"]]
    model.update("m2", events_frame([("m2", "c10", "view", "2024-03-11")]))
    assert _pins(model, [2]) == [["c10", "c13"]]
    assert _pins(model, [2, 3]) == [["c10", "c13"], ["c10", "c13"]]


@pytest.mark.parametrize("name", ["ease", "als"])
def test_completions_folded_in_survive_save_and_load(
    name: str, tiny_dataset: Dataset, tmp_path
) -> None:
    import recommend as rc

    model = _fitted(name, tiny_dataset)
    model.update("m1", events_frame([("m1", "c09", "complete", "2024-03-12")]))
    model.update("new", events_frame([("new", "c10", "complete", "2024-03-12")]))
    newcomer = pd.DataFrame({"member_id": ["new"], "org_id": ["b1"]})
    loaded = rc.load(rc.save(model, tmp_path / "art"))
    assert _pinned(member_menu(loaded, "m1", n=5)) == ["c10"]
    assert _pinned(member_menu(loaded, "new", n=5, member_attributes=newcomer)) == ["c09"]
    pd.testing.assert_frame_equal(
        member_menu(loaded, ["m1", "m0", "new"], n=5, member_attributes=newcomer),
        member_menu(model, ["m1", "m0", "new"], n=5, member_attributes=newcomer),
    )


def test_update_takes_the_member_id_as_validation_does(tiny_dataset: Dataset) -> None:
    from recommend.errors import DataError

    model = FixedFactors().fit(tiny_dataset)
    n_members = len(model.member_ids_)
    # " m1 ", full-width and zero-width variants are m1: no new member appears.
    for written in (" m1 ", "ｍ1", "m\u200b1"):
        model.update(written, events_frame([(written, "c09", "complete", "2024-03-12")]))
        assert len(model.member_ids_) == n_members, written
        assert _pinned(member_menu(model, "m1", n=5)) == ["c10"]
    # A date decades ahead would decay the member's other events to the floor: refused.
    late = events_frame([("m1", "c03", "view", "2024-03-11"), ("m1", "c04", "view", "2100-01-01")])
    with pytest.raises(DataError, match=r"events\.timestamp: update\('m1'\): events dated after"):
        model.update("m1", late)
    assert _pinned(member_menu(model, "m1", n=5)) == ["c10"]  # nothing changed
