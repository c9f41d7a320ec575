"""What to offer next: predicted demand per segment, and content gaps in the catalogue.

Demand comes from the model's scores, not from past counts: every member's predicted
top-``k`` courses (through the shared kernel, ``recommend.topk``) are what they would
welcome; a segment's demand for a channel, tag, duration band or course is the mean share
of its members' top-``k`` slots taken by it, with a normal interval over members. Lift
compares it with all members scored.

A **content gap** is a value whose predicted demand share exceeds its share of the
catalogue: each of its courses is wanted more than an average course, so producing or
ordering more of it pays. The same is asked of short courses (``short_minutes``): a
topic in demand with few short courses leaves members who learn in fragments of time
(碎片化学习) without something to watch on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.errors import ConfigError
from recommend.insights.catalogue import course_values
from recommend.insights.search_terms import search_terms
from recommend.insights.segments import (
    OrgTree,
    member_attributes,
    segment_codes,
    select_members,
)
from recommend.insights.stats import complementary_suppression, mean_interval
from recommend.schema import Columns
from recommend.text import normalize

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["content_gaps", "predicted_demand"]

logger = logging.getLogger(__name__)
C = Columns

_CHUNK = 20_000  # members scored per call of the kernel


def _population(
    model: Recommender,
    by: str | Sequence[str] | None,
    members: Any,
    member_table: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Model indices of the members to score, their segment codes, labels and counts of
    members left out (unknown to the model, no history)."""
    model.check_fitted()
    ds = model.dataset_
    table = member_table if member_table is not None else ds.members
    if table is None:
        ids = pd.DataFrame({C.MEMBER: model.member_ids_.external_ids})
        table = ids
    attrs = member_attributes(table, pd.Timestamp(ds.now).year)
    tree = None
    if isinstance(members, str | int | np.integer):
        extra = attrs[C.ORG].dropna().unique() if C.ORG in attrs.columns else ()
        tree = OrgTree.from_table(ds.orgs, extra_ids=list(extra))
    mask = select_members(attrs, members, tree=tree, now=ds.now)
    codes, labels, _ = segment_codes(attrs, by)
    idx = model.member_ids_.to_index(attrs[C.MEMBER].to_numpy(dtype=object), unknown="mask")
    unknown = mask & (idx < 0)
    known = mask & (idx >= 0)
    history = np.zeros(len(attrs), dtype=np.int64)
    history[known] = model.history_.counts(idx[known])
    cold = known & (history == 0)
    keep = known & ~cold
    left_out = {"unknown_to_model": int(unknown.sum()), "without_history": int(cold.sum())}
    if left_out["unknown_to_model"] or left_out["without_history"]:
        logger.info(
            "demand: left out %d member(s) unknown to the model and %d without history",
            left_out["unknown_to_model"],
            left_out["without_history"],
        )
    return idx[keep].astype(np.int64), codes[keep], labels, left_out


def _top_matrix(
    model: Recommender, idx: np.ndarray, k: int, exclude_seen: bool, progress: bool
) -> sp.csr_matrix:
    """``T[u, i] = 1`` when course ``i`` is in member ``u``'s predicted top-``k``;
    (len(idx), n_courses) CSR float32."""
    n_courses = model.n_courses
    parts = []
    starts = range(0, idx.size, _CHUNK)
    if progress and idx.size > _CHUNK:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="scoring members", unit="chunk")
    for lo in starts:
        block = idx[lo : lo + _CHUNK]
        exclude = model.history_.rows(block) if exclude_seen else None
        top = model.topk(block, k, exclude=exclude).indices
        rows = np.repeat(np.arange(block.size), top.shape[1])
        cols = top.ravel()
        ok = cols >= 0
        parts.append(
            sp.csr_matrix(
                (np.ones(int(ok.sum()), np.float32), (rows[ok], cols[ok])),
                shape=(block.size, n_courses),
            )
        )
    if not parts:
        return sp.csr_matrix((0, n_courses), dtype=np.float32)
    return sp.vstack(parts, format="csr")


