"""Searches: queries for courses members want, ranked text matches and position-biased clicks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from recommend.data.synthetic.behaviour import SEARCH, Sessions
from recommend.data.synthetic.catalogue import Courses
from recommend.data.synthetic.members import Members
from recommend.data.synthetic.sampling import sigmoid
from recommend.data.synthetic.timing import HOUR, Period, place_in_window
from recommend.data.synthetic.truth import Truth
from recommend.data.synthetic.vocabulary import (
    KEYWORDS,
    QUERY_SUFFIXES,
    TERM_ALIAS,
    TERM_TOPIC,
    TERMS,
    TOPIC_NAMES,
)
from recommend.schema import CHANNELS

FloatArray = np.ndarray
IntArray = np.ndarray

# Search: a result list shows 10-20 courses; a result at 0-based position k is examined with
# probability 1/log2(k + 2).
_MIN_SHOWN: Final = 10
_MAX_SHOWN: Final = 20
_RETRIEVED: Final = 100  # candidates per query that reach the final ranking
_POPULARITY_WEIGHT: Final = 0.6  # weight of standardised course quality in search ranking
# Utility at which an examined result with no text relevance is clicked half the time.
_CLICK_THRESHOLD: Final = 5.5


@dataclass(frozen=True)
class Searches:
    """Searches, one per entry, with their shown and clicked courses as CSR lists."""

    member: IntArray
    time: IntArray
    query: np.ndarray  # <U
    shown_ptr: IntArray
    shown: IntArray
    clicked_ptr: IntArray
    clicked: IntArray


def simulate_searches(
    rng: np.random.Generator,
    truth: Truth,
    members: Members,
    courses: Courses,
    period: Period,
    targets: tuple[IntArray, IntArray],
) -> tuple[Searches, Sessions]:
    """Searches for courses a member wants, ranked text matches, and position-biased clicks.

    A search starts from a target course drawn from the member's choice distribution; the
    query is one of its terms (or a short form), sometimes with a suffix such as "怎么开". The
    platform shows up to 20 published courses that match the query text, ranked by text
    relevance, popularity and noise. A shown course at 0-based position ``k`` is clicked with
    probability ``1 / log2(k + 2) * sigmoid(utility - 5.5 + 0.5 * relevance)``.

    Returns the searches and the study sessions their clicks open.
    """
    t_member, t_course, time = _search_times(rng, members, courses, period, targets)
    n = t_member.size
    keyword, query = _queries(rng, courses, t_course)
    shown, shown_rel = _results(rng, courses, keyword, time)

    s_idx, pos = np.nonzero(shown >= 0)  # row-major: by search, then position
    s_course = shown[s_idx, pos]
    utility = truth.pair_utility(t_member[s_idx], s_course)
    examine = 1.0 / np.log2(pos + 2.0)
    attract = sigmoid(utility - _CLICK_THRESHOLD + 0.5 * shown_rel[s_idx, pos])
    click = rng.random(s_idx.size) < examine * attract

    shown_ptr = np.concatenate([[0], np.cumsum(np.bincount(s_idx, minlength=n))]).astype(np.int64)
    clicked_ptr = np.concatenate([[0], np.cumsum(np.bincount(s_idx[click], minlength=n))]).astype(
        np.int64
    )
    searches = Searches(t_member, time, query, shown_ptr, s_course, clicked_ptr, s_course[click])

    # A click opens the course a few seconds later; later positions are reached later.
    c_search, c_pos = s_idx[click], pos[click]
    c_member, c_course = t_member[c_search], s_course[click]
    c_start = time[c_search] + 10 + 20 * c_pos
    return searches, Sessions(c_member, c_course, c_start, np.full(c_member.size, SEARCH))


def _search_times(
    rng: np.random.Generator,
    members: Members,
    courses: Courses,
    period: Period,
    targets: tuple[IntArray, IntArray],
) -> tuple[IntArray, IntArray, IntArray]:
    """Member, target course and time of every search, sorted by member and time: after the
    target is published, at an hour typical of the member."""
    t_member, t_course = targets
    lo = np.maximum(period.start, courses.published[t_course] + 60)
    hi = np.maximum(lo + 60, period.end - 3 * HOUR)
    time = place_in_window(rng, lo, hi, members.profile[t_member], period)
    order = np.lexsort((time, t_member))
    return t_member[order], t_course[order], time[order]


def _queries(
    rng: np.random.Generator, courses: Courses, t_course: IntArray
) -> tuple[IntArray, np.ndarray]:
    """The keyword (index into KEYWORDS) and the query text (``<U``) of every search."""
    n = t_course.size
    # Query keyword: the target's main term, its second term, or a short form of the main term.
    u = rng.random(n)
    keyword = np.where(u < 0.75, courses.term_a[t_course], courses.term_b[t_course])
    alias = TERM_ALIAS[courses.term_a[t_course]]
    keyword = np.where((u < 0.2) & (alias >= 0), alias, keyword)
    keywords = np.array(KEYWORDS)
    query = keywords[keyword].astype(object)
    with_suffix = rng.random(n) < 0.3
    channel = courses.channel[t_course]
    for ch, name in enumerate(CHANNELS):
        sel = np.flatnonzero(with_suffix & (channel == ch))
        suffixes = np.array([" " + s for s in QUERY_SUFFIXES[name]])
        query[sel] = np.strings.add(
            keywords[keyword[sel]], suffixes[rng.integers(0, suffixes.size, sel.size)]
        )
    return keyword, query.astype(str)


def _results(
    rng: np.random.Generator, courses: Courses, keyword: IntArray, time: IntArray
) -> tuple[IntArray, FloatArray]:
    """The courses each search shows, best first, and their text relevance.

    Returns (n, 20) arrays: course positions (-1 past the end of a list of 10-20) and
    relevance (0 past the end). Candidates are ranked by relevance, popularity and Gumbel
    noise; courses not yet published at the time of the search are not shown.
    """
    n = keyword.size
    popularity = (courses.quality - courses.quality.mean()) / (courses.quality.std() + 1e-9)
    relevance = _keyword_relevance(courses, np.unique(keyword), popularity)
    n_show = rng.integers(_MIN_SHOWN, _MAX_SHOWN + 1, n)
    shown = np.full((n, _MAX_SHOWN), -1, dtype=np.int64)
    shown_rel = np.zeros((n, _MAX_SHOWN))
    for kw in np.unique(keyword):
        rows_all = np.flatnonzero(keyword == kw)
        cand, rel = relevance[int(kw)]
        if cand.size == 0:
            continue
        step = max(1, 2_000_000 // max(cand.size, 1))
        for s in range(0, rows_all.size, step):
            rows = rows_all[s : s + step]
            score = (
                rel[None, :]
                + _POPULARITY_WEIGHT * popularity[cand][None, :]
                + rng.gumbel(0.0, 0.7, (rows.size, cand.size))
            )
            score[courses.published[cand][None, :] > time[rows, None]] = -np.inf
            k = min(_MAX_SHOWN, cand.size)
            top = (
                np.argpartition(-score, k - 1, axis=1)[:, :k]
                if cand.size > k
                else (np.broadcast_to(np.arange(cand.size), (rows.size, cand.size)).copy())
            )
            top_score = np.take_along_axis(score, top, axis=1)
            rank = np.argsort(-top_score, axis=1, kind="stable")
            top = np.take_along_axis(top, rank, axis=1)
            top_score = np.take_along_axis(top_score, rank, axis=1)
            valid = np.isfinite(top_score) & (np.arange(k)[None, :] < n_show[rows, None])
            shown[rows, :k] = np.where(valid, cand[top], -1)
            shown_rel[rows, :k] = np.where(valid, rel[top], 0.0)
    return shown, shown_rel


def _keyword_relevance(
    courses: Courses, keywords: IntArray, popularity: FloatArray
) -> dict[int, tuple[IntArray, FloatArray]]:
    """Courses a keyword retrieves, with their text relevance.

    Relevance is 2 for a tag hit, 1 for a title hit and 0.5 for a course on the keyword's
    topic (as a search engine that segments words and expands synonyms would return). Like
    a search engine's first stage, only the ``_RETRIEVED`` best matches by relevance plus
    popularity go on to the (noisy) final ranking.

    Returns ``{keyword: (course indices, relevance)}``.
    """
    terms = np.array(TERMS)
    topics = np.array(TOPIC_NAMES)
    out: dict[int, tuple[IntArray, FloatArray]] = {}
    for kw in keywords.tolist():
        word = KEYWORDS[kw]
        in_term = np.strings.find(terms, word) >= 0
        in_topic = np.strings.find(topics, word) >= 0
        tag_hit = in_term[courses.term_a] | in_term[courses.term_b] | in_topic[courses.topic]
        title_hit = np.strings.find(courses.title, word) >= 0
        same_topic = np.isin(courses.topic, TERM_TOPIC[in_term])
        rel = 2.0 * tag_hit + 1.0 * title_hit + 0.5 * same_topic
        cand = np.flatnonzero(rel > 0)
        static = rel[cand] + _POPULARITY_WEIGHT * popularity[cand]
        cand = cand[np.argsort(-static, kind="stable")[:_RETRIEVED]]
        out[kw] = (cand, rel[cand])
    return out


# ---------------------------------------------------------------------------- planted queries

#: A query planted as trending: searched by many members in the last 30 days of the period.
PLANTED_TREND: Final = "共同富裕"
#: Queries planted with no result: the catalogue has no course on them.
PLANTED_GAPS: Final = ("低空经济", "银发经济", "人工智能大模型")
_TREND_DAYS: Final = 30


def plant_queries(
    rng: np.random.Generator,
    searches: pd.DataFrame,
    members: pd.DataFrame,
    courses: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.DataFrame:
    """The search log with known query behaviour added, to check search analytics against.

    - :data:`PLANTED_TREND` searched by a tenth of the members (at least 40) in the last 30
      days of the period, shown the courses whose title has it, the first clicked by half;
    - each of :data:`PLANTED_GAPS` searched by 30 members over the whole period, shown
      nothing (no course has the words) and so never clicked.

    Rows are added, none changed; the result is sorted by member and time as the log is.
    """
    ids = members["member_id"].to_numpy()
    span = (end - start).total_seconds()
    n_trend = min(ids.size, max(40, ids.size // 10))
    shown_trend = courses.loc[courses["title"].str.contains(PLANTED_TREND), "course_id"].tolist()
    rows: list[dict[str, object]] = []
    trend_start = span - _TREND_DAYS * 86_400
    for member in rng.choice(ids, n_trend, replace=False).tolist():
        at = start + pd.Timedelta(seconds=float(rng.uniform(trend_start, span - 3600)))
        clicked = shown_trend[:1] if shown_trend and rng.random() < 0.5 else []
        rows.append(
            {
                "member_id": member,
                "query": PLANTED_TREND,
                "timestamp": at,
                "shown": list(shown_trend[:20]),
                "clicked": list(clicked),
            }
        )
    for query in PLANTED_GAPS:
        for member in rng.choice(ids, min(30, ids.size), replace=False).tolist():
            at = start + pd.Timedelta(seconds=float(rng.uniform(0, span - 3600)))
            rows.append(
                {"member_id": member, "query": query, "timestamp": at, "shown": [], "clicked": []}
            )
    added = pd.DataFrame(rows).astype({"timestamp": searches["timestamp"].dtype})
    out = pd.concat([searches, added], ignore_index=True)
    out = out.sort_values(["member_id", "timestamp"], kind="stable", ignore_index=True)
    return out.astype({"member_id": searches["member_id"].dtype, "query": searches["query"].dtype})
