"""Request bodies of the HTTP service: the Python API's options, field for field.

The models only say what type each option has (which gives the OpenAPI description);
the values are checked by the library itself (``MenuOptions``, ``GroupOptions``, the
verbs), so a bad value gets the same message over HTTP as from Python. Unknown fields are
refused, so a misspelt option never passes silently.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "CompulsoryRequest",
    "ErrorBody",
    "EventsRequest",
    "GroupRequest",
    "LecturerRequest",
    "MenuRequest",
    "ReloadRequest",
    "SearchRequest",
    "SimilarRequest",
    "SuggestRequest",
]

#: A member, course or org id (ids are strings or integers, as in the training data).
Id = str | int
Channel = str | list[str] | None
Records = list[dict[str, Any]]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Filters(_Body):
    channel: Channel = Field(None, description="only courses of this channel (or of any of these)")
    max_minutes: float | None = Field(None, description="only courses known to fit these minutes")
    only_published: bool = Field(True, description="only courses published by `now`")
    now: str | None = Field(
        None, description="the request's time (ISO 8601); the data's by default"
    )


class MenuRequest(_Filters):
    """``recommend.member_menu``: one member (``member_id``) or many (``member_ids``)."""

    member_id: Id | None = Field(None, description="one member")
    member_ids: list[Id] | None = Field(None, description="several members, in order")
    n: int = Field(10, description="courses per member")
    max_minutes: float | str | None = Field(  # type: ignore[assignment]
        None, description='only courses that fit these minutes; "auto": the usual session'
    )
    exclude: str = Field("seen", description="seen, completed or none")
    pin_compulsory: bool = True
    max_pins: int | None = 2
    continue_learning: bool = True
    max_continue: int = 2
    diversity: float = Field(0.0, description="MMR weight in [0, 1] across channels")
    with_reasons: bool = True
    unknown: str = Field("fallback", description="fallback (cold start) or raise (404)")
    lang: str = Field("zh", description="language of the reasons: zh or en")
    member_attributes: Records | None = Field(
        None, description="members table rows for members unknown to the model"
    )


class CompulsoryRequest(_Body):
    """``recommend.compulsory_courses``: the branch's compulsory courses still to study."""

    member_id: Id | None = None
    member_ids: list[Id] | None = None
    only_published: bool = True
    now: str | None = None
    unknown: str = "fallback"
    lang: str = "zh"
    member_attributes: Records | None = None


class GroupRequest(_Body):
    """``recommend.order_for_group``: a menu for a group of members."""

    members: list[Id] | Id | dict[str, Any] = Field(
        description="member ids, an org id (with its sub-branches) or attribute filters"
    )
    n: int = 10
    strategy: str = "coverage"
    budget_minutes: float | None = None
    quotas: dict[str, int] | None = None
    pin_compulsory: bool = True
    compulsory_share: float = 0.5
    max_pins: int | None = None
    must_include: list[Id] = Field(default_factory=list)
    exclude_completed: float | None = 0.5
    personal_k: int = 20
    only_published: bool = True
    now: str | None = None
    member_table: Records | None = None
    lecturers: int = 0
    pool_size: int | None = None
    seed: int = 0
    lang: str = "zh"


class SearchRequest(_Filters):
    """``recommend.search.search``: courses for a query, ranked for one member."""

    member_id: Id
    query: str
    n: int = 10
    candidates: int = 200
    exclude: str = "none"
    with_reasons: bool = True
    unknown: str = "fallback"
    lang: str = "zh"
    member_attributes: Records | None = None


class SuggestRequest(_Body):
    """``recommend.suggest``: completions of what a member is typing."""

    member_id: Id
    prefix: str
    n: int = 8
    member_attributes: Records | None = None


class SimilarRequest(_Filters):
    """``recommend.similar_courses``: the courses most like one course."""

    course_id: Id
    n: int = 10
    with_reasons: bool = True
    lang: str = "zh"


class LecturerRequest(_Filters):
    """``recommend.lecturer_menu``: lecturers ranked for one member."""

    member_id: Id
    n: int = 10
    top: int = 3
    exclude: str = "none"
    unknown: str = "fallback"
    member_attributes: Records | None = None


class EventsRequest(_Body):
    """``recommend.ingest``: new events folded into the model in service."""

    events: Records = Field(
        description="events table rows: member_id, course_id, event, timestamp, "
        "optional watch_seconds and value"
    )


class ReloadRequest(_Body):
    """``POST /admin/reload``: load a model beside the one in service, then swap."""

    model: str | None = Field(None, description="folder or registry URI; the served one by default")


class ErrorBody(BaseModel):
    """What an error answer holds: the library's message and where the problem is."""

    error: str = Field(description="the library's message")
    column: str | None = Field(None, description="the option or column at fault")
    rows: list[int] | None = Field(None, description="offending rows of a table (0-based)")
    problems: list[dict[str, Any]] = Field(
        default_factory=list, description="every problem of a table, as in DataError.problems"
    )
    model_version: str | None = Field(None, description="the model in service")
