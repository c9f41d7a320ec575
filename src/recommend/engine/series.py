"""Lecture series of a catalogue: which course follows which.

Series come from the courses table: ``series_id`` with ``series_order`` (a course with a
``series_id`` and no order takes the lecture number of its title), or, for courses without
a ``series_id``, inferred from titles that number their lecture (``……（第9讲）``,
``第十二课``): courses whose titles agree once the number is taken out form a series,
ordered by that number. Only series of two or more courses count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.schema import Columns as C

__all__ = ["SeriesTable", "lecture_number", "series_table"]

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}
_DIGITS.update({"六": 6, "七": 7, "八": 8, "九": 9})
_LECTURE = re.compile(
    r"[（(\[【]?\s*第\s*([0-9０-９]+|[零〇一二两三四五六七八九十百]+)\s*(?:讲|课|集|期|章|节|篇|回)"
    r"\s*[）)\]】]?"
)
_EMPTY_I64 = np.empty(0, dtype=np.int64)


def _chinese_number(text: str) -> int | None:
    """一 .. 九百九十九 as an int (None when not a number)."""
    total, current = 0, 0
    for ch in text:
        if ch in _DIGITS:
            current = _DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def lecture_number(title: str) -> tuple[str, int] | None:
    """The series stem and lecture number a title names, ``None`` when it names none.

    >>> lecture_number("习近平新时代中国特色社会主义思想（第9讲）")
    ('习近平新时代中国特色社会主义思想', 9)
    >>> lecture_number("党章学习第十二课：党的纪律")
    ('党章学习：党的纪律', 12)
    """
    found = _LECTURE.search(title)
    if found is None:
        return None
    raw = found.group(1)
    if raw[0].isdigit():
        number: int | None = int(raw.translate(str.maketrans("０１２３４５６７８９", "0123456789")))
    else:
        number = _chinese_number(raw)
    stem = (title[: found.start()] + title[found.end() :]).strip(" :：-—·")
    if number is None or not stem:
        return None
    return stem, number


@dataclass(frozen=True)
class SeriesTable:
    """Courses in series, per course index.

    Attributes
    ----------
    code : ndarray of int64
        Series code of each course (-1: in no series).
    order : ndarray of float64
        Place of each course in its series (NaN: in no series).
    next_course : ndarray of int64
        The lecture that follows each course in its series (the first of the next place;
        -1: none).
    rank : ndarray of int64
        Each course's position in one listing of every series, series by series, each in
        its order (lectures of the same place: the lower course index later); -1: in no
        series. Within a series, a higher rank is a further lecture.
    """

    code: NDArray[np.int64]
    order: NDArray[np.float64]
    next_course: NDArray[np.int64]
    rank: NDArray[np.int64]

    @cached_property
    def empty(self) -> bool:
        """True when no course is in a series (computed once: every menu asks)."""
        return not bool((self.next_course >= 0).any())


def series_table(courses: pd.DataFrame | None, titles: np.ndarray) -> SeriesTable:
    """The series of a catalogue (see the module docs for where they come from).

    Parameters
    ----------
    courses
        The training courses table (course index order), or ``None``.
    titles : ndarray of object
        Course titles by course index.
    """
    n = titles.size
    keys = np.full(n, None, dtype=object)
    order = np.full(n, np.nan)
    series_ids = np.full(n, None, dtype=object)
    if courses is not None and C.SERIES in courses.columns:
        series_ids = courses[C.SERIES].to_numpy(dtype=object)
    orders = (
        courses[C.SERIES_ORDER].to_numpy(dtype=np.float64)
        if courses is not None and C.SERIES_ORDER in courses.columns
        else np.full(n, np.nan)
    )
    for i, (sid, title) in enumerate(zip(series_ids.tolist(), titles.tolist(), strict=True)):
        named: tuple[str, int] | None = lecture_number(title) if isinstance(title, str) else None
        if sid is not None and not (isinstance(sid, float) and np.isnan(sid)):
            keys[i] = ("id", str(sid))
            numbered = float(named[1]) if named is not None else np.nan
            order[i] = orders[i] if np.isfinite(orders[i]) else numbered
        elif named is not None:
            keys[i] = ("title", named[0])
            order[i] = named[1]
    inside = np.array([k is not None for k in keys.tolist()], dtype=bool) & np.isfinite(order)
    code = np.full(n, -1, dtype=np.int64)
    if inside.any():
        codes, _ = pd.factorize(pd.Series(keys[inside].tolist(), dtype=object).map(str))
        code[inside] = codes
    # A series of one course has no next lecture: only series of two or more count.
    if inside.any():
        sizes = np.bincount(code[code >= 0])
        code[(code >= 0) & (sizes[np.maximum(code, 0)] < 2)] = -1
    order[code < 0] = np.nan
    next_course = np.full(n, -1, dtype=np.int64)
    members = np.flatnonzero(code >= 0)
    if members.size:
        ranked = members[np.lexsort((members, order[members], code[members]))]
        c, o = code[ranked], order[ranked]
        # Groups of equal (series, order); each course's next is the first course of the
        # next group of the same series.
        new_group = np.ones(ranked.size, dtype=bool)
        new_group[1:] = (c[1:] != c[:-1]) | (o[1:] != o[:-1])
        group = np.cumsum(new_group) - 1
        first = np.flatnonzero(new_group)
        nxt_first = np.append(first[1:], ranked.size)  # first position of the next group
        at = nxt_first[group]
        ok = at < ranked.size
        ok[ok] = c[at[ok]] == c[ok]
        next_course[ranked[ok]] = ranked[at[ok]]
    rank = np.full(n, -1, dtype=np.int64)
    if members.size:
        listing = members[np.lexsort((-members, order[members], code[members]))]
        rank[listing] = np.arange(listing.size)
    for array in (code, order, next_course, rank):
        array.setflags(write=False)
    return SeriesTable(code, order, next_course, rank)
