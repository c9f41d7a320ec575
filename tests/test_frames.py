"""Result frames (recommend.frames): the same frames pandas makes, built faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recommend.frames import result_frame, text_column

texts = st.lists(st.one_of(st.text(max_size=12), st.none(), st.just(np.nan)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(values=texts)
def test_text_columns_are_what_pandas_infers(values: list[object]) -> None:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    pd.testing.assert_series_equal(pd.Series(text_column(array)), pd.Series(array))


def test_values_that_are_not_all_text_are_left_to_pandas() -> None:
    mixed = np.array([1, "a", 2.5], dtype=object)
    assert text_column(mixed) is mixed
    pd.testing.assert_series_equal(pd.Series(text_column(mixed)), pd.Series(mixed))


def test_result_frames_equal_the_frames_pandas_builds() -> None:
    members = np.array(["m1", "m1", "m2"], dtype=object)
    reasons = np.array(["因为你学过《党课》", None, "新上线"], dtype=object)
    scores = np.array([0.5, 0.25, 1.0], dtype=np.float32)
    ranks = np.array([1, 2, 1], dtype=np.int32)
    built = result_frame(
        {
            "member_id": text_column(members),
            "score": scores,
            "rank": ranks,
            "reason": text_column(reasons),
        },
        3,
    )
    expected = pd.DataFrame(
        {"member_id": members, "score": scores, "rank": ranks, "reason": reasons}
    )
    pd.testing.assert_frame_equal(built, expected)
    pd.testing.assert_frame_equal(
        result_frame({"rank": ranks[:0]}, 0), pd.DataFrame({"rank": ranks[:0]})
    )


def test_each_frame_has_its_own_column_labels() -> None:
    first = result_frame({"a": np.arange(2), "b": np.arange(2)}, 2)
    first.columns.name = "renamed"
    first.columns = ["x", "y"]
    second = result_frame({"a": np.arange(2), "b": np.arange(2)}, 2)
    assert second.columns.name is None and list(second.columns) == ["a", "b"]
