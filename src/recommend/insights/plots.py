"""Matplotlib figures of the portraits, demand and content gaps.

Every helper returns a ``matplotlib.figure.Figure`` built without pyplot (no global state,
safe in threads and scripts); show it in a notebook or save it with ``fig.savefig``.
Intervals are drawn as error bars and counts are printed, so small groups look uncertain.

Labels come from the message catalogue (:mod:`recommend.messages`), Simplified Chinese by
default (``lang="en"`` for English), with segment values as readers know them (退休, 白领).
Lift scales read 0.5x / 1x / 2x.

Fonts: the HTML report saves figures as SVG with text kept as text, so the reader's browser
draws the Chinese with its own fonts, whatever the machine that made the report has. PNG
figures (notebooks, ``fig.savefig("x.png")``) need a CJK font where they are drawn: one is
looked up among the installed fonts (Noto CJK, WenQuanYi, Source Han, SimHei...; Debian's
``fonts-wqy-microhei`` or ``fonts-noto-cjk`` packages), or named with :func:`use_cjk_font`
(a font file or family) or the ``RECOMMEND_CJK_FONT`` environment variable (a font file).
Without one, a single warning is logged and matplotlib's per-glyph "Glyph missing" warnings
are silenced (the labels then show as boxes in PNG figures only).
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import font_manager, rc_context
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from recommend.errors import ConfigError
from recommend.insights.portraits import BranchPortrait, CoursePortrait, SegmentPortrait
from recommend.messages import DEFAULT_LANG, render, value_label

__all__ = [
    "GLYPH_MISSING",
    "figure_svg",
    "metric_label",
    "plot_activity",
    "plot_branch_comparison",
    "plot_branch_trend",
    "plot_course",
    "plot_demand",
    "plot_gaps",
    "plot_lift",
    "segment_labels",
    "use_cjk_font",
]

logger = logging.getLogger(__name__)

_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "SimHei",
    "Microsoft YaHei",
    "PingFang SC",
    "Heiti SC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
_CJK_FILES = re.compile(r"(wqy|noto.*cjk|sourcehan|simhei|msyh|droidsansfallback|uming)", re.I)
_FONT_LOCK = threading.Lock()
_FONT: list[str | None] = []  # resolved once: [family or None]
#: matplotlib's warning for each character a font lacks (one per glyph and figure).
GLYPH_MISSING = r"Glyph .* missing from font"
#: An environment variable naming a CJK font file for PNG figures.
FONT_ENV = "RECOMMEND_CJK_FONT"


def _register(path: str | os.PathLike[str]) -> str:
    """Add a font file to matplotlib's fonts; its family name."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"CJK font file {file} does not exist")
    try:
        font_manager.fontManager.addfont(str(file))
        return str(font_manager.FontProperties(fname=str(file)).get_name())
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(f"{file} is not a font file matplotlib can read ({exc})") from exc


def use_cjk_font(font: str | os.PathLike[str] | None) -> str | None:
    """Use this CJK font for the figures' labels: a font file (``.ttf``/``.otf``/``.ttc``)
    or the name of an installed family; ``None`` looks the fonts up again. Returns the
    family used (``None``: none found)."""
    with _FONT_LOCK:
        _FONT.clear()
        if font is None:
            pass
        elif Path(font).suffix.lower() in (".ttf", ".otf", ".ttc"):
            _FONT.append(_register(font))
        else:
            names = {f.name for f in font_manager.fontManager.ttflist}
            if str(font) not in names:
                raise ConfigError(
                    f"font family {str(font)!r} is not installed; pass a font file instead"
                )
            _FONT.append(str(font))
    return _cjk_family()


