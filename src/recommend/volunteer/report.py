"""The volunteer section of the organiser's HTML report (志愿服务供需速配): fill rate, time
to fill, distance, load balance and continuity per district and kind, and why requests went
unfilled. Aggregates only: no volunteer or requester id appears."""

from __future__ import annotations

import html

import pandas as pd

from recommend.volunteer.metrics import dispatch_metrics
from recommend.volunteer.tables import VolunteerColumns

__all__ = ["volunteer_page", "volunteer_section"]

V = VolunteerColumns

_LABELS = {
    "requests": "需求数",
    "needed": "需要人数",
    "filled": "已派人数",
    "fill_rate": "满足率",
    "time_to_fill_h": "平均派单用时(小时)",
    "mean_km": "平均距离(公里)",
    "hours_gini": "服务时长基尼系数",
    "continuity": "帮扶连续性",
    V.DISTRICT: "区县",
    V.KIND: "服务类型",
}


def volunteer_section(
    requests: pd.DataFrame,
    assignments: pd.DataFrame,
    unfilled: pd.DataFrame,
    *,
    services: pd.DataFrame | None = None,
    volunteers: pd.DataFrame | None = None,
) -> str:
    """An HTML fragment (``<h2>`` and tables) for :func:`recommend.insights.report`'s
    ``sections``: the metrics by kind, by district, and the unfilled requests counted by
    reason. ``requests`` is the validated requests table; ``assignments`` and ``unfilled``
    come from a ``DispatchResult``."""
    by_kind = dispatch_metrics(
        requests, assignments, services=services, volunteers=volunteers, by=(V.KIND,)
    )
    by_district = dispatch_metrics(requests, assignments, services=services, by=(V.DISTRICT,))
    parts = ["<h2>志愿服务供需速配</h2>"]
    total = by_kind.iloc[-1]
    parts.append(
        '<p class="note">'
        + html.escape(
            f"共{int(total['requests'])}个需求、需要{int(total['needed'])}人次，已派"
            f"{int(total['filled'])}人次（满足率{total['fill_rate']:.0%}）。基尼系数越低，"
            "服务时长在志愿者之间分布越均衡；帮扶连续性为弱势群体帮扶中由曾服务过同一对象的"
            "志愿者承担的比例。"
        )
        + "</p>"
    )
    parts.append("<h3>按服务类型</h3>")
    parts.append(_table(by_kind))
    parts.append("<h3>按区县</h3>")
    parts.append(_table(by_district))
    parts.append("<h3>未满足的需求</h3>")
    if unfilled.empty:
        parts.append('<p class="note">所有需求均已派单。</p>')
    else:
        counts = (
            unfilled.groupby([V.KIND, "why_text"])
            .agg(需求数=(V.REQUEST, "size"), 缺少人数=("missing", "sum"))
            .reset_index()
            .rename(columns={V.KIND: "服务类型", "why_text": "原因"})
        )
        parts.append(counts.to_html(index=False, border=0))
    return "\n".join(parts)


def _table(frame: pd.DataFrame) -> str:
    shown = frame.rename(columns=_LABELS).rename_axis(
        index=[_LABELS.get(n, n) for n in frame.index.names]
    )
    return str(shown.to_html(float_format=lambda x: f"{x:.2f}", border=0, na_rep="—"))


_CSS = (
    'body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif; '
    "margin: 2em auto; max-width: 1100px; } table { border-collapse: collapse; font-size: 13px; } "
    "th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; } "
    ".note { color: #666; font-size: 13px; }"
)


def volunteer_page(
    requests: pd.DataFrame,
    assignments: pd.DataFrame,
    unfilled: pd.DataFrame,
    *,
    services: pd.DataFrame | None = None,
    volunteers: pd.DataFrame | None = None,
) -> str:
    """:func:`volunteer_section` as a self-contained HTML page (the CLI's ``--report``)."""
    body = volunteer_section(
        requests, assignments, unfilled, services=services, volunteers=volunteers
    )
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        f"<title>志愿服务供需速配</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )
