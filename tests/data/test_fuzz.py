"""Random frames through validation, loading and ``Dataset``: whatever comes in, only the
library's own errors come out (hypothesis, a fixed and derandomised number of examples)."""

from __future__ import annotations

import datetime as dt
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import recommend as rc
from recommend.data.loaders import read_table
from recommend.data.validation import check_table, find_problems
from recommend.errors import RecommendError
from recommend.schema import TABLES

EXAMPLES = 300
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_TEXT = st.text(
    alphabet=st.sampled_from(
        [*list("m0c1 7-_.@+xX"), "\u200b", "\ufeff", "\u3000", "ｍ", "１", "党", "\n", "é", "\x00"]
    ),
    max_size=12,
)
_SCALARS: list[st.SearchStrategy[Any]] = [
    st.none(),
    st.just(float("nan")),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e300, -1e300, 1e-320, 0.0, 1714550400, 1714550400000, 13812345678]),
    st.booleans(),
    _TEXT,
    st.text(max_size=8),  # any Unicode, surrogates and control characters included
    st.sampled_from(
        [
            "2024-05-01",
            "2024-05-01 08:30:00+08:00",
            "20240501",
            "1714550400",
            "1714550400.5",
            "2100-01-01",
            "1970-01-01",
            "not a date",
            "view",
            "complete",
            "13812345678",
            "a@b.cn",
            "110105194912310021",
            " m1 ",
            "ｍ000000",
            "m\u200b1",
            "x" * 20_000,
        ]
    ),
    st.datetimes(min_value=dt.datetime(1600, 1, 1), max_value=dt.datetime(2300, 1, 1)),
    st.lists(_TEXT, max_size=3),
]
_VALUE = st.one_of(*_SCALARS)


@st.composite
def _column(draw: st.DrawFn, n: int) -> pd.Series:
    """One column of ``n`` rows: a uniform dtype or a mix of anything."""
    kind = draw(st.sampled_from(["mixed", "int", "float", "text", "datetime", "bool"]))
    if kind == "int":
        values: list[Any] = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n))
        return pd.Series(values, dtype="int64")
    if kind == "float":
        values = draw(st.lists(st.floats(allow_nan=True), min_size=n, max_size=n))
        return pd.Series(values, dtype="float64")
    if kind == "text":
        values = draw(st.lists(_TEXT, min_size=n, max_size=n))
        return pd.Series(values, dtype="string")
    if kind == "datetime":
        values = draw(
            st.lists(
                st.datetimes(min_value=dt.datetime(1700, 1, 1), max_value=dt.datetime(2250, 1, 1)),
                min_size=n,
                max_size=n,
            )
        )
        return pd.Series(pd.to_datetime(values), dtype="datetime64[ns]")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    values = draw(st.lists(_VALUE, min_size=n, max_size=n))
    series = pd.Series([None] * n, dtype=object)
    for i, v in enumerate(values):
        series.iat[i] = v
    return series


@st.composite
def _frame(draw: st.DrawFn, table: str | None = None) -> tuple[str, pd.DataFrame]:
    name = table or draw(st.sampled_from(sorted(TABLES)))
    schema = TABLES[name]
    n = draw(st.integers(min_value=0, max_value=8))
    names = draw(
        st.lists(
            st.one_of(
                st.sampled_from(sorted(schema.columns)),
                st.sampled_from(["contact", "phone_1", "电话号码", "extra", "mail", "note"]),
            ),
            max_size=8,
        )
    )
    # Required columns most of the time, so that the deeper checks run too.
    if draw(st.integers(0, 4)):
        names = list(schema.required) + names
    data = {f"__{i}": draw(_column(n)) for i in range(len(names))}
    frame = pd.DataFrame(data)
    frame.columns = names  # duplicate names allowed on purpose
    return name, frame


_GOOD_IDS = st.sampled_from(["m1", " m1 ", "ｍ1", "m\u200b1", "m2", "c1", "c2", "党员"])
_IDS = st.sampled_from(["\u200b", "", "13812345678"])
_GOOD_WHEN = st.datetimes(min_value=dt.datetime(2023, 1, 1), max_value=dt.datetime(2024, 12, 31))
_WHEN = st.sampled_from(["2024-05-01", "1714550400", "2100-01-01", "1970-01-01", "20240501", "x"])
_GOOD_NUMBER = st.floats(min_value=0, max_value=1e4)
_NUMBER = st.sampled_from([float("nan"), float("inf"), 1e300, -1.0, 1e6, 1e7 + 1])
_GOOD_EVENT = st.sampled_from(["view", "complete", "like", "order"])
_EVENT = st.sampled_from(["oops", "", "VIEW"])


@st.composite
def _events(draw: st.DrawFn) -> tuple[str, pd.DataFrame]:
    """An events table that is valid or nearly so, so that ``Dataset`` gets built."""
    n = draw(st.integers(min_value=1, max_value=12))

    def column(good: st.SearchStrategy[Any], wild: st.SearchStrategy[Any]) -> list[Any]:
        # One column in four also draws odd values; the others stay clean.
        values = st.one_of(good, wild) if draw(st.integers(0, 3)) == 0 else good
        return draw(st.lists(values, min_size=n, max_size=n))

    frame = pd.DataFrame(
        {
            "member_id": column(_GOOD_IDS, _IDS),
            "course_id": column(_GOOD_IDS, _IDS),
            "event": column(_GOOD_EVENT, _EVENT),
            "timestamp": pd.Series(column(_GOOD_WHEN, _WHEN), dtype=object),
        }
    )
    if draw(st.booleans()):
        frame["watch_seconds"] = column(_GOOD_NUMBER, _NUMBER)
    if draw(st.booleans()):
        frame["value"] = column(_GOOD_NUMBER, _NUMBER)
    if draw(st.booleans()):  # exact copies of some rows
        frame = pd.concat([frame, frame.iloc[: draw(st.integers(1, n))]], ignore_index=True)
    return "events", frame


def _only_our_errors(call: Any, *args: Any, **kwargs: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(*args, **kwargs)
        except RecommendError:
            return None


@FUZZ
@given(st.one_of(_frame(), _events()))
def test_validation_raises_only_library_errors(case: tuple[str, pd.DataFrame]) -> None:
    table, frame = case
    before = frame.copy(deep=True)
    report = _only_our_errors(check_table, table, frame)
    _only_our_errors(find_problems, table, frame)
    cleaned = _only_our_errors(rc.validate, table, frame)
    pd.testing.assert_frame_equal(frame, before)  # never mutated
    if report is not None and report.ok:
        assert cleaned is not None  # check_table and validate agree on what passes
        for note in report.notes:
            assert note.values == ()  # notes never echo values


@FUZZ
@given(
    st.one_of(_frame("events"), _events()),
    st.sampled_from(["raise", "drop", "keep"]),
    st.booleans(),
)
def test_datasets_from_random_events_raise_only_library_errors(
    case: tuple[str, pd.DataFrame], on_future: str, collapse: bool
) -> None:
    _, frame = case
    weighting = rc.Weighting(duplicates="collapse" if collapse else "keep")
    ds = _only_our_errors(rc.Dataset.from_frames, frame, on_future=on_future, weighting=weighting)
    if ds is not None:
        data = ds.interactions.data
        assert np.isfinite(data).all()
        assert (np.abs(data) <= weighting.max_pair_confidence).all()


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_frame(), st.sampled_from(["csv", "parquet"]))
def test_loading_random_files_raises_only_library_errors(
    tmp_path_factory: Any, case: tuple[str, pd.DataFrame], fmt: str
) -> None:
    table, frame = case
    folder: Path = tmp_path_factory.mktemp("fuzz")
    path = folder / f"{table}.{fmt}"
    try:
        if fmt == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.astype(str).to_parquet(path) if len(frame.columns) else frame.to_parquet(path)
    except (ValueError, TypeError, OverflowError, UnicodeEncodeError):
        return  # pandas cannot write this frame: nothing to load
    _only_our_errors(read_table, path, table, validate=True)


def test_the_fuzz_strategies_reach_the_deep_checks() -> None:
    """The strategies are not vacuous: many random events tables pass and build datasets."""
    built: list[int] = []

    @settings(max_examples=100, deadline=None, derandomize=True)
    @given(_events())
    def collect(case: tuple[str, pd.DataFrame]) -> None:
        ds = _only_our_errors(rc.Dataset.from_frames, case[1], on_future="drop")
        if ds is not None:
            built.append(ds.interactions.nnz)

    collect()
    assert len(built) >= 20 and not math.isnan(sum(built))
