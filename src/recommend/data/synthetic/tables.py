"""The platform's tables: their Arrow schemas, and building them from the simulation."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recommend.data.synthetic.behaviour import Events
from recommend.data.synthetic.catalogue import Courses, Lecturers
from recommend.data.synthetic.ids import Ids
from recommend.data.synthetic.members import Members
from recommend.data.synthetic.orgs import Orgs
from recommend.data.synthetic.searches import Searches
from recommend.data.synthetic.vocabulary import DISTRICTS, INDUSTRIES, TERMS, TOPIC_NAMES
from recommend.schema import CHANNELS, EVENT_TYPES, OCCUPATIONS, ORG_KINDS, SOURCES, Columns

C = Columns
IntArray = np.ndarray

_LIST = pa.list_(pa.string())
_TS = pa.timestamp("ns")
_ARROW_SCHEMAS: Final[dict[str, pa.Schema]] = {
    "events": pa.schema(
        [
            (C.MEMBER, pa.string()),
            (C.COURSE, pa.string()),
            (C.EVENT, pa.string()),
            (C.TIMESTAMP, _TS),
            (C.WATCH_SECONDS, pa.float64()),
        ]
    ),
    "courses": pa.schema(
        [
            (C.COURSE, pa.string()),
            (C.TITLE, pa.string()),
            (C.CATEGORY, pa.string()),
            (C.TAGS, _LIST),
            (C.DURATION, pa.float64()),
            (C.LECTURER, pa.string()),
            (C.SOURCE, pa.string()),
            (C.PUBLISHED_AT, _TS),
            (C.ORG, pa.string()),
            (C.DESCRIPTION, pa.string()),
            (C.COMPULSORY_FOR, _LIST),
        ]
    ),
    "members": pa.schema(
        [
            (C.MEMBER, pa.string()),
            (C.ORG, pa.string()),
            (C.GENDER, pa.string()),
            (C.BIRTH_YEAR, pa.int64()),
            (C.OCCUPATION, pa.string()),
            (C.SKILLS, _LIST),
            (C.DISTRICT, pa.string()),
            (C.JOINED_AT, _TS),
            (C.MOBILE, pa.bool_()),
        ]
    ),
    "orgs": pa.schema(
        [
            (C.ORG, pa.string()),
            (C.PARENT, pa.string()),
            (C.ORG_KIND, pa.string()),
            (C.INDUSTRY, pa.string()),
            (C.DISTRICT, pa.string()),
        ]
    ),
    "searches": pa.schema(
        [
            (C.MEMBER, pa.string()),
            (C.QUERY, pa.string()),
            (C.TIMESTAMP, _TS),
            (C.SHOWN, _LIST),
            (C.CLICKED, _LIST),
        ]
    ),
    "lecturers": pa.schema([(C.LECTURER, pa.string()), (C.CATEGORY, pa.string()), (C.TAGS, _LIST)]),
}
TABLE_NAMES: Final = tuple(_ARROW_SCHEMAS)
_LIST_COLUMNS: Final = {
    name: [f.name for f in schema if pa.types.is_list(f.type)]
    for name, schema in _ARROW_SCHEMAS.items()
}


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """A platform frame as an Arrow table with the table's fixed schema (no pandas metadata)."""
    schema = _ARROW_SCHEMAS[name]
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    # Pandas metadata would record library versions and index details; the fixed schema is
    # all a reader needs.
    return table.replace_schema_metadata(None)


def to_pandas(name: str, table: pa.Table) -> pd.DataFrame:
    """An Arrow table of the platform as a frame; list columns hold Python lists."""
    table = table.replace_schema_metadata(None)
    frame = table.to_pandas()
    for column in _LIST_COLUMNS[name]:
        frame[column] = pd.Series(table.column(column).to_pylist(), dtype=object)
    return frame


def build_tables(
    ids: Ids,
    events: Events,
    courses: Courses,
    members: Members,
    orgs: Orgs,
    searches: Searches,
    lecturers: Lecturers,
) -> dict[str, pa.Table]:
    """The platform's tables, by name in ``TABLE_NAMES`` order, from the simulated arrays."""
    return {
        "events": _events_table(ids, events),
        "courses": _courses_table(ids, courses),
        "members": _members_table(ids, members),
        "orgs": _orgs_table(ids, orgs),
        "searches": _searches_table(ids, searches),
        "lecturers": _lecturers_table(ids, lecturers),
    }