def predicted_demand(
    model: Recommender,
    by: str | Sequence[str] | None = "occupation",
    *,
    level: str = "channel",
    members: Any = None,
    member_table: pd.DataFrame | None = None,
    k: int = 20,
    exclude_seen: bool = False,
    min_size: int = 20,
    min_tag_courses: int = 1,
    confidence: float = 0.95,
    progress: bool = False,
) -> pd.DataFrame:
    """Predicted demand of member segments per channel, tag, duration band or course.

    Parameters
    ----------
    model
        A fitted or loaded ``Recommender`` with a courses table.
    by
        Member attribute(s) of the segments (see ``segment_portrait``); ``None``: one
        segment ``"all"``.
    level
        ``"channel"``, ``"tag"``, ``"duration"`` or ``"course"``.
    members
        Population (an org id, a filter mapping, a callable or ids); everyone by default.
    member_table
        Members table with the attributes (a loaded model keeps only ``member_id`` and
        ``org_id``); the model's training members by default.
    k
        Size of each member's predicted list.
    exclude_seen
        Leave out courses the member studied (demand for what is new to them).
    min_size
        Segments with fewer scored members are suppressed, and further ones (smallest
        first) while the scored population minus the shown segments is a positive
        remainder below ``min_size``.
    min_tag_courses
        Tags carried by fewer courses are left out (``level="tag"``).
    confidence
        Coverage of the intervals.
    progress
        Show a progress bar for large populations.

    Returns
    -------
    DataFrame
        One row per (segment, value): ``segment, value, members`` (scored),
        ``demand_share`` (mean share of the members' top-``k`` slots, + ``_lo``/``_hi``),
        ``platform_share`` (all scored members), ``lift`` (+ interval), ``courses``
        (catalogue courses with the value). ``attrs["left_out"]`` counts members not scored
        (unknown to the model, without history) and ``attrs["suppressed"]`` lists segments
        below ``min_size``. Members without history are not scored: their menus come from
        popularity, which says nothing about them.
    """
    if not isinstance(k, int | np.integer) or k < 1:
        raise ConfigError(f"k={k!r}; expected an integer >= 1")
    if not isinstance(min_size, int | np.integer) or min_size < 1:
        raise ConfigError(f"min_size={min_size!r}; expected an integer >= 1")
    model.check_fitted()
    courses = model.dataset_.courses
    if courses is None:
        raise ConfigError("predicted_demand needs the model's courses table (channel, tags)")
    cv = course_values(courses, level, min_courses=min_tag_courses if level == "tag" else 1)
    idx, codes, labels, left_out = _population(model, by, members, member_table)
    top = _top_matrix(model, idx, int(k), exclude_seen, progress)
    per_member = (top @ cv.matrix()).tocsr()  # members x values: slots taken
    per_member.data /= np.float32(k)
    seg = sp.csr_matrix(
        (np.ones(idx.size, np.float32), (codes, np.arange(idx.size))), shape=(labels.size, idx.size)
    )
    size = np.bincount(codes, minlength=labels.size)
    total = np.asarray((seg @ per_member).todense(), dtype=np.float64)
    total_sq = np.asarray((seg @ per_member.power(2)).todense(), dtype=np.float64)
    # complementary suppression: the scored population minus the shown segments must not
    # give a small hidden remainder away
    hidden, _ = complementary_suppression(size, size < min_size, int(idx.size), int(min_size))
    shown = ~hidden
    mean, lo, hi = mean_interval(
        total, total_sq, np.broadcast_to(size[:, None], total.shape), confidence
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        platform = np.asarray(per_member.sum(axis=0), dtype=np.float64).ravel() / max(idx.size, 1)
    mean, lo, hi = mean[shown], lo[shown], hi[shown]
    n_s, n_v = mean.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        lift, lift_lo, lift_hi = mean / platform, lo / platform, hi / platform
    out = pd.DataFrame(
        {
            "segment": np.repeat(labels[shown], n_v),
            "value": np.tile(cv.labels, n_s),
            "members": np.repeat(size[shown], n_v).astype(np.int64),
            "demand_share": mean.ravel(),
            "demand_share_lo": np.clip(lo.ravel(), 0.0, None),
            "demand_share_hi": hi.ravel(),
            "platform_share": np.tile(platform, n_s),
            "lift": lift.ravel(),
            "lift_lo": np.clip(lift_lo.ravel(), 0.0, None),
            "lift_hi": lift_hi.ravel(),
            "courses": np.tile(cv.supply(), n_s),
        }
    )
    out.attrs["left_out"] = left_out
    out.attrs["suppressed"] = [str(v) for v in labels[~shown & (size > 0)]]
    out.attrs["level"] = level
    out.attrs["k"] = int(k)
    out.attrs["by"] = by  # what the segment labels are values of
    return out


def content_gaps(
    model: Recommender,
    *,
    level: str = "tag",
    members: Any = None,
    member_table: pd.DataFrame | None = None,
    k: int = 20,
    short_minutes: float = 15.0,
    min_courses: int = 1,
    min_gap: float = 1.5,
    exclude_seen: bool = False,
    min_size: int = 20,
    progress: bool = False,
    searches: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Values with high predicted demand but few courses, overall and among short courses.

    Parameters
    ----------
    model
        A fitted or loaded ``Recommender`` with a courses table.
    level
        ``"tag"`` (topics), ``"channel"`` or ``"duration"``.
    members, member_table
        The group whose demand counts (everyone by default); see :func:`predicted_demand`.
    k
        Size of each member's predicted list.
    short_minutes
        Courses at most this long serve fragment-time learning.
    min_courses
        Leave out values carried by fewer courses.
    min_gap
        ``gap`` from which a value is flagged.
    exclude_seen, progress
        As in :func:`predicted_demand`.
    min_size
        With fewer scored members in the group, its demand is not shown: the demand
        columns are NaN, nothing is flagged and ``attrs["hidden"]`` says why.
    searches
        A search log: queries that showed no course or got no click (typed by at least
        ``min_size`` members, ``recommend.insights.search_terms``) are what members looked
        for and did not find. Adds ``unmet_searches`` (such searches whose query names the
        value or is named by it) and ``attrs["unmet_queries"]`` (the queries).

    Returns
    -------
    DataFrame
        One row per value, largest ``gap`` first: ``value, demand_share`` (+ interval),
        ``courses, catalogue_share`` (share of the catalogue's courses with the value),
        ``gap = demand_share / catalogue_share``, ``short_courses, short_share`` (share of
        the short courses), ``short_gap = demand_share / short_share`` (inf without short
        courses), ``flagged`` (``gap >= min_gap``) and ``short_flagged``
        (``short_gap >= min_gap``).
    """
    if level == "course":
        raise ConfigError("content_gaps works on channel, tag or duration, not single courses")
    if not short_minutes > 0:
        raise ConfigError(f"short_minutes={short_minutes!r}; expected a positive number")
    demand = predicted_demand(
        model,
        None,
        level=level,
        members=members,
        member_table=member_table,
        k=k,
        exclude_seen=exclude_seen,
        min_size=min_size,
        min_tag_courses=min_courses,
        progress=progress,
    )
    courses = model.dataset_.courses
    if courses is None:  # predicted_demand has refused it already; this narrows the type
        raise ConfigError("content_gaps needs the model's courses table (channel, tags)")
    cv = course_values(courses, level, min_courses=min_courses if level == "tag" else 1)
    supply = cv.supply().astype(np.float64)
    n_courses = max(len(courses), 1)
    if C.DURATION in courses.columns:
        short = courses[C.DURATION].to_numpy(dtype=np.float64) <= short_minutes * 60.0
    else:
        short = np.zeros(len(courses), dtype=bool)
    short_supply = cv.supply(short).astype(np.float64)
    n_short = max(int(short.sum()), 1)
    d = demand.set_index("value").reindex(cv.labels)
    with np.errstate(divide="ignore", invalid="ignore"):
        catalogue_share = supply / n_courses
        short_share = short_supply / n_short
        gap = d["demand_share"].to_numpy() / catalogue_share
        short_gap = np.where(short_supply > 0, d["demand_share"].to_numpy() / short_share, np.inf)
    out = pd.DataFrame(
        {
            "value": cv.labels,
            "demand_share": d["demand_share"].to_numpy(),
            "demand_share_lo": d["demand_share_lo"].to_numpy(),
            "demand_share_hi": d["demand_share_hi"].to_numpy(),
            "courses": supply.astype(np.int64),
            "catalogue_share": catalogue_share,
            "gap": gap,
            "short_courses": short_supply.astype(np.int64),
            "short_share": short_share,
            "short_gap": np.where(d["demand_share"].to_numpy() > 0, short_gap, 0.0),
        }
    )
    out["flagged"] = out["gap"] >= min_gap
    out["short_flagged"] = out["short_gap"] >= min_gap
    unmet = None
    if searches is not None:
        unmet = search_terms(searches, min_size=min_size).unmet
        out["unmet_searches"] = _unmet_counts(out["value"], unmet)
    out = out.sort_values(["gap", "value"], ascending=[False, True], ignore_index=True)
    out.attrs.update(demand.attrs)
    if unmet is not None:
        out.attrs["unmet_queries"] = unmet
    if demand.empty:
        out.attrs["hidden"] = f"fewer than {int(min_size)} scored members"
    return out


def _unmet_counts(values: pd.Series, unmet: pd.DataFrame) -> np.ndarray:
    """Unmet searches whose (normalised) query contains a value or is contained in it."""
    queries = unmet["query"].tolist()
    unmet_n = (unmet["searches"] * unmet["no_click_share"]).round().astype(np.int64).tolist()
    out = np.zeros(len(values), dtype=np.int64)
    for i, value in enumerate(values.astype(str).tolist()):
        key = normalize(value)
        out[i] = sum(n for q, n in zip(queries, unmet_n, strict=True) if key in q or q in key)
    return out
