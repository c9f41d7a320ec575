"""Learning portraits (党员画像 / 组织画像) for organisers: segments, branches, courses.

* :func:`segment_portrait` — for groups of members by any attributes (age band, occupation,
  district, mobile, branch): learning activity (active share over recent windows, events
  per member, completion rate, median watch time, check-in regularity) and channel, tag
  and duration preferences as lift over the platform average.
* :func:`branch_portrait` — for an org: monthly activity trend, share of members reached,
  completion of compulsory courses, side by side with its sibling orgs under the same
  parent and with its own sub-orgs, with the ones whose learning is flagging marked.
* :func:`course_portrait` — for a course: who studies it (segment mix), the completion
  curve and where learners drop off.

Every figure comes with its count and an interval (Wilson for shares, normal for means,
order statistics for medians), and groups below ``min_size`` members are suppressed (their
figures are not shown), so no individual can be singled out. Results hold aggregates only.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset
from recommend.errors import ConfigError
from recommend.insights.catalogue import course_values
from recommend.insights.segments import (
    OrgTree,
    member_attributes,
    segment_codes,
    select_members,
)
from recommend.insights.stats import (
    complementary_suppression,
    mean_interval,
    median_interval,
    wilson_interval,
)
from recommend.schema import Columns

__all__ = [
    "MIN_SIZE",
    "BranchPortrait",
    "CoursePortrait",
    "SegmentPortrait",
    "branch_portrait",
    "course_portrait",
    "segment_portrait",
    "top_courses",
]

logger = logging.getLogger(__name__)
C = Columns

#: Default smallest group whose figures are shown.
MIN_SIZE = 20
_COMPLETE = "complete"
_CHECKIN = "checkin"
_WEEK_NS = 7 * 86_400 * 10**9
_DAY_NS = 86_400 * 10**9
PREFERENCE_KINDS = ("channel", "duration", "tag")


# ============================================================================ shared facts


@dataclass(frozen=True)
class _Facts:
    """Per-member and per-(member, course) facts of a dataset, computed once."""

    n_members: int
    n_courses: int
    ev_member: NDArray[np.int64]
    ev_time: NDArray[np.int64]  # ns since epoch
    member_events: NDArray[np.int64]
    last_event: NDArray[np.int64]  # ns; int64 min for members without events
    pair_member: NDArray[np.int64]
    pair_course: NDArray[np.int64]
    pair_complete: NDArray[np.bool_]
    pair_watch: NDArray[np.float64]  # most seconds watched in one event of the pair
    checkin_weeks: NDArray[np.int64]  # weeks with a check-in, per member
    n_weeks: int
    start: int
    now: int


_FACTS: weakref.WeakKeyDictionary[Dataset, _Facts] = weakref.WeakKeyDictionary()
_FACTS_LOCK = threading.Lock()


def _facts(ds: Dataset) -> _Facts:
    with _FACTS_LOCK:
        cached = _FACTS.get(ds)
    if cached is not None:
        return cached
    ev = ds.events
    m = ev[MEMBER_IDX].to_numpy(dtype=np.int64)
    c = ev[COURSE_IDX].to_numpy(dtype=np.int64)
    t = ev[C.TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    kind = ev[C.EVENT].to_numpy(dtype=object)
    watch = (
        ev[C.WATCH_SECONDS].fillna(0.0).to_numpy(dtype=np.float64)
        if C.WATCH_SECONDS in ev.columns
        else np.zeros(len(ev))
    )
    n_m, n_c = ds.n_members, ds.n_courses
    key = m * n_c + c
    pairs, inverse = np.unique(key, return_inverse=True)
    complete = np.zeros(pairs.size, dtype=bool)
    complete[inverse[kind == _COMPLETE]] = True
    best_watch = np.zeros(pairs.size)
    np.maximum.at(best_watch, inverse, watch)
    last = np.full(n_m, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, m, t)
    start, now = int(t.min()), int(pd.Timestamp(ds.now).value)
    n_weeks = max(1, int(np.ceil((now - start + 1) / _WEEK_NS)))
    # Check-ins after ``now`` (future-dated events) do not count towards regularity: the
    # share of weeks with a check-in covers the weeks from the first event up to ``now``.
    checkin = (kind == _CHECKIN) & (t <= now)
    week = (t[checkin] - start) // _WEEK_NS
    if week.size and (week.min() < 0 or week.max() >= n_weeks):
        raise AssertionError(f"check-in week index outside [0, {n_weeks})")
    week_keys = np.unique(m[checkin] * n_weeks + week)
    checkin_weeks = np.bincount(week_keys // n_weeks, minlength=n_m).astype(np.int64)
    if checkin_weeks.size != n_m:
        raise AssertionError(f"check-in counts for {checkin_weeks.size} members; expected {n_m}")
    facts = _Facts(
        n_members=n_m,
        n_courses=n_c,
        ev_member=m,
        ev_time=t,
        member_events=np.bincount(m, minlength=n_m).astype(np.int64),
        last_event=last,
        pair_member=(pairs // n_c).astype(np.int64),
        pair_course=(pairs % n_c).astype(np.int64),
        pair_complete=complete,
        pair_watch=best_watch,
        checkin_weeks=checkin_weeks,
        n_weeks=n_weeks,
        start=start,
        now=now,
    )
    with _FACTS_LOCK:
        _FACTS[ds] = facts
    return facts


def _check_common(min_size: int, confidence: float) -> None:
    if not isinstance(min_size, int | np.integer) or min_size < 1:
        raise ConfigError(f"min_size={min_size!r}; expected an integer >= 1 (e.g. 20)")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r}; expected a number in (0, 1)")


def _members_table(ds: Dataset, what: str) -> pd.DataFrame:
    if ds.members is None:
        raise ConfigError(
            f"{what} needs member attributes: build the Dataset with members= (a loaded "
            "model's dataset keeps only member_id and org_id)"
        )
    return member_attributes(ds.members, pd.Timestamp(ds.now).year)


def _tree(ds: Dataset, attrs: pd.DataFrame) -> OrgTree:
    extra = attrs[C.ORG].dropna().unique() if C.ORG in attrs.columns else ()
    return OrgTree.from_table(ds.orgs, extra_ids=list(extra))


def _pair_matrix(f: _Facts, mask: NDArray[np.bool_] | None = None) -> sp.csr_matrix:
    keep = np.ones(f.pair_member.size, bool) if mask is None else mask
    return sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (f.pair_member[keep], f.pair_course[keep])),
        shape=(f.n_members, f.n_courses),
    )


def _columns_with_interval(out: dict[str, Any], name: str, triple: tuple[Any, Any, Any]) -> None:
    out[name], out[f"{name}_lo"], out[f"{name}_hi"] = triple


# ============================================================================ segments


@dataclass(frozen=True)
class SegmentPortrait:
    """Activity and preferences of member segments.

    Attributes
    ----------
    by : tuple of str
        Member attributes the segments are defined by.
    activity : DataFrame
        One row per shown segment (index ``segment``): ``members``, ``learners`` (members
        with any event), ``events_per_member`` (+ ``_lo``/``_hi``), ``active_{w}d`` for each
        window (share of members with an event in the last ``w`` days, + interval),
        ``pairs`` (member-course pairs studied), ``completion_rate`` (share of those pairs
        completed, + interval), ``median_watch_minutes`` (per learner, over the period,
        + interval), ``checkin_regularity`` (mean share of weeks with a check-in up to
        ``dataset.now``; later check-ins do not count, + interval). ``completion_rate``
        and ``median_watch_minutes`` are NaN for segments with fewer than ``min_size``
        learners.
    preferences : DataFrame
        Long: ``segment, kind`` (``channel``/``duration``/``tag``), ``value, pairs`` (the
        segment's pairs on courses with this value), ``share`` (+ ``share_lo``/``share_hi``),
        ``platform_share`` (all members), ``lift = share / platform_share`` (+ interval).
    suppressed : tuple of str
        Segments not shown: those with fewer than ``min_size`` members, and further
        (smallest first) ones while the population minus the shown segments is a positive
        remainder below ``min_size`` (so a hidden segment cannot be recovered by
        subtraction).
    min_size : int
    windows : tuple of int
    """

    by: tuple[str, ...]
    activity: pd.DataFrame
    preferences: pd.DataFrame
    suppressed: tuple[str, ...]
    min_size: int
    windows: tuple[int, ...]

    def lift(self, kind: str = "channel") -> pd.DataFrame:
        """Lift table of one preference kind: segments x values (float64)."""
        if kind not in PREFERENCE_KINDS:
            raise ConfigError(f"kind={kind!r}; expected one of {PREFERENCE_KINDS}")
        part = self.preferences[self.preferences["kind"] == kind]
        if part.empty:
            return pd.DataFrame(index=self.activity.index, dtype=np.float64)
        table = part.pivot(index="segment", columns="value", values="lift")
        return table.reindex(index=self.activity.index, columns=pd.unique(part["value"]))


def segment_portrait(
    dataset: Dataset,
    by: str | Sequence[str] | None = "occupation",
    *,
    members: Any = None,
    windows: Sequence[int] = (30, 90),
    min_size: int = MIN_SIZE,
    min_tag_courses: int = 5,
    confidence: float = 0.95,
) -> SegmentPortrait:
    """Portrait of member segments: activity and preferences, with counts and intervals.

    Parameters
    ----------
    dataset
        A ``Dataset`` with a members table (and a courses table for preferences).
    by
        Member attribute(s) defining the segments: ``age_band``, ``occupation``,
        ``district``, ``mobile``, ``branch``, ``gender`` or any members column; several
        combine (``["occupation", "mobile"]``); ``None`` for one segment of everyone.
    members
        Population to describe (default everyone): an org id (with its sub-orgs), an
        attribute filter mapping, a callable or a list of member ids.
    windows
        Activity windows in days, counted back from ``dataset.now``.
    min_size
        Segments with fewer members are suppressed.
    min_tag_courses
        Tags carried by fewer courses are left out of the tag preferences.
    confidence
        Coverage of the intervals.

    Returns
    -------
    SegmentPortrait
    """
    _check_common(min_size, confidence)
    wins = tuple(int(w) for w in windows)
    if any(w <= 0 for w in wins):
        raise ConfigError(f"windows={list(windows)}; expected positive numbers of days")
    attrs = _members_table(dataset, "segment_portrait")
    tree = _tree(dataset, attrs) if isinstance(members, str | int | np.integer) else None
    mask = select_members(attrs, members, tree=tree, now=dataset.now)
    codes, labels, cols = segment_codes(attrs, by)
    f = _facts(dataset)
    n_seg = labels.size
    seg_of = codes[mask]

    def seg_sum(values: np.ndarray) -> NDArray[np.float64]:
        weights = np.asarray(values, np.float64)[mask]
        # Weighted counts are float64 already; astype only tells the type checker so.
        return np.bincount(seg_of, weights=weights, minlength=n_seg).astype(np.float64, copy=False)

    size = np.bincount(seg_of, minlength=n_seg)
    # complementary suppression: the population total minus the shown segments must not
    # give a small hidden remainder away
    hidden, _ = complementary_suppression(size, size < min_size, int(mask.sum()), min_size)
    shown = ~hidden
    if not shown.any():
        logger.info("segment_portrait: every segment has fewer than %d members", min_size)

    events = f.member_events.astype(np.float64)
    out: dict[str, Any] = {"members": size, "learners": seg_sum(events > 0).astype(np.int64)}
    _columns_with_interval(
        out,
        "events_per_member",
        mean_interval(seg_sum(events), seg_sum(events**2), size, confidence),
    )
    for w in wins:
        active = f.last_event > f.now - w * _DAY_NS
        _columns_with_interval(
            out, f"active_{w}d", wilson_interval(seg_sum(active), size, confidence)
        )
    started = np.bincount(f.pair_member, minlength=f.n_members)
    completed = np.bincount(f.pair_member, weights=f.pair_complete, minlength=f.n_members)
    out["pairs"] = seg_sum(started).astype(np.int64)
    _columns_with_interval(
        out, "completion_rate", wilson_interval(seg_sum(completed), out["pairs"], confidence)
    )
    minutes = np.bincount(f.pair_member, weights=f.pair_watch, minlength=f.n_members) / 60.0
    learner = mask & (f.member_events > 0)
    med = np.full((3, n_seg), np.nan)
    order = np.argsort(codes[learner], kind="stable")
    groups = np.split(
        minutes[learner][order], np.cumsum(np.bincount(codes[learner], minlength=n_seg))[:-1]
    )
    n_learners = np.asarray(out["learners"])
    for s in np.flatnonzero(shown & (n_learners >= min_size)):  # one pass per segment
        med[:, s] = median_interval(groups[s], confidence)
    out["median_watch_minutes"], out["median_watch_minutes_lo"], out["median_watch_minutes_hi"] = (
        med
    )
    few_learners = n_learners < min_size  # learner-based figures describe too few people
    for col in ("completion_rate", "completion_rate_lo", "completion_rate_hi"):
        out[col] = np.where(few_learners, np.nan, out[col])
    regular = f.checkin_weeks / f.n_weeks
    _columns_with_interval(
        out,
        "checkin_regularity",
        mean_interval(seg_sum(regular), seg_sum(regular**2), size, confidence),
    )
    activity = pd.DataFrame(out, index=pd.Index(labels, name="segment"))[shown]

    preferences = _preferences(
        dataset, f, codes, mask, labels, shown, started, min_tag_courses, confidence
    )
    return SegmentPortrait(
        by=cols,
        activity=activity,
        preferences=preferences,
        suppressed=tuple(str(v) for v in labels[~shown & (size > 0)]),
        min_size=int(min_size),
        windows=wins,
    )


def _preferences(
    ds: Dataset,
    f: _Facts,
    codes: NDArray[np.int64],
    mask: NDArray[np.bool_],
    labels: np.ndarray,
    shown: NDArray[np.bool_],
    started: NDArray[np.int64],
    min_tag_courses: int,
    confidence: float,
) -> pd.DataFrame:
    columns = ["segment", "kind", "value", "pairs", "share", "share_lo", "share_hi"]
    columns += ["platform_share", "lift", "lift_lo", "lift_hi"]
    if ds.courses is None:
        return pd.DataFrame(columns=columns)
    pairs = _pair_matrix(f)
    rows = np.flatnonzero(mask)
    seg = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (codes[rows], rows)), shape=(labels.size, f.n_members)
    )
    denom = np.asarray(seg @ started.astype(np.float64)).ravel()
    platform_denom = float(started.sum())
    frames = []
    for kind in PREFERENCE_KINDS:
        column = {"channel": C.CATEGORY, "duration": C.DURATION, "tag": C.TAGS}[kind]
        if column not in ds.courses.columns:
            continue
        cv = course_values(ds.courses, kind, min_courses=min_tag_courses if kind == "tag" else 1)
        if cv.labels.size == 0:
            continue
        member_value = (pairs @ cv.matrix()).tocsr()  # members x values: pairs on such courses
        counts = np.asarray((seg @ member_value).todense(), dtype=np.float64)[shown]
        platform = np.asarray(member_value.sum(axis=0), dtype=np.float64).ravel() / platform_denom
        trials = np.broadcast_to(denom[shown, None], counts.shape)
        share, lo, hi = wilson_interval(counts, trials, confidence)
        with np.errstate(divide="ignore", invalid="ignore"):
            lift = share / platform
            lift_lo, lift_hi = lo / platform, hi / platform
        n_s, n_v = counts.shape
        frames.append(
            pd.DataFrame(
                {
                    "segment": np.repeat(labels[shown], n_v),
                    "kind": kind,
                    "value": np.tile(cv.labels, n_s),
                    "pairs": counts.ravel().astype(np.int64),
                    "share": share.ravel(),
                    "share_lo": lo.ravel(),
                    "share_hi": hi.ravel(),
                    "platform_share": np.tile(platform, n_s),
                    "lift": lift.ravel(),
                    "lift_lo": lift_lo.ravel(),
                    "lift_hi": lift_hi.ravel(),
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]


# ============================================================================ branches


@dataclass(frozen=True)
class BranchPortrait:
    """An org next to its siblings and its sub-orgs.

    Attributes
    ----------
    org : str or None
        The org described (``None``: the whole platform, its top orgs as children).
    parent : str or None
    summary : DataFrame
        One row per org (index ``org_id``): ``role`` (``target`` / ``sibling`` / ``child``),
        ``kind``, ``members`` (including sub-orgs), ``suppressed`` (figures left empty),
        ``suppression`` (why: ``"small"``, fewer than ``min_size`` members; ``"complementary"``,
        hidden as well because the parent's total minus the shown orgs would give a small hidden org
        away; ``""`` when shown), ``reached`` (share of members with any event in the data, +
        interval), ``active_recent`` (share with an event in the last ``window_days``, + interval),
        ``active_before`` (the window before), ``change``, ``events_per_member``,
        ``compulsory_assigned`` (member-course pairs made compulsory by the members' branches),
        ``compulsory_completion`` (+ interval), ``behind_peers`` (the upper end of
        ``active_recent``'s interval is below the pooled share of its peers: siblings for the target
        and siblings, sub-orgs for sub-orgs), ``declining`` (the upper end is below
        ``active_before``) and ``flagging`` (either).
    trend : DataFrame
        Share of members active per period (rows: period start; columns: org ids of the
        summary; suppressed orgs are NaN).
    window_days : int
    min_size : int
    """

    org: str | None
    parent: str | None
    summary: pd.DataFrame
    trend: pd.DataFrame
    window_days: int
    min_size: int

    @property
    def flagging(self) -> pd.DataFrame:
        """Rows of the summary whose learning is flagging."""
        return self.summary[self.summary["flagging"].fillna(False).astype(bool)]


def branch_portrait(
    dataset: Dataset,
    org: object = None,
    *,
    window_days: int = 30,
    freq: str = "MS",
    min_size: int = MIN_SIZE,
    confidence: float = 0.95,
) -> BranchPortrait:
    """Portrait of an org (with its sub-orgs), its sibling orgs and its direct sub-orgs.

    Parameters
    ----------
    dataset
        A ``Dataset`` with members (``org_id``), and ideally orgs (``parent_id``) and courses
        (``compulsory_for``).
    org
        Org id; ``None`` describes the platform with its top-level orgs as children.
    window_days
        Length of the recent window (and of the window before it) for ``active_recent``.
    freq
        Period of the trend, a pandas frequency (``"MS"`` month starts, ``"W-MON"`` weeks).
    min_size
        Orgs with fewer members are suppressed.
    confidence
        Coverage of the intervals.

    Returns
    -------
    BranchPortrait
    """
    _check_common(min_size, confidence)
    if window_days <= 0:
        raise ConfigError(f"window_days={window_days!r}; expected a positive number of days")
    attrs = _members_table(dataset, "branch_portrait")
    if C.ORG not in attrs.columns:
        raise ConfigError("branch_portrait needs members.org_id (each member's branch)")
    tree = _tree(dataset, attrs)
    f = _facts(dataset)
    if org is None:
        target, parent, siblings = None, None, np.empty(0, np.int64)
        children = tree.children(-1)
    else:
        target = tree.index(org)
        parent = int(tree.parent[target])
        siblings = tree.children(parent)
        children = tree.children(target)
    role = {int(j): "sibling" for j in siblings}
    role.update({int(j): "child" for j in children})
    if target is not None:
        role[target] = "target"
    orgs = np.array(
        sorted(
            role, key=lambda j: ({"target": 0, "sibling": 1, "child": 2}[role[j]], str(tree.ids[j]))
        ),
        dtype=np.int64,
    )
    full = tree.membership(attrs[C.ORG]).tocsc()  # members x all orgs
    membership = full[:, orgs]  # members x orgs

    def org_sum(values: np.ndarray) -> NDArray[np.float64]:
        return np.asarray(membership.T @ np.asarray(values, np.float64)).ravel()

    size = np.asarray(membership.sum(axis=0)).ravel()
    window = window_days * _DAY_NS
    recent = f.last_event > f.now - window
    before_ev = (f.ev_time > f.now - 2 * window) & (f.ev_time <= f.now - window)
    before = np.bincount(f.ev_member[before_ev], minlength=f.n_members) > 0
    hidden, reason = _org_suppression(full, orgs, size, role, target, parent, len(attrs), min_size)
    out: dict[str, Any] = {
        "role": [role[int(j)] for j in orgs],
        "kind": tree.kind[orgs],
        "members": size.astype(np.int64),
        "suppressed": hidden,
        "suppression": reason,
    }
    _columns_with_interval(
        out, "reached", wilson_interval(org_sum(f.member_events > 0), size, confidence)
    )
    _columns_with_interval(out, "active_recent", wilson_interval(org_sum(recent), size, confidence))
    out["active_before"] = wilson_interval(org_sum(before), size, confidence)[0]
    out["change"] = out["active_recent"] - out["active_before"]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["events_per_member"] = org_sum(f.member_events) / size
    assigned, done = _compulsory(dataset, attrs, tree, f)
    out["compulsory_assigned"] = org_sum(assigned).astype(np.int64)
    _columns_with_interval(
        out,
        "compulsory_completion",
        wilson_interval(org_sum(done), out["compulsory_assigned"], confidence),
    )
    summary = pd.DataFrame(out, index=pd.Index(tree.ids[orgs], name=C.ORG))
    recent_n = org_sum(recent)
    behind = np.zeros(orgs.size, dtype=bool)
    for peers in (np.isin(orgs, siblings), np.isin(orgs, children)):
        if peers.sum() > 1:
            pooled = recent_n[peers].sum() / max(size[peers].sum(), 1)
            behind |= peers & (summary["active_recent_hi"].to_numpy() < pooled)
    summary["behind_peers"] = behind
    summary["declining"] = (
        summary["active_recent_hi"].to_numpy() < summary["active_before"].to_numpy()
    )
    summary["flagging"] = summary["behind_peers"] | summary["declining"]
    hidden = summary["suppressed"].to_numpy()
    for col in summary.columns.difference(["role", "kind", "members", "suppressed", "suppression"]):
        if summary[col].dtype == bool:
            summary[col] = summary[col].astype("boolean")
        summary.loc[hidden, col] = pd.NA if summary[col].dtype == "boolean" else np.nan
    trend = _trend(f, membership, size, freq)
    trend.columns = pd.Index(tree.ids[orgs], name=C.ORG)
    trend.loc[:, summary["suppressed"].to_numpy()] = np.nan
    return BranchPortrait(
        org=None if org is None else str(org),
        parent=None if parent is None or parent < 0 else str(tree.ids[parent]),
        summary=summary,
        trend=trend,
        window_days=int(window_days),
        min_size=int(min_size),
    )


def _org_suppression(
    full: sp.csc_matrix,
    orgs: NDArray[np.int64],
    size: NDArray[np.float64],
    role: dict[int, str],
    target: int | None,
    parent: int | None,
    n_members: int,
    min_size: int,
) -> tuple[NDArray[np.bool_], NDArray[np.object_]]:
    """Which orgs of a summary to hide, and why (``""``, ``"small"``, ``"complementary"``).

    Orgs below ``min_size`` are hidden; then, within each family shown (the target and its
    siblings under the parent, the target's sub-orgs under the target), the next-smallest
    shown orgs while the parent's total minus the shown ones is a positive remainder below
    ``min_size``. If that stays so with every sub-org hidden, the target's own figures are
    hidden too. The rule depends only on the family's sizes, so every summary that shows
    the same family hides the same orgs.
    """
    hidden = size < min_size
    reason = np.where(hidden, "small", "").astype(object)
    col_size = np.asarray(full.sum(axis=0)).ravel()
    kids = np.array([role[int(j)] == "child" for j in orgs])
    families = [(kids, int(col_size[target]) if target is not None else n_members)]
    if target is not None:
        family = np.array([role[int(j)] != "child" for j in orgs])
        families.append(
            (family, int(col_size[parent]) if parent is not None and parent >= 0 else n_members)
        )
    for in_family, total in families:
        if not in_family.any():
            continue
        more, hide_total = complementary_suppression(
            size[in_family], hidden[in_family], total, min_size
        )
        added = more & ~hidden[in_family]
        idx = np.flatnonzero(in_family)
        hidden[idx[added]] = True
        reason[idx[added]] = "complementary"
        if hide_total and target is not None and in_family is kids:
            at = int(np.flatnonzero(orgs == target)[0])
            if not hidden[at]:
                hidden[at] = True
                reason[at] = "complementary"
    return hidden, reason


def _compulsory(
    ds: Dataset, attrs: pd.DataFrame, tree: OrgTree, f: _Facts
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per member: compulsory courses of their branch (published by now) and how many done."""
    zeros = np.zeros(f.n_members, dtype=np.int64)
    courses = ds.courses
    if courses is None or C.COMPULSORY_FOR not in courses.columns:
        return zeros, zeros.copy()
    table = courses[[C.COMPULSORY_FOR]].copy()
    table["course_idx"] = np.arange(len(courses))
    if C.PUBLISHED_AT in courses.columns:
        published = pd.to_datetime(courses[C.PUBLISHED_AT])
        table = table[~(published > pd.Timestamp(ds.now)).to_numpy()]
    long = table.explode(C.COMPULSORY_FOR).dropna()
    long = long.rename(columns={C.COMPULSORY_FOR: C.ORG})
    long[C.ORG] = long[C.ORG].astype(str)
    mem = pd.DataFrame({C.ORG: attrs[C.ORG].astype(str), "member_idx": np.arange(len(attrs))})
    pairs = mem.merge(long, on=C.ORG)
    if pairs.empty:
        return zeros, zeros.copy()
    m = pairs["member_idx"].to_numpy(np.int64)
    key = m * f.n_courses + pairs["course_idx"].to_numpy(np.int64)
    done_keys = (f.pair_member * f.n_courses + f.pair_course)[f.pair_complete]
    done = np.isin(key, done_keys)
    return (
        np.bincount(m, minlength=f.n_members).astype(np.int64),
        np.bincount(m[done], minlength=f.n_members).astype(np.int64),
    )


def _trend(f: _Facts, membership: sp.csc_matrix, size: np.ndarray, freq: str) -> pd.DataFrame:
    start, now = pd.Timestamp(f.start), pd.Timestamp(f.now)
    try:
        edges = pd.date_range(start.floor("D"), now, freq=freq)
    except ValueError as err:
        raise ConfigError(f"freq={freq!r} is not a pandas frequency (e.g. 'MS', 'W-MON')") from err
    if len(edges) == 0 or edges[0] > start:
        edges = pd.DatetimeIndex([start.floor("D")]).append(edges)
    period = np.searchsorted(edges.asi8, f.ev_time, side="right") - 1
    keys = np.unique(f.ev_member * len(edges) + period)
    active = sp.csr_matrix(
        (np.ones(keys.size, np.float32), (keys // len(edges), keys % len(edges))),
        shape=(f.n_members, len(edges)),
    )
    counts = np.asarray((membership.T @ active).todense(), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = counts / size[:, None]
    return pd.DataFrame(share.T, index=pd.Index(edges, name="period"))


# ============================================================================ courses


@dataclass(frozen=True)
class CoursePortrait:
    """Who studies a course and how far they get.

    Attributes
    ----------
    course_id : object
    info : dict
        ``title``, ``channel``, ``minutes`` where known.
    learners : int
        Members with any event on the course.
    suppressed : bool
        Fewer than ``min_size`` learners: only ``learners`` is given.
    completion_rate : tuple of float
        Share of learners who completed it, with its interval (NaN when suppressed).
    mix : DataFrame
        Segment mix of the learners (index ``segment``): ``learners, share`` (+ interval),
        ``member_share`` (the segment's share of all members), ``lift``. Segments with fewer
        than ``min_size`` learners are pooled into ``"(other)"``; when that pool is itself
        below ``min_size``, the smallest shown segments are merged into it until it is not.
    curve : DataFrame
        ``fraction`` (of the course, 0..1) and ``reached`` (share of learners who watched at
        least that much).
    drop_off : tuple of float or None
        The stretch of the course ``(from, to)`` (fractions) where most learners stop.
    median_fraction : float
        Median share of the course watched by a learner.
    """

    course_id: object
    info: dict[str, Any]
    learners: int
    suppressed: bool
    completion_rate: tuple[float, float, float]
    mix: pd.DataFrame
    curve: pd.DataFrame
    drop_off: tuple[float, float] | None
    median_fraction: float


def course_portrait(
    dataset: Dataset,
    course_id: object,
    *,
    by: str | Sequence[str] | None = "occupation",
    min_size: int = MIN_SIZE,
    bins: int = 20,
    confidence: float = 0.95,
) -> CoursePortrait:
    """Portrait of one course: segment mix of its learners, completion curve, drop-off.

    Parameters
    ----------
    dataset
        A ``Dataset`` with members (for the mix) and courses (``duration_seconds`` for the
        curve; events with ``watch_seconds``).
    course_id
        The course.
    by
        Member attribute(s) for the segment mix.
    min_size
        Below this many learners nothing but the count is shown; mix segments below it are
        pooled.
    bins
        Points of the completion curve (``bins + 1`` fractions from 0 to 1).
    confidence
        Coverage of the intervals.

    Returns
    -------
    CoursePortrait
    """
    _check_common(min_size, confidence)
    if not isinstance(bins, int) or bins < 2:
        raise ConfigError(f"bins={bins!r}; expected an integer >= 2")
    c = int(dataset.course_ids.to_index([course_id])[0])
    f = _facts(dataset)
    info: dict[str, Any] = {}
    duration = np.nan
    if dataset.courses is not None:
        row = dataset.courses.iloc[c]
        for key, col in (("title", C.TITLE), ("channel", C.CATEGORY)):
            if col in row.index and pd.notna(row[col]):
                info[key] = row[col]
        if C.DURATION in row.index and pd.notna(row[C.DURATION]):
            duration = float(row[C.DURATION])
            info["minutes"] = round(duration / 60.0, 1)
    on_course = f.pair_course == c
    learner_idx = f.pair_member[on_course]
    n = int(learner_idx.size)
    nan3 = (float("nan"),) * 3
    empty = CoursePortrait(
        course_id, info, n, True, nan3, pd.DataFrame(), pd.DataFrame(), None, float("nan")
    )
    if n < min_size:
        return empty
    complete = f.pair_complete[on_course]
    rate = tuple(float(v) for v in wilson_interval(complete.sum(), n, confidence))
    fraction = np.full(n, np.nan)
    if np.isfinite(duration) and duration > 0:
        fraction = np.minimum(f.pair_watch[on_course] / duration, 1.0)
        fraction[complete] = 1.0
    grid = np.linspace(0.0, 1.0, bins + 1)
    if np.isnan(fraction).all():
        curve, drop, median = pd.DataFrame(), None, float("nan")
    else:
        reached = (fraction[None, :] >= grid[:, None] - 1e-9).mean(axis=1)
        curve = pd.DataFrame({"fraction": grid, "reached": reached})
        loss = reached[:-1] - reached[1:]
        i = int(np.argmax(loss))
        drop = (float(grid[i]), float(grid[i + 1]))
        median = float(np.median(fraction))
    mix = pd.DataFrame()
    if dataset.members is not None:
        attrs = _members_table(dataset, "course_portrait")
        codes, labels, _ = segment_codes(attrs, by)
        counts = np.bincount(codes[learner_idx], minlength=labels.size)
        # "(other)" pools the small segments; while it is itself below min_size (and not
        # empty), the smallest shown segment is merged into it
        hidden, _ = complementary_suppression(counts, counts < min_size, n, min_size)
        keep = ~hidden
        names = list(labels[keep])
        values = list(counts[keep])
        members_all = np.bincount(codes, minlength=labels.size).astype(np.float64)
        base = list(members_all[keep] / members_all.sum())
        if (~keep & (counts > 0)).any():
            names.append("(other)")
            values.append(int(counts[~keep].sum()))
            base.append(float(members_all[~keep].sum() / members_all.sum()))
        arr = np.asarray(values, dtype=np.float64)
        share, lo, hi = wilson_interval(arr, np.full(arr.size, float(n)), confidence)
        mix = pd.DataFrame(
            {
                "learners": arr.astype(np.int64),
                "share": share,
                "share_lo": lo,
                "share_hi": hi,
                "member_share": base,
            },
            index=pd.Index(names, name="segment"),
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            mix["lift"] = mix["share"] / mix["member_share"]
        mix.attrs["by"] = by  # what the segment labels are values of
    return CoursePortrait(course_id, info, n, False, rate, mix, curve, drop, median)  # type: ignore[arg-type]


def top_courses(
    dataset: Dataset, n: int = 10, *, members: Any = None, min_size: int = MIN_SIZE
) -> pd.DataFrame:
    """The courses with the most learners (within ``members`` if given).

    Parameters
    ----------
    dataset
        The platform's data (a members table when ``members`` is given).
    n
        Most courses listed.
    members
        Population (an org id, a filter mapping, a callable or member ids); everyone by
        default.
    min_size
        A population with fewer members gets an empty table: what a handful of people
        study would single them out.

    Returns
    -------
    DataFrame
        ``course_id, learners, completed`` (plus ``title``/``category`` when known), most
        learners first, at most ``n`` rows. ``attrs["population"]`` holds the population
        size; when it is below ``min_size`` the table is empty and ``attrs["hidden"]``
        says why.
    """
    _check_common(min_size, 0.95)
    f = _facts(dataset)
    keep = np.ones(f.pair_member.size, dtype=bool)
    population = f.n_members
    if members is not None:
        attrs = _members_table(dataset, "top_courses")
        tree = _tree(dataset, attrs) if isinstance(members, str | int | np.integer) else None
        mask = select_members(attrs, members, tree=tree, now=dataset.now)
        keep = mask[f.pair_member]
        population = int(mask.sum())
    if population < min_size:
        keep = np.zeros_like(keep)
        n = 0
    learners = np.bincount(f.pair_course[keep], minlength=f.n_courses)
    completed = np.bincount(f.pair_course[keep & f.pair_complete], minlength=f.n_courses)
    order = np.lexsort((np.arange(f.n_courses), -learners))[: max(int(n), 0)]
    order = order[learners[order] > 0]
    out = pd.DataFrame(
        {
            C.COURSE: dataset.course_ids.external_ids[order],
            "learners": learners[order].astype(np.int64),
            "completed": completed[order].astype(np.int64),
        }
    )
    if dataset.courses is not None:
        for col in (C.TITLE, C.CATEGORY):
            if col in dataset.courses.columns:
                out[col] = dataset.courses[col].to_numpy(dtype=object)[order]
    out.attrs["population"] = int(population)
    if population < min_size:
        out.attrs["hidden"] = f"hidden: fewer than {int(min_size)} members ({population})"
    return out