def _take(ids: pa.Array, idx: IntArray) -> pa.Array:
    """Ids at ``idx`` (int), null where ``idx`` is -1."""
    idx = np.asarray(idx, dtype=np.int64)
    return pc.take(ids, pa.array(idx, mask=idx < 0))


def _list_array(ptr: IntArray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(ptr.astype(np.int32)), values)


def _seconds_to_ts(seconds: IntArray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1_000_000_000, type=_TS)


def _events_table(ids: Ids, ev: Events) -> pa.Table:
    names = pa.array(list(EVENT_TYPES))
    return pa.table(
        [
            _take(ids.member, ev.member),
            _take(ids.course, ev.course),
            pc.take(names, pa.array(ev.event)),
            _seconds_to_ts(ev.time),
            pa.array(ev.watch, type=pa.float64()),
        ],
        schema=_ARROW_SCHEMAS["events"],
    )


def _courses_table(ids: Ids, courses: Courses) -> pa.Table:
    n = courses.duration.size
    terms = pa.array(list(TERMS))
    topics = pa.array(list(TOPIC_NAMES))
    # Tags: [topic, main term, second term]
    tag_values = pa.concat_arrays(
        [
            pc.take(topics, pa.array(courses.topic)),
            pc.take(terms, pa.array(courses.term_a)),
            pc.take(terms, pa.array(courses.term_b)),
        ]
    )
    interleave = np.arange(3 * n).reshape(3, n).T.ravel()
    tags = _list_array(np.arange(0, 3 * n + 1, 3), pc.take(tag_values, pa.array(interleave)))
    return pa.table(
        [
            ids.course,
            pa.array(courses.title),
            pc.take(pa.array(list(CHANNELS)), pa.array(courses.channel)),
            tags,
            pa.array(courses.duration, type=pa.float64()),
            _take(ids.lecturer, courses.lecturer),
            pc.take(pa.array(list(SOURCES)), pa.array(courses.ugc.astype(np.int64))),
            _seconds_to_ts(courses.published),
            _take(ids.org, courses.branch),
            pa.array(courses.description),
            _list_array(courses.compulsory_ptr, _take(ids.org, courses.compulsory_branches)),
        ],
        schema=_ARROW_SCHEMAS["courses"],
    )


def _members_table(ids: Ids, members: Members) -> pa.Table:
    return pa.table(
        [
            ids.member,
            _take(ids.org, members.branch),
            pc.take(pa.array(["male", "female"]), pa.array(members.female.astype(np.int64))),
            pa.array(members.birth_year, type=pa.int64()),
            pc.take(pa.array(list(OCCUPATIONS)), pa.array(members.occupation)),
            _list_array(
                members.skill_ptr, pc.take(pa.array(list(TERMS)), pa.array(members.skill_terms))
            ),
            pc.take(pa.array(list(DISTRICTS)), pa.array(members.district)),
            _seconds_to_ts(members.joined_at),
            pa.array(members.mobile),
        ],
        schema=_ARROW_SCHEMAS["members"],
    )


def _orgs_table(ids: Ids, orgs: Orgs) -> pa.Table:
    return pa.table(
        [
            ids.org,
            _take(ids.org, orgs.parent),
            pc.take(pa.array(list(ORG_KINDS)), pa.array(orgs.kind)),
            pc.take(pa.array(list(INDUSTRIES)), pa.array(orgs.industry)),
            pc.take(pa.array(list(DISTRICTS)), pa.array(orgs.district)),
        ],
        schema=_ARROW_SCHEMAS["orgs"],
    )


def _searches_table(ids: Ids, s: Searches) -> pa.Table:
    return pa.table(
        [
            _take(ids.member, s.member),
            pa.array(s.query),
            _seconds_to_ts(s.time),
            _list_array(s.shown_ptr, _take(ids.course, s.shown)),
            _list_array(s.clicked_ptr, _take(ids.course, s.clicked)),
        ],
        schema=_ARROW_SCHEMAS["searches"],
    )


def _lecturers_table(ids: Ids, lecturers: Lecturers) -> pa.Table:
    n = lecturers.channel.size
    topics = pc.take(pa.array(list(TOPIC_NAMES)), pa.array(lecturers.topic))
    return pa.table(
        [
            ids.lecturer,
            pc.take(pa.array(list(CHANNELS)), pa.array(lecturers.channel)),
            _list_array(np.arange(n + 1), topics),
        ],
        schema=_ARROW_SCHEMAS["lecturers"],
    )
