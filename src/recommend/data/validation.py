"""Validation of input tables against the public schema.

``validate`` checks one table and returns a cleaned copy with canonical dtypes;
``check_table`` returns the same checks as a report, with the notes and, for events, the
checks across rows (future-dated and far-past events, exact duplicates);
``check_references`` checks events against the courses and members tables. Every problem
is reported with the table, the column, the first offending rows (0-based positions) with
their count, and what was expected. Nothing is dropped or changed silently: the reference
check either raises or drops *and reports* what it dropped, and what cleaning changes (ids
normalised by ``recommend.data.ids``, text cut to ``MAX_TEXT_CHARS``) is counted in a note.

``validate`` and ``find_problems`` hold no rule that depends on the whole events table's
time range or on repeated rows (the Spark job validates batch by batch); those live in
``check_table``, ``recommend.data.timeline`` and ``Weighting``, which ``Dataset.from_frames``
applies to the whole table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from recommend.data.ids import normalise_ids
from recommend.data.mapping import mapping_hint
from recommend.data.personal import personal_columns, personal_content
from recommend.data.timeline import time_findings
from recommend.errors import SHOWN_ROWS, DataError, Problem
from recommend.schema import TABLES, Columns, Kind, TableSchema

__all__ = [
    "DEFAULT_EVENT_WEIGHTS",
    "EVENT_BOUNDS",
    "MAX_TEXT_CHARS",
    "ReferenceReport",
    "TableReport",
    "check_references",
    "check_table",
    "duplicate_rows",
    "find_problems",
    "personal_columns",
    "validate",
]

log = logging.getLogger(__name__)

C = Columns

#: Confidence weight of each event type (documented in ``Weighting``); validation refuses
#: event types that have no weight, so a typo never turns into zero-weight data.
DEFAULT_EVENT_WEIGHTS: Mapping[str, float] = {
    "view": 1.0,
    "progress": 2.0,
    "complete": 4.0,
    "like": 3.0,
    "favorite": 4.0,
    "share": 3.0,
    "comment": 2.0,
    "checkin": 1.0,
    "search_click": 1.0,
    "order": 5.0,
    "interaction": 1.0,  # undifferentiated implicit feedback (public benchmark files)
    "rating": 1.0,  # explicit ratings; the rating itself goes in ``value``
}

SHOW_VALUES = 5

#: Largest magnitude of an event's ``value`` and of its ``watch_seconds`` (about 116 days).
#: With the per-event and per-cell cap of ``Weighting.max_pair_confidence`` every number
#: summed into the float32 confidence matrix stays far within float32's range.
EVENT_BOUNDS: Mapping[str, float] = {Columns.VALUE: 1e6, Columns.WATCH_SECONDS: 1e7}
#: Text values (titles, descriptions, queries...) are cut to this many characters, the cut
#: counted in a note: a title of millions of characters would cost seconds and gigabytes
#: to index and is never meant.
MAX_TEXT_CHARS = 10_000
#: The columns compared to find exact duplicate events.
EVENT_COLUMNS = (
    Columns.MEMBER,
    Columns.COURSE,
    Columns.EVENT,
    Columns.TIMESTAMP,
    Columns.WATCH_SECONDS,
    Columns.VALUE,
)

_TRUE = {"true", "t", "yes", "y", "1", "是", "真"}
_FALSE = {"false", "f", "no", "n", "0", "否", "假"}
_LIST_SEP = re.compile(r"\s*\|\s*")


@dataclass
class _Checker:
    """Collects problems (refused) and notes (accepted, counted) of one table; ``frame`` is
    the working copy being cleaned."""

    schema: TableSchema
    frame: pd.DataFrame
    problems: list[Problem]
    notes: list[Problem] = field(default_factory=list)

    def add(
        self,
        column: str | None,
        message: str,
        expected: str = "",
        mask: np.ndarray | None = None,
        values: Iterable[object] = (),
        show_values: bool = True,
    ) -> None:
        self.problems.append(self.finding(column, message, expected, mask, values, show_values))

    def note(self, column: str | None, message: str, mask: np.ndarray | None = None) -> None:
        """Something accepted but worth knowing (counted, rows named, values never shown)."""
        self.notes.append(self.finding(column, message, "", mask, (), False))

    def finding(
        self,
        column: str | None,
        message: str,
        expected: str,
        mask: np.ndarray | None,
        values: Iterable[object],
        show_values: bool,
    ) -> Problem:
        rows: tuple[int, ...] = ()
        count = 0
        if mask is not None:
            positions = np.flatnonzero(mask)
            count = int(positions.size)
            rows = tuple(int(p) for p in positions[:SHOWN_ROWS])
            if show_values and not values and column is not None:
                values = self.frame[column].to_numpy()[positions[:SHOW_VALUES]]
        return Problem(
            table=self.schema.name,
            column=column,
            message=message,
            expected=expected,
            rows=rows,
            count=count,
            values=tuple(_plain(v) for v in values)[:SHOW_VALUES],
        )


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _typed_strings(values: pd.Series) -> bool:
    """A string dtype (not ``object``): every present value is a ``str``."""
    return values.dtype != object and pd.api.types.is_string_dtype(values.dtype)


def _is_null(values: pd.Series) -> np.ndarray:
    """Missing values and, in text columns, blank strings.

    Each distinct value is looked at once (id columns repeat their values many times).
    """
    null = np.asarray(values.isna().to_numpy(), dtype=bool)
    if _typed_strings(values) or values.dtype == object:
        try:
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
        except TypeError:  # unhashable values (lists): looked at one by one
            codes, uniques = np.arange(len(values)), values.tolist()
        blank = np.fromiter(
            (isinstance(u, str) and not u.strip() for u in uniques), dtype=bool, count=len(uniques)
        )
        if blank.any():
            null = null | ((codes >= 0) & blank[np.maximum(codes, 0)])
    return null


def _coerce_id(chk: _Checker, col: str, nullable: bool) -> None:
    s = _normalised_ids(chk, col, chk.frame[col])
    null = _is_null(s)
    if null.any() and not nullable:
        chk.add(col, "null or empty ids", "a non-empty id in every row", null, show_values=False)
        return
    present = s[~null]
    if pd.api.types.is_bool_dtype(s.dtype):
        chk.add(col, f"ids of dtype {s.dtype}", "integer or string ids")
        return
    if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_float_dtype(s.dtype):
        # Beyond int64 an id would wrap around into another id.
        values = present.to_numpy()
        huge = (values >= 2**63) | (values < -(2**63))
        if huge.any():
            bad = np.zeros(len(s), bool)
            bad[np.flatnonzero(~null)[huge]] = True
            chk.add(col, "integer ids beyond the 64-bit range", "ids below 2**63, or strings", bad)
            return
    if pd.api.types.is_integer_dtype(s.dtype):
        chk.frame[col] = s.astype("Int64" if nullable and null.any() else "int64")
        return
    if pd.api.types.is_float_dtype(s.dtype):
        frac = present.to_numpy() != np.round(present.to_numpy())
        if frac.any():
            bad = np.zeros(len(s), bool)
            bad[np.flatnonzero(~null)[frac]] = True
            chk.add(col, "non-integer numeric ids", "integer or string ids", mask=bad)
            return
        chk.frame[col] = s.astype("Int64" if null.any() else "int64")
        return
    if _typed_strings(s):
        chk.frame[col] = s.where(~null, None) if nullable and null.any() else s
        return
    if s.dtype == object:
        kinds = present.map(type)
        if kinds.eq(str).all():
            typed = s.astype("string")
            chk.frame[col] = typed.where(~null, None) if nullable and null.any() else typed
            return
        is_int = kinds.map(lambda t: issubclass(t, int | np.integer) and t is not bool)
        if is_int.all():
            huge = np.array([not -(2**63) <= int(v) < 2**63 for v in present.tolist()], bool)
            if huge.any():
                bad = np.zeros(len(s), bool)
                bad[np.flatnonzero(~null)[huge]] = True
                chk.add(
                    col, "integer ids beyond the 64-bit range", "ids below 2**63, or strings", bad
                )
                return
            chk.frame[col] = s.astype("Int64" if null.any() else "int64")
            return
        bad = np.zeros(len(s), bool)
        bad[np.flatnonzero(~null)[~kinds.eq(str).to_numpy()]] = True
        chk.add(
            col,
            "ids mix strings with other types",
            "all ids of one column to be strings, or all integers",
            mask=bad,
        )
        return
    chk.add(col, f"ids of dtype {s.dtype}", "integer or string ids")


def _normalised_ids(chk: _Checker, col: str, s: pd.Series) -> pd.Series:
    """String ids through ``normalise_id`` (NFKC, no zero-width characters, stripped);
    the ids it changed are counted in a note, never silently merged."""
    if not (_typed_strings(s) or s.dtype == object):
        return s
    fixed, changed = normalise_ids(s)
    if not changed.any():
        return s
    before = pd.unique(s.to_numpy(dtype=object)[changed])
    after = pd.unique(fixed.to_numpy(dtype=object)[changed])
    chk.note(
        col,
        f"ids normalised (Unicode NFKC, zero-width characters and surrounding spaces "
        f"removed; {before.size} distinct id(s) became {after.size})",
        mask=changed,
    )
    return fixed.astype(s.dtype) if _typed_strings(s) else fixed


def _coerce_text(chk: _Checker, col: str, required: bool) -> None:
    s = chk.frame[col]
    null = s.isna().to_numpy()
    if required and null.any():
        chk.add(col, "missing values", "a value in every row", mask=null)
        return
    if s.dtype == object:
        odd = ~null & ~s.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        if odd.any():
            chk.add(col, "values that are not text", "text (str)", mask=odd)
            return
    out = s.astype(object).where(~null, None)
    values = out.tolist()
    if any(isinstance(v, str) and len(v) > MAX_TEXT_CHARS for v in values):
        long = np.array([isinstance(v, str) and len(v) > MAX_TEXT_CHARS for v in values])
        chk.note(col, f"text cut to its first {MAX_TEXT_CHARS:,} characters", mask=long)
        out[long] = [v[:MAX_TEXT_CHARS] for v in out[long].tolist()]
    chk.frame[col] = out


def _coerce_number(chk: _Checker, col: str, required: bool, nonneg: bool) -> None:
    s = chk.frame[col]
    was_null = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        chk.add(col, "boolean values", "a number")
        return
    num = pd.to_numeric(s, errors="coerce").astype("float64")
    arr = num.to_numpy()
    unreadable = np.isnan(arr) & ~was_null
    if unreadable.any():
        chk.add(col, "values that cannot be read as numbers", "a number", mask=unreadable)
    if required and was_null.any():
        chk.add(col, "missing values", "a number in every row", was_null, show_values=False)
    nonfinite = np.isinf(arr)
    if nonfinite.any():
        chk.add(col, "non-finite values", "a finite number", mask=nonfinite)
    if nonneg:
        neg = arr < 0
        if neg.any():
            chk.add(col, "negative values", "a number >= 0", mask=neg)
    chk.frame[col] = num


def _coerce_int(chk: _Checker, col: str, required: bool) -> None:
    before = len(chk.problems)
    _coerce_number(chk, col, required, nonneg=False)
    if len(chk.problems) > before:
        return
    arr = chk.frame[col].to_numpy()
    frac = ~np.isnan(arr) & (arr != np.round(arr))
    if frac.any():
        chk.add(col, "non-integer values", "an integer", mask=frac)
        return
    if col == C.BIRTH_YEAR:
        this_year = pd.Timestamp.now().year
        odd = ~np.isnan(arr) & ((arr < 1900) | (arr > this_year))
        if odd.any():
            chk.add(col, "implausible birth years", f"a year between 1900 and {this_year}", odd)
            return
    chk.frame[col] = chk.frame[col].astype("Int64")


def _coerce_time(chk: _Checker, col: str, required: bool) -> None:
    s = chk.frame[col]
    null = s.isna().to_numpy()
    missing = required and bool(null.any())
    if missing:  # reported, and the other values are still checked
        chk.add(col, "missing timestamps", "a timestamp in every row", null, show_values=False)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC").dt.tz_localize(None)
    elif pd.api.types.is_datetime64_dtype(s.dtype):
        out = s
    elif pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        arr = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64")
        if not _epoch_in_range(chk, col, arr, ~null):
            return
        out = pd.Series(pd.to_datetime(arr, unit="s"), index=s.index)
    else:
        text = s.astype(object).where(~null, None)
        # Numbers in a text column are epoch seconds, as in a numeric column (pandas would
        # read a bare number as nanoseconds: 1970); 8-digit text stays a YYYYMMDD date.
        seconds = _numeric_text(text)
        numeric = ~np.isnan(seconds)
        if numeric.any() and not _epoch_in_range(chk, col, seconds, numeric):
            return
        words = text.where(~numeric, None)
        out = pd.to_datetime(words, errors="coerce", format="mixed", utc=True)
        out = out.dt.tz_localize(None).astype("datetime64[ns]")
        if numeric.any():
            out[numeric] = pd.to_datetime(seconds[numeric], unit="s")
        unparsed = out.isna().to_numpy() & ~null
        if unparsed.any():
            chk.add(
                col,
                "unparseable timestamps",
                "ISO 8601 text (e.g. 2024-05-01 08:30:00), a datetime, or epoch seconds",
                mask=unparsed,
            )
            return
    if missing:
        return
    chk.frame[col] = pd.Series(out, index=s.index).astype("datetime64[ns]")


_NUMBER_TEXT = r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*"
_DATE_DIGITS = r"\s*\d{8}\s*"


def _numeric_text(text: pd.Series) -> np.ndarray:
    """Epoch seconds of the values of an object column that are numbers or number text
    (not 8-digit text: ``20240501`` is a date), ``nan`` elsewhere; shape ``(len(text),)``."""
    out = np.full(len(text), np.nan)
    is_str = text.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_num = text.map(
        lambda v: (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
        )
    ).to_numpy(dtype=bool)
    if is_str.any():
        words = text[is_str].astype(str)
        number = words.str.fullmatch(_NUMBER_TEXT).to_numpy(dtype=bool) & ~words.str.fullmatch(
            _DATE_DIGITS
        ).to_numpy(dtype=bool)
        pos = np.flatnonzero(is_str)[number]
        out[pos] = pd.to_numeric(words[number], errors="coerce").to_numpy(dtype=np.float64)
    if is_num.any():
        out[is_num] = text[is_num].astype(np.float64).to_numpy()
        # A NaN number is a missing value, not a timestamp: leave it to the null check.
    return out


def _epoch_in_range(chk: _Checker, col: str, seconds: np.ndarray, rows: np.ndarray) -> bool:
    """Report epoch seconds that are not finite or outside datetime64[ns] (1677-2262)."""
    bad = rows & ~(np.isfinite(seconds) & (np.abs(seconds) < 9.2e9))
    if bad.any():
        chk.add(
            col,
            "numeric timestamps that are not finite or out of range",
            "seconds since 1970-01-01 (years 1677-2262); epoch milliseconds must be "
            "divided by 1000 first",
            bad,
        )
        return False
    return True


def _coerce_bool(chk: _Checker, col: str, required: bool) -> None:
    s = chk.frame[col]
    null = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s.dtype):
        if null.any() and required:
            chk.add(col, "missing values", "true or false in every row", mask=null)
            return
        chk.frame[col] = s.astype("boolean" if null.any() else bool)
        return
    text = s.astype("string").str.strip().str.lower()
    is_true = text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)
    is_false = text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)
    bad = ~(is_true | is_false | null)
    if bad.any():
        hint = "true/false (also 1/0, yes/no, 是/否)"
        phone_like = bool(text[bad].str.fullmatch(r"\+?[\d\- ]{7,}").fillna(False).any())
        if phone_like:
            # Never echo what may be phone numbers into messages or logs.
            hint += (
                f"; `{col}` looks like it holds phone numbers, which the library refuses: "
                "drop them (`mobile` flags a member working away from their branch)"
            )
        chk.add(col, "values that are not booleans", hint, bad, show_values=not phone_like)
        return
    if required and null.any():
        chk.add(col, "missing values", "true or false in every row", mask=null)
        return
    out = pd.Series(is_true, index=s.index, dtype="boolean")
    out[null] = pd.NA
    chk.frame[col] = out if null.any() else out.astype(bool)


def _as_list(value: object) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        return [t for t in _LIST_SEP.split(value.strip()) if t]
    if isinstance(value, float) and np.isnan(value):
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if all(isinstance(v, (str, int, np.integer)) for v in items):
            return [str(v) for v in items]
    return None


def _coerce_list(chk: _Checker, col: str) -> None:
    s = chk.frame[col]
    converted = [_as_list(v) for v in s.tolist()]
    bad = np.array([v is None for v in converted], dtype=bool)
    if bad.any():
        chk.add(col, "values that are not lists", "a list of strings or 'a|b|c' text", mask=bad)
        return
    chk.frame[col] = pd.Series(converted, index=s.index, dtype=object)


_COERCERS: dict[Kind, Callable[[_Checker, str, bool], None]] = {
    Kind.ID: lambda chk, col, req: _coerce_id(chk, col, nullable=False),
    Kind.OPT_ID: lambda chk, col, req: _coerce_id(chk, col, nullable=True),
    Kind.TEXT: _coerce_text,
    Kind.NUMBER: lambda chk, col, req: _coerce_number(chk, col, req, nonneg=False),
    Kind.NONNEG: lambda chk, col, req: _coerce_number(chk, col, req, nonneg=True),
    Kind.INT: _coerce_int,
    Kind.TIME: _coerce_time,
    Kind.BOOL: _coerce_bool,
    Kind.LIST: lambda chk, col, req: _coerce_list(chk, col),
}


def _schema_of(table: str | TableSchema) -> TableSchema:
    if isinstance(table, TableSchema):
        return table
    try:
        return TABLES[table]
    except KeyError:
        raise DataError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}") from None


def find_problems(
    table: str | TableSchema,
    frame: pd.DataFrame,
    *,
    event_weights: Mapping[str, float] | None = None,
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check ``frame`` against a table schema without raising.

    Returns the cleaned copy (meaningful only when the problem list is empty) and the list
    of problems found. ``validate`` is the raising form.
    """
    schema = _schema_of(table)
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{schema.name}: expected a pandas DataFrame, got {type(frame).__name__}")
    chk = _Checker(schema, frame.copy(deep=True), [])
    _find(chk, frame, event_weights)
    for note in chk.notes:
        log.warning("%s", note)
    return chk.frame, chk.problems


