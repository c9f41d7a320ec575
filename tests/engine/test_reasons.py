"""Reasons (recommend.engine.reasons): "because you studied <title>" from course factors or
channels, "continue studying", and the constant reasons on menus of the tiny catalogue
(m0 studied c00, completed, and c05)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from helpers import TITLE, FixedFactors, ScoresOnly, menu_lists, rank_members

from recommend.data.dataset import Dataset
from recommend.engine import (
    REASON_BRANCH,
    REASON_COMPULSORY,
    REASON_FEATURES,
    REASON_GLOBAL,
    REASON_SEGMENT,
    MenuOptions,
    reason_texts,
    segment_reason,
    serving_state,
    studied_reasons,
)


def _reasons(model: FixedFactors, vectors, recommended, history, confidence) -> list[str]:  # type: ignore[no-untyped-def]
    got = studied_reasons(
        serving_state(model),
        vectors,
        np.array(recommended, dtype=np.int64),
        np.array(history, dtype=np.int32),
        np.array(confidence, dtype=np.float32),
    )
    assert got.dtype == object
    return [reason.text("en") for reason in got.tolist()]


def test_reason_texts() -> None:
    assert REASON_COMPULSORY.text("en") == "compulsory for your branch"
    assert REASON_BRANCH.text("en") == "popular in your branch"
    assert REASON_SEGMENT.text("en") == "popular with members like you"
    assert REASON_GLOBAL.text("en") == "popular on the platform"
    assert REASON_FEATURES.text("en") == "recommended for members like you"
    # Chinese by default.
    assert REASON_COMPULSORY.text() == "本支部必学"
    assert REASON_BRANCH.text() == "本支部同志常学"
    assert REASON_GLOBAL.text() == "全平台热门"


def test_factor_models_name_the_most_similar_course(tiny_model: FixedFactors) -> None:
    vectors = tiny_model.course_vectors()[0]
    # Course factors [identity | 0.5 * channel]: cosine 0.2 within a channel, 0 across.
    got = _reasons(tiny_model, vectors, [1, 4, 8], [0, 5], [1.0, 1.0])
    assert got[:2] == [f"because you studied {TITLE['c00']}", f"because you studied {TITLE['c05']}"]
    # No history course is alike (all 0): the first of the equals.
    assert got[2] == f"because you studied {TITLE['c00']}"


def test_other_models_use_the_channel_then_confidence(tiny_model: FixedFactors) -> None:
    got = _reasons(tiny_model, None, [2, 6, 8, 9], [0, 5, 4], [1.0, 0.5, 2.0])
    assert got == [
        f"because you studied {TITLE['c00']}",  # the one history course of channel 0
        f"because you studied {TITLE['c04']}",  # channel 1: c04 more confident than c05
        f"because you studied {TITLE['c04']}",  # channel 2 unstudied: the most confident
        f"because you studied {TITLE['c04']}",
    ]


def test_a_course_of_the_history_says_continue(tiny_model: FixedFactors) -> None:
    vectors = tiny_model.course_vectors()[0]
    for side in (vectors, None):
        got = _reasons(tiny_model, side, [5, 1], [0, 5], [1.0, 1.0])
        assert got == [f"continue studying {TITLE['c05']}", f"because you studied {TITLE['c00']}"]


def test_no_recommendation_no_reason(tiny_model: FixedFactors) -> None:
    assert _reasons(tiny_model, None, [], [0], [1.0]) == []


def test_long_histories_are_explained_by_their_most_confident_courses() -> None:
    """Only the 256 most confident history courses are compared."""
    n = 400
    channels = np.full(n, -1, dtype=np.int32)
    channels[[0, 399]] = 7  # the recommended course and one of the history share a channel
    state = SimpleNamespace(
        n_courses=n,
        channel_codes=channels,
        titles=np.array([f"t{j}" for j in range(n)], dtype=object),
    )
    history = np.arange(100, 400, dtype=np.int32)  # 300 courses
    confidence = np.linspace(2.0, 1.0, history.size).astype(np.float32)  # c399 the least
    got = studied_reasons(state, None, np.array([0]), history, confidence)  # type: ignore[arg-type]
    assert [r.text("en") for r in got] == ["because you studied t100"]  # c399 not considered
    confidence[-1] = 3.0  # now the most confident of all: considered, and same channel
    got = studied_reasons(state, None, np.array([0]), history, confidence)  # type: ignore[arg-type]
    assert [r.text("en") for r in got] == ["because you studied t399"]


# ---------------------------------------------------------------------------- on a menu


def test_menu_rows_name_the_most_similar_studied_course(tiny_model: FixedFactors) -> None:
    rows = rank_members(tiny_model, ["m0"], n=6, pin_compulsory=False)
    reasons = dict(zip(menu_lists(rows)[0], rows.reason.tolist(), strict=True))
    assert reasons["c01"] == f"because you studied {TITLE['c00']}"
    assert reasons["c04"] == f"because you studied {TITLE['c05']}"


def test_menu_rows_without_factors_use_the_channel(tiny_dataset: Dataset) -> None:
    model = ScoresOnly().fit(tiny_dataset)
    rows = rank_members(model, ["m0"], n=6, pin_compulsory=False)
    reasons = dict(zip(menu_lists(rows)[0], rows.reason.tolist(), strict=True))
    assert reasons["c02"] == f"because you studied {TITLE['c00']}"
    assert reasons["c06"] == f"because you studied {TITLE['c05']}"
    factor_rows = rank_members(FixedFactors().fit(tiny_dataset), ["m0"], n=6, pin_compulsory=False)
    assert menu_lists(rows) == menu_lists(factor_rows)


def test_started_courses_say_continue(tiny_model: FixedFactors) -> None:
    rows = rank_members(tiny_model, ["m0"], n=8, exclude="completed", pin_compulsory=False)
    reasons = dict(zip(menu_lists(rows)[0], rows.reason.tolist(), strict=True))
    assert reasons["c05"] == f"continue studying {TITLE['c05']}"


def test_without_reasons(tiny_model: FixedFactors) -> None:
    assert rank_members(tiny_model, ["m1"], n=3, with_reasons=False).reason is None


def test_nothing_studied_gives_the_members_like_you_reason(tiny_model: FixedFactors) -> None:
    vectors = tiny_model.course_vectors()[0]
    for side in (vectors, None):
        assert _reasons(tiny_model, side, [3, 7], [], []) == [REASON_FEATURES.text("en")] * 2


def test_segment_reasons_name_the_group() -> None:
    assert segment_reason("occupation", "retired").text() == "与你同为退休党员的同志常学"
    assert segment_reason("occupation", "white_collar").text() == "与你同为白领党员的同志常学"
    assert segment_reason("district", "萧山区").text() == "萧山区的党员常学"
    assert segment_reason("age_band", "60-69").text() == "与你年龄相仿的党员常学"
    assert segment_reason("org_id", "b1") == REASON_BRANCH
    for missing in (None, float("nan"), pd.NA):
        assert segment_reason("occupation", missing) == REASON_SEGMENT
    # English keeps the short reason.
    assert segment_reason("occupation", "retired").text("en") == "popular with members like you"


def test_reason_texts_add_why_now(tiny_model: FixedFactors) -> None:
    """New (published in the 30 days before the menu's time) and the minutes a course
    takes when the request asks for courses that fit a time; English unchanged."""
    state = serving_state(tiny_model)
    courses = np.array([0, 15, 3], dtype=np.int64)  # c15 is published on 2025-06-01
    reasons = np.array([REASON_GLOBAL] * 3, dtype=object)
    options = MenuOptions(now="2025-06-10", max_minutes=20)
    got = reason_texts(state, courses, reasons, options).tolist()
    assert got == [
        "全平台热门，1分钟可学完",
        "全平台热门，新上线，16分钟可学完",
        "全平台热门，4分钟可学完",
    ]
    plain = reason_texts(state, courses, reasons, MenuOptions(now="2025-08-01")).tolist()
    assert plain == ["全平台热门"] * 3  # c15 is two months old by then, no time asked
    english = reason_texts(state, courses, reasons, options.with_(lang="en")).tolist()
    assert english == ["popular on the platform"] * 3
