"""Volunteer service matching (志愿服务供需速配): dispatch, not grab.

Tables ``volunteers``, ``requests`` and ``services`` (:mod:`.tables`); the volunteer side
as arrays with its history (:mod:`.pool`, :mod:`.history`); the kind rules and texts
(:mod:`.rules`); scoring a volunteer for a request (:mod:`.scoring`); shortlists and
batch dispatch with a real optimiser (:mod:`.dispatch`); the member's 我能帮上忙的 list
(:mod:`.menu`); organiser metrics (:mod:`.metrics`) and their report section
(:mod:`.report`); a simulator with ground truth (:mod:`.simulate`) and the comparison
with baseline dispatch (:mod:`.evaluation`).
"""

from __future__ import annotations

from recommend.volunteer.dispatch import POLICIES, DispatchResult, dispatch, shortlist
from recommend.volunteer.evaluation import compare_policies
from recommend.volunteer.geo import HANGZHOU, DistrictMap, haversine_km
from recommend.volunteer.menu import volunteer_menu
from recommend.volunteer.metrics import dispatch_metrics, gini
from recommend.volunteer.pool import RequestBatch, VolunteerPool
from recommend.volunteer.report import volunteer_section
from recommend.volunteer.rules import KIND_RULES, DispatchOptions, KindRule
from recommend.volunteer.simulate import (
    SKILLS,
    VolunteerTruth,
    VolunteerWorld,
    simulate_volunteering,
)
from recommend.volunteer.tables import (
    KINDS,
    VolunteerColumns,
    VolunteerTables,
    validate_requests,
    validate_services,
    validate_tables,
    validate_volunteers,
)

__all__ = [
    "HANGZHOU",
    "KINDS",
    "KIND_RULES",
    "POLICIES",
    "SKILLS",
    "DispatchOptions",
    "DispatchResult",
    "DistrictMap",
    "KindRule",
    "RequestBatch",
    "VolunteerColumns",
    "VolunteerPool",
    "VolunteerTables",
    "VolunteerTruth",
    "VolunteerWorld",
    "compare_policies",
    "dispatch",
    "dispatch_metrics",
    "gini",
    "haversine_km",
    "shortlist",
    "simulate_volunteering",
    "validate_requests",
    "validate_services",
    "validate_tables",
    "validate_volunteers",
    "volunteer_menu",
    "volunteer_section",
]