def _find(chk: _Checker, frame: pd.DataFrame, event_weights: Mapping[str, float] | None) -> None:
    """The row-by-row checks of one table into ``chk`` (cleaned copy, problems, notes)."""
    schema = chk.schema
    personal = personal_columns(frame)
    if personal:
        chk.add(
            None,
            f"personal columns {personal} are refused: the library needs no names, phone "
            "numbers, ID numbers or addresses",
            f"a frame without them — drop them first: frame.drop(columns={personal})",
        )
    for col, kinds in personal_content(frame).items():
        chk.add(
            col,
            f"values that look like {' and '.join(kinds)} (personal data, refused; values "
            "not shown)",
            f"no personal data: drop the column (frame.drop(columns=[{col!r}])) or replace "
            "it by a keyed pseudonym",
            show_values=False,
        )
    duplicated = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if duplicated:
        chk.add(None, f"duplicate column names {duplicated}", "each column name once")
        return
    missing = [c for c in schema.required if c not in frame.columns]
    if missing:
        chk.add(
            None,
            f"missing required column(s) {missing}",
            f"columns {list(schema.required)} (present: {list(frame.columns)}); "
            + mapping_hint(schema.name, map(str, frame.columns)),
        )
    if len(frame) == 0:
        chk.add(None, "the table is empty", "at least one row")
    if chk.problems:
        return

    chk.frame = chk.frame.reset_index(drop=True)
    for col, kind in schema.columns.items():
        if col in chk.frame.columns:
            _COERCERS[kind](chk, col, col in schema.required)

    if schema.key and not any(p.column == schema.key for p in chk.problems):
        dup = chk.frame[schema.key].duplicated(keep=False).to_numpy()
        if dup.any():
            chk.add(schema.key, "duplicate ids", f"each {schema.key} exactly once", mask=dup)

    if schema.name == "events" and not any(p.column == C.EVENT for p in chk.problems):
        weights = DEFAULT_EVENT_WEIGHTS if event_weights is None else event_weights
        unknown = ~chk.frame[C.EVENT].isin(list(weights)).to_numpy()
        if unknown.any():
            counts = chk.frame.loc[unknown, C.EVENT].value_counts()
            listed = ", ".join(f"{k!r} x{v}" for k, v in counts.head(SHOW_VALUES).items())
            chk.add(
                C.EVENT,
                f"event types with no weight: {listed}",
                f"one of {sorted(weights)}, or give them a weight in Weighting(event_weights=...)",
                mask=unknown,
                show_values=False,
            )
    if schema.name == "events":
        _check_bounds(chk)


