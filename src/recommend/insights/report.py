"""A self-contained HTML report for an organisation: portraits, demand and gaps.

One file, figures embedded as PNG (``data:`` URIs), no scripts or external resources, so
it can be mailed or opened offline. It holds aggregates only: segments and orgs below
``min_size`` members are left out, and no member id appears.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from matplotlib.figure import Figure

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.insights.demand import content_gaps, predicted_demand
from recommend.insights.plots import (
    plot_activity,
    plot_branch_comparison,
    plot_branch_trend,
    plot_course,
    plot_demand,
    plot_gaps,
    plot_lift,
)
from recommend.insights.portraits import (
    MIN_SIZE,
    branch_portrait,
    course_portrait,
    segment_portrait,
    top_courses,
)
from recommend.insights.search_terms import search_terms
from recommend.schema import Columns as C
from recommend.selection import org_members

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["build_report", "render_report"]

logger = logging.getLogger(__name__)

_CSS = """
body { font-family: "Noto Sans CJK SC", "WenQuanYi Micro Hei", "PingFang SC",
       "Microsoft YaHei", sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { color: #a01818; } h2 { border-bottom: 2px solid #a01818; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: 13px; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f6e9e9; } img { max-width: 100%; display: block; margin: .6em 0; }
.note { color: #666; font-size: 13px; }
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_html(
        float_format=lambda v: f"{v:.{digits}f}", na_rep="–", border=0, escape=True
    )


def _p(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"


def render_report(
    model: Recommender,
    dataset: Dataset,
    *,
    org: object = None,
    by: Sequence[str] = ("occupation", "age_band"),
    min_size: int = MIN_SIZE,
    k: int = 20,
    courses: int = 3,
    title: str | None = None,
    searches: pd.DataFrame | None = None,
) -> str:
    """The report as an HTML string (see :func:`build_report`)."""
    if dataset.members is None:
        raise ConfigError("the report needs member attributes: a Dataset built with members=")
    population = org if org is not None else None
    name = str(org) if org is not None else "the platform"
    heading = title or f"Learning portrait and what to offer next: {name}"
    parts = [f"<h1>{html.escape(heading)}</h1>"]
    summary = dataset.summary()
    parts.append(
        _p(
            f"Data from {summary['first_event'][:10]} to {summary['last_event'][:10]}; "
            f"model {type(model).__name__}; generated "
            f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Groups with fewer than "
            f"{min_size} members are not shown; intervals are {95}% intervals.",
            "note",
        )
    )

    parts.append("<h2>Member portraits</h2>")
    for attribute in by:
        portrait = segment_portrait(dataset, attribute, members=population, min_size=min_size)
        parts.append(f"<h3>By {html.escape(attribute)}</h3>")
        if portrait.suppressed:
            parts.append(
                _p(
                    f"Not shown (fewer than {min_size} members): {', '.join(portrait.suppressed)}",
                    "note",
                )
            )
        cols = [
            "members",
            "learners",
            "events_per_member",
            *(f"active_{w}d" for w in portrait.windows),
        ]
        cols += ["completion_rate", "median_watch_minutes", "checkin_regularity"]
        parts.append(_table(portrait.activity[cols]))
        parts.append(_png(plot_activity(portrait, f"active_{portrait.windows[0]}d")))
        parts.append(_png(plot_lift(portrait, "channel")))
        parts.append(_png(plot_lift(portrait, "duration")))

    if searches is not None:
        log = searches
        if org is not None and C.MEMBER in searches.columns:
            # The org's own members (with its sub-orgs), as the portraits above.
            ids = org_members(model, org, dataset.members)
            log = searches[searches[C.MEMBER].isin(ids)]
        parts.extend(search_section(log, dataset.members, min_size=min_size))

    parts.append("<h2>Organisations</h2>")
    branches = branch_portrait(dataset, org, min_size=min_size)
    parts.append(_png(plot_branch_trend(branches)))
    parts.append(_png(plot_branch_comparison(branches)))
    flagging = branches.flagging
    parts.append(
        _p(
            "Flagging (recent activity below peers or below the window before): "
            + (", ".join(map(str, flagging.index)) if len(flagging) else "none"),
        )
    )
    cols = ["role", "members", "reached", "active_recent", "active_before", "change"]
    cols += ["compulsory_completion", "flagging"]
    parts.append(_table(branches.summary[cols]))

    parts.append("<h2>Courses most studied</h2>")
    top = top_courses(dataset, courses, members=population, min_size=min_size)
    n_population = int(top.attrs["population"])
    hidden = f"Hidden: fewer than {min_size} members in {name} ({n_population})."
    if n_population < min_size:
        # what a handful of members study or are predicted to want would single them out
        parts.append(_p(hidden, "note"))
        parts.append("<h2>What to offer next</h2>")
        parts.append(_p(hidden, "note"))
        parts.append("<h3>Topics in demand with few courses</h3>")
        parts.append(_p(hidden, "note"))
        return _page(heading, parts)
    for course_id in top["course_id"]:
        parts.append(_png(plot_course(course_portrait(dataset, course_id, min_size=min_size))))

    parts.append("<h2>What to offer next</h2>")
    demand = predicted_demand(
        model, "occupation", level="channel", members=population,
        member_table=dataset.members, k=k, min_size=min_size,
    )  # fmt: skip
    left = demand.attrs["left_out"]
    parts.append(
        _p(
            f"Predicted from each member's top-{k} courses by the model; "
            f"{left['without_history']} member(s) without history and "
            f"{left['unknown_to_model']} unknown to the model are not counted.",
            "note",
        )
    )
    parts.append(_png(plot_demand(demand)))
    gaps = content_gaps(
        model,
        level="tag",
        members=population,
        member_table=dataset.members,
        k=k,
        min_courses=3,
        min_size=min_size,
    )
    if "hidden" in gaps.attrs:  # fewer scored members than min_size
        parts.append("<h3>Topics in demand with few courses</h3>")
        parts.append(_p(f"Hidden: {gaps.attrs['hidden']}.", "note"))
        return _page(heading, parts)
    parts.append(_png(plot_gaps(gaps)))
    shown = gaps[gaps["flagged"]].head(15)
    cols = [
        "value",
        "demand_share",
        "courses",
        "catalogue_share",
        "gap",
        "short_courses",
        "short_gap",
    ]
    parts.append("<h3>Topics in demand with few courses</h3>")
    parts.append(_table(shown[cols].set_index("value")))
    return _page(heading, parts)


def search_section(
    searches: pd.DataFrame, members: pd.DataFrame | None, *, min_size: int = MIN_SIZE
) -> list[str]:
    """The report's section on what members search for, in Chinese (HTML parts)."""
    terms = search_terms(searches, min_size=min_size)
    parts = ["<h2>党员搜索词频</h2>"]
    parts.append(
        _p(
            f"搜索词已统一繁简体和大小写；搜索人数少于 {min_size} 人的搜索词不展示"
            f"（共隐藏 {terms.trending.attrs.get('hidden', 0)} 条）。",
            "note",
        )
    )
    names = {"period": "月份", "query": "搜索词", "searches": "搜索次数", "members": "搜索人数"}
    latest = terms.trending[terms.trending["period"] == terms.trending["period"].max()]
    parts.append("<h3>热门搜索词（最近一个月）</h3>")
    if latest.empty:
        parts.append(_p("暂无可展示的搜索词。", "note"))
    else:
        table = latest[["period", "query", "searches", "members"]].rename(columns=names)
        parts.append(_table(table.set_index("月份")))
    parts.append("<h3>搜不到或没人点击的搜索词（平台可能缺少的内容）</h3>")
    unmet = terms.unmet.head(15).rename(
        columns={**names, "zero_result_share": "无结果占比", "no_click_share": "无点击占比"}
    )
    parts.append(_table(unmet.set_index("搜索词")) if len(unmet) else _p("暂无。", "note"))
    parts.append("<h3>搜索量上升的话题（最近一个月对比前一个月）</h3>")
    rising = terms.rising.head(15).rename(
        columns={"query": "搜索词", "last": "本月", "before": "上月", "ratio": "增长倍数"}
    )
    parts.append(_table(rising.set_index("搜索词")) if len(rising) else _p("暂无。", "note"))
    return parts


def _page(heading: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(heading)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def build_report(
    model: Recommender,
    dataset: Dataset,
    out: str | os.PathLike[str],
    *,
    org: object = None,
    by: Sequence[str] = ("occupation", "age_band"),
    min_size: int = MIN_SIZE,
    k: int = 20,
    courses: int = 3,
    title: str | None = None,
    searches: pd.DataFrame | None = None,
) -> Path:
    """Write a self-contained HTML report for an organisation, atomically.

    Parameters
    ----------
    model
        A fitted or loaded ``Recommender`` (predicted demand and content gaps).
    dataset
        The platform's data with member attributes (portraits).
    out
        The HTML file to write (written under a temporary name, then renamed).
    org
        Org id: its members (with sub-orgs) are described and it is compared with its
        siblings; ``None`` for the whole platform.
    by
        Member attributes with a portrait each.
    min_size
        Groups with fewer members are not shown.
    k
        Size of each member's predicted list for demand.
    courses
        How many of the most studied courses get a course portrait.
    title
        Heading (a default names the org).
    searches
        A search log: adds the section on what members search for (词频: trending,
        unmet and rising queries, small groups hidden).

    Returns
    -------
    Path
        The file written.
    """
    text = render_report(
        model,
        dataset,
        org=org,
        by=by,
        min_size=min_size,
        k=k,
        courses=courses,
        title=title,
        searches=searches,
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.info("wrote the report to %s (%d bytes)", target, len(text.encode("utf-8")))
    return target
