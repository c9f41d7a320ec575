"""A self-contained HTML report for an organisation: findings, portraits, demand, gaps.

One file, no scripts or external resources, so it can be mailed or opened offline. It
reads top to bottom the way an organiser asks: the key findings first, in plain sentences
(退休党员选理论学习的比例是平均的2.2倍; which branches are flagging; which topics are
in demand with few courses), then the figures section by section, then the detailed
tables. Text is Simplified Chinese by default (``lang="en"`` for English) and comes from
the message catalogue (:mod:`recommend.messages`); segment values read as organisers know
them (退休, 白领), figures are rounded and shares are percentages.

Figures are inline SVG with their text kept as text, so the reader's browser draws the
Chinese with its own fonts: they read on any machine, whatever fonts the machine that
wrote the report has. The report holds aggregates only: segments and orgs below
``min_size`` members are left out, and no member id appears.
"""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from recommend import store
from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.insights.demand import content_gaps, predicted_demand
from recommend.insights.plots import (
    figure_svg,
    metric_label,
    plot_activity,
    plot_branch_comparison,
    plot_branch_trend,
    plot_course,
    plot_demand,
    plot_gaps,
    plot_lift,
    segment_labels,
)
from recommend.insights.portraits import (
    MIN_SIZE,
    BranchPortrait,
    SegmentPortrait,
    branch_portrait,
    course_portrait,
    segment_portrait,
    top_courses,
)
from recommend.insights.search_terms import search_terms
from recommend.messages import DEFAULT_LANG, Lang, check_lang, join_list, render, value_label
from recommend.schema import Columns as C
from recommend.selection import org_members

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["build_report", "render_report"]

logger = logging.getLogger(__name__)

_CSS = """
body { font-family: "Noto Sans CJK SC", "Source Han Sans SC", "WenQuanYi Micro Hei",
       "PingFang SC", "Microsoft YaHei", sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; }
h1 { color: #a01818; } h2 { border-bottom: 2px solid #a01818; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: 13px; margin: .6em 0 1.2em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f6e9e9; }
figure { margin: .6em 0; } figure svg { max-width: 100%; height: auto; display: block; }
figure svg text { font-family: "DejaVu Sans", "Noto Sans CJK SC", "Source Han Sans SC",
       "WenQuanYi Micro Hei", "PingFang SC", "Microsoft YaHei", sans-serif !important; }
.findings { font-size: 16px; line-height: 1.7; background: #fbf3f3; padding: .6em 2em; }
.note { color: #666; font-size: 13px; }
"""

#: Columns shown as percentages, and as multiples (2.1x).
_PERCENT = (
    "reached", "active_recent", "active_before", "completion_rate", "checkin_regularity",
    "compulsory_completion", "demand_share", "catalogue_share", "zero_result_share",
    "no_click_share",
)  # fmt: skip
_TIMES = ("gap", "short_gap", "ratio")
#: A channel preference this far from the average (either way) is a finding.
_FINDING_LIFT = 1.3


@dataclass
class _Page:
    """The report's parts in reading order: findings, then sections, then details."""

    lang: Lang
    findings: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)  # other products' HTML, after the body

    def t(self, key: str, **params: object) -> str:
        return render(key, self.lang, **params)

    def h2(self, key: str, **params: object) -> None:
        self.body.append(f"<h2>{html.escape(self.t(key, **params))}</h2>")

    def h3(self, text: str, *, details: bool = False) -> None:
        (self.details if details else self.body).append(f"<h3>{html.escape(text)}</h3>")

    def p(self, text: str, cls: str = "", *, details: bool = False) -> None:
        attr = f' class="{cls}"' if cls else ""
        (self.details if details else self.body).append(f"<p{attr}>{html.escape(text)}</p>")

    def figure(self, fig: Figure) -> None:
        self.body.append(f"<figure>{figure_svg(fig)}</figure>")

    def table(self, frame: pd.DataFrame, name: str) -> None:
        self.details.append(_table(frame, name, self.lang))

    def html(self, heading: str, meta: str) -> str:
        findings = "".join(f"<li>{html.escape(f)}</li>" for f in self.findings)
        parts = [
            f"<h1>{html.escape(heading)}</h1>",
            f'<p class="note">{html.escape(meta)}</p>',
            f"<h2>{html.escape(self.t('report.findings'))}</h2>",
            f'<ul class="findings">{findings}</ul>',
            *self.body,
            *self.sections,
        ]
        if self.details:
            parts += [f"<h2>{html.escape(self.t('report.details'))}</h2>", *self.details]
        body = "\n".join(parts)
        return (
            '<!DOCTYPE html>\n<html lang="' + ("zh-CN" if self.lang == "zh" else "en") + '">\n'
            '<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(heading)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n"
        )


def _formatter(column: str) -> Callable[[object], str]:
    def fmt(value: object) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return "–"
        if isinstance(value, bool | np.bool_):
            return str(value)
        if not isinstance(value, int | float | np.integer | np.floating):
            return str(value)
        number = float(value)
        if column in _PERCENT or column.startswith("active_"):
            return f"{number:.0%}"
        if column == "change":
            return f"{number:+.0%}"
        if column in _TIMES:
            return f"{number:.1f}x"
        if float(number).is_integer():
            return f"{int(number):,}"
        return f"{number:.1f}"

    return fmt


