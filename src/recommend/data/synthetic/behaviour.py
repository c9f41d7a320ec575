"""Behaviour: study sessions (organic choices and compulsory study) and the events they emit."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Final

import numpy as np

from recommend.data.synthetic.catalogue import Courses
from recommend.data.synthetic.config import SynthConfig
from recommend.data.synthetic.members import Members
from recommend.data.synthetic.sampling import draw_rows, sigmoid
from recommend.data.synthetic.timing import DAY, HOUR, Period, place_in_window
from recommend.data.synthetic.truth import Truth
from recommend.schema import EVENT_TYPES

FloatArray = np.ndarray
IntArray = np.ndarray

# Mean events per study session of each kind, and per search (its clicks and the sessions
# they open); they turn ``events_per_member`` into a rate of organic sessions. Measured on
# the presets.
_EVENTS_PER_ORGANIC: Final = 2.85
_EVENTS_PER_COMPULSORY: Final = 4.3
_EVENTS_PER_SEARCH: Final = 5.4


@dataclass(frozen=True)
class Sessions:
    """Study sessions, one per entry: who studied which course, when, and why."""

    member: IntArray
    course: IntArray
    start: IntArray  # seconds
    kind: IntArray  # 0 organic, 1 compulsory, 2 from a search click


ORGANIC, COMPULSORY, SEARCH = 0, 1, 2


def simulate_choices(
    cfg: SynthConfig,
    rng: np.random.Generator,
    truth: Truth,
    members: Members,
    courses: Courses,
    period: Period,
    rate: float,
) -> tuple[Sessions, tuple[IntArray, IntArray]]:
    """Organic study sessions and search intents, both drawn from each member's choice
    distribution ``p(i | u) ~ exp(utility(u, i)) * availability(i)``.

    A member has ``Poisson(activity * rate)`` sessions on distinct courses (``rate`` from
    :func:`session_rate`): a repeated draw is kept as a rewatch with probability
    ``cfg.rewatch`` and otherwise drawn again.

    Returns the organic sessions and the (member, target course) pairs of searches.
    """
    n_courses = cfg.n_courses
    n_sessions = rng.poisson(truth.member_activity * rate)
    n_sessions = np.minimum(n_sessions, n_courses // 3)
    n_searches = rng.poisson(truth.member_activity * cfg.searches_per_member)

    lo, hi = _session_window(courses, period)
    availability = (hi - lo) / period.seconds
    course_vec = truth.course_vectors()
    course_vec[:, -1] += np.log(availability).astype(np.float32)  # bias column

    active = np.flatnonzero(n_sessions + n_searches > 0)
    block = max(1, 4_000_000 // n_courses)
    group = 32  # columns per group of the two-level sampler
    sessions: list[tuple[IntArray, IntArray]] = []
    intents: list[tuple[IntArray, IntArray]] = []
    for start in range(0, active.size, block):
        m = active[start : start + block]
        weight, group_cdf = _choice_weights(truth, m, course_vec, group)
        rows = np.repeat(np.arange(m.size), n_searches[m])
        intents.append((m[rows], draw_rows(rng, weight, group_cdf, group, rows)))
        kept_rows, kept_courses = _distinct_draws(
            rng, weight, group_cdf, group, n_sessions[m], cfg.rewatch
        )
        sessions.append((m[kept_rows], kept_courses))

    s_member, s_course = _concat_pairs(sessions)
    start_time = place_in_window(rng, lo[s_course], hi[s_course], members.profile[s_member], period)
    organic = Sessions(s_member, s_course, start_time, np.full(s_member.size, ORGANIC))
    return organic, _concat_pairs(intents)


def _choice_weights(
    truth: Truth, m: IntArray, course_vec: FloatArray, group: int
) -> tuple[FloatArray, FloatArray]:
    """Members ``m``'s choice weights over all courses, ``exp(utility)`` scaled so that each
    row's largest is 1, (len(m), n_courses) float32, and their row-wise cumulative sums over
    groups of ``group`` columns (see :func:`draw_rows`)."""
    n_courses = course_vec.shape[0]
    weight = truth.member_vectors(m) @ course_vec.T
    truth.add_local(weight, m, np.arange(n_courses))
    weight -= weight.max(axis=1, keepdims=True)
    np.exp(weight, out=weight)
    group_cdf = np.add.reduceat(weight, np.arange(0, n_courses, group), axis=1)
    np.cumsum(group_cdf, axis=1, out=group_cdf)
    return weight, group_cdf


def _distinct_draws(
    rng: np.random.Generator,
    weight: FloatArray,
    group_cdf: FloatArray,
    group: int,
    want: IntArray,
    rewatch: float,
) -> tuple[IntArray, IntArray]:
    """``want[r]`` courses for each row ``r`` of ``weight``, mostly distinct: a repeat is kept
    (a rewatch) with probability ``rewatch``, otherwise drawn again, for a few rounds.

    Returns the rows and the courses drawn, aligned (int64).
    """
    n_courses = weight.shape[1]
    kept_rows = np.empty(0, dtype=np.int64)
    kept_courses = np.empty(0, dtype=np.int64)
    for _ in range(4):  # redraw repeats; a few rounds leave almost no shortfall
        rows = np.repeat(np.arange(want.size), want)
        if rows.size == 0:
            break
        drawn = draw_rows(rng, weight, group_cdf, group, rows)
        key = np.concatenate([kept_rows, rows]) * n_courses + np.concatenate([kept_courses, drawn])
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(key.size, dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        accept = ~repeat[kept_rows.size :] | (rng.random(rows.size) < rewatch)
        kept_rows = np.concatenate([kept_rows, rows[accept]])
        kept_courses = np.concatenate([kept_courses, drawn[accept]])
        want = np.bincount(rows[~accept], minlength=want.size)
    return kept_rows, kept_courses


def _concat_pairs(pairs: list[tuple[IntArray, IntArray]]) -> tuple[IntArray, IntArray]:
    if not pairs:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return (
        np.concatenate([p[0] for p in pairs]).astype(np.int64),
        np.concatenate([p[1] for p in pairs]).astype(np.int64),
    )


def session_rate(cfg: SynthConfig, activity: FloatArray, n_compulsory: int) -> float:
    """Organic sessions per unit of activity that bring the mean number of events per member
    to about ``cfg.events_per_member``, given the compulsory sessions and the searches."""
    total_activity = float(activity.sum())
    if total_activity <= 0:
        return 0.0
    target = cfg.events_per_member * cfg.n_members
    search_events = total_activity * cfg.searches_per_member * _EVENTS_PER_SEARCH
    remaining = target - n_compulsory * _EVENTS_PER_COMPULSORY - search_events
    return max(0.0, remaining) / (_EVENTS_PER_ORGANIC * total_activity)


def _session_window(courses: Courses, period: Period) -> tuple[IntArray, IntArray]:
    """Earliest and latest start of a study session per course (seconds): after publication,
    and early enough to finish (plus reactions) before the period ends."""
    lo = np.maximum(period.start, courses.published + 60)
    hi = period.end - courses.duration.astype(np.int64) - 2 * HOUR
    return lo, np.maximum(hi, lo + 60)


def simulate_compulsory(
    rng: np.random.Generator, members: Members, courses: Courses, period: Period
) -> Sessions:
    """Members study their branch's compulsory courses within a month of assignment; active
    members almost always, pocket members rarely, mobile members less."""
    n_orgs = int(max(members.branch.max(initial=0), courses.compulsory_branches.max(initial=0))) + 1
    course_of_pair = np.repeat(np.arange(courses.duration.size), np.diff(courses.compulsory_ptr))
    branch_of_pair = courses.compulsory_branches
    order = np.argsort(branch_of_pair, kind="stable")
    by_branch = course_of_pair[order]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(branch_of_pair, minlength=n_orgs))])

    count = np.diff(ptr)[members.branch]
    member = np.repeat(np.arange(members.branch.size), count)
    within = np.arange(member.size) - np.repeat(np.cumsum(count) - count, count)
    course = by_branch[ptr[members.branch[member]] + within]

    activity = members.activity[member].astype(np.float64)
    p_do = 0.03 + 0.9 * (1.0 - np.exp(-3.0 * activity))
    p_do *= np.where(members.mobile[member], 0.7, 1.0)
    done = rng.random(member.size) < p_do
    member, course = member[done], course[done]

    lo, hi = _session_window(courses, period)
    lo, hi = lo[course], hi[course]
    deadline = np.where(courses.standing[course], 60, 30) * DAY
    hi = np.minimum(hi, lo + deadline)
    start = place_in_window(rng, lo, hi, members.profile[member], period)
    return Sessions(member, course, start, np.full(member.size, COMPULSORY))


def planned_compulsory(cfg: SynthConfig, n_compulsory: int, activity: FloatArray) -> int:
    """How many compulsory sessions the event budget plans for: all ``n_compulsory`` when
    ``cfg.compulsory_share`` is ``None``, otherwise ``K`` with ``K = share / (1 - share) * O``
    for ``O`` organic sessions and ``O * events_per_organic + K * events_per_compulsory`` the
    budget left by searches (at most ``n_compulsory``)."""
    share = cfg.compulsory_share
    if share is None:
        return n_compulsory
    search_events = float(activity.sum()) * cfg.searches_per_member * _EVENTS_PER_SEARCH
    budget = max(0.0, cfg.events_per_member * cfg.n_members - search_events)
    ratio = share / (1.0 - share)
    wanted = ratio * budget / (_EVENTS_PER_ORGANIC + _EVENTS_PER_COMPULSORY * ratio)
    return min(n_compulsory, round(wanted))


def thin_compulsory(
    cfg: SynthConfig, rng: np.random.Generator, compulsory: Sessions, n_other: int
) -> Sessions:
    """Keep completed compulsory sessions at random so that they make up about
    ``cfg.compulsory_share`` of all study sessions, given ``n_other`` organic and search
    sessions (unchanged when the setting is ``None`` or assignments already fall short)."""
    share = cfg.compulsory_share
    n = compulsory.member.size
    if share is None or n == 0:
        return compulsory
    wanted = share / (1.0 - share) * n_other
    keep = rng.random(n) < min(1.0, wanted / n)
    return Sessions(*(getattr(compulsory, f.name)[keep] for f in fields(Sessions)))


def concat_sessions(parts: list[Sessions]) -> Sessions:
    """Sessions of several kinds as one set (in the order given), all int64."""
    return Sessions(
        *(
            np.concatenate([getattr(p, f.name) for p in parts]).astype(np.int64)
            for f in fields(Sessions)
        )
    )


@dataclass(frozen=True)
class Events:
    """Events, one per entry, sorted by member, time, event and course."""

    member: IntArray
    course: IntArray
    event: IntArray  # index into EVENT_TYPES
    time: IntArray  # seconds
    watch: FloatArray


def simulate_funnel(
    rng: np.random.Generator,
    truth: Truth,
    members: Members,
    courses: Courses,
    sessions: Sessions,
    period: Period,
) -> Events:
    """Turn study sessions into events.

    Every session starts with ``view``; the fraction watched grows with utility (compulsory
    study is mostly finished regardless); ``progress`` is logged after a minute of watching,
    ``complete`` when the course is finished; likes, favorites, shares and comments follow
    good sessions; members with the habit check in (学习打卡) after completing, and nearly
    always after compulsory study; a session opened from search is preceded by ``search_click``.
    """
    m, c, t0, kind = sessions.member, sessions.course, sessions.start, sessions.kind
    n = m.size
    utility = truth.pair_utility(m, c).astype(np.float64)
    centre = float(np.median(utility[kind != COMPULSORY])) if (kind != COMPULSORY).any() else 0.0
    gap = utility - centre
    duration = courses.duration[c]

    fraction = sigmoid(1.6 * gap + rng.normal(0.0, 0.9, n))
    compulsory = kind == COMPULSORY
    fraction = np.where(
        compulsory, np.where(rng.random(n) < 0.85, 1.0, 0.2 + 0.7 * rng.random(n)), fraction
    )
    complete = fraction >= 0.85
    watched = np.where(complete, duration, np.clip(np.round(fraction * duration), 10.0, duration))

    ev = EVENT_TYPES.index
    parts: list[tuple[np.ndarray, int, IntArray, FloatArray]] = []

    def emit(
        mask: np.ndarray, event: str, offset: IntArray | int, watch: FloatArray | float
    ) -> None:
        idx = np.flatnonzero(mask)
        off = offset[idx] if isinstance(offset, np.ndarray) else np.full(idx.size, offset)
        w = watch[idx] if isinstance(watch, np.ndarray) else np.full(idx.size, watch)
        parts.append((idx, ev(event), t0[idx] + off.astype(np.int64), w.astype(np.float64)))

    everyone = np.ones(n, dtype=bool)
    emit(kind == SEARCH, "search_click", -5, 0.0)
    emit(everyone, "view", 0, 0.0)
    half = np.floor(duration / 2.0)
    progress_watch = np.where(complete, half, watched)
    emit(complete | (watched >= 60.0), "progress", progress_watch.astype(np.int64), progress_watch)
    emit(complete, "complete", duration.astype(np.int64), duration)
    end_of_session = watched.astype(np.int64)
    engaged = fraction >= 0.5
    for event, shift, delay in (
        ("like", 2.0, 5),
        ("favorite", 3.0, 10),
        ("share", 3.6, 15),
        ("comment", 4.2, 25),
    ):
        p = sigmoid(1.5 * gap - shift)
        emit(engaged & (rng.random(n) < p), event, end_of_session + delay, watched)
    checkin_p = np.where(compulsory, 0.8, members.checkin[m])
    emit(complete & (rng.random(n) < checkin_p), "checkin", end_of_session + 30, watched)

    idx = np.concatenate([p[0] for p in parts])
    event_type = np.concatenate([np.full(p[0].size, p[1], dtype=np.int64) for p in parts])
    time = np.concatenate([p[2] for p in parts])
    watch = np.concatenate([p[3] for p in parts])
    time = np.clip(time, period.start, period.end - 1)
    member, course = m[idx], c[idx]
    order = _event_order(member, time - period.start, event_type, course)
    return Events(member[order], course[order], event_type[order], time[order], watch[order])


def _event_order(member: IntArray, time: IntArray, event: IntArray, course: IntArray) -> IntArray:
    """Stable order by member, time, event, course (all non-negative ints).

    Packs the keys into one int64 when they fit (one sort instead of four passes of a
    lexsort, a few times faster at millions of events).
    """
    keys = (member, time, event, course)
    bits = [int(k.max(initial=0)).bit_length() for k in keys]
    if sum(bits) > 63:
        return np.lexsort(keys[::-1])
    packed = np.zeros(member.size, dtype=np.int64)
    for key, width in zip(keys, bits, strict=True):
        packed = (packed << width) | key.astype(np.int64)
    return np.argsort(packed, kind="stable")
