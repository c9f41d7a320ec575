"""Matplotlib figures of the portraits, demand and content gaps.

Every helper returns a ``matplotlib.figure.Figure`` built without pyplot (no global state,
safe in threads and scripts); show it in a notebook or save it with ``fig.savefig``.
Intervals are drawn as error bars and counts are printed, so small groups look uncertain.
Labels are Chinese: a CJK font is looked up among the installed fonts (Noto CJK, WenQuanYi,
Source Han, SimHei...); without one, matplotlib draws empty boxes and a warning is logged.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from matplotlib import font_manager, rc_context
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from recommend.errors import ConfigError
from recommend.insights.portraits import BranchPortrait, CoursePortrait, SegmentPortrait

__all__ = [
    "plot_activity",
    "plot_branch_comparison",
    "plot_branch_trend",
    "plot_course",
    "plot_demand",
    "plot_gaps",
    "plot_lift",
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


def _cjk_family() -> str | None:
    """A CJK font family matplotlib can use, registering system font files it missed."""
    with _FONT_LOCK:
        if _FONT:
            return _FONT[0]
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
                "no CJK font found: Chinese labels will show as boxes (install e.g. Debian's "
                "fonts-wqy-microhei or fonts-noto-cjk)"
            )
        _FONT.append(found)
        return found


@contextmanager
def _style() -> Iterator[None]:
    family = _cjk_family()
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


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{what}: columns {missing} missing; got {list(frame.columns)}")


def _empty(fig: Figure, ax: object, text: str) -> Figure:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)  # type: ignore[attr-defined]
    ax.set_axis_off()  # type: ignore[attr-defined]
    return fig


def plot_activity(portrait: SegmentPortrait, metric: str = "active_30d") -> Figure:
    """Bars of one activity figure per segment with its interval and member counts.

    Parameters
    ----------
    portrait
        From ``segment_portrait``.
    metric
        A column of ``portrait.activity`` with ``_lo``/``_hi`` intervals, e.g.
        ``active_30d``, ``events_per_member``, ``completion_rate``, ``checkin_regularity``,
        ``median_watch_minutes``.
    """
    table = portrait.activity
    _require(table, [metric, f"{metric}_lo", f"{metric}_hi"], "plot_activity")
    with _style():
        fig = Figure(figsize=(max(5.0, 0.8 * len(table) + 2), 3.6), layout="constrained")
        ax = fig.subplots()
        if table.empty:
            return _empty(fig, ax, f"every segment has fewer than {portrait.min_size} members")
        x = np.arange(len(table))
        value = table[metric].to_numpy(dtype=float)
        err = np.vstack(
            [value - table[f"{metric}_lo"].to_numpy(float), table[f"{metric}_hi"] - value]
        )
        ax.bar(x, value, color="#c0392b", alpha=0.85)
        ax.errorbar(x, value, yerr=np.abs(err), fmt="none", ecolor="black", capsize=3)
        ax.set_xticks(x, [str(s) for s in table.index], rotation=30, ha="right")
        for xi, n in zip(x, table["members"], strict=True):
            ax.annotate(f"n={n}", (xi, 0), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=8, color="white")  # fmt: skip
        ax.set_ylabel(metric.replace("_", " "))
        by = " x ".join(portrait.by) or "all"
        note = f"; {len(portrait.suppressed)} segment(s) < {portrait.min_size} hidden"
        ax.set_title(f"{metric.replace('_', ' ')} by {by}" + (note if portrait.suppressed else ""))
    return fig


def plot_lift(portrait: SegmentPortrait, kind: str = "channel", *, max_values: int = 15) -> Figure:
    """Heatmap of preference lift (segment share / platform share), log colour scale.

    Parameters
    ----------
    portrait
        From ``segment_portrait``.
    kind
        ``channel``, ``duration`` or ``tag``.
    max_values
        For many values (tags), the ones with the largest spread of lift across segments.
    """
    table = portrait.lift(kind)
    return _heatmap(table, f"{kind} preference: lift over the platform average", max_values)


def plot_demand(demand: pd.DataFrame, *, max_values: int = 15) -> Figure:
    """Heatmap of predicted demand lift per segment (from ``predicted_demand``)."""
    _require(demand, ["segment", "value", "lift"], "plot_demand")
    table = demand.pivot(index="segment", columns="value", values="lift")
    level = demand.attrs.get("level", "value")
    k = demand.attrs.get("k", "k")
    return _heatmap(table, f"predicted demand ({level}, top-{k}): lift", max_values)


def _heatmap(table: pd.DataFrame, title: str, max_values: int) -> Figure:
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
            return _empty(fig, ax, "no segment to show")
        values = table.to_numpy(dtype=float)
        finite = values[np.isfinite(values) & (values > 0)]
        top = float(max(np.max(finite), 1.0 / np.min(finite), 1.5)) if finite.size else 2.0
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
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8)
        fig.colorbar(image, ax=ax, label="lift (1 = platform average)")
        ax.set_title(title)
    return fig


def plot_branch_trend(portrait: BranchPortrait) -> Figure:
    """Share of members active per period: the org against its siblings (and sub-orgs)."""
    with _style():
        fig = Figure(figsize=(7.0, 3.6), layout="constrained")
        ax = fig.subplots()
        trend, summary = portrait.trend, portrait.summary
        if trend.empty or trend.isna().all().all():
            return _empty(fig, ax, "no org large enough to show")
        x = trend.index
        for role, style in (("sibling", ("#7f8c8d", 1.0)), ("child", ("#2980b9", 1.0))):
            cols = summary.index[(summary["role"] == role).to_numpy()]
            cols = [c for c in cols if c in trend.columns and trend[c].notna().any()]
            if cols:
                ax.plot(x, trend[cols].to_numpy(), color=style[0], lw=style[1], alpha=0.5)
                ax.plot([], [], color=style[0], label=f"{role}s ({len(cols)})")
        if portrait.org is not None and portrait.org in trend.columns:
            ax.plot(x, trend[portrait.org], color="#c0392b", lw=2.5, marker="o",
                    label=f"{portrait.org}")  # fmt: skip
        ax.set_ylabel("share of members active")
        ax.set_ylim(0, 1)
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title(f"activity trend: {portrait.org or 'platform'}")
    return fig


def plot_branch_comparison(portrait: BranchPortrait, metric: str = "active_recent") -> Figure:
    """Horizontal bars of one figure for the org, its siblings and sub-orgs, with intervals;
    flagging orgs in red."""
    summary = portrait.summary
    _require(summary, [metric], "plot_branch_comparison")
    shown = summary[~summary["suppressed"].astype(bool)]
    with _style():
        fig = Figure(figsize=(6.5, max(2.5, 0.32 * len(shown) + 1.2)), layout="constrained")
        ax = fig.subplots()
        if shown.empty:
            return _empty(fig, ax, f"every org has fewer than {portrait.min_size} members")
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
        labels = [f"{org} ({role}, n={n})" for org, role, n in
                  zip(shown.index, shown["role"], shown["members"], strict=True)]  # fmt: skip
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel(metric.replace("_", " ") + " (red: flagging)")
        ax.set_xlim(0, max(1.0, float(np.nanmax(value)) * 1.1) if metric != "events_per_member"
                    else None)  # fmt: skip
        ax.set_title(f"{portrait.org or 'platform'}: peers compared")
    return fig


def plot_course(portrait: CoursePortrait) -> Figure:
    """Completion curve with the drop-off stretch marked, and the learners' segment mix."""
    with _style():
        fig = Figure(figsize=(9.0, 3.4), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=(1.2, 1.0))
        title = portrait.info.get("title", str(portrait.course_id))
        if portrait.suppressed:
            _empty(fig, left, f"{portrait.learners} learners: too few to show")
            right.set_axis_off()
            return fig
        curve = portrait.curve
        if not curve.empty:
            left.plot(curve["fraction"] * 100, curve["reached"], color="#c0392b", marker=".")
            if portrait.drop_off is not None:
                a, b = portrait.drop_off
                left.axvspan(a * 100, b * 100, color="#f1c40f", alpha=0.4, label="most stop here")
                left.legend(loc="lower left", fontsize=8)
            left.set_ylim(0, 1.02)
        left.set_xlabel("% of the course watched")
        left.set_ylabel("share of learners reaching it")
        rate = portrait.completion_rate[0]
        left.set_title(f"{title}\n{portrait.learners} learners, completion {rate:.0%}", fontsize=9)
        mix = portrait.mix
        if mix.empty:
            _empty(fig, right, "no member attributes")
        else:
            y = np.arange(len(mix))[::-1]
            right.barh(y, mix["share"], color="#2980b9", label="learners")
            right.scatter(mix["member_share"], y, color="black", zorder=3, marker="|", s=200,
                          label="all members")  # fmt: skip
            right.set_yticks(y, [str(s) for s in mix.index], fontsize=8)
            right.set_xlabel("share")
            right.legend(fontsize=8, loc="lower right")
            right.set_title("who studies it", fontsize=9)
    return fig


