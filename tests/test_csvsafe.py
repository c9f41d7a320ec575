"""CSV cells safe for spreadsheets (recommend.csvsafe): the escaping rule and its inverse."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recommend.csvsafe import (
    FORMULA_STARTS,
    csv_text,
    neutralise,
    restore,
    restore_columns,
    safe_frame,
)


def test_formula_starts_are_escaped_and_other_text_is_not() -> None:
    for value in ["=1+1", "+1", "-1", "@A1", "\t=1", "\r=1", "＝1", "＋1", "－1", "＠1", "'x"]:
        assert neutralise(value) == "'" + value
    for value in ["", "m0001", "党课 第1讲", " =1", "1-2", "a=b"]:
        assert neutralise(value) == value


@settings(max_examples=300, derandomize=True, database=None)
@given(st.text())
def test_restore_undoes_neutralise(value: str) -> None:
    safe = neutralise(value)
    assert restore(safe) == value
    assert safe[:1] not in FORMULA_STARTS - {"'"}


@settings(max_examples=50, derandomize=True, database=None, deadline=None)
@given(st.lists(st.text(min_size=1), min_size=1, max_size=20))
def test_a_written_frame_holds_no_formula_and_restores(values: list[str]) -> None:
    frame = pd.DataFrame({"member_id": values, "score": np.linspace(-1.0, 1.0, len(values))})
    text = csv_text(frame, index=False)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == ["member_id", "score"] and len(rows) == len(values) + 1
    # As a spreadsheet splits rows: at a line break outside quotes.
    assert len(rows) == text.count("\r\n") - sum(v.count("\r\n") for v in values)
    assert all(row[0][:1] not in FORMULA_STARTS - {"'"} for row in rows[1:])
    assert [restore(row[0]) for row in rows[1:]] == values
    np.testing.assert_allclose([float(row[1]) for row in rows[1:]], frame["score"])


def test_restore_columns_reads_back_what_was_written() -> None:
    values = ["=1+1", "m1", "'q", "-2", "@x"]
    text = csv_text(pd.DataFrame({"member_id": values, "n": range(5)}), index=False)
    back = pd.read_csv(io.StringIO(text), dtype={"member_id": str}, keep_default_na=False)
    assert restore_columns(back, ["member_id"])["member_id"].tolist() == values


def test_index_labels_categories_and_names_are_escaped() -> None:
    frame = pd.DataFrame(
        {"=total": [1.5, -2.0], "label": pd.Categorical(["@x", "y"])},
        index=pd.Index(["-seg", "seg"], name="+name"),
    )
    safe = safe_frame(frame, index=True)
    assert list(safe.columns) == ["'=total", "label"]
    assert list(safe.index) == ["'-seg", "seg"] and safe.index.name == "'+name"
    assert list(safe["label"]) == ["'@x", "y"]
    assert safe["'=total"].tolist() == [1.5, -2.0]
    assert list(frame.columns) == ["=total", "label"]  # the input is not changed
