"""Column mappings for a platform's own files: which of a file's columns are ours.

A file exported from another system names its columns its own way (``user_id, item_id,
ts, action``). :func:`suggest_mapping` proposes the mapping onto the library's schema from
the names alone, so that an error can say what to pass (``columns={...}`` in Python,
``--columns user_id=member_id,...`` on the command line) instead of only what is missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from recommend.errors import ConfigError
from recommend.schema import TABLES

__all__ = ["mapping_hint", "parse_mapping", "suggest_mapping"]

#: Usual names of the schema's columns in other systems (compared lower-case, with
#: spaces, dashes and dots read as underscores).
_ALIASES: dict[str, tuple[str, ...]] = {
    "member_id": (
        "user_id",
        "userid",
        "user",
        "uid",
        "member",
        "memberid",
        "learner_id",
        "student_id",
        "account_id",
        "用户id",
        "用户",
        "党员id",
        "学员id",
    ),
    "course_id": (
        "item_id",
        "itemid",
        "item",
        "iid",
        "course",
        "courseid",
        "content_id",
        "video_id",
        "resource_id",
        "课程id",
        "课程",
    ),
    "timestamp": (
        "ts",
        "time",
        "datetime",
        "date",
        "event_time",
        "created_at",
        "create_time",
        "updated_at",
        "时间",
    ),
    "event": ("action", "behavior", "behaviour", "event_type", "type", "action_type", "行为"),
    "watch_seconds": ("watch_time", "duration_watched", "play_seconds", "观看时长"),
    "value": ("rating", "score", "weight"),
    "org_id": ("branch_id", "organization_id", "org", "dept_id", "支部id"),
    "query": ("search", "keyword", "keywords", "q", "搜索词"),
    "title": ("name", "course_name", "课程名称"),
    "category": ("channel", "频道"),
}


def _key(name: str) -> str:
    return re.sub(r"[\s.\-]+", "_", str(name).strip().lower())


def suggest_mapping(table: str, columns: Iterable[str]) -> dict[str, str]:
    """Source column -> schema column for the file's columns that look like ours.

    Only schema columns the file lacks are proposed, each from one source column.

    >>> suggest_mapping("events", ["user_id", "item_id", "ts", "action"])
    {'user_id': 'member_id', 'item_id': 'course_id', 'ts': 'timestamp', 'action': 'event'}
    """
    names = [str(c) for c in columns]
    schema = TABLES[table].columns
    taken = set(names)
    out: dict[str, str] = {}
    for target, aliases in _ALIASES.items():
        if target not in schema or target in taken:
            continue
        for name in names:
            if name not in out and name not in schema and _key(name) in aliases:
                out[name] = target
                break
    return out


def mapping_hint(table: str, columns: Iterable[str]) -> str:
    """What to pass for a file whose columns lack required ones of ``table``: the mapping
    suggested from its column names, and ``event=`` for events without an event column."""
    names = [str(c) for c in columns]
    required = list(TABLES[table].required)
    suggested = suggest_mapping(table, names)
    still = [c for c in required if c not in names and c not in suggested.values()]
    parts: list[str] = []
    if suggested:
        pairs = ",".join(f"{s}={t}" for s, t in suggested.items())
        parts.append(f"map the file's columns: columns={suggested!r} (--columns {pairs})")
    if table == "events" and "event" in still:
        parts.append(
            "a file without an event column: event='view' (--event view) gives every row that event"
        )
        still.remove("event")
    if still:
        parts.append(f"no column of the file looks like {still}")
    return "; ".join(parts)


def parse_mapping(text: str | None, option: str = "--columns") -> dict[str, str]:
    """``user_id=member_id,item_id=course_id`` -> ``{"user_id": "member_id", ...}``."""
    out: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ConfigError(
                f"{option} {item.strip()!r}: expected FILE_COLUMN=OUR_COLUMN, e.g. "
                "user_id=member_id"
            )
        out[source.strip()] = target.strip()
    return out