def _table(frame: pd.DataFrame, name: str, lang: Lang) -> str:
    """A detailed table: figures rounded, columns and flags in the reader's words."""
    shown = frame.copy()
    for column in shown.columns:
        if shown[column].dtype == bool or column == "flagging":
            yes, no = render("report.yes", lang), render("report.no", lang)
            shown[column] = [no if pd.isna(v) or not bool(v) else yes for v in shown[column]]
        elif column == "role":
            shown[column] = [value_label("role", v, lang) for v in shown[column]]
        else:
            shown[column] = [_formatter(column)(v) for v in shown[column].tolist()]
    shown.columns = [metric_label(c, lang) for c in shown.columns]
    shown = shown.rename_axis(name).reset_index()
    return shown.to_html(index=False, na_rep="–", border=0, escape=True)


def _lift_findings(portrait: SegmentPortrait, attribute: str, lang: Lang) -> list[str]:
    """The channel preferences furthest from the average, as sentences."""
    lift = portrait.lift("channel")
    if lift.empty:
        return []
    lift.index = segment_labels(portrait.by, lift.index, lang)
    cells = lift.stack().dropna()
    cells = cells[cells > 0]
    if cells.empty:
        return []
    out = []
    # The strongest preference above the average, then the strongest below it.
    high, low = cells.idxmax(), cells.idxmin()
    if float(cells[high]) >= _FINDING_LIFT:
        segment, channel = high
        lift = f"{float(cells[high]):.1f}"
        out.append(render("report.finding.lift", lang, segment=segment, value=channel, lift=lift))
    if float(cells[low]) <= 1.0 / _FINDING_LIFT:
        segment, channel = low
        lift = f"{float(cells[low]):.2g}"
        out.append(
            render("report.finding.lift_low", lang, segment=segment, value=channel, lift=lift)
        )
    return out


def _portraits(
    page: _Page, dataset: Dataset, by: Sequence[str], org: object, min_size: int
) -> None:
    lang = page.lang
    page.h2("report.portraits")
    for attribute in by:
        portrait = segment_portrait(dataset, attribute, members=org, min_size=min_size)
        label = value_label("attribute", attribute, lang)
        page.findings += _lift_findings(portrait, attribute, lang)
        page.h3(render("report.by", lang, attribute=label))
        if portrait.suppressed:
            values = join_list(segment_labels(portrait.by, portrait.suppressed, lang), lang)
            page.p(page.t("report.suppressed", min_size=min_size, values=values), "note")
        page.figure(plot_activity(portrait, f"active_{portrait.windows[0]}d", lang=lang))
        page.figure(plot_lift(portrait, "channel", lang=lang))
        page.figure(plot_lift(portrait, "duration", lang=lang))
        cols = ["members", "learners", "events_per_member"]
        cols += [f"active_{w}d" for w in portrait.windows]
        cols += ["completion_rate", "median_watch_minutes", "checkin_regularity"]
        table = portrait.activity[cols]
        table.index = segment_labels(portrait.by, table.index, lang)
        page.h3(render("report.by", lang, attribute=label), details=True)
        page.table(table, label)


def _organisations(page: _Page, branches: BranchPortrait) -> None:
    page.h2("report.orgs")
    page.figure(plot_branch_trend(branches, lang=page.lang))
    page.figure(plot_branch_comparison(branches, lang=page.lang))
    flagging = [str(o) for o in branches.flagging.index]
    orgs = join_list(flagging, page.lang) if flagging else page.t("report.none")
    page.p(page.t("report.flagging", orgs=orgs))
    page.findings.append(
        page.t("report.finding.flagging", orgs=join_list(flagging, page.lang))
        if flagging
        else page.t("report.finding.no_flagging")
    )
    cols = ["role", "members", "reached", "active_recent", "active_before", "change"]
    cols += ["compulsory_completion", "flagging"]
    page.h3(page.t("report.orgs"), details=True)
    page.table(branches.summary[cols], metric_label("org_id", page.lang))


