"""Column names and table schemas of the public data model.

Every table the library reads is described here once; validation, loaders, the simulator
and the models all use these names, never string literals of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "CHANNELS",
    "COURSES",
    "EVENTS",
    "EVENT_COMPLETE",
    "EVENT_PROGRESS",
    "EVENT_TYPES",
    "MEMBERS",
    "OCCUPATIONS",
    "ORGS",
    "PERSONAL_COLUMNS",
    "SEARCHES",
    "SERVING_MEMBER_COLUMNS",
    "TABLES",
    "Columns",
    "Kind",
    "TableSchema",
]


class Columns:
    """Fixed column names used throughout the library."""

    MEMBER: Final = "member_id"
    COURSE: Final = "course_id"
    ORG: Final = "org_id"
    LECTURER: Final = "lecturer_id"
    # events
    EVENT: Final = "event"
    TIMESTAMP: Final = "timestamp"
    WATCH_SECONDS: Final = "watch_seconds"
    VALUE: Final = "value"
    # courses
    TITLE: Final = "title"
    CATEGORY: Final = "category"
    TAGS: Final = "tags"
    DURATION: Final = "duration_seconds"
    SOURCE: Final = "source"
    PUBLISHED_AT: Final = "published_at"
    DESCRIPTION: Final = "description"
    COMPULSORY_FOR: Final = "compulsory_for"
    SERIES: Final = "series_id"
    SERIES_ORDER: Final = "series_order"
    # members
    GENDER: Final = "gender"
    BIRTH_YEAR: Final = "birth_year"
    OCCUPATION: Final = "occupation"
    SKILLS: Final = "skills"
    DISTRICT: Final = "district"
    JOINED_AT: Final = "joined_at"
    MOBILE: Final = "mobile"
    # orgs
    PARENT: Final = "parent_id"
    ORG_KIND: Final = "kind"
    INDUSTRY: Final = "industry"
    # searches
    QUERY: Final = "query"
    SHOWN: Final = "shown"
    CLICKED: Final = "clicked"
    # outputs
    SCORE: Final = "score"
    RANK: Final = "rank"
    REASON: Final = "reason"
    ROUTE: Final = "route"


class Kind(StrEnum):
    """What a column holds; validation coerces to and checks against it."""

    ID = "id"  # non-null integer or string identifier
    OPT_ID = "optional id"  # identifier that may be null (e.g. a root org's parent)
    TEXT = "text"
    NUMBER = "number"  # finite float
    NONNEG = "non-negative number"  # finite float >= 0
    INT = "integer"
    TIME = "timestamp"
    BOOL = "boolean"
    LIST = "list of strings"  # list/array of strings, or a '|'-separated string


@dataclass(frozen=True)
class TableSchema:
    """Name, required and optional columns of one table, with their kinds."""

    name: str
    required: MappingProxyType[str, Kind]
    optional: MappingProxyType[str, Kind]
    key: str | None = None  # column that must be unique, if any

    @property
    def columns(self) -> dict[str, Kind]:
        return {**self.required, **self.optional}


def _schema(
    name: str, required: dict[str, Kind], optional: dict[str, Kind], key: str | None = None
) -> TableSchema:
    return TableSchema(name, MappingProxyType(required), MappingProxyType(optional), key)


C = Columns

EVENTS: Final = _schema(
    "events",
    {C.MEMBER: Kind.ID, C.COURSE: Kind.ID, C.EVENT: Kind.TEXT, C.TIMESTAMP: Kind.TIME},
    {C.WATCH_SECONDS: Kind.NONNEG, C.VALUE: Kind.NUMBER},
)
COURSES: Final = _schema(
    "courses",
    {C.COURSE: Kind.ID},
    {
        C.TITLE: Kind.TEXT,
        C.CATEGORY: Kind.TEXT,
        C.TAGS: Kind.LIST,
        C.DURATION: Kind.NONNEG,
        C.LECTURER: Kind.OPT_ID,
        C.SOURCE: Kind.TEXT,
        C.PUBLISHED_AT: Kind.TIME,
        C.ORG: Kind.OPT_ID,
        C.DESCRIPTION: Kind.TEXT,
        C.COMPULSORY_FOR: Kind.LIST,
        C.SERIES: Kind.OPT_ID,
        C.SERIES_ORDER: Kind.NUMBER,
    },
    key=C.COURSE,
)
MEMBERS: Final = _schema(
    "members",
    {C.MEMBER: Kind.ID},
    {
        C.ORG: Kind.OPT_ID,
        C.GENDER: Kind.TEXT,
        C.BIRTH_YEAR: Kind.INT,
        C.OCCUPATION: Kind.TEXT,
        C.SKILLS: Kind.LIST,
        C.DISTRICT: Kind.TEXT,
        C.JOINED_AT: Kind.TIME,
        C.MOBILE: Kind.BOOL,
    },
    key=C.MEMBER,
)
ORGS: Final = _schema(
    "orgs",
    {C.ORG: Kind.ID},
    {C.PARENT: Kind.OPT_ID, C.ORG_KIND: Kind.TEXT, C.INDUSTRY: Kind.TEXT, C.DISTRICT: Kind.TEXT},
    key=C.ORG,
)
SEARCHES: Final = _schema(
    "searches",
    {C.MEMBER: Kind.ID, C.QUERY: Kind.TEXT, C.TIMESTAMP: Kind.TIME},
    {C.SHOWN: Kind.LIST, C.CLICKED: Kind.LIST},
)

TABLES: Final = MappingProxyType({s.name: s for s in (EVENTS, COURSES, MEMBERS, ORGS, SEARCHES)})

EVENT_TYPES: Final = (
    "view",
    "progress",
    "complete",
    "like",
    "favorite",
    "share",
    "comment",
    "checkin",
    "search_click",
    "order",
)
#: The event that marks a course completed (what ``exclude="completed"`` and the pin rule
#: read).
EVENT_COMPLETE: Final = "complete"
#: The event that marks a course started (watched for a while): a course with one and no
#: ``complete`` is what a menu's continue-learning entries (继续学习) offer again.
EVENT_PROGRESS: Final = "progress"

# The four channels of the courseware platform (course ``category``).
CHANNELS: Final = ("党员教育", "理论学习", "技能培训", "生活百科")

OCCUPATIONS: Final = (
    "retired",
    "white_collar",
    "blue_collar",
    "rural",
    "student",
    "civil_servant",
    "self_employed",
)

ORG_KINDS: Final = ("committee", "general_branch", "branch")
SOURCES: Final = ("official", "ugc")

# Columns that carry personal data the library never needs. Matched case-insensitively
# after removing spaces, dashes and underscores.
#: The members-table columns a saved model keeps (``recommend.artifact``): ids and branch,
#: never personal attributes. Serving reads no other stored attribute of a known member, so
#: a model answers alike before and after a save.
SERVING_MEMBER_COLUMNS: Final = (C.MEMBER, C.ORG)

PERSONAL_COLUMNS: Final = frozenset(
    {
        "name",
        "realname",
        "fullname",
        "membername",
        "firstname",
        "lastname",
        "surname",
        "phone",
        "phonenumber",
        "phoneno",
        "mobilephone",
        "mobilenumber",
        "mobileno",
        "cellphone",
        "telephone",
        "tel",
        "idcard",
        "idcardno",
        "idnumber",
        "phonenum",
        "mobilenum",
        "telno",
        "birthdate",
        "birthday",
        "dateofbirth",
        "dob",
        "lecturername",
        "teachername",
        "出生日期",
        "生日",
        "idcardnumber",
        "idno",
        "identitycard",
        "nationalid",
        "passport",
        "passportnumber",
        "address",
        "homeaddress",
        "email",
        "emailaddress",
        "wechat",
        "wechatid",
        "qq",
        "bankcard",
        "姓名",
        "名字",
        "手机",
        "手机号",
        "手机号码",
        "电话",
        "联系电话",
        "身份证",
        "身份证号",
        "身份证号码",
        "地址",
        "住址",
        "家庭住址",
        "邮箱",
        "微信",
    }
)
