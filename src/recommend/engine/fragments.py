"""Fragment time: how long a member usually studies at this hour of this kind of day.

``max_minutes="auto"`` keeps, for each member, only courses that fit the session they
usually have at the request's time (``MenuOptions.now``, else the data time), learned from
the training events:

* a **session** is a ``view`` and what follows it on the same course (``progress``,
  ``complete``) before the next ``view``; its length is the most ``watch_seconds`` reached;
* sessions are binned by **day type** (weekday, weekend) and a **3-hour band** of the
  view's hour (0-2, 3-5, ..., 21-23);
* a member's limit is the median of their sessions in the request's bin when they have at
  least :data:`MIN_SESSIONS` there, else the median of all their sessions when they have
  as many, else the platform's median in that bin, else the platform's median; never under
  :data:`FLOOR_MINUTES`. Members without history, folded in since, or served from an
  artifact (which keeps no watch times) get the platform's figure, or
  :data:`FALLBACK_MINUTES` when there is none.

Only the model's recommendations are limited: compulsory pins and continue-learning
entries are what the member must or chose to study, whatever the time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.data.dataset import MEMBER_IDX
from recommend.schema import Columns as C

__all__ = [
    "FALLBACK_MINUTES",
    "FLOOR_MINUTES",
    "MIN_SESSIONS",
    "SOURCE_MEMBER",
    "SOURCE_MEMBER_BIN",
    "SOURCE_PLATFORM",
    "SessionProfile",
    "session_profile",
    "time_bin",
]

#: Sessions a member needs in a bin (or overall) for their own median to count.
MIN_SESSIONS = 3
#: Minutes assumed when the training data says nothing about sessions.
FALLBACK_MINUTES = 15.0
#: The shortest limit: a member who only glanced at courses still gets micro-lessons.
FLOOR_MINUTES = 3.0
#: Where a member's limit came from.
SOURCE_MEMBER_BIN, SOURCE_MEMBER, SOURCE_PLATFORM = 0, 1, 2
_BINS = 16  # 2 day types x 8 bands of 3 hours


def time_bin(when: pd.Timestamp) -> int:
    """The (day type, 3-hour band) bin of a time: weekday bands 0-7, weekend 8-15."""
    return int((8 if when.day_of_week >= 5 else 0) + when.hour // 3)


@dataclass(frozen=True)
class SessionProfile:
    """Typical session minutes per training member and bin, and the platform's.

    Attributes
    ----------
    member_bin : ndarray of float64, shape (n_members, 16)
        A member's median minutes in a bin (NaN: fewer than ``MIN_SESSIONS`` sessions).
    member_all : ndarray of float64, shape (n_members,)
        A member's median over all their sessions (NaN: too few).
    platform_bin : ndarray of float64, shape (16,)
        Everyone's median per bin (NaN: no session).
    platform_all : float
        Everyone's median (``FALLBACK_MINUTES`` when there is no session).
    """

    member_bin: NDArray[np.float64]
    member_all: NDArray[np.float64]
    platform_bin: NDArray[np.float64]
    platform_all: float

    def minutes(
        self, idx: NDArray[np.int64], when: pd.Timestamp
    ) -> tuple[NDArray[np.float64], NDArray[np.int8]]:
        """Each member's limit at ``when`` and where it came from (``SOURCE_*``)."""
        idx = np.asarray(idx, dtype=np.int64)
        b = time_bin(when)
        platform = self.platform_bin[b]
        if not np.isfinite(platform):
            platform = self.platform_all
        out = np.full(idx.size, platform, dtype=np.float64)
        source = np.full(idx.size, SOURCE_PLATFORM, dtype=np.int8)
        inside = (idx >= 0) & (idx < self.member_all.size)
        rows = idx[inside]
        own_bin = self.member_bin[rows, b]
        own_all = self.member_all[rows]
        got = np.where(np.isfinite(own_bin), own_bin, own_all)
        src = np.where(np.isfinite(own_bin), SOURCE_MEMBER_BIN, SOURCE_MEMBER)
        known = np.isfinite(got)
        pos = np.flatnonzero(inside)[known]
        out[pos] = got[known]
        source[pos] = src[known]
        return np.maximum(out, FLOOR_MINUTES), source


def session_profile(events: pd.DataFrame | None, n_members: int) -> SessionProfile:
    """The session profile of training events (with ``MEMBER_IDX``)."""
    empty = SessionProfile(
        np.full((n_members, _BINS), np.nan),
        np.full(n_members, np.nan),
        np.full(_BINS, np.nan),
        FALLBACK_MINUTES,
    )
    if events is None or C.WATCH_SECONDS not in events.columns or not len(events):
        return empty
    ev = events[[MEMBER_IDX, C.COURSE, C.EVENT, C.TIMESTAMP, C.WATCH_SECONDS]]
    if not (ev[C.EVENT] == "view").any():
        return empty
    ev = ev.sort_values([MEMBER_IDX, C.COURSE, C.TIMESTAMP], kind="stable")
    member = ev[MEMBER_IDX].to_numpy(np.int64)
    course = pd.factorize(ev[C.COURSE])[0]
    is_view = (ev[C.EVENT] == "view").to_numpy()
    new_pair = np.ones(member.size, dtype=bool)
    new_pair[1:] = (member[1:] != member[:-1]) | (course[1:] != course[:-1])
    # A session starts at each view; events of a pair before its first view belong to none.
    session = np.cumsum(is_view | new_pair) - 1
    first_view = pd.Series(is_view).groupby(np.cumsum(new_pair)).cummax().to_numpy()
    keep = first_view
    watch = ev[C.WATCH_SECONDS].to_numpy(np.float64)
    frame = pd.DataFrame(
        {
            "session": session[keep],
            "member": member[keep],
            "watch": np.nan_to_num(watch[keep]),
            "view": is_view[keep],
            "time": ev[C.TIMESTAMP].to_numpy()[keep],
        }
    )
    per = frame.groupby("session").agg(
        member=("member", "first"), minutes=("watch", "max"), time=("time", "first")
    )
    per["minutes"] = per["minutes"] / 60.0
    per = per[per["minutes"] > 0]
    if per.empty:
        return empty
    times = pd.DatetimeIndex(per["time"])
    per["bin"] = np.where(times.day_of_week >= 5, 8, 0) + times.hour // 3
    member_bin = np.full((n_members, _BINS), np.nan)
    grouped = per.groupby(["member", "bin"])["minutes"].agg(["median", "size"])
    grouped = grouped[grouped["size"] >= MIN_SESSIONS]
    m_idx = grouped.index.get_level_values(0).to_numpy(np.int64)
    b_idx = grouped.index.get_level_values(1).to_numpy(np.int64)
    member_bin[m_idx, b_idx] = grouped["median"].to_numpy()
    member_all = np.full(n_members, np.nan)
    overall = per.groupby("member")["minutes"].agg(["median", "size"])
    overall = overall[overall["size"] >= MIN_SESSIONS]
    member_all[overall.index.to_numpy(np.int64)] = overall["median"].to_numpy()
    platform_bin = np.full(_BINS, np.nan)
    by_bin = per.groupby("bin")["minutes"].median()
    platform_bin[by_bin.index.to_numpy(np.int64)] = by_bin.to_numpy()
    return SessionProfile(member_bin, member_all, platform_bin, float(per["minutes"].median()))