def _searches(page: _Page, searches: pd.DataFrame, min_size: int) -> None:
    """What members search for: the latest month's top queries, queries that find nothing
    or get no click (content the platform may lack), and rising queries."""
    terms = search_terms(searches, min_size=min_size)
    page.h2("report.searches")
    hidden = int(terms.trending.attrs.get("hidden", 0))
    page.p(page.t("report.searches.note", min_size=min_size, hidden=hidden), "note")
    latest = terms.trending[terms.trending["period"] == terms.trending["period"].max()]
    top = [str(q) for q in latest.sort_values("searches", ascending=False)["query"].head(3)]
    unmet = [str(q) for q in terms.unmet["query"].head(3)]
    if top:
        page.findings.append(page.t("report.finding.searches", queries=join_list(top, page.lang)))
    if unmet:
        page.findings.append(page.t("report.finding.unmet", queries=join_list(unmet, page.lang)))
    unmet_cols = ["searches", "members", "zero_result_share", "no_click_share"]
    rising_cols = ["last", "before", "ratio"]
    parts = (
        ("report.searches.top", latest.set_index("query")[["period", "searches", "members"]]),
        ("report.searches.unmet", terms.unmet.head(15).set_index("query")[unmet_cols]),
        ("report.searches.rising", terms.rising.head(15).set_index("query")[rising_cols]),
    )
    for key, table in parts:
        page.body.append(f"<h3>{html.escape(page.t(key))}</h3>")
        if table.empty:
            page.p(page.t("report.searches.empty"), "note")
        else:
            page.body.append(_table(table, metric_label("query", page.lang), page.lang))


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
    lang: Lang = DEFAULT_LANG,
    sections: Sequence[str] = (),
    searches: pd.DataFrame | None = None,
) -> str:
    """The report as an HTML string (see :func:`build_report`)."""
    lang = check_lang(lang)
    if dataset.members is None:
        raise ConfigError("the report needs member attributes: a Dataset built with members=")
    page = _Page(lang, sections=list(sections))
    name = str(org) if org is not None else page.t("report.platform")
    heading = title or page.t("report.title", name=name)
    summary = dataset.summary()
    meta = page.t(
        "report.meta",
        first=summary["first_event"][:10],
        last=summary["last_event"][:10],
        model=type(model).__name__,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        min_size=min_size,
    )
    _portraits(page, dataset, by, org, min_size)
    if searches is not None:
        log = searches
        if org is not None and C.MEMBER in searches.columns:
            # The org's own members (with its sub-orgs), as the portraits above.
            log = searches[searches[C.MEMBER].isin(org_members(model, org, dataset.members))]
        _searches(page, log, min_size)
    _organisations(page, branch_portrait(dataset, org, min_size=min_size))

    page.h2("report.top_courses")
    top = top_courses(dataset, courses, members=org, min_size=min_size)
    n_population = int(top.attrs["population"])
    if n_population < min_size:
        # what a handful of members study or are predicted to want would single them out
        hidden = page.t("report.hidden", min_size=min_size, name=name, count=n_population)
        page.p(hidden, "note")
        page.h2("report.offer")
        page.p(hidden, "note")
        page.body.append(f"<h3>{html.escape(page.t('report.gaps'))}</h3>")
        page.p(hidden, "note")
        return page.html(heading, meta)
    for course_id in top["course_id"]:
        portrait = course_portrait(dataset, course_id, min_size=min_size)
        page.figure(plot_course(portrait, lang=lang))
    _offer(page, model, dataset, org, k, min_size)
    return page.html(heading, meta)


def _offer(
    page: _Page, model: Recommender, dataset: Dataset, org: object, k: int, min_size: int
) -> None:
    """What to offer next: predicted demand by occupation, and the topics in demand with
    few courses (a finding, a figure and the detailed table)."""
    page.h2("report.offer")
    demand = predicted_demand(
        model, "occupation", level="channel", members=org,
        member_table=dataset.members, k=k, min_size=min_size,
    )  # fmt: skip
    left = demand.attrs["left_out"]
    note = page.t(
        "report.demand_note",
        k=k,
        without=left["without_history"],
        unknown=left["unknown_to_model"],
    )
    page.p(note, "note")
    page.figure(plot_demand(demand, lang=page.lang))
    gaps = content_gaps(
        model,
        level="tag",
        members=org,
        member_table=dataset.members,
        k=k,
        min_courses=3,
        min_size=min_size,
    )
    gaps_title = page.t("report.gaps")
    if "hidden" in gaps.attrs:  # fewer scored members than min_size
        page.body.append(f"<h3>{html.escape(gaps_title)}</h3>")
        page.p(page.t("report.hidden_gaps", reason=gaps.attrs["hidden"]), "note")
        return
    page.figure(plot_gaps(gaps, lang=page.lang))
    shown = gaps[gaps["flagged"]].head(15)
    topics = [str(v) for v in shown["value"].head(3)]
    page.findings.append(
        page.t("report.finding.gaps", topics=join_list(topics, page.lang))
        if topics
        else page.t("report.finding.no_gaps")
    )
    cols = ["demand_share", "courses", "catalogue_share", "gap", "short_courses", "short_gap"]
    page.h3(gaps_title, details=True)
    page.table(shown.set_index("value")[cols], metric_label("value", page.lang))


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
    lang: Lang = DEFAULT_LANG,
    sections: Sequence[str] = (),
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
    lang
        Language of the report: ``"zh"`` (Simplified Chinese, default) or ``"en"``.
    sections
        HTML fragments other products render (e.g.
        :func:`recommend.volunteer.report.volunteer_section`), placed after the
        report's own sections and before its detailed tables.
    searches
        A search log: adds the section on what members search for (搜索词频: trending,
        unmet and rising queries; queries searched by fewer than ``min_size`` members
        hidden).

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
        lang=lang,
        sections=sections,
        searches=searches,
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    with store.staged_file(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, 0o644)
    logger.info("wrote the report to %s (%d bytes)", target, len(text.encode("utf-8")))
    return target
