"""The volunteer tables (``volunteers``, ``requests``, ``services``): columns, schemas and
validation.

Validation goes through :func:`recommend.data.validation.find_problems` (the same coercion,
named problems and refusal of personal columns as the platform's other tables), then adds
the checks these tables need: a known service kind, availability windows that parse, a
time window that ends after it starts, coordinates on the globe, and (when a skill
vocabulary is given) only known skills. Ids only: a requester's or a volunteer's identity
stays in the platform.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Final

import numpy as np
import pandas as pd

from recommend.data.validation import find_problems
from recommend.errors import DataError, Problem
from recommend.schema import Kind, TableSchema

__all__ = [
    "KINDS",
    "KIND_CODES",
    "REQUESTS",
    "SERVICES",
    "VOLUNTEERS",
    "VolunteerColumns",
    "VolunteerTables",
    "availability_hours",
    "validate_requests",
    "validate_services",
    "validate_tables",
    "validate_volunteers",
]


class VolunteerColumns:
    """Column names of the volunteer tables and of dispatch outputs."""

    VOLUNTEER: Final = "volunteer_id"
    REQUEST: Final = "request_id"
    MEMBER: Final = "member_id"
    ORG: Final = "org_id"
    PERSON: Final = "person_id"  # the pseudonymous id of the person helped (kind 3)
    # volunteers
    VOLUNTEER_KIND: Final = "volunteer_kind"  # member | branch
    SKILLS: Final = "skills"
    DESCRIPTION: Final = "description"
    DISTRICT: Final = "district"
    LAT: Final = "lat"
    LON: Final = "lon"
    AVAILABILITY: Final = "availability"
    WEEKLY_HOURS: Final = "weekly_hours"
    FITNESS: Final = "fitness"
    CAPACITY: Final = "capacity"
    # requests
    KIND: Final = "kind"
    CONTENT: Final = "content"
    START: Final = "start"
    END: Final = "end"
    HEADCOUNT: Final = "headcount"
    URGENCY: Final = "urgency"
    REQUESTER_KIND: Final = "requester_kind"
    POSTED_AT: Final = "posted_at"
    APPROVED: Final = "approved"
    # services
    SERVED_AT: Final = "served_at"
    HOURS: Final = "hours"
    RATING: Final = "rating"
    NO_SHOW: Final = "no_show"
    # outputs
    SCORE: Final = "score"
    RANK: Final = "rank"
    REASON: Final = "reason"
    DISTANCE_KM: Final = "distance_km"
    ASSIGNED_AT: Final = "assigned_at"


V = VolunteerColumns

#: The four kinds of volunteer service, in dispatch priority order (emergencies first).
KINDS: Final = ("应急救助", "公共服务", "弱势群体帮扶", "专业技能互助")
#: English codes accepted for the kinds (files written by other systems).
KIND_CODES: Final = MappingProxyType(
    {"emergency": KINDS[0], "public": KINDS[1], "vulnerable": KINDS[2], "skill": KINDS[3]}
)
VOLUNTEER_KINDS: Final = ("member", "branch")
REQUESTER_KINDS: Final = ("resident", "organisation", "branch")

# Column names that identify a person in these tables, beyond the platform-wide list.
_PERSONAL: Final = frozenset(
    {
        "requestername",
        "residentname",
        "contactname",
        "contact",
        "contactphone",
        "personname",
        "volunteername",
        "elderlyname",
        "联系人",
        "求助人",
        "居民姓名",
    }
)


def _schema(
    name: str, required: dict[str, Kind], optional: dict[str, Kind], key: str | None
) -> TableSchema:
    return TableSchema(name, MappingProxyType(required), MappingProxyType(optional), key)


VOLUNTEERS: Final = _schema(
    "volunteers",
    {V.VOLUNTEER: Kind.ID, V.DISTRICT: Kind.TEXT},
    {
        V.VOLUNTEER_KIND: Kind.TEXT,
        V.MEMBER: Kind.OPT_ID,
        V.ORG: Kind.OPT_ID,
        V.SKILLS: Kind.LIST,
        V.DESCRIPTION: Kind.TEXT,
        V.LAT: Kind.NUMBER,
        V.LON: Kind.NUMBER,
        V.AVAILABILITY: Kind.LIST,
        V.WEEKLY_HOURS: Kind.NONNEG,
        V.FITNESS: Kind.BOOL,
        V.CAPACITY: Kind.INT,
    },
    V.VOLUNTEER,
)
REQUESTS: Final = _schema(
    "requests",
    {V.REQUEST: Kind.ID, V.KIND: Kind.TEXT, V.START: Kind.TIME, V.END: Kind.TIME},
    {
        V.CONTENT: Kind.TEXT,
        V.SKILLS: Kind.LIST,
        V.DISTRICT: Kind.TEXT,
        V.LAT: Kind.NUMBER,
        V.LON: Kind.NUMBER,
        V.HEADCOUNT: Kind.INT,
        V.URGENCY: Kind.NONNEG,
        V.REQUESTER_KIND: Kind.TEXT,
        V.PERSON: Kind.OPT_ID,
        V.POSTED_AT: Kind.TIME,
        V.APPROVED: Kind.BOOL,
        V.HOURS: Kind.NONNEG,
    },
    V.REQUEST,
)
SERVICES: Final = _schema(
    "services",
    {V.VOLUNTEER: Kind.ID, V.REQUEST: Kind.ID, V.KIND: Kind.TEXT, V.SERVED_AT: Kind.TIME},
    {
        V.HOURS: Kind.NONNEG,
        V.RATING: Kind.NUMBER,
        V.NO_SHOW: Kind.BOOL,
        V.SKILLS: Kind.LIST,
        V.PERSON: Kind.OPT_ID,
        V.DISTRICT: Kind.TEXT,
    },
    None,
)

_DAYS: Final = {
    **{str(i): i - 1 for i in range(1, 8)},
    **{f"周{c}": i for i, c in enumerate("一二三四五六日")},
    "周天": 6,
    **{d: i for i, d in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
}
_WINDOW: Final = re.compile(r"^\s*(\S+)\s+(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
HOURS_PER_WEEK: Final = 168


def parse_window(text: str) -> np.ndarray | None:
    """The hours of the week (0 = Monday 00:00) a window such as ``"6 09:00-12:00"``,
    ``"周六 09:00-12:00"`` or ``"每天 18:00-21:00"`` covers; ``None`` when it does not parse.

    A window covers every hour it touches (09:30-11:00 covers 9 and 10); ``24:00`` ends a day.
    """
    hours = _parse_window(str(text))
    return None if hours is None else np.asarray(hours, dtype=np.int64)


@lru_cache(maxsize=8192)
def _parse_window(text: str) -> tuple[int, ...] | None:
    """``parse_window`` without the array, cached: volunteers share a few window texts."""
    match = _WINDOW.match(text)
    if not match:
        return None
    day, h0, m0, h1, m1 = match.groups()
    start, end = int(h0) + int(m0) / 60.0, int(h1) + int(m1) / 60.0
    if not (0 <= start < end <= 24) or int(m0) >= 60 or int(m1) >= 60:
        return None
    key = day.lower()
    days = range(7) if key in ("每天", "daily", "*") else [_DAYS.get(key, -1)]
    if -1 in days:
        return None
    hours = np.arange(int(np.floor(start)), int(np.ceil(end)))
    return tuple(int(h) for d in days for h in d * 24 + hours)


def availability_hours(windows: Sequence[Sequence[str]]) -> np.ndarray:
    """Weekly availability as a bit mask: (n, 3) uint64, bit ``h % 64`` of word ``h // 64``
    set when hour-of-week ``h`` is covered by one of the row's windows (overlapping windows
    simply merge). An empty list means no weekly window."""
    keys = [tuple(row) for row in windows]
    masks: dict[tuple[str, ...], np.ndarray] = {}
    for key in set(keys):
        word_bits = np.zeros(3, dtype=np.uint64)
        for text in key:
            hours = parse_window(text)
            if hours is None:  # validation refuses these first
                raise DataError(f"volunteers.availability: cannot read window {text!r}")
            for word in range(3):
                sel = hours[(hours // 64) == word] % 64
                if sel.size:
                    word_bits[word] |= np.bitwise_or.reduce(np.uint64(1) << sel.astype(np.uint64))
        masks[key] = word_bits
    mask = np.zeros((len(keys), 3), dtype=np.uint64)
    for i, key in enumerate(keys):
        mask[i] = masks[key]
    return mask


@dataclass(frozen=True)
class VolunteerTables:
    """The three validated tables (``services`` may be empty: no history yet)."""

    volunteers: pd.DataFrame
    requests: pd.DataFrame
    services: pd.DataFrame


def _norm(name: object) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _common(schema: TableSchema, frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Problem]]:
    cleaned, problems = find_problems(schema, frame)
    if isinstance(frame, pd.DataFrame):
        extra = [c for c in frame.columns if _norm(c) in _PERSONAL]
        if extra:
            problems.insert(
                0,
                Problem(
                    schema.name,
                    None,
                    f"personal columns {extra} are refused: dispatch needs ids only (a "
                    "requester's identity stays in the platform)",
                    f"a frame without them: frame.drop(columns={extra})",
                ),
            )
    return cleaned, problems


def _kinds(frame: pd.DataFrame, table: str, problems: list[Problem]) -> pd.DataFrame:
    if V.KIND not in frame.columns or any(p.column == V.KIND for p in problems):
        return frame
    kind = frame[V.KIND].map(lambda k: KIND_CODES.get(str(k).strip().lower(), str(k).strip()))
    bad = ~kind.isin(KINDS).to_numpy()
    if bad.any():
        problems.append(
            Problem.at(
                table,
                V.KIND,
                "unknown service kinds",
                f"one of {list(KINDS)} (or {list(KIND_CODES)})",
                bad,
                frame.loc[bad, V.KIND].unique(),
            )
        )
    frame[V.KIND] = kind
    return frame


def _coordinates(frame: pd.DataFrame, table: str, problems: list[Problem]) -> None:
    has = [c in frame.columns for c in (V.LAT, V.LON)]
    if any(has) and not all(has):
        problems.append(Problem(table, None, "only one of lat/lon given", "both lat and lon"))
        return
    if not all(has) or any(p.column in (V.LAT, V.LON) for p in problems):
        return
    lat, lon = frame[V.LAT].to_numpy(float), frame[V.LON].to_numpy(float)
    half = np.isnan(lat) != np.isnan(lon)
    out = (np.abs(lat) > 90) | (np.abs(lon) > 180)
    if half.any():
        problems.append(
            Problem.at(table, V.LAT, "lat without lon or lon without lat", "both", half)
        )
    if out.any():
        problems.append(
            Problem.at(
                table,
                V.LAT,
                "coordinates off the globe",
                "lat in [-90, 90], lon in [-180, 180] (degrees)",
                out,
                frame.loc[out, V.LAT],
            )
        )


def _skills(
    frame: pd.DataFrame, table: str, vocabulary: Iterable[str] | None, problems: list[Problem]
) -> None:
    if vocabulary is None or V.SKILLS not in frame.columns:
        return
    known = set(vocabulary)
    unknown = frame[V.SKILLS].map(lambda xs: [s for s in xs if s not in known])
    bad = unknown.map(bool).to_numpy(dtype=bool)
    if bad.any():
        names = sorted({s for xs in unknown[bad] for s in xs})
        problems.append(
            Problem.at(
                table,
                V.SKILLS,
                f"unknown skills {names[:10]}",
                "skills from the platform's skill list (skills=...)",
                bad,
            )
        )


def _raise(problems: list[Problem]) -> None:
    if problems:
        raise DataError(problems)


def validate_volunteers(
    frame: pd.DataFrame, *, skills: Iterable[str] | None = None
) -> pd.DataFrame:
    """Validate the ``volunteers`` table; a cleaned copy with defaults filled in.

    Defaults: ``volunteer_kind`` ``member``, ``skills``/``availability`` empty, ``capacity``
    1 (a branch may send several people), ``weekly_hours`` unlimited (``inf``), ``fitness``
    False, ``lat``/``lon`` NaN (the district centroid is used). ``DataError`` names every
    problem: unparseable availability windows, a kind other than member/branch, a capacity
    below 1, coordinates off the globe, skills outside ``skills`` when it is given.
    """
    out, problems = _common(VOLUNTEERS, frame)
    if not problems:
        n = len(out)
        defaults = {
            V.VOLUNTEER_KIND: "member",
            V.CAPACITY: 1,
            V.WEEKLY_HOURS: np.inf,
            V.FITNESS: False,
            V.LAT: np.nan,
            V.LON: np.nan,
        }
        for col, value in defaults.items():
            if col not in out.columns:
                out[col] = value
        for col in (V.SKILLS, V.AVAILABILITY):
            if col not in out.columns:
                out[col] = pd.Series([[] for _ in range(n)], dtype=object)
        out[V.WEEKLY_HOURS] = out[V.WEEKLY_HOURS].fillna(np.inf)
        out[V.CAPACITY] = out[V.CAPACITY].fillna(1).astype(np.int64)
        out[V.FITNESS] = out[V.FITNESS].fillna(False).astype(bool)
        kind = out[V.VOLUNTEER_KIND].fillna("member")
        bad = ~kind.isin(VOLUNTEER_KINDS).to_numpy()
        if bad.any():
            problems.append(
                Problem.at(
                    "volunteers",
                    V.VOLUNTEER_KIND,
                    "unknown volunteer kinds",
                    "member or branch",
                    bad,
                    kind[bad].unique(),
                )
            )
        out[V.VOLUNTEER_KIND] = kind
        low = out[V.CAPACITY].to_numpy() < 1
        if low.any():
            problems.append(
                Problem.at(
                    "volunteers",
                    V.CAPACITY,
                    "capacity below 1",
                    "people a volunteer (branch) can send, >= 1",
                    low,
                )
            )
        bad = out[V.AVAILABILITY].map(lambda xs: any(_parse_window(str(x)) is None for x in xs))
        bad_arr = bad.to_numpy(dtype=bool)
        if bad_arr.any():
            shown = [
                w
                for xs in out.loc[bad_arr, V.AVAILABILITY]
                for w in xs
                if _parse_window(str(w)) is None
            ]
            problems.append(
                Problem.at(
                    "volunteers",
                    V.AVAILABILITY,
                    "availability windows that cannot be read",
                    "'D HH:MM-HH:MM' with D in 1-7 (Monday = 1), 周一..周日 or 每天, e.g. "
                    "'6 09:00-12:00'",
                    bad_arr,
                    shown,
                )
            )
        _coordinates(out, "volunteers", problems)
        _skills(out, "volunteers", skills, problems)
    _raise(problems)
    return out


def validate_requests(frame: pd.DataFrame, *, skills: Iterable[str] | None = None) -> pd.DataFrame:
    """Validate the ``requests`` table; a cleaned copy with defaults filled in.

    ``kind`` becomes one of :data:`KINDS` (English codes are accepted). Defaults:
    ``headcount`` 1, ``urgency`` 0 (1 for 应急救助), ``approved`` True, ``hours`` the
    length of the time window, ``posted_at`` the start. Refused: an end not after the start,
    a headcount below 1, a request without a place (neither district nor coordinates),
    unknown kinds, and skills outside ``skills`` when it is given.
    """
    out, problems = _common(REQUESTS, frame)
    if not problems:
        out = _kinds(out, "requests", problems)
        n = len(out)
        if V.SKILLS not in out.columns:
            out[V.SKILLS] = pd.Series([[] for _ in range(n)], dtype=object)
        for col, value in ((V.CONTENT, ""), (V.DISTRICT, None), (V.PERSON, None)):
            if col not in out.columns:
                out[col] = value
        for col in (V.LAT, V.LON):
            if col not in out.columns:
                out[col] = np.nan
        out[V.CONTENT] = out[V.CONTENT].fillna("")
        out[V.HEADCOUNT] = out.get(V.HEADCOUNT, pd.Series(1, index=out.index)).fillna(1)
        out[V.HEADCOUNT] = out[V.HEADCOUNT].astype(np.int64)
        urgent = (out[V.KIND] == KINDS[0]).astype(float)
        out[V.URGENCY] = out.get(V.URGENCY, urgent).fillna(urgent).astype(float)
        out[V.APPROVED] = out.get(V.APPROVED, pd.Series(True, index=out.index))
        out[V.APPROVED] = out[V.APPROVED].fillna(True).astype(bool)
        out[V.POSTED_AT] = out.get(V.POSTED_AT, out[V.START]).fillna(out[V.START])
        if V.REQUESTER_KIND not in out.columns:
            out[V.REQUESTER_KIND] = "resident"
        length = (out[V.END] - out[V.START]).dt.total_seconds().to_numpy() / 3600.0
        bad = ~(length > 0)
        if bad.any():
            problems.append(
                Problem.at(
                    "requests",
                    V.END,
                    "time windows that end before they start",
                    "end after start",
                    bad,
                    out.loc[bad, V.REQUEST],
                )
            )
        hours = out.get(V.HOURS, pd.Series(np.nan, index=out.index)).to_numpy(float)
        out[V.HOURS] = np.where(np.isnan(hours), np.maximum(length, 0.0), hours)
        low = out[V.HEADCOUNT].to_numpy() < 1
        if low.any():
            problems.append(
                Problem.at(
                    "requests",
                    V.HEADCOUNT,
                    "headcount below 1",
                    "the number of volunteers needed, >= 1",
                    low,
                )
            )
        nowhere = out[V.DISTRICT].isna().to_numpy() & np.isnan(out[V.LAT].to_numpy(float))
        if nowhere.any():
            problems.append(
                Problem.at(
                    "requests",
                    V.DISTRICT,
                    "requests without a place",
                    "a district or lat/lon",
                    nowhere,
                )
            )
        _coordinates(out, "requests", problems)
        _skills(out, "requests", skills, problems)
    _raise(problems)
    return out


def validate_services(frame: pd.DataFrame | None) -> pd.DataFrame:
    """Validate the ``services`` table (past services); ``None`` gives an empty table.

    Defaults: ``hours`` 0 when missing, ``no_show`` False, ``skills`` empty.
    """
    if frame is None or (isinstance(frame, pd.DataFrame) and len(frame) == 0):
        return pd.DataFrame(
            {
                V.VOLUNTEER: pd.Series([], dtype=object),
                V.REQUEST: pd.Series([], dtype=object),
                V.KIND: pd.Series([], dtype=object),
                V.SERVED_AT: pd.Series([], dtype="datetime64[ns]"),
                V.HOURS: pd.Series([], dtype=float),
                V.NO_SHOW: pd.Series([], dtype=bool),
                V.SKILLS: pd.Series([], dtype=object),
                V.PERSON: pd.Series([], dtype=object),
            }
        )
    out, problems = _common(SERVICES, frame)
    if not problems:
        out = _kinds(out, "services", problems)
        out[V.HOURS] = out.get(V.HOURS, pd.Series(0.0, index=out.index)).fillna(0.0)
        out[V.NO_SHOW] = out.get(V.NO_SHOW, pd.Series(False, index=out.index))
        out[V.NO_SHOW] = out[V.NO_SHOW].fillna(False).astype(bool)
        if V.SKILLS not in out.columns:
            out[V.SKILLS] = pd.Series([[] for _ in range(len(out))], dtype=object)
        if V.PERSON not in out.columns:
            out[V.PERSON] = None
    _raise(problems)
    return out


def validate_tables(
    volunteers: pd.DataFrame,
    requests: pd.DataFrame,
    services: pd.DataFrame | None = None,
    *,
    skills: Iterable[str] | None = None,
) -> VolunteerTables:
    """All three tables validated, plus the cross-table check that ``services`` names
    registered volunteers (a ``DataError`` lists the unknown ids and their rows)."""
    vocabulary = None if skills is None else list(skills)
    vol = validate_volunteers(volunteers, skills=vocabulary)
    req = validate_requests(requests, skills=vocabulary)
    srv = validate_services(services)
    if len(srv):
        if pd.api.types.is_integer_dtype(srv[V.VOLUNTEER]) != pd.api.types.is_integer_dtype(
            vol[V.VOLUNTEER]
        ):
            raise DataError(
                "services.volunteer_id and volunteers.volunteer_id hold different kinds of ids "
                "(integers vs strings); expected the same kind in both"
            )
        unknown = ~srv[V.VOLUNTEER].isin(vol[V.VOLUNTEER]).to_numpy()
        if unknown.any():
            raise DataError(
                [
                    Problem.at(
                        "services",
                        V.VOLUNTEER,
                        "services by volunteers missing from the volunteers table",
                        "every volunteer_id in the volunteers table",
                        unknown,
                        srv.loc[unknown, V.VOLUNTEER].unique(),
                    )
                ]
            )
    return VolunteerTables(vol, req, srv)