def _check_bounds(chk: _Checker) -> None:
    """Refuse event numbers too large for the float32 confidence matrix."""
    for col, bound in EVENT_BOUNDS.items():
        if col not in chk.frame.columns or any(p.column == col for p in chk.problems):
            continue
        arr = chk.frame[col].to_numpy(dtype=np.float64, na_value=np.nan)
        huge = np.abs(arr) > bound
        if huge.any():
            chk.add(
                col,
                "values too large for the confidence matrix",
                f"values between -{bound:g} and {bound:g}",
                mask=huge,
            )


def duplicate_rows(events: pd.DataFrame, keep: Literal["first", False] = False) -> np.ndarray:
    """Exact duplicate events: rows equal in every column of the events schema present.

    Returns a boolean array of shape ``(len(events),)``: with ``keep=False`` every row of a
    set of duplicates is marked, with ``keep="first"`` all but the first of each set.
    """
    cols = [c for c in EVENT_COLUMNS if c in events.columns]
    return np.asarray(events.duplicated(subset=cols, keep=keep).to_numpy(), dtype=bool)


@dataclass(frozen=True)
class TableReport:
    """Everything checking one table found.

    ``frame`` is the cleaned copy (meaningful only when ``problems`` is empty);
    ``problems`` are refused (``validate`` raises them); ``notes`` were accepted and
    counted: ids changed by normalisation, text cut to ``MAX_TEXT_CHARS``, exact duplicate
    events, far-past events. Notes name rows, never values.
    """

    table: str
    frame: pd.DataFrame
    problems: tuple[Problem, ...]
    notes: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_table(
    table: str | TableSchema,
    frame: pd.DataFrame,
    *,
    event_weights: Mapping[str, float] | None = None,
    now: pd.Timestamp | str | None = None,
) -> TableReport:
    """Check one table without raising: what ``validate`` refuses and what it notes.

    On top of ``find_problems`` it checks, for the events table, the events dated after
    the reference time (``now`` when given, else the data's robust now; see
    ``recommend.data.timeline``: a problem, as ``Dataset.from_frames`` refuses them by
    default), the far-past events and the exact duplicate rows (notes). ``recommend data
    validate`` prints this report.
    """
    schema = _schema_of(table)
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{schema.name}: expected a pandas DataFrame, got {type(frame).__name__}")
    chk = _Checker(schema, frame.copy(deep=True), [])
    _find(chk, frame, event_weights)
    if schema.name == "events" and not chk.problems:
        dup = duplicate_rows(chk.frame)
        if dup.any():
            extra = int(duplicate_rows(chk.frame, keep="first").sum())
            chk.note(
                None,
                f"exact duplicate events ({extra} beyond the first of each set); each counts "
                "unless Weighting(duplicates='collapse')",
                mask=dup,
            )
        _, _, future, past = time_findings(chk.frame, now)
        if future is not None:
            chk.problems.append(future)
        if past is not None:
            chk.notes.append(past)
    return TableReport(schema.name, chk.frame, tuple(chk.problems), tuple(chk.notes))


