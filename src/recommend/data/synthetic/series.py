"""Planted lecture series: numbered theory lectures that members follow one after another.

With ``SynthConfig.plant_series``, a share of the official theory courses is grouped into
series of 3 to 8 lectures (``series_id``, ``series_order`` in publication order, titles
numbered ``……（第N讲）``), and members who complete a lecture go on to the next one: with
probability :data:`FOLLOW` they open it one to six days later, and finish it with
probability :data:`FINISH` (otherwise they stop after a few minutes: a started, unfinished
course). The planted follow-ups are what continue-learning menus are evaluated against.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from recommend.schema import CHANNELS, EVENT_COMPLETE
from recommend.schema import Columns as C

__all__ = ["FINISH", "FOLLOW", "SERIES_SHARE", "plant_series"]

#: Share of the official theory courses that belong to a series.
SERIES_SHARE = 0.5
#: Probability that a member who completed a lecture opens the next one.
FOLLOW = 0.6
#: Probability that they finish it once opened.
FINISH = 0.7
_DAY = pd.Timedelta(days=1)


def plant_series(
    rng: np.random.Generator, courses: pd.DataFrame, events: pd.DataFrame, end: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Courses with series columns and retitled lectures, and events with the follow-ups.

    Parameters
    ----------
    rng
        The stage's random stream.
    courses, events
        The simulated tables (not modified).
    end
        End of the simulated period: no follow-up starts after it.
    """
    courses = courses.copy()
    theory = (courses[C.CATEGORY] == CHANNELS[1]) & (courses[C.SOURCE] == "official")
    pool = np.flatnonzero(theory.to_numpy())
    pool = rng.permutation(pool)[: round(SERIES_SHARE * pool.size)]
    series_id = np.full(len(courses), None, dtype=object)
    series_order = np.full(len(courses), np.nan)
    titles = courses[C.TITLE].to_numpy(dtype=object).copy()
    published = courses[C.PUBLISHED_AT].to_numpy(dtype="datetime64[ns]")
    lo, k = 0, 0
    while pool.size - lo >= 3:
        size = min(int(rng.integers(3, 9)), int(pool.size) - lo)
        members = pool[lo : lo + size]
        members = members[np.argsort(published[members], kind="stable")]
        stem = str(titles[members[0]]).split("（第")[0]
        for j, course in enumerate(members.tolist(), start=1):
            series_id[course] = f"s{k:03d}"
            series_order[course] = float(j)
            titles[course] = f"{stem}（第{j}讲）"
        lo += size
        k += 1
    courses[C.SERIES] = pd.Series(series_id, index=courses.index, dtype=object)
    courses[C.SERIES_ORDER] = series_order
    courses[C.TITLE] = pd.Series(titles, index=courses.index).astype(courses[C.TITLE].dtype)
    return courses, _follow_ups(rng, courses, events, end)


def _follow_ups(
    rng: np.random.Generator, courses: pd.DataFrame, events: pd.DataFrame, end: pd.Timestamp
) -> pd.DataFrame:
    """Events of members going on to the next lecture, lecture by lecture (chains grow)."""
    info = courses.set_index(C.COURSE)
    in_series = info[info[C.SERIES].notna()]
    nxt: dict[object, object] = {}
    for _, group in in_series.groupby(C.SERIES, sort=True):
        ordered = group.sort_values(C.SERIES_ORDER).index.tolist()
        nxt.update(itertools.pairwise(ordered))
    if not nxt:
        return events
    studied = set(zip(events[C.MEMBER].tolist(), events[C.COURSE].tolist(), strict=True))
    done = events[events[C.EVENT] == EVENT_COMPLETE]
    done = done[done[C.COURSE].isin(list(nxt))]
    queue = list(
        zip(
            done[C.MEMBER].tolist(),
            done[C.COURSE].tolist(),
            done[C.TIMESTAMP].tolist(),
            strict=True,
        )
    )
    queue.sort(key=lambda item: (item[2], str(item[0]), str(item[1])))
    rows: list[tuple[object, object, str, pd.Timestamp, float]] = []
    while queue:
        member, course, when = queue.pop(0)
        following = nxt.get(course)
        if following is None or (member, following) in studied or rng.random() >= FOLLOW:
            continue
        start = max(when + rng.uniform(1, 6) * _DAY, info.at[following, C.PUBLISHED_AT])
        if start >= end:
            continue
        studied.add((member, following))
        duration = float(info.at[following, C.DURATION])
        rows.append((member, following, "view", start, 0.0))
        if rng.random() < FINISH:
            half = float(round(duration / 2))
            rows.append((member, following, "progress", start + pd.Timedelta(seconds=half), half))
            finished = start + pd.Timedelta(seconds=duration)
            rows.append((member, following, EVENT_COMPLETE, finished, duration))
            queue.append((member, following, finished))
            queue.sort(key=lambda item: (item[2], str(item[0]), str(item[1])))
        else:
            watched = float(min(duration - 1.0, rng.uniform(60.0, 300.0)))
            rows.append(
                (member, following, "progress", start + pd.Timedelta(seconds=watched), watched)
            )
    if not rows:
        return events
    extra = pd.DataFrame(rows, columns=[C.MEMBER, C.COURSE, C.EVENT, C.TIMESTAMP, C.WATCH_SECONDS])
    extra = extra.astype({c: events[c].dtype for c in extra.columns})
    out = pd.concat([events, extra], ignore_index=True)
    return out.sort_values([C.TIMESTAMP, C.MEMBER], kind="stable").reset_index(drop=True)
