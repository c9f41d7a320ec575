"""CSR rows as plain arrays (recommend.engine.rows): Rows, gather_rows, matrix_rows,
history_rows (folded-in members included) and small_isin."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from helpers import FixedFactors, events_frame
from hypothesis import given, settings
from hypothesis import strategies as st

from recommend.data.dataset import Dataset
from recommend.engine import Rows, gather_rows, history_rows, matrix_rows, small_isin

# Three rows: {1: 0.5, 3: 1.5}, {}, {0: 2.0, 2: 3.0, 4: 4.0}.
INDPTR = np.array([0, 2, 2, 5], dtype=np.int64)
INDICES = np.array([1, 3, 0, 2, 4], dtype=np.int32)
DATA = np.array([0.5, 1.5, 2.0, 3.0, 4.0], dtype=np.float32)


def _rows() -> Rows:
    return Rows(INDPTR, INDICES, DATA)


def _as_lists(rows: Rows) -> list[list[int]]:
    return [rows.row(i)[0].tolist() for i in range(rows.indptr.size - 1)]


def test_counts_entries_and_row() -> None:
    rows = _rows()
    assert rows.counts.tolist() == [2, 0, 3]
    assert rows.row_of_entry.tolist() == [0, 0, 2, 2, 2]
    courses, values = rows.row(2)
    assert courses.tolist() == [0, 2, 4] and values.tolist() == [2.0, 3.0, 4.0]
    assert rows.row(1)[0].size == 0


def test_take() -> None:
    rows = _rows()
    assert rows.take(np.arange(3)) is rows  # all rows in order: nothing to copy
    taken = rows.take(np.array([2, 0, 0]))
    assert taken.indptr.tolist() == [0, 3, 5, 7]
    assert _as_lists(taken) == [[0, 2, 4], [1, 3], [1, 3]]
    assert taken.data.tolist() == [2.0, 3.0, 4.0, 0.5, 1.5, 0.5, 1.5]


def test_gather_rows_gives_empty_rows_outside_the_matrix() -> None:
    got = gather_rows(INDPTR, INDICES, DATA, np.array([-1, 2, 3, 0, 7]), 3)
    assert _as_lists(got) == [[], [0, 2, 4], [], [1, 3], []]
    one = gather_rows(INDPTR, INDICES, DATA, np.array([2]), 3)  # the one-member path
    assert _as_lists(one) == [[0, 2, 4]] and one.data.tolist() == [2.0, 3.0, 4.0]
    none = gather_rows(INDPTR, INDICES, DATA, np.array([-1, 9]), 3)
    assert none.indptr.tolist() == [0, 0, 0]
    assert none.indices.dtype == np.int32 and none.data.dtype == np.float32
    empty = gather_rows(np.zeros(1, np.int64), INDICES[:0], DATA[:0], np.array([0, 0]), 0)
    assert empty.indptr.tolist() == [0, 0, 0]


def test_matrix_rows_equal_the_dense_rows() -> None:
    rng = np.random.default_rng(0)
    matrix = sp.random(20, 30, density=0.2, format="csr", dtype=np.float32, random_state=rng)
    idx = np.array([5, -1, 19, 5, 0, 20])
    got = matrix_rows(matrix, idx)
    dense = matrix.toarray()
    for i, member in enumerate(idx.tolist()):
        courses, values = got.row(i)
        if 0 <= member < 20:
            assert courses.tolist() == np.flatnonzero(dense[member]).tolist()
            np.testing.assert_array_equal(values, dense[member, courses])
        else:
            assert courses.size == 0


def test_history_rows_include_folded_in_members(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    before = history_rows(model.history_, np.array([3, -1, 0]))
    assert _as_lists(before) == [[6, 7], [], [0, 5]]
    model.update("m1", events_frame([("m1", "c08", "view", "2024-03-11")]))
    model.update("fresh", events_frame([("fresh", "c12", "view", "2024-03-11")]))
    fresh = int(model.member_ids_.to_index(["fresh"])[0])
    assert fresh == 5
    after = history_rows(model.history_, np.array([1, 3, fresh, -1, 1]))
    assert _as_lists(after) == [[8], [6, 7], [12], [], [8]]
    np.testing.assert_array_equal(after.counts, [1, 2, 1, 0, 1])
    assert after.indices.dtype == np.int32 and after.data.dtype == np.float32
    # Members not folded in are read from the training matrix alone.
    assert _as_lists(history_rows(model.history_, np.array([0, 3]))) == [[0, 5], [6, 7]]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(-3, 40), max_size=80),
    among=st.lists(st.integers(-3, 40), max_size=80),
)
def test_small_isin_equals_isin(values: list[int], among: list[int]) -> None:
    v, a = np.array(values, dtype=np.int64), np.array(among, dtype=np.int64)
    np.testing.assert_array_equal(small_isin(v, a), np.isin(v, a))


def test_small_isin_on_long_arrays() -> None:
    rng = np.random.default_rng(1)
    v, a = rng.integers(0, 500, 300), rng.integers(0, 500, 200)  # 60,000 pairs: np.isin
    np.testing.assert_array_equal(small_isin(v, a), np.isin(v, a))
    assert small_isin(np.array([1, 2]), np.array([2])).tolist() == [False, True]
