"""Loaders that map public data files onto the library's schema.

Every loader returns pandas frames whose column names come from ``schema.Columns``. The
frames are *raw*: ids are kept as the strings found in the file (ids matched across files
before validation, such as MOOCCubeX course ids and their item map, go through the same
``recommend.data.ids.normalise_id`` as validation) and no dtype checking is done beyond
what parsing needs; ``recommend.data.validation.validate`` does the checking
(``read_table(..., validate=True)`` calls it). Nothing is dropped silently: whatever a
loader drops (duplicate pairs, courses missing from an id map...) is counted, logged as a
warning and returned in a report.

Formats
-------
- Generic CSV / TSV / Parquet tables with a column mapping: ``read_table``.
- The benchmark "lines" format, one member per line ``member course course ...``:
  ``read_lines`` and ``load_lines_split``.
- MOOCCubeX course profiles (JSON lines) and learner lists: ``read_mooccubex_courses``,
  ``read_mooccubex_members``, and ``load_mooccubex`` for a whole folder.
- MovieLens ratings (``ratings.dat``, ``u.data``, ``ratings.csv``): ``read_movielens``.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recommend.data.ids import normalise_id
from recommend.data.mapping import mapping_hint
from recommend.data.validation import validate as validate_table
from recommend.errors import DataError
from recommend.schema import TABLES, Columns, Kind

__all__ = [
    "LinesData",
    "LinesSplit",
    "MOOCCubeXData",
    "lecturer_pseudonym",
    "load_lines_split",
    "load_mooccubex",
    "read_item_map",
    "read_lines",
    "read_lines_data",
    "read_member_ids",
    "read_mooccubex_courses",
    "read_mooccubex_members",
    "read_movielens",
    "read_table",
]

log = logging.getLogger(__name__)

C = Columns
PathLike = str | os.PathLike[str]

#: Origin of the pseudo-timestamps of files that carry no time (see ``read_lines``).
EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zip", ".zst")
_LIST_KINDS = (Kind.LIST,)
_ID_KINDS = (Kind.ID, Kind.OPT_ID)


# --------------------------------------------------------------------------- helpers


def _existing(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} file not found: {p}")
    if p.is_dir():
        raise DataError(f"{what} path is a directory, expected a file: {p}")
    return p


def _read_text(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} file {path} is not UTF-8 text ({exc.reason})") from None


def _datetimes(seconds: np.ndarray) -> np.ndarray:
    """Epoch seconds -> tz-naive UTC ``datetime64[ns]``."""
    return EPOCH + np.asarray(seconds, dtype=np.int64).astype("timedelta64[s]")


def _split_list(values: pd.Series) -> pd.Series:
    """Turn ``'a|b|c'`` strings into lists and nulls into ``[]``; lists pass through."""

    def one(v: object) -> object:
        if isinstance(v, str):
            return [t.strip() for t in v.split("|") if t.strip()]
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return []
        return v

    return pd.Series([one(v) for v in values.tolist()], index=values.index, dtype=object)


# --------------------------------------------------------------------- generic tables


def _table_format(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower().lstrip(".")
        fmt = {"pq": "parquet"}.get(fmt, fmt)
        if fmt not in ("csv", "tsv", "parquet"):
            raise DataError(f"unknown format {format!r}; expected 'csv', 'tsv' or 'parquet'")
        return fmt
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _FORMATS:
        return _FORMATS[suffixes[-1]]
    raise DataError(
        f"cannot tell the format of {path.name!r} from its name; supported suffixes are "
        f"{', '.join(_FORMATS)} (optionally compressed: {', '.join(_COMPRESSIONS)}), or "
        "pass format='csv' | 'tsv' | 'parquet'"
    )


def read_table(
    path: PathLike,
    table: str,
    *,
    columns: Mapping[str, str] | None = None,
    format: str | None = None,
    validate: bool = False,
    event: str | None = None,
    encoding: str | None = None,
    **read_kwargs: Any,
) -> pd.DataFrame:
    """Read one table from a CSV, TSV or Parquet file and rename its columns to ours.

    Parameters
    ----------
    path
        The file. Its format comes from the suffix (``.csv``, ``.tsv``, ``.parquet``,
        ``.pq``, each optionally compressed, e.g. ``.csv.gz``) unless ``format`` is given.
    table
        ``"events"``, ``"courses"``, ``"members"``, ``"orgs"`` or ``"searches"``.
    columns
        Source column name -> schema column name, e.g.
        ``{"user": "member_id", "item": "course_id", "ts": "timestamp"}``. Columns not
        named keep their names (including ones outside the schema, which validation
        passes through or, for personal data, refuses).
    format
        ``"csv"``, ``"tsv"`` or ``"parquet"``; overrides the suffix.
    validate
        Also run ``recommend.data.validation.validate`` on the mapped frame and return its
        cleaned copy.
    event
        For an events file without an ``event`` column: the event every row records
        (e.g. ``"view"`` for a log of plays, ``"complete"`` for a list of completions).
    encoding
        Text encoding of a CSV/TSV file (default UTF-8, with or without a byte-order mark),
        e.g. ``"gbk"`` for a file saved by Excel on Chinese Windows.
    **read_kwargs
        Passed to ``pandas.read_csv`` / ``pandas.read_parquet``.

    Returns
    -------
    pandas.DataFrame
        The mapped frame. CSV id columns are read as strings (``"007"`` stays ``"007"``)
        unless ``dtype`` is passed; ``'|'``-separated text in list columns (``tags``,
        ``skills``, ``shown``, ``clicked``, ``compulsory_for``) becomes lists of strings.

    Raises
    ------
    DataError
        Unknown table, missing file, unknown format, unreadable file (a file in another
        encoding says so), a mapping that names a column the file lacks or a target
        outside the table's schema, required columns missing after the mapping (with the
        mapping suggested from the file's own column names), or (with ``validate=True``)
        any validation problem.
    """
    if table not in TABLES:
        raise DataError(f"unknown table {table!r}; expected one of {', '.join(TABLES)}")
    schema = TABLES[table]
    mapping = dict(columns or {})
    bad_targets = [t for t in mapping.values() if t not in schema.columns]
    if bad_targets:
        raise DataError(
            f"{table}: mapping targets {bad_targets} are not columns of the {table} table; "
            f"expected names among {list(schema.columns)}"
        )
    doubled = sorted({t for t in mapping.values() if list(mapping.values()).count(t) > 1})
    if doubled:
        raise DataError(f"{table}: several source columns are mapped to {doubled}")
    p = _existing(path, table)
    fmt = _table_format(p, format)
    encoding = encoding or read_kwargs.pop("encoding", None)

    try:
        if fmt == "parquet":
            frame = pd.read_parquet(p, **read_kwargs)
        else:
            if "dtype" not in read_kwargs:
                # Ids are labels, not numbers: keep them exactly as written.
                id_sources = [c for c, k in schema.columns.items() if k in _ID_KINDS]
                id_sources += [s for s, t in mapping.items() if schema.columns[t] in _ID_KINDS]
                read_kwargs["dtype"] = dict.fromkeys(id_sources, str)
            if fmt == "tsv":
                read_kwargs.setdefault("sep", "\t")
            frame = pd.read_csv(p, encoding=encoding or "utf-8-sig", **read_kwargs)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{table}: {p} is not {encoding or 'UTF-8'} text (byte {exc.object[exc.start]:#04x} "
            f"at position {exc.start}); a file saved by Excel on Chinese Windows is usually "
            "GBK: pass encoding='gbk' (--encoding gbk)"
        ) from None
    except LookupError:
        raise DataError(
            f"{table}: unknown text encoding {encoding!r}, e.g. 'utf-8', 'gbk'"
        ) from None
    except (ValueError, OSError, ImportError) as exc:
        raise DataError(f"{table}: cannot read {fmt} file {p}: {exc}") from None

    missing = [s for s in mapping if s not in frame.columns]
    if missing:
        raise DataError(
            f"{table}: mapped column(s) {missing} not found in {p.name}; the file has "
            f"columns {list(map(str, frame.columns))}"
        )
    clash = [t for s, t in mapping.items() if t in frame.columns and t not in mapping and t != s]
    if clash:
        raise DataError(
            f"{table}: {p.name} already has column(s) {clash} that the mapping would "
            "create again; drop or map them first"
        )
    frame = frame.rename(columns=mapping)
    if event is not None and table == "events":
        if C.EVENT in frame.columns:
            raise DataError(
                f"events: {p.name} has an event column already; event={event!r} (--event) is "
                "for files without one"
            )
        frame[C.EVENT] = event
    missing_required = [c for c in schema.required if c not in frame.columns]
    if missing_required:
        raise DataError(
            f"{table}: {p.name} has no column(s) {missing_required} (its columns: "
            f"{list(map(str, frame.columns))}); " + mapping_hint(table, frame.columns)
        )
    for col, kind in schema.columns.items():
        if kind in _LIST_KINDS and col in frame.columns:
            frame[col] = _split_list(frame[col])
    log.info("read %d %s rows from %s", len(frame), table, p)
    if validate:
        frame = validate_table(table, frame)
    return frame


def read_member_ids(path: PathLike, *, encoding: str | None = None) -> pd.Series:
    """Member ids from a file: one id per line, or a CSV/Parquet file with a ``member_id``
    column (ids as written; requests normalise them).

    Raises
    ------
    DataError
        The file is missing, a folder, not text in ``encoding`` (default UTF-8; the
        message suggests ``encoding='gbk'``), has no ``member_id`` column (CSV/Parquet) or
        holds no id.
    """
    p = _existing(path, "members")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".parquet", ".pq"):
        frame = read_table(p, "members", encoding=encoding)
        values = frame[C.MEMBER].dropna()
    else:
        try:
            text = p.read_text(encoding=encoding or "utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(
                f"members file {p} is not {encoding or 'UTF-8'} text (byte "
                f"{exc.object[exc.start]:#04x} at position {exc.start}); a file saved on "
                "Chinese Windows is usually GBK: pass encoding='gbk' (--encoding gbk)"
            ) from None
        except LookupError:
            raise DataError(f"unknown text encoding {encoding!r}, e.g. 'utf-8', 'gbk'") from None
        values = pd.Series([v.strip() for v in text.splitlines() if v.strip()], dtype=object)
    if values.empty:
        raise DataError(f"members file {p} holds no member id (expected one id per line)")
    return values.reset_index(drop=True)


# ----------------------------------------------------------------------- lines format


@dataclass(frozen=True)
class LinesData:
    """Events read from one "lines" file, with what the reader dropped or noticed.

    Attributes
    ----------
    events
        ``member_id``, ``course_id`` (strings as in the file), ``event``, ``timestamp``.
    duplicates_dropped
        (member, course) pairs that occurred more than once; only the first is kept.
    members_without_items
        Members whose line holds no course (they cannot appear in an events table).
    blank_lines
        Empty lines skipped.
    """

    events: pd.DataFrame
    duplicates_dropped: int = 0
    members_without_items: tuple[str, ...] = ()
    blank_lines: int = 0


@dataclass(frozen=True)
class LinesSplit:
    """A train/test pair of "lines" files.

    ``duplicates_dropped`` and ``members_without_items`` are keyed ``"train"`` and
    ``"test"``; ``overlap`` counts test pairs that are also in train (kept in both).
    """

    train: pd.DataFrame
    test: pd.DataFrame
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    members_without_items: dict[str, int] = field(default_factory=dict)
    overlap: int = 0


def read_lines_data(
    path: PathLike, *, event: str = "interaction", integer_ids: bool = True
) -> LinesData:
    """Read a "lines" file, ``member course course ...`` per line, into events.

    Parameters
    ----------
    path
        Text file; tokens separated by any whitespace (``\\r\\n`` line ends are fine).
    event
        Value of the ``event`` column.
    integer_ids
        Require every token to be a non-negative decimal integer (the benchmark format);
        ``False`` accepts any token.

    Returns
    -------
    LinesData
        ``events`` has one row per distinct (member, course) pair in file order.
        ``timestamp`` is ``1970-01-01`` plus the course's position within its line in
        seconds: it encodes order of appearance, not real time, so sorting by time is
        stable and keeps file order. Repeated pairs keep their first occurrence and are
        counted in ``duplicates_dropped`` (and logged). Blank lines are skipped and
        counted. A member with no courses yields no event; their ids are returned in
        ``members_without_items`` (and logged). A member on several lines has the pairs of
        all of them.

    Raises
    ------
    DataError
        Missing or non-UTF-8 file, or a token that is not an integer (with
        ``integer_ids``); the message names the file and the 1-based line number.
    """
    p = _existing(path, "lines")
    lines = _read_text(p, "lines").split("\n")
    tokenised = [line.split() for line in lines]
    lengths = np.fromiter(map(len, tokenised), dtype=np.int64, count=len(tokenised))
    nonblank = np.flatnonzero(lengths)
    # A final newline leaves one empty string after the split; it is not a blank line.
    blank = int(len(lines) - nonblank.size - (1 if lines and not lines[-1].strip() else 0))
    lengths = lengths[nonblank]
    tokens = pd.Series(list(itertools.chain.from_iterable(tokenised)), dtype="str")
    if integer_ids and len(tokens):
        ok = tokens.str.fullmatch(r"[0-9]+").to_numpy(dtype=bool)
        if not ok.all():
            first = int(np.argmin(ok))
            line_no = int(nonblank[np.searchsorted(np.cumsum(lengths), first, side="right")])
            raise DataError(
                f"{p}, line {line_no + 1}: token {tokens.iloc[first]!r} is not an integer id; "
                "expected 'member course course ...' with integer ids "
                "(pass integer_ids=False to accept any token)"
            )
    starts = np.cumsum(lengths) - lengths
    n_items = lengths - 1
    members = tokens.to_numpy()[starts]
    empty = tuple(str(m) for m in members[n_items == 0])

    is_item = np.ones(len(tokens), dtype=bool)
    is_item[starts] = False
    item_starts = np.cumsum(n_items) - n_items
    position = np.arange(int(n_items.sum()), dtype=np.int64) - np.repeat(item_starts, n_items)
    events = pd.DataFrame(
        {
            C.MEMBER: pd.Series(np.repeat(members, n_items), dtype="str"),
            C.COURSE: tokens[is_item].reset_index(drop=True),
            C.EVENT: pd.Series(event, index=range(len(position)), dtype="str"),
            C.TIMESTAMP: _datetimes(position),
        }
    )
    member_codes = pd.factorize(events[C.MEMBER])[0].astype(np.int64)
    course_codes, course_uniques = pd.factorize(events[C.COURSE])
    key = member_codes * max(len(course_uniques), 1) + course_codes
    dup = pd.Series(key).duplicated().to_numpy()
    n_dup = int(dup.sum())
    if n_dup:
        events = events.loc[~dup].reset_index(drop=True)
        log.warning("%s: dropped %d duplicate (member, course) pairs", p, n_dup)
    if empty:
        log.warning("%s: %d member(s) have no courses and yield no events", p, len(empty))
    if blank:
        log.info("%s: skipped %d blank line(s)", p, blank)
    log.info("read %d events of %d members from %s", len(events), len(members), p)
    return LinesData(events, n_dup, empty, blank)


def read_lines(
    path: PathLike, *, event: str = "interaction", integer_ids: bool = True
) -> pd.DataFrame:
    """Read a "lines" file into an events frame; see ``read_lines_data`` for the rules.

    Duplicate pairs are dropped and their count is logged as a warning; use
    ``read_lines_data`` or ``load_lines_split`` to get the counts as values.
    """
    return read_lines_data(path, event=event, integer_ids=integer_ids).events


def _pair_keys(frame: pd.DataFrame) -> pd.Index:
    return pd.MultiIndex.from_frame(frame[[C.MEMBER, C.COURSE]])


def load_lines_split(
    train_path: PathLike,
    test_path: PathLike,
    *,
    event: str = "interaction",
    integer_ids: bool = True,
) -> LinesSplit:
    """Read a train and a test "lines" file (see ``read_lines_data``).

    Test pairs that also occur in train are kept in both and counted in ``overlap`` (a
    warning is logged): a clean benchmark has none.
    """
    parts = {
        name: read_lines_data(p, event=event, integer_ids=integer_ids)
        for name, p in (("train", train_path), ("test", test_path))
    }
    train, test = parts["train"].events, parts["test"].events
    overlap = int(_pair_keys(test).isin(_pair_keys(train)).sum())
    if overlap:
        log.warning("%d test pairs also occur in the training file", overlap)
    return LinesSplit(
        train=train,
        test=test,
        duplicates_dropped={k: v.duplicates_dropped for k, v in parts.items()},
        members_without_items={k: len(v.members_without_items) for k, v in parts.items()},
        overlap=overlap,
    )


# -------------------------------------------------------------------------- MOOCCubeX


def read_item_map(path: PathLike) -> dict[str, str]:
    """Read an id map, ``original_id index`` per line, as ``{original_id: index}``.

    A first line whose second token is not an integer is taken as a header. Blank lines
    are skipped.

    Raises
    ------
    DataError
        Missing file, a line without exactly two tokens, or an original id listed twice
        (the message names the line).
    """
    p = _existing(path, "item map")
    out: dict[str, str] = {}
    for number, line in enumerate(_read_text(p, "item map").split("\n"), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DataError(f"{p}, line {number}: expected 'original_id index', got {line!r}")
        if number == 1 and not parts[1].isdigit():
            continue
        parts = [normalise_id(part) for part in parts]
        if parts[0] in out:
            raise DataError(f"{p}, line {number}: original id {parts[0]!r} is listed twice")
        out[parts[0]] = parts[1]
    return out


def lecturer_pseudonym(value: str, key: bytes | str | None = None) -> str:
    """Stable pseudonymous lecturer id: ``"t"`` + 12 hex digits of a (keyed) SHA-256.

    Without a key the id is a plain hash, stable across runs and machines but reversible
    by anyone who can guess the input; pass a secret ``key`` (HMAC-SHA-256) to prevent that.
    """
    data = value.encode("utf-8")
    if key is None:
        digest = hashlib.sha256(data).hexdigest()
    else:
        k = key.encode("utf-8") if isinstance(key, str) else key
        digest = hmac.new(k, data, hashlib.sha256).hexdigest()
    return "t" + digest[:12]


def _str_list(value: object) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    return []


def read_mooccubex_courses(
    path: PathLike,
    *,
    item_map: PathLike | None = None,
    pseudonym_key: bytes | str | None = None,
) -> pd.DataFrame:
    """Read MOOCCubeX course profiles (JSON lines) into a courses frame.

    Parameters
    ----------
    path
        ``course_profiles.jsonl``: one JSON object per line with ``original_id`` (or
        ``id``), ``name``, ``about``, ``fields``, ``key_concepts``, ``teacher_ids``,
        ``teachers``, ``school_ids``...
    item_map
        ``item_map.txt`` (``original_id course_idx``). When given, ``course_id`` is the
        ``course_idx`` so that courses match the ids of the "lines" files; profiles
        missing from the map are dropped, and both those and map entries without a
        profile are counted and logged. Without it, ``course_id`` is the original id.
    pseudonym_key
        Secret for ``lecturer_pseudonym``; ``None`` uses a plain hash.

    Returns
    -------
    pandas.DataFrame
        ``course_id``, ``title`` (``name``), ``description`` (``about``), ``tags`` (list:
        ``fields`` then ``key_concepts``, de-duplicated, first occurrence kept),
        ``category`` (the first field, ``""`` when the course lists none), ``lecturer_id``
        (pseudonym of the first teacher's source id, or of their name when the profile has
        no teacher ids; ``None`` with no teacher) and ``org_id`` (first school's id, the
        institution offering the course; ``None`` if absent). Teacher and school names,
        prerequisites and related courses are not kept. Counts of what was dropped are in
        ``frame.attrs["load_report"]``.

    Raises
    ------
    DataError
        Missing file, a line that is not a JSON object or has no id (the message names the
        line), or a course id listed twice.
    """
    p = _existing(path, "course profiles")
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(_read_text(p, "course profiles").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{p}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise DataError(f"{p}, line {number}: expected a JSON object per line")
        cid = rec.get("original_id", rec.get("id"))
        cid = None if cid is None else normalise_id(str(cid))
        if not cid:
            raise DataError(f"{p}, line {number}: course has no 'original_id' (or 'id')")
        if cid in seen:
            raise DataError(f"{p}, line {number}: course {cid!r} already given on line {seen[cid]}")
        seen[cid] = number
        fields = _str_list(rec.get("fields", rec.get("field")))
        tags = list(dict.fromkeys(fields + _str_list(rec.get("key_concepts"))))
        teacher_ids = _str_list(rec.get("teacher_ids"))
        teachers = _str_list(rec.get("teachers"))
        who = teacher_ids[0] if teacher_ids else (teachers[0] if teachers else None)
        schools = _str_list(rec.get("school_ids"))
        rows.append(
            {
                C.COURSE: cid,
                C.TITLE: str(rec.get("name") or ""),
                C.DESCRIPTION: str(rec.get("about") or ""),
                C.CATEGORY: fields[0] if fields else "",
                C.TAGS: tags,
                C.LECTURER: None if who is None else lecturer_pseudonym(who, pseudonym_key),
                C.ORG: schools[0] if schools else None,
            }
        )
    columns = [C.COURSE, C.TITLE, C.DESCRIPTION, C.CATEGORY, C.TAGS, C.LECTURER, C.ORG]
    frame = pd.DataFrame(rows, columns=columns)
    report = {"profiles": len(frame), "not_in_item_map": 0, "item_map_without_profile": 0}
    if item_map is not None:
        mapping = read_item_map(item_map)
        mapped = frame[C.COURSE].map(mapping)
        unmapped = mapped.isna().to_numpy()
        report["not_in_item_map"] = int(unmapped.sum())
        report["item_map_without_profile"] = len(set(mapping) - set(seen))
        if unmapped.any():
            log.warning(
                "%s: dropped %d course profile(s) absent from the item map (e.g. %s)",
                p,
                int(unmapped.sum()),
                ", ".join(frame.loc[unmapped, C.COURSE].head(3)),
            )
        if report["item_map_without_profile"]:
            log.warning(
                "%s: %d course(s) of the item map have no profile",
                p,
                report["item_map_without_profile"],
            )
        frame = frame.loc[~unmapped].reset_index(drop=True)
        frame[C.COURSE] = mapped[~unmapped].to_numpy()
    for col in (C.COURSE, C.TITLE, C.DESCRIPTION, C.CATEGORY):
        frame[col] = frame[col].astype("str")
    frame.attrs["load_report"] = report
    log.info("read %d courses from %s", len(frame), p)
    return frame


def read_mooccubex_members(
    path: PathLike, *, gender_labels: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Read a MOOCCubeX learner list (``org_id remap_id gender``) into a members frame.

    The first column holds the learner's *original platform user id* (``U_...``), not an
    organisation, so it is not mapped to ``org_id``; it is dropped because it links back
    to the learner's personal record in the full release.

    Parameters
    ----------
    path
        ``user_list.txt``, whitespace separated, with or without the header line.
    gender_labels
        Optional code -> label map, e.g. ``{"0": "unknown", "1": "male", "2": "female"}``.
        The release does not document its 0/1/2 coding, so by default the codes are kept
        as strings.

    Returns
    -------
    pandas.DataFrame
        ``member_id`` (the ``remap_id`` as a string, matching the learner ids of the
        "lines" files) and ``gender``.

    Raises
    ------
    DataError
        Missing file, a line without three tokens, or a gender code missing from
        ``gender_labels``.
    """
    p = _existing(path, "learner list")
    lines = _read_text(p, "learner list").split("\n")
    tokenised = [line.split() for line in lines]
    if tokenised and len(tokenised[0]) == 3 and not tokenised[0][1].isdigit():
        tokenised[0] = []  # header line
    lengths = np.fromiter(map(len, tokenised), dtype=np.int64, count=len(tokenised))
    bad = (lengths != 3) & (lengths != 0)
    if bad.any():
        number = int(np.argmax(bad))
        raise DataError(
            f"{p}, line {number + 1}: expected 'org_id remap_id gender', "
            f"got {lines[number].strip()!r}"
        )
    kept = [t for t in tokenised if t]
    frame = pd.DataFrame(
        {
            C.MEMBER: pd.Series([t[1] for t in kept], dtype="str"),
            C.GENDER: pd.Series([t[2] for t in kept], dtype="str"),
        }
    )
    if gender_labels is not None:
        labels = frame[C.GENDER].map(dict(gender_labels))
        unknown = sorted(set(frame.loc[labels.isna(), C.GENDER]))
        if unknown:
            raise DataError(f"{p}: gender codes {unknown} are not in gender_labels")
        frame[C.GENDER] = labels.astype("str")
    log.info("read %d members from %s", len(frame), p)
    return frame


