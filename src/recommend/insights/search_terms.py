"""What members search for (词频), for organisers: trending, unmet and rising queries.

Queries are compared normalised (``recommend.text.normalize``: 黨史 and 党史 are one
query). Every figure counts distinct members as well as searches, and a row typed by fewer
than ``min_size`` distinct members is not shown (the insights' small-group suppression: a
rare query could say who typed it); how many rows were hidden is in ``attrs["hidden"]``.

- ``trending``: the most searched queries per segment (a member attribute) and period;
- ``unmet``: queries that showed no course (zero result) or whose results nobody clicked
  — content the platform lacks; ``content_gaps(..., searches=)`` adds them to its table;
- ``rising``: queries searched much more in the last period than in the one before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommend.errors import ConfigError, DataError
from recommend.insights.portraits import MIN_SIZE
from recommend.schema import Columns
from recommend.text import normalize

__all__ = ["SearchTerms", "search_terms"]

C = Columns
_PERIODS = {"W": "W", "M": "M", "Q": "Q"}


@dataclass(frozen=True)
class SearchTerms:
    """Search analytics tables (see :func:`search_terms`)."""

    trending: pd.DataFrame
    unmet: pd.DataFrame
    rising: pd.DataFrame
    min_size: int


def _prepare(
    searches: pd.DataFrame, members: pd.DataFrame | None, by: str | None, period: str
) -> pd.DataFrame:
    missing = [c for c in (C.MEMBER, "query", C.TIMESTAMP) if c not in searches.columns]
    if missing:
        raise DataError(
            f"searches has no column(s) {missing}; expected member_id, query, timestamp "
            f"(+ shown, clicked); got {list(searches.columns)}"
        )
    if period not in _PERIODS:
        raise ConfigError(f"period={period!r}; expected one of {sorted(_PERIODS)}")
    bad = searches["query"].map(lambda q: not isinstance(q, str))
    if bad.any():
        rows = np.flatnonzero(bad.to_numpy())[:5].tolist()
        raise DataError(f"searches.query: not text in rows {rows}; expected strings")
    frame = pd.DataFrame(
        {
            C.MEMBER: searches[C.MEMBER].to_numpy(),
            "query": [normalize(q) for q in searches["query"].tolist()],
            "period": pd.to_datetime(searches[C.TIMESTAMP]).dt.to_period(_PERIODS[period]),
        }
    )
    shown = searches["shown"] if "shown" in searches.columns else None
    clicked = searches["clicked"] if "clicked" in searches.columns else None
    frame["zero_result"] = False if shown is None else shown.map(_empty).to_numpy()
    frame["no_click"] = False if clicked is None else clicked.map(_empty).to_numpy()
    frame["segment"] = "全体党员"
    if by is not None:
        if members is None or by not in members.columns:
            raise ConfigError(f"by={by!r} needs a members table with a {by!r} column")
        seg = members.set_index(C.MEMBER)[by]
        frame["segment"] = seg.reindex(frame[C.MEMBER]).fillna("未知").astype(str).to_numpy()
    return frame[frame["query"] != ""]


def _empty(value: object) -> bool:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return True
    try:
        return len(value) == 0  # type: ignore[arg-type]
    except TypeError:
        return False


def search_terms(
    searches: pd.DataFrame,
    members: pd.DataFrame | None = None,
    *,
    by: str | None = None,
    period: str = "M",
    top: int = 10,
    min_size: int = MIN_SIZE,
    rising_min_ratio: float = 2.0,
) -> SearchTerms:
    """Trending, unmet and rising queries of a search log.

    Parameters
    ----------
    searches
        ``member_id, query, timestamp`` and optionally ``shown`` and ``clicked`` (lists of
        course ids).
    members, by
        Segment the trending queries by this member attribute (e.g. ``"occupation"``);
        ``None``: all members as one segment.
    period
        ``"W"``, ``"M"`` or ``"Q"``: the periods queries are counted in.
    top
        Queries kept per segment and period.
    min_size
        Rows typed by fewer distinct members are hidden.
    rising_min_ratio
        Least growth (searches in the last period over the one before, each +1) for a
        query to be rising.

    Returns
    -------
    SearchTerms
        ``trending``: ``segment, period, query, searches, members, share`` (of the
        segment's searches in the period). ``unmet``: ``query, searches, members,
        zero_result_share, no_click_share``, most unmet first. ``rising``: ``query,
        last, before, ratio``.
    """
    if isinstance(min_size, bool) or not isinstance(min_size, int) or min_size < 1:
        raise ConfigError(f"min_size={min_size!r}; expected a positive integer")
    frame = _prepare(searches, members, by, period)
    return SearchTerms(
        _trending(frame, top, min_size),
        _unmet(frame, min_size),
        _rising(frame, min_size, rising_min_ratio),
        min_size,
    )


def _trending(frame: pd.DataFrame, top: int, min_size: int) -> pd.DataFrame:
    keys = ["segment", "period", "query"]
    counts = frame.groupby(keys).agg(searches=(C.MEMBER, "size"), members=(C.MEMBER, "nunique"))
    totals = frame.groupby(["segment", "period"]).size().rename("total")
    counts = counts.join(totals, on=["segment", "period"]).reset_index()
    counts["share"] = counts["searches"] / counts["total"]
    hidden = int((counts["members"] < min_size).sum())
    counts = counts[counts["members"] >= min_size].drop(columns="total")
    counts = counts.sort_values(
        ["segment", "period", "searches", "query"], ascending=[True, True, False, True]
    )
    out = counts.groupby(["segment", "period"], sort=False).head(top).reset_index(drop=True)
    out["period"] = out["period"].astype(str)
    out.attrs["hidden"] = hidden
    return out


def _unmet(frame: pd.DataFrame, min_size: int) -> pd.DataFrame:
    stats = frame.groupby("query").agg(
        searches=(C.MEMBER, "size"),
        members=(C.MEMBER, "nunique"),
        zero_result_share=("zero_result", "mean"),
        no_click_share=("no_click", "mean"),
    )
    hidden = int((stats["members"] < min_size).sum())
    stats = stats[(stats["members"] >= min_size) & (stats["no_click_share"] >= 0.5)]
    stats = stats.sort_values(
        ["zero_result_share", "no_click_share", "searches"], ascending=False
    ).reset_index()
    stats.attrs["hidden"] = hidden
    return stats


def _rising(frame: pd.DataFrame, min_size: int, min_ratio: float) -> pd.DataFrame:
    periods = sorted(frame["period"].unique())
    columns = ["query", "last", "before", "ratio"]
    if len(periods) < 2:
        return pd.DataFrame(columns=columns)
    last, before = periods[-1], periods[-2]
    recent = frame[frame["period"] == last]
    members = recent.groupby("query")[C.MEMBER].nunique()
    n_last = recent.groupby("query").size()
    n_before = frame[frame["period"] == before].groupby("query").size()
    # Growth relative to the whole log's growth, so a busier month does not lift everything.
    scale = (len(frame[frame["period"] == before]) + 1) / (len(recent) + 1)
    table = pd.DataFrame({"last": n_last, "before": n_before.reindex(n_last.index).fillna(0)})
    table["ratio"] = (table["last"] + 1) / (table["before"] + 1) * scale
    hidden = int((members < min_size).sum())
    table = table[(members.reindex(table.index) >= min_size) & (table["ratio"] >= min_ratio)]
    out = table.sort_values(["ratio", "last"], ascending=False).reset_index(names="query")
    out["before"] = out["before"].astype(np.int64)
    out.attrs["hidden"] = hidden
    return out[columns]
