"""Insights for organisers: learning portraits, predicted demand, content gaps, reports.

``segment_portrait``, ``branch_portrait`` and ``course_portrait`` describe members, orgs
and courses from the data (aggregates with counts and intervals, small groups
suppressed); ``search_terms`` says what members search for (trending, unmet, rising
queries); ``analyse_experiment`` reads an online experiment, ``monitor_menus`` watches
served menus (``monitoring_section`` for the report); ``predicted_demand`` and
``content_gaps`` say what to offer next from a model's scores;
``recommend.insights.plots`` draws them and ``build_report`` writes a self-contained HTML
report. Plots and the report import matplotlib on first use.
"""

from __future__ import annotations

from recommend.insights.demand import content_gaps, predicted_demand
from recommend.insights.monitoring import (
    MonitorReport,
    Thresholds,
    log_monitoring,
    monitor_menus,
    monitoring_section,
)
from recommend.insights.online import ExperimentAnalysis, analyse_experiment, log_experiment
from recommend.insights.portraits import (
    MIN_SIZE,
    BranchPortrait,
    CoursePortrait,
    SegmentPortrait,
    branch_portrait,
    course_portrait,
    segment_portrait,
    top_courses,
)
from recommend.insights.search_terms import SearchTerms, search_terms
from recommend.insights.stats import mean_interval, median_interval, wilson_interval

__all__ = [
    "MIN_SIZE",
    "BranchPortrait",
    "CoursePortrait",
    "ExperimentAnalysis",
    "MonitorReport",
    "SearchTerms",
    "SegmentPortrait",
    "Thresholds",
    "analyse_experiment",
    "branch_portrait",
    "build_report",
    "content_gaps",
    "course_portrait",
    "log_experiment",
    "log_monitoring",
    "mean_interval",
    "median_interval",
    "monitor_menus",
    "monitoring_section",
    "predicted_demand",
    "render_report",
    "search_terms",
    "segment_portrait",
    "top_courses",
    "wilson_interval",
]


def __getattr__(name: str) -> object:
    # The report pulls in matplotlib: imported on first use only.
    if name in ("build_report", "render_report"):
        from recommend.insights import report

        return getattr(report, name)
    raise AttributeError(f"module 'recommend.insights' has no attribute {name!r}")
