from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommend.data.idmap import _SMALL_QUERY, IdMap
from recommend.errors import DataError


def test_from_values_is_sorted_unique_and_independent_of_row_order() -> None:
    a = IdMap.from_values(["c3", "c1", "c3", "c2"])
    b = IdMap.from_values(["c2", "c3", "c1"])
    assert a == b
    assert a.external_ids.tolist() == ["c1", "c2", "c3"]


@given(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=50))
def test_round_trip_strings(values: list[str]) -> None:
    m = IdMap.from_values(values)
    idx = m.to_index(values)
    assert idx.dtype == np.int32
    assert m.to_external(idx).tolist() == values
    assert len(m) == len(set(values))


@given(st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=50))
def test_round_trip_integers(values: list[int]) -> None:
    m = IdMap.from_values(np.array(values))
    assert m.is_integer
    assert m.to_external(m.to_index(values)).tolist() == values


def test_unknown_ids_raise_or_mask() -> None:
    m = IdMap(["a", "b"])
    with pytest.raises(DataError, match=r"1 id\(s\) not in the map, e.g. \['z'\]"):
        m.to_index(["a", "z"])
    assert m.to_index(["z", "b", "a"], unknown="mask").tolist() == [-1, 1, 0]


def test_add_keeps_existing_indices_stable() -> None:
    m = IdMap(["b", "a"])
    m2 = m.add(["c", "a", "d", "c"])
    assert m2.external_ids.tolist() == ["b", "a", "c", "d"]
    assert m2.to_index(["b", "a"]).tolist() == m.to_index(["b", "a"]).tolist()
    assert m.add(["a"]) is m


def test_duplicates_and_out_of_range_are_refused() -> None:
    with pytest.raises(DataError, match="duplicate ids"):
        IdMap(["a", "a"])
    with pytest.raises(DataError, match="out of range"):
        IdMap(["a"]).to_external([1])


def test_integer_map_accepts_numeric_strings_in_queries() -> None:
    m = IdMap.from_values(np.array([10, 3, 7]))
    assert m.to_index(["7", 10]).tolist() == [1, 2]
    assert "10" not in IdMap(["a"])


@given(
    ids=st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=40, unique=True),
    queries=st.lists(st.text(min_size=0, max_size=4), max_size=30),
)
def test_small_and_large_lookups_agree(ids: list[str], queries: list[str]) -> None:
    """Short queries (dict path) and long ones (pandas path) give the same indices."""
    m = IdMap(ids)
    small = m.to_index(queries, unknown="mask")
    padded = queries + ids * (_SMALL_QUERY // len(ids) + 1)
    large = m.to_index(padded, unknown="mask")
    assert len(padded) > _SMALL_QUERY
    np.testing.assert_array_equal(small, large[: len(queries)])
    expected = [ids.index(q) if q in ids else -1 for q in queries]
    assert small.tolist() == expected


def test_small_lookup_of_integer_ids_accepts_strings_and_floats() -> None:
    m = IdMap([10, 20, 30])
    assert m.to_index(["20", "10"]).tolist() == [1, 0]
    assert m.to_index(np.array([30.0])).tolist() == [2]
    with pytest.raises(DataError, match="not in the map"):
        m.to_index([40])