def _cjk_family() -> str | None:
    """A CJK font family matplotlib can use, registering system font files it missed."""
    with _FONT_LOCK:
        if _FONT:
            return _FONT[0]
        env = os.environ.get(FONT_ENV)
        if env:
            try:
                _FONT.append(_register(env))
                return _FONT[0]
            except ConfigError as err:
                logger.warning("%s=%s: %s; looking for an installed CJK font", FONT_ENV, env, err)
        names = {f.name for f in font_manager.fontManager.ttflist}
        found = next((f for f in _CJK_FAMILIES if f in names), None)
        if found is None:
            # Fonts installed after matplotlib built its cache are not in it yet.
            for path in font_manager.findSystemFonts():
                if _CJK_FILES.search(path):
                    try:
                        font_manager.fontManager.addfont(path)
                    except (OSError, RuntimeError, ValueError):  # unreadable font file
                        continue
            names = {f.name for f in font_manager.fontManager.ttflist}
            found = next((f for f in _CJK_FAMILIES if f in names), None)
        if found is None:
            logger.warning(
                "no CJK font found: Chinese labels of PNG figures will show as boxes (install "
                "e.g. Debian's fonts-wqy-microhei or fonts-noto-cjk, or name a font file in "
                "%s); the HTML report's figures are unaffected",
                FONT_ENV,
            )
        _FONT.append(found)
        return found


@contextmanager
def _style() -> Iterator[None]:
    family = _cjk_family()
    if family is None:
        # One warning (logged once above), not one per character and figure when the
        # figure is drawn. Renewed at every figure: the filter moves to the front (no
        # duplicate) and survives code that resets the warning filters in between.
        warnings.filterwarnings("ignore", message=GLYPH_MISSING, category=UserWarning)
    fonts = ["DejaVu Sans"] + ([family] if family else [])
    with rc_context(
        {
            # Named families (not the generic "sans-serif") so the choice sticks to the text
            # objects and holds when the figure is drawn later, outside this context.
            "font.family": fonts,
            "axes.unicode_minus": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "figure.dpi": 100,
        }
    ):
        yield


def figure_svg(fig: Figure) -> str:
    """A figure as an inline ``<svg>`` element whose labels stay text (``svg.fonttype``
    ``none``): the browser draws them with its own fonts, so Chinese reads on any machine
    that opens the page, whatever fonts the machine that drew the figure has."""
    buf = io.StringIO()
    with (
        rc_context({"svg.fonttype": "none", "svg.hashsalt": "recommend"}),
        warnings.catch_warnings(),
    ):
        # Text is laid out with matplotlib's fonts but drawn by the browser: a missing
        # glyph here only shifts a label slightly, nothing to warn about per character.
        warnings.filterwarnings("ignore", message=GLYPH_MISSING, category=UserWarning)
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: columns {missing} missing; got {list(frame.columns)}")


def _empty(fig: Figure, ax: object, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)  # type: ignore[attr-defined]
    ax.set_axis_off()  # type: ignore[attr-defined]
    return fig


def metric_label(metric: str, lang: str = DEFAULT_LANG) -> str:
    """A portrait column as readers call it (``active_30d`` -> 近30天活跃比例)."""
    found = re.fullmatch(r"active_(\d+)d", metric)
    if found:
        return render("report.column.active", lang, days=int(found.group(1)))
    try:
        return render(f"report.column.{metric}", lang)
    except ConfigError:
        return metric.replace("_", " ")


def segment_labels(by: tuple[str, ...] | list[str], values: object, lang: str) -> list[str]:
    """Segment values as readers know them (``retired`` -> 退休) for one attribute."""
    items = [str(v) for v in values]  # type: ignore[attr-defined]
    if len(by) != 1:
        return items
    return [value_label(by[0], v, lang) for v in items]


def _lift_ticks(top: float) -> tuple[list[float], list[str]]:
    """Powers of two within [1/top, top], labelled 0.5x / 1x / 2x."""
    ticks = [2.0**e for e in range(-6, 7) if 1.0 / top <= 2.0**e <= top]
    return ticks, [f"{t:g}x" for t in ticks]