def plot_gaps(gaps: pd.DataFrame, *, label: int = 12) -> Figure:
    """Predicted demand share against catalogue share per value: above the diagonal, each
    course is wanted more than an average one (a gap); the largest gaps are labelled."""
    _require(gaps, ["value", "demand_share", "catalogue_share", "gap"], "plot_gaps")
    with _style():
        fig = Figure(figsize=(6.5, 5.0), layout="constrained")
        ax = fig.subplots()
        ok = gaps[(gaps["demand_share"] > 0) & (gaps["catalogue_share"] > 0)]
        if ok.empty:
            return _empty(fig, ax, "no demand to show")
        flagged = ok["flagged"].to_numpy(bool) if "flagged" in ok else np.zeros(len(ok), bool)
        ax.scatter(ok["catalogue_share"], ok["demand_share"], s=18,
                   c=np.where(flagged, "#c0392b", "#7f8c8d"))  # fmt: skip
        lo = float(min(ok["catalogue_share"].min(), ok["demand_share"].min()))
        hi = float(max(ok["catalogue_share"].max(), ok["demand_share"].max()))
        ax.plot([lo, hi], [lo, hi], color="black", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        for _, row in ok.nlargest(label, "gap").iterrows():
            ax.annotate(str(row["value"]), (row["catalogue_share"], row["demand_share"]),
                        fontsize=8, xytext=(3, 3), textcoords="offset points")  # fmt: skip
        ax.set_xlabel("share of the catalogue")
        ax.set_ylabel("share of predicted demand")
        ax.set_title("content gaps (red: demand >> supply)")
    return fig
