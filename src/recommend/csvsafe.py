"""CSV files that spreadsheets open safely: text cells cannot start a formula.

A spreadsheet (Excel, WPS, LibreOffice) opening a CSV file runs a cell that starts with
``=``, ``+``, ``-`` or ``@`` as a formula, and treats a leading tab or carriage return
the same way; a member or course id such as ``=HYPERLINK(...)`` would then run in the
organiser's spreadsheet. Every CSV file the library writes (batch output, tables logged
to MLflow) goes through :func:`write_csv` or :func:`csv_text`, which apply the one rule,
:func:`neutralise`: such a text cell is written with an apostrophe in front, which
spreadsheets show as text and do not evaluate. The full-width forms of the four signs
(``＝＋－＠``), which some spreadsheets read as the ASCII ones, are treated alike, and so
is a cell that already starts with an apostrophe, so that :func:`restore` gives back
exactly the value written. Numbers (a negative score) are not text and stay as they are.
Rows end with CR LF, so that a cell holding a line break is quoted and stays one cell.

This module is a leaf: it imports only pandas.
"""

from __future__ import annotations

import os
from typing import Any

import pandas as pd

__all__ = [
    "FORMULA_STARTS",
    "LINE_END",
    "csv_text",
    "neutralise",
    "restore",
    "restore_columns",
    "safe_frame",
    "write_csv",
]

#: First characters of a text cell that a spreadsheet could evaluate (or that is already
#: escaped): such a cell is written with :data:`ESCAPE` in front.
FORMULA_STARTS = frozenset("=+-@\t\r＝＋－＠'")
ESCAPE = "'"
#: Rows end with CR LF (RFC 4180), so that a cell holding a carriage return or a line feed
#: is quoted: a bare CR in an unquoted cell would start a new row in a spreadsheet, whose
#: first cell then escapes the rule above.
LINE_END = "\r\n"


def neutralise(value: str) -> str:
    """The text to write in a CSV cell for ``value``: ``value`` itself, or ``value`` with an
    apostrophe in front when it starts with one of :data:`FORMULA_STARTS`."""
    return ESCAPE + value if value[:1] in FORMULA_STARTS else value


def restore(value: str) -> str:
    """The value a cell written by :func:`neutralise` holds (the inverse of it)."""
    return value[1:] if value.startswith(ESCAPE) else value


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], **options: Any) -> None:
    """Write ``frame`` to ``path`` as CSV: :func:`safe_frame`, rows ending with
    :data:`LINE_END`; ``options`` as in :meth:`pandas.DataFrame.to_csv`."""
    index = bool(options.get("index", True))
    safe_frame(frame, index=index).to_csv(path, lineterminator=LINE_END, **options)


def csv_text(frame: pd.DataFrame, **options: Any) -> str:
    """``frame`` as CSV text, as :func:`write_csv` writes it."""
    index = bool(options.get("index", True))
    text = safe_frame(frame, index=index).to_csv(lineterminator=LINE_END, **options)
    return str(text)


def safe_frame(frame: pd.DataFrame, *, index: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` to write as CSV: every text cell and column name through
    :func:`neutralise` (and the index labels too when ``index`` is true, as ``to_csv``
    writes them by default).

    Parameters
    ----------
    frame
        Any frame; columns of numbers, booleans and dates are left as they are, text in
        ``object``, string and categorical columns is neutralised.
    index
        Also neutralise the index labels (and the index names).
    """
    out = frame.copy()
    for i in range(out.shape[1]):
        out.isetitem(i, _safe_column(out.iloc[:, i]))
    out.columns = _safe_labels(out.columns)
    if index:
        out.index = _safe_labels(out.index)
    return out


def restore_columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``frame`` (read from a CSV file written through :func:`safe_frame`) with the text of
    ``columns`` restored (:func:`restore`); changed in place and returned."""
    for name in columns:
        col = frame[name]
        escaped = _starting_with(col, {ESCAPE})
        if escaped.any():
            col = col.copy()
            col[escaped] = col[escaped].map(restore)
            frame[name] = col
    return frame


def _is_text(values: pd.Series | pd.Index) -> bool:
    return values.dtype == object or isinstance(values.dtype, pd.StringDtype)


def _starting_with(col: pd.Series, starts: frozenset[str] | set[str]) -> pd.Series:
    """True for the text cells of ``col`` whose first character is in ``starts``."""
    if not _is_text(col):
        return pd.Series(False, index=col.index)
    try:
        first = col.str.slice(0, 1)
    except AttributeError:  # an object column without text
        return pd.Series(False, index=col.index)
    return first.isin(starts).fillna(False).astype(bool)


def _safe_column(col: pd.Series) -> pd.Series:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.rename_categories(_safe_labels(col.cat.categories))
    needs = _starting_with(col, FORMULA_STARTS)
    if not needs.any():
        return col
    out = col.copy()
    out[needs] = col[needs].map(neutralise)
    return out


def _safe_labels(labels: pd.Index) -> pd.Index:
    """Index or column labels (every level of a MultiIndex) through :func:`neutralise`."""
    if isinstance(labels, pd.MultiIndex):
        levels = [_safe_labels(level) for level in labels.levels]
        return labels.set_levels(levels).set_names([_label(n) for n in labels.names])
    safe = labels.map(_label) if _is_text(labels) else labels
    return safe.rename(_label(labels.name))


def _label(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value
