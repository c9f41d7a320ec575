"""The serving engine: every rule that shapes a menu, in one place.

Products (member menu, group menu, search, batch job, Spark batch job) compose these
pieces and never re-implement a rule. One module per rule:

========================  ==============================================================
``options``               :class:`MenuOptions`: a request's options, validated once
``state``                 :class:`ServingState`: per-model lookups; the course filter
``request``               :class:`MemberRequest`: member ids resolved against the model
``rows``                  :class:`Rows`: histories, completions, pins as CSR row arrays
``routes``                which route scores a member (personal or cold start)
``exclusions``            which of a member's courses a menu leaves out
``pins``                  compulsory courses first (member and group rules)
``continuing``            then unfinished courses (继续学习) and next lectures (下一讲)
``series``                lecture series of the catalogue (ids or numbered titles)
``diversity``             MMR across channels
``reasons``               reasons as catalogue messages, rendered once per request
``ranking``               a chunk of members through pins, exclusions, filter and kernel
``lecturers``             lecturers ranked by a member's course scores
``fragments``             a member's usual session length (``max_minutes="auto"``)
``arms``                  online experiments: a member's arm by salted hash
========================  ==============================================================

See ``docs/architecture.md`` for how a request flows through them.
"""

from __future__ import annotations

from recommend.engine.arms import Experiment, model_version
from recommend.engine.continuing import continue_pins
from recommend.engine.diversity import MMR_POOL, mmr
from recommend.engine.exclusions import exclusion_rows
from recommend.engine.fragments import SessionProfile, session_profile, time_bin
from recommend.engine.lecturers import LECTURER_COLUMNS, Lecturers, empty_lecturers
from recommend.engine.options import (
    DEFAULT_MAX_CONTINUE,
    DEFAULT_MAX_PINS,
    EXCLUDES,
    UNKNOWN_POLICIES,
    Exclude,
    MenuOptions,
    Unknown,
)
from recommend.engine.pins import (
    KIND_COMPULSORY,
    KIND_CONTINUE,
    KIND_NEXT,
    GroupPins,
    Pins,
    group_pins,
    member_pins,
)
from recommend.engine.ranking import CHUNK, MenuRows, menu_rows, rank_chunk
from recommend.engine.reasons import (
    REASON_BRANCH,
    REASON_COMPULSORY,
    REASON_FEATURES,
    REASON_GLOBAL,
    REASON_SEGMENT,
    pin_reasons,
    reason_texts,
    segment_reason,
    studied_reasons,
)
from recommend.engine.request import MemberRequest
from recommend.engine.routes import (
    ROUTE_FEATURES,
    ROUTE_GLOBAL,
    ROUTE_PERSONAL,
    ROUTE_SEGMENT,
    ROUTES,
    Chunk,
    ColdScorer,
    RouteGroup,
    RouteScorer,
    Scored,
    cold_scorer,
    cold_scorers,
    route_codes,
    route_groups,
)
from recommend.engine.rows import Rows, gather_rows, history_rows, matrix_rows, small_isin
from recommend.engine.series import SeriesTable, lecture_number, series_table
from recommend.engine.state import CompulsoryTable, CourseFilter, ServingState, serving_state

__all__ = [
    "CHUNK",
    "DEFAULT_MAX_CONTINUE",
    "DEFAULT_MAX_PINS",
    "EXCLUDES",
    "KIND_COMPULSORY",
    "KIND_CONTINUE",
    "KIND_NEXT",
    "LECTURER_COLUMNS",
    "MMR_POOL",
    "REASON_BRANCH",
    "REASON_COMPULSORY",
    "REASON_FEATURES",
    "REASON_GLOBAL",
    "REASON_SEGMENT",
    "ROUTES",
    "ROUTE_FEATURES",
    "ROUTE_GLOBAL",
    "ROUTE_PERSONAL",
    "ROUTE_SEGMENT",
    "UNKNOWN_POLICIES",
    "Chunk",
    "ColdScorer",
    "CompulsoryTable",
    "CourseFilter",
    "Exclude",
    "Experiment",
    "GroupPins",
    "Lecturers",
    "MemberRequest",
    "MenuOptions",
    "MenuRows",
    "Pins",
    "RouteGroup",
    "RouteScorer",
    "Rows",
    "Scored",
    "SeriesTable",
    "ServingState",
    "SessionProfile",
    "Unknown",
    "cold_scorer",
    "cold_scorers",
    "continue_pins",
    "empty_lecturers",
    "exclusion_rows",
    "gather_rows",
    "group_pins",
    "history_rows",
    "lecture_number",
    "matrix_rows",
    "member_pins",
    "menu_rows",
    "mmr",
    "model_version",
    "pin_reasons",
    "rank_chunk",
    "reason_texts",
    "route_codes",
    "route_groups",
    "segment_reason",
    "series_table",
    "serving_state",
    "session_profile",
    "small_isin",
    "studied_reasons",
    "time_bin",
]
