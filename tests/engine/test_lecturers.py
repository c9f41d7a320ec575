"""Lecturers (recommend.engine.lecturers): courses grouped by lecturer, lecturers ranked by
the mean of their best course scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
from helpers import FixedFactors

from recommend.engine import LECTURER_COLUMNS, Lecturers, empty_lecturers, serving_state

EXT = np.array(["c0", "c1", "c2", "c3", "c4", "c5"], dtype=object)


def _lecturers() -> Lecturers:
    # c2 has no lecturer; L0 gives c0, c3, c5; L1 c1; L2 c4.
    found = Lecturers.make(pd.Series(["L0", "L1", None, "L0", "L2", "L0"]))
    assert found is not None
    return found


def test_make_groups_courses_by_lecturer() -> None:
    lect = _lecturers()
    assert lect.ids.tolist() == ["L0", "L1", "L2"]
    assert lect.order.tolist() == [0, 3, 5, 1, 4]
    assert lect.starts.tolist() == [0, 3, 4]
    assert lect.segment.tolist() == [0, 0, 0, 1, 2]
    assert Lecturers.make(pd.Series([None, None], dtype=object)) is None


def test_rank_by_the_mean_of_the_best_scores() -> None:
    scores = np.array([5.0, 1.0, 9.0, 3.0, -np.inf, 4.0], dtype=np.float32)
    got = _lecturers().rank(scores, n=10, top=2, course_ext=EXT)
    assert tuple(got.columns) == LECTURER_COLUMNS
    # L0: (5 + 4) / 2 from c0, c5 (of 5, 3, 4); L1: c1 alone; L2: its course is filtered
    # out (-inf); c2 (9) has no lecturer.
    assert got["lecturer_id"].tolist() == ["L0", "L1"]
    np.testing.assert_allclose(got["score"], [4.5, 1.0])
    assert got["rank"].tolist() == [1, 2] and got["rank"].dtype == np.int32
    assert got["courses"].tolist() == [3, 1] and got["courses"].dtype == np.int32
    assert got["top_course_id"].tolist() == ["c0", "c1"]
    assert got["score"].dtype == np.float32
    top1 = _lecturers().rank(scores, n=10, top=1, course_ext=EXT)
    np.testing.assert_allclose(top1["score"], [5.0, 1.0])
    all3 = _lecturers().rank(scores, n=1, top=3, course_ext=EXT)
    assert all3["lecturer_id"].tolist() == ["L0"]
    np.testing.assert_allclose(all3["score"], [4.0])


def test_nan_scores_count_as_filtered_and_ties_keep_first_appearance() -> None:
    scores = np.array([2.0, 2.0, 0.0, np.nan, 2.0, np.nan], dtype=np.float32)
    got = _lecturers().rank(scores, n=10, top=3, course_ext=EXT)
    assert got["lecturer_id"].tolist() == ["L0", "L1", "L2"]
    assert got["courses"].tolist() == [1, 1, 1]
    np.testing.assert_allclose(got["score"], [2.0, 2.0, 2.0])


def test_empty_lecturers() -> None:
    empty = empty_lecturers(EXT)
    assert tuple(empty.columns) == LECTURER_COLUMNS and empty.empty
    assert empty["score"].dtype == np.float32 and empty["rank"].dtype == np.int32
    assert empty["top_course_id"].dtype == object


def test_lecturers_of_the_tiny_catalogue(tiny_model: FixedFactors) -> None:
    found = serving_state(tiny_model).lecturers()
    assert found is not None
    assert found.ids.tolist() == ["L0", "L1", "L2", "L3"]
    assert found.order.tolist() == [0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15]
    # m3's scores: c03 40, c11 39, c15 38 (L3's best) and 16 - j elsewhere.
    row = tiny_model.score_block(np.array([3]))[0]
    got = found.rank(row, n=2, top=3, course_ext=serving_state(tiny_model).course_ext)
    assert got["lecturer_id"].tolist() == ["L3", "L1"]
    np.testing.assert_allclose(got["score"], [(40 + 39 + 38) / 3, (30 + 11 + 7) / 3])
    assert got["top_course_id"].tolist() == ["c03", "c01"]