def validate(
    table: str | TableSchema,
    frame: pd.DataFrame,
    *,
    event_weights: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Validate one table and return a cleaned copy with canonical dtypes.

    Parameters
    ----------
    table
        ``"events"``, ``"courses"``, ``"members"``, ``"orgs"`` or ``"searches"`` (or a
        ``TableSchema``).
    frame
        The table; it is never modified.
    event_weights
        Event types that carry a weight (events table only); defaults to
        ``DEFAULT_EVENT_WEIGHTS``. Events of other types are refused.

    Returns
    -------
    pandas.DataFrame
        A copy with a fresh ``RangeIndex``: ids as ``int64`` or Python ``str``; timestamps
        as tz-naive UTC ``datetime64[ns]``; numbers as ``float64``; list columns as lists of
        ``str``; unknown extra columns passed through unchanged.

    Raises
    ------
    DataError
        Listing every problem found (table, column, first rows, count, expected).

    What cleaning changed (normalised ids, cut text) is logged as a warning, one line per
    note, naming rows and never values; ``check_table`` returns the notes instead.
    """
    cleaned, problems = find_problems(table, frame, event_weights=event_weights)
    if problems:
        raise DataError(problems)
    return cleaned


@dataclass(frozen=True)
class ReferenceReport:
    """What ``check_references`` dropped (policy ``"drop"``); all zero when nothing was.

    ``Dataset.from_frames`` adds the future-dated events it dropped (``on_future="drop"``)
    to ``events_in`` and ``future_events``."""

    events_in: int
    events_out: int
    unknown_course_events: int = 0
    unknown_courses: int = 0
    unknown_member_events: int = 0
    unknown_members: int = 0
    future_events: int = 0

    @property
    def dropped(self) -> int:
        return self.events_in - self.events_out


def _is_int_ids(values: pd.Series) -> bool:
    return bool(pd.api.types.is_integer_dtype(values.dtype))


def check_references(
    events: pd.DataFrame,
    *,
    courses: pd.DataFrame | None = None,
    members: pd.DataFrame | None = None,
    on_unknown: Literal["raise", "drop"] = "raise",
) -> tuple[pd.DataFrame, ReferenceReport]:
    """Check that events refer to courses and members present in their tables.

    With ``on_unknown="raise"`` a ``DataError`` names the unknown ids and their rows; with
    ``"drop"`` those events are removed, counted in the returned report and logged. A table
    that is ``None`` is not checked against.
    """
    if on_unknown not in ("raise", "drop"):
        raise DataError(f"on_unknown={on_unknown!r}; expected 'raise' or 'drop'")
    keep = np.ones(len(events), dtype=bool)
    problems: list[Problem] = []
    counts: dict[str, int] = {}
    for col, table, label in ((C.COURSE, courses, "course"), (C.MEMBER, members, "member")):
        if table is None:
            continue
        if _is_int_ids(events[col]) != _is_int_ids(table[col]):
            kinds = {True: "integers", False: "strings"}
            raise DataError(
                f"events.{col} ids are {kinds[_is_int_ids(events[col])]} but {label}s.{col} "
                f"ids are {kinds[_is_int_ids(table[col])]}; expected the same kind in both "
                "(convert one of them, e.g. .astype(str))"
            )
        unknown = ~events[col].isin(table[col]).to_numpy()
        n = int(unknown.sum())
        ids = pd.unique(events[col].to_numpy()[unknown])
        counts[f"unknown_{label}_events"] = n
        counts[f"unknown_{label}s"] = len(ids)
        if n:
            problems.append(
                Problem.at(
                    "events",
                    col,
                    f"events refer to {len(ids)} {label}(s) missing from the {label}s table",
                    f"every {col} to be in the {label}s table, or on_unknown='drop' to drop "
                    "(and count) such events",
                    unknown,
                    values=(_plain(v) for v in ids[:SHOW_VALUES]),
                )
            )
            keep &= ~unknown
    if problems and on_unknown == "raise":
        raise DataError(problems)
    report = ReferenceReport(events_in=len(events), events_out=int(keep.sum()), **counts)
    if report.dropped:
        log.warning(
            "dropped %d of %d events that refer to unknown ids (%s)",
            report.dropped,
            report.events_in,
            ", ".join(f"{k}={v}" for k, v in counts.items() if v),
        )
        return events.loc[keep].reset_index(drop=True), report
    return events, report
