"""The volunteer section of the organiser's HTML report (志愿服务供需速配): fill rate, time
to fill, distance, load balance and continuity per district and kind, and why requests went
unfilled. Aggregates only: no volunteer or requester id appears."""

from __future__ import annotations

import html

import pandas as pd

from recommend.messages import DEFAULT_LANG, Lang, check_lang, render
from recommend.volunteer.metrics import dispatch_metrics
from recommend.volunteer.tables import VolunteerColumns

__all__ = ["volunteer_page", "volunteer_section"]

V = VolunteerColumns

#: Metric columns and index names -> their catalogue key (``volunteer.col.<name>``).
_COLUMNS = (
    "requests",
    "needed",
    "filled",
    "fill_rate",
    "time_to_fill_h",
    "mean_km",
    "hours_gini",
    "continuity",
)
_INDEX = {V.DISTRICT: "district", V.KIND: "kind"}


def _label(name: str, lang: Lang) -> str:
    key = name if name in _COLUMNS else _INDEX.get(name)
    return render(f"volunteer.col.{key}", lang) if key else name


def volunteer_section(
    requests: pd.DataFrame,
    assignments: pd.DataFrame,
    unfilled: pd.DataFrame,
    *,
    services: pd.DataFrame | None = None,
    volunteers: pd.DataFrame | None = None,
    lang: Lang = DEFAULT_LANG,
) -> str:
    """An HTML fragment (``<h2>`` and tables) for :func:`recommend.insights.report`'s
    ``sections``: the metrics by kind, by district, and the unfilled requests counted by
    reason. ``requests`` is the validated requests table; ``assignments`` and ``unfilled``
    come from a ``DispatchResult``. Headings, notes and column names come from the message
    catalogue (``volunteer.*`` keys) in ``lang`` (``"zh"``, the default, or ``"en"``);
    with ``"en"`` an unfilled request's reason is its code (``why``)."""
    lang = check_lang(lang)
    by_kind = dispatch_metrics(
        requests, assignments, services=services, volunteers=volunteers, by=(V.KIND,)
    )
    by_district = dispatch_metrics(requests, assignments, services=services, by=(V.DISTRICT,))
    parts = [f"<h2>{html.escape(render('volunteer.title', lang))}</h2>"]
    total = by_kind.iloc[-1]
    summary = render(
        "volunteer.summary",
        lang,
        requests=int(total["requests"]),
        needed=int(total["needed"]),
        filled=int(total["filled"]),
        rate=f"{total['fill_rate']:.0%}",
    )
    parts.append(f'<p class="note">{html.escape(summary)}</p>')
    parts.append(f"<h3>{html.escape(render('volunteer.by_kind', lang))}</h3>")
    parts.append(_table(by_kind, lang))
    parts.append(f"<h3>{html.escape(render('volunteer.by_district', lang))}</h3>")
    parts.append(_table(by_district, lang))
    parts.append(f"<h3>{html.escape(render('volunteer.unfilled', lang))}</h3>")
    if unfilled.empty:
        parts.append(f'<p class="note">{html.escape(render("volunteer.all_filled", lang))}</p>')
    else:
        why = "why_text" if lang == "zh" or "why" not in unfilled.columns else "why"
        counts = (
            unfilled.groupby([V.KIND, why])
            .agg(requests=(V.REQUEST, "size"), missing=("missing", "sum"))
            .reset_index()
        )
        counts.columns = [
            render(f"volunteer.col.{c}", lang) for c in ("kind", "why", "requests", "missing")
        ]
        parts.append(counts.to_html(index=False, border=0))
    return "\n".join(parts)


def _table(frame: pd.DataFrame, lang: Lang) -> str:
    shown = frame.rename(columns=lambda c: _label(str(c), lang)).rename_axis(
        index=[_label(str(n), lang) for n in frame.index.names]
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
    lang: Lang = DEFAULT_LANG,
) -> str:
    """:func:`volunteer_section` as a self-contained HTML page (the CLI's ``--report``)."""
    body = volunteer_section(
        requests, assignments, unfilled, services=services, volunteers=volunteers, lang=lang
    )
    title = html.escape(render("volunteer.title", lang))
    return (
        f'<!DOCTYPE html>\n<html lang="{"zh-CN" if lang == "zh" else "en"}">\n<head>\n'
        f'<meta charset="utf-8">\n<title>{title}</title>\n<style>{_CSS}</style>\n</head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )
