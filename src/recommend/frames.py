"""Result frames built cheaply: text columns made the way pandas would make them.

A menu is a frame of ten rows; building it is a large part of answering one member's
request, and most of that is pandas working out what type each text column is. From pandas
3 a column of Python strings becomes pandas' ``str`` dtype (Arrow-backed); :func:`text_column`
builds that column straight from Arrow, the same values and dtype pandas' own inference
gives, in a fraction of the time. With an older pandas (text columns of ``object`` dtype)
the values are returned as they are, and pandas makes its usual column.

This module is a leaf: it imports only numpy, pandas and pyarrow.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["result_frame", "text_column"]


def _inferred_text_dtype() -> pd.StringDtype | None:
    """The Arrow-backed ``str`` dtype pandas infers for Python strings, or ``None`` when
    it infers something else (``object`` before pandas 3)."""
    dtype = pd.Series(np.array(["a"], dtype=object)).dtype
    if (
        isinstance(dtype, pd.StringDtype)
        and dtype.storage == "pyarrow"
        and dtype.na_value is np.nan
        and hasattr(pd.arrays, "ArrowStringArray")
    ):
        return dtype
    return None


_TEXT = _inferred_text_dtype()


def text_column(values: np.ndarray) -> Any:
    """``values`` (an object array of ``str``, missing values as ``None`` or NaN) as the
    column pandas would infer for them.

    Values that are not all text, and columns without any text, are returned as they are:
    pandas then makes the column its own way, as it would have.
    """
    if _TEXT is None:
        return values
    try:
        data = pa.array(values, type=pa.large_string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return values
    if data.null_count == len(data):
        return values  # no text at all (or no rows): pandas keeps such a column as objects
    return pd.arrays.ArrowStringArray(data, dtype=_TEXT)


def result_frame(columns: Mapping[str, Any], n_rows: int) -> pd.DataFrame:
    """A frame of ``n_rows`` rows from ready-made columns (no copies, a plain
    ``RangeIndex``).

    The column labels are made once per set of names (pandas would otherwise infer their
    type anew for every frame); each frame gets its own copy of them, so that renaming one
    frame's columns leaves the others alone.
    """
    frame = pd.DataFrame(dict(enumerate(columns.values())), index=pd.RangeIndex(n_rows), copy=False)
    frame.columns = _labels(tuple(columns)).copy()
    return frame


@lru_cache(maxsize=64)
def _labels(names: tuple[str, ...]) -> pd.Index:
    return pd.Index(names)