@dataclass(frozen=True)
class MOOCCubeXData:
    """A MOOCCubeX folder: train/test events, optional courses and members tables."""

    train: pd.DataFrame
    test: pd.DataFrame
    courses: pd.DataFrame | None = None
    members: pd.DataFrame | None = None
    duplicates_dropped: dict[str, int] = field(default_factory=dict)
    overlap: int = 0


def load_mooccubex(
    directory: PathLike,
    *,
    event: str = "interaction",
    pseudonym_key: bytes | str | None = None,
) -> MOOCCubeXData:
    """Load a folder in the MOOCCubeX benchmark layout.

    ``train.txt`` and ``test.txt`` are required ("lines" files, see ``read_lines_data``);
    ``course_profiles.jsonl`` (mapped through ``item_map.txt`` when present) gives
    ``courses`` and ``user_list.txt`` gives ``members`` when they exist.
    """
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"MOOCCubeX folder not found: {d}")
    split = load_lines_split(d / "train.txt", d / "test.txt", event=event)
    courses = members = None
    if (d / "course_profiles.jsonl").exists():
        item_map = d / "item_map.txt"
        courses = read_mooccubex_courses(
            d / "course_profiles.jsonl",
            item_map=item_map if item_map.exists() else None,
            pseudonym_key=pseudonym_key,
        )
    if (d / "user_list.txt").exists():
        members = read_mooccubex_members(d / "user_list.txt")
    return MOOCCubeXData(
        train=split.train,
        test=split.test,
        courses=courses,
        members=members,
        duplicates_dropped=split.duplicates_dropped,
        overlap=split.overlap,
    )