def plot_activity(
    portrait: SegmentPortrait, metric: str = "active_30d", *, lang: str = DEFAULT_LANG
) -> Figure:
    """Bars of one activity figure per segment with its interval and member counts.

    Parameters
    ----------
    portrait
        From ``segment_portrait``.
    metric
        A column of ``portrait.activity`` with ``_lo``/``_hi`` intervals, e.g.
        ``active_30d``, ``events_per_member``, ``completion_rate``, ``checkin_regularity``,
        ``median_watch_minutes``.
    lang
        Language of the labels (``"zh"`` default, or ``"en"``).
    """
    table = portrait.activity
    _require(table, [metric, f"{metric}_lo", f"{metric}_hi"], "plot_activity")
    with _style():
        fig = Figure(figsize=(max(5.0, 0.8 * len(table) + 2), 3.6), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            return _empty(fig, ax, render("plot.too_small", lang, min_size=portrait.min_size))
        x = np.arange(len(table))
        value = table[metric].to_numpy(dtype=float)
        err = np.vstack(
            [value - table[f"{metric}_lo"].to_numpy(float), table[f"{metric}_hi"] - value]
        )
        ax.bar(x, value, color="#c0392b", alpha=0.85)
        ax.errorbar(x, value, yerr=np.abs(err), fmt="none", ecolor="black", capsize=3)
        labels = segment_labels(portrait.by, table.index, lang)
        ax.set_xticks(x, labels, rotation=30, ha="right")
        for xi, n in zip(x, table["members"], strict=True):
            ax.annotate(f"n={n}", (xi, 0), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=8, color="white")  # fmt: skip
        name = metric_label(metric, lang)
        ax.set_ylabel(name)
        if metric.startswith("active_") or metric in ("completion_rate", "checkin_regularity"):
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        attrs = [value_label("attribute", a, lang) for a in portrait.by]
        by = " x ".join(attrs) or render("plot.all", lang)
        title = render("plot.activity_title", lang, by=by, metric=name)
        if portrait.suppressed:
            title += render(
                "plot.hidden_segments",
                lang,
                count=len(portrait.suppressed),
                min_size=portrait.min_size,
            )
        ax.set_title(title)
    return fig


def plot_lift(
    portrait: SegmentPortrait,
    kind: str = "channel",
    *,
    max_values: int = 15,
    lang: str = DEFAULT_LANG,
) -> Figure:
    """Heatmap of preference lift (segment share / platform share), log colour scale
    labelled 0.5x / 1x / 2x.

    Parameters
    ----------
    portrait
        From ``segment_portrait``.
    kind
        ``channel``, ``duration`` or ``tag``.
    max_values
        For many values (tags), the ones with the largest spread of lift across segments.
    lang
        Language of the labels.
    """
    table = portrait.lift(kind)
    table = table.set_axis(segment_labels(portrait.by, table.index, lang), axis=0)
    if kind == "duration":
        table.columns = [value_label("duration", c, lang) for c in table.columns]
    title = render("plot.lift_title", lang, kind=value_label("kind", kind, lang))
    return _heatmap(table, title, max_values, lang)


def plot_demand(demand: pd.DataFrame, *, max_values: int = 15, lang: str = DEFAULT_LANG) -> Figure:
    """Heatmap of predicted demand lift per segment (from ``predicted_demand``)."""
    _require(demand, ["segment", "value", "lift"], "plot_demand")
    table = demand.pivot(index="segment", columns="value", values="lift")
    by = demand.attrs.get("by")
    if isinstance(by, str):
        table.index = [value_label(by, v, lang) for v in table.index]
    level = demand.attrs.get("level", "value")
    k = demand.attrs.get("k", "k")
    title = render("plot.demand_title", lang, level=value_label("kind", level, lang), k=k)
    return _heatmap(table, title, max_values, lang)


def _heatmap(table: pd.DataFrame, title: str, max_values: int, lang: str) -> Figure:
    if table.shape[1] > max_values:
        spread = np.log(table.clip(lower=1e-3)).std(axis=0).fillna(0.0)
        table = table[spread.sort_values(ascending=False).index[:max_values]]
    with _style():
        fig = Figure(
            figsize=(max(5.0, 0.75 * table.shape[1] + 2.5), max(2.5, 0.45 * table.shape[0] + 1.5)),
            layout="constrained",
        )
        ax = fig.subplots()
        if table.empty:
            return _empty(fig, ax, render("plot.no_segment", lang))
        values = table.to_numpy(dtype=float)
        finite = values[np.isfinite(values) & (values > 0)]
        top = float(max(np.max(finite), 1.0 / np.min(finite), 2.0)) if finite.size else 2.0
        image = ax.imshow(
            np.where(values > 0, values, np.nan),
            cmap="RdBu_r",
            norm=LogNorm(vmin=1.0 / top, vmax=top),
            aspect="auto",
        )
        ax.set_xticks(np.arange(table.shape[1]), [str(c) for c in table.columns], rotation=35,
                      ha="right")  # fmt: skip
        ax.set_yticks(np.arange(table.shape[0]), [str(i) for i in table.index])
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
        bar = fig.colorbar(image, ax=ax, label=render("plot.lift_label", lang))
        ticks, labels = _lift_ticks(top)
        bar.set_ticks(ticks, labels=labels)
        bar.ax.minorticks_off()
        ax.set_title(title)
    return fig


def plot_branch_trend(portrait: BranchPortrait, *, lang: str = DEFAULT_LANG) -> Figure:
    """Share of members active per period: the org against its siblings (and sub-orgs)."""
    with _style():
        fig = Figure(figsize=(7.0, 3.6), layout="constrained")
        ax = fig.subplots()
        trend, summary = portrait.trend, portrait.summary
        if trend.empty or trend.isna().all().all():
            return _empty(fig, ax, render("plot.no_org", lang))
        x = trend.index
        for role, style in (("sibling", ("#7f8c8d", 1.0)), ("child", ("#2980b9", 1.0))):
            cols = summary.index[(summary["role"] == role).to_numpy()]
            cols = [c for c in cols if c in trend.columns and trend[c].notna().any()]
            if cols:
                ax.plot(x, trend[cols].to_numpy(), color=style[0], lw=style[1], alpha=0.5)
                label = render(
                    "plot.trend_peers", lang, role=value_label("role", role, lang), count=len(cols)
                )
                ax.plot([], [], color=style[0], label=label)
        if portrait.org is not None and portrait.org in trend.columns:
            ax.plot(x, trend[portrait.org], color="#c0392b", lw=2.5, marker="o",
                    label=f"{portrait.org}")  # fmt: skip
        ax.set_ylabel(render("plot.trend_ylabel", lang))
        ax.set_ylim(0, 1)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.legend(loc="lower left", fontsize=8)
        org = portrait.org or render("report.platform", lang)
        ax.set_title(render("plot.trend_title", lang, org=org))
    return fig


def plot_branch_comparison(
    portrait: BranchPortrait, metric: str = "active_recent", *, lang: str = DEFAULT_LANG
) -> Figure:
    """Horizontal bars of one figure for the org, its siblings and sub-orgs, with intervals;
    flagging orgs in red."""
    summary = portrait.summary
    _require(summary, [metric], "plot_branch_comparison")
    shown = summary[~summary["suppressed"].astype(bool)]
    with _style():
        fig = Figure(figsize=(6.5, max(2.5, 0.32 * len(shown) + 1.2)), layout="constrained")
        ax = fig.subplots()
        if shown.empty:
            return _empty(fig, ax, render("plot.orgs_too_small", lang, min_size=portrait.min_size))
        y = np.arange(len(shown))[::-1]
        value = shown[metric].to_numpy(dtype=float)
        colors = [
            "#c0392b" if bool(flag) else ("#2c3e50" if role == "target" else "#95a5a6")
            for flag, role in zip(shown["flagging"].fillna(False), shown["role"], strict=True)
        ]
        ax.barh(y, value, color=colors)
        if f"{metric}_lo" in shown.columns:
            err = np.vstack([value - shown[f"{metric}_lo"].to_numpy(float),
                             shown[f"{metric}_hi"].to_numpy(float) - value])  # fmt: skip
            ax.errorbar(value, y, xerr=np.abs(err), fmt="none", ecolor="black", capsize=2)
        labels = [
            render("plot.org_label", lang, org=org, role=value_label("role", role, lang), n=n)
            for org, role, n in zip(shown.index, shown["role"], shown["members"], strict=True)
        ]
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel(render("plot.compare_xlabel", lang, metric=metric_label(metric, lang)))
        if metric != "events_per_member":
            ax.set_xlim(0, max(1.0, float(np.nanmax(value)) * 1.1))
            ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        org = portrait.org or render("report.platform", lang)
        ax.set_title(render("plot.compare_title", lang, org=org))
    return fig


def plot_course(portrait: CoursePortrait, *, lang: str = DEFAULT_LANG) -> Figure:
    """Completion curve with the drop-off stretch marked, and the learners' segment mix."""
    with _style():
        fig = Figure(figsize=(9.0, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=(1.2, 1.0))
        title = portrait.info.get("title", str(portrait.course_id))
        if portrait.suppressed:
            _empty(fig, left, render("plot.course_too_small", lang, learners=portrait.learners))
            right.set_axis_off()
            return fig
        curve = portrait.curve
        if not curve.empty:
            left.plot(curve["fraction"] * 100, curve["reached"], color="#c0392b", marker=".")
            if portrait.drop_off is not None:
                a, b = portrait.drop_off
                left.axvspan(a * 100, b * 100, color="#f1c40f", alpha=0.4,
                             label=render("plot.drop_off", lang))  # fmt: skip
                left.legend(loc="lower left", fontsize=8)
            left.set_ylim(0, 1.02)
            left.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        left.set_xlabel(render("plot.watched", lang))
        left.set_ylabel(render("plot.reached", lang))
        rate = f"{portrait.completion_rate[0]:.0%}"
        left.set_title(
            render("plot.course_title", lang, title=title, learners=portrait.learners, rate=rate),
            fontsize=9,
        )
        mix = portrait.mix
        if mix.empty:
            _empty(fig, right, render("plot.no_attributes", lang))
        else:
            y = np.arange(len(mix))[::-1]
            right.barh(y, mix["share"], color="#2980b9", label=render("plot.learners", lang))
            right.scatter(mix["member_share"], y, color="black", zorder=3, marker="|", s=200,
                          label=render("plot.all_members", lang))  # fmt: skip
            by = mix.attrs.get("by") if isinstance(mix.attrs.get("by"), str) else None
            names = [
                render("plot.other", lang)
                if s == "(other)"
                else (value_label(by, s, lang) if by else str(s))
                for s in mix.index
            ]
            right.set_yticks(y, names, fontsize=8)
            right.set_xlabel(render("plot.share", lang))
            right.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
            right.legend(fontsize=8, loc="lower right")
            right.set_title(render("plot.who", lang), fontsize=9)
    return fig


def plot_gaps(gaps: pd.DataFrame, *, label: int = 12, lang: str = DEFAULT_LANG) -> Figure:
    """Predicted demand share against catalogue share per value: above the diagonal, each
    course is wanted more than an average one (a gap); the largest gaps are labelled."""
    _require(gaps, ["value", "demand_share", "catalogue_share", "gap"], "plot_gaps")
    with _style():
        fig = Figure(figsize=(6.5, 5.0), layout="constrained")
        ax = fig.subplots()
        ok = gaps[(gaps["demand_share"] > 0) & (gaps["catalogue_share"] > 0)]
        if ok.empty:
            return _empty(fig, ax, render("plot.no_demand", lang))
        flagged = ok["flagged"].to_numpy(bool) if "flagged" in ok else np.zeros(len(ok), bool)
        ax.scatter(ok["catalogue_share"], ok["demand_share"], s=18,
                   c=np.where(flagged, "#c0392b", "#7f8c8d"))  # fmt: skip
        lo = float(min(ok["catalogue_share"].min(), ok["demand_share"].min()))
        hi = float(max(ok["catalogue_share"].max(), ok["demand_share"].max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_major_formatter(PercentFormatter(1.0))
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        for _, row in ok.nlargest(label, "gap").iterrows():
            ax.annotate(str(row["value"]), (row["catalogue_share"], row["demand_share"]),
                        fontsize=8, xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xlabel(render("plot.catalogue_share", lang))
        ax.set_ylabel(render("plot.demand_share", lang))
        ax.set_title(render("plot.gaps_title", lang))
    return fig