# -------------------------------------------------------------------------- MovieLens


def _movielens_layout(path: Path, first: str) -> tuple[str, bool]:
    """(separator, has_header) of a MovieLens ratings file."""
    if "::" in first:
        return "::", False
    if "\t" in first:
        return "\t", False
    if "," in first:
        return ",", not first.split(",")[0].strip().isdigit()
    raise DataError(
        f"{path}: not a MovieLens ratings file; expected 'user::movie::rating::timestamp' "
        "(ratings.dat), tab-separated 'user item rating timestamp' (u.data) or "
        "'userId,movieId,rating,timestamp' (ratings.csv)"
    )


def read_movielens(path: PathLike) -> pd.DataFrame:
    """Read MovieLens ratings into an events frame.

    The layout is detected from the content: ``::``-separated (``ratings.dat`` of ML-1M /
    ML-10M), tab-separated (``u.data`` of ML-100K) or comma-separated with a header
    (``ratings.csv`` of ML-20M / ML-latest).

    Returns
    -------
    pandas.DataFrame
        ``member_id`` and ``course_id`` (strings as in the file), ``event`` = ``"rating"``,
        ``value`` (the rating, float64) and ``timestamp`` (epoch seconds as tz-naive UTC
        ``datetime64[ns]``).

    Raises
    ------
    DataError
        Missing file, unknown layout, or a row without four fields or with a non-numeric
        rating or timestamp.
    """
    p = _existing(path, "MovieLens ratings")
    # ISO-8859-1: ML-1M's other files are Latin-1; ratings are ASCII either way.
    text = p.read_text(encoding="latin-1")
    first = next((line for line in text.split("\n") if line.strip()), "")
    sep, header = _movielens_layout(p, first)
    if sep == "::":
        # The C parser takes one-character separators only; '::' never occurs in ids.
        text, sep = text.replace("::", "\t"), "\t"
    names = [C.MEMBER, C.COURSE, C.VALUE, C.TIMESTAMP]
    try:
        with warnings.catch_warnings():
            # A row with more than four fields must fail, not lose data quietly.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            raw = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                header=0 if header else None,
                names=names,
                index_col=False,
                dtype={C.MEMBER: str, C.COURSE: str, C.VALUE: str, C.TIMESTAMP: str},
                skip_blank_lines=True,
            )
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DataError(f"{p}: cannot parse MovieLens ratings ({exc})") from None
    value = pd.to_numeric(raw[C.VALUE], errors="coerce")
    seconds = pd.to_numeric(raw[C.TIMESTAMP], errors="coerce")
    for col, parsed in ((C.VALUE, value), (C.TIMESTAMP, seconds)):
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise DataError(
                f"{p}: {int(bad.sum())} row(s) with a missing or non-numeric {col} "
                f"(first at data row {row + 1}: {raw[col].iloc[row]!r})"
            )
    frame = pd.DataFrame(
        {
            C.MEMBER: raw[C.MEMBER].astype("str"),
            C.COURSE: raw[C.COURSE].astype("str"),
            C.EVENT: pd.Series("rating", index=raw.index, dtype="str"),
            C.VALUE: value.astype("float64"),
            C.TIMESTAMP: _datetimes(seconds.to_numpy(dtype=np.int64)),
        }
    )
    log.info("read %d MovieLens ratings from %s", len(frame), p)
    return frame
