"""Monitoring served menus: what was offered, what members did with it, what moved.

:func:`monitor_menus` reads the menus served (member menu frames or batch rows:
``member_id``, ``course_id``, ``route``, optionally ``reason``) and the events that came
after, and reports:

* **route shares**: the share of served members per route (personal, cold-start routes);
* **catalogue coverage**: distinct courses offered over the courses in the catalogue;
* **freshness**: the share of offered courses published within ``NEW_DAYS`` of ``now``
  and their median age in days;
* **click-through and completion** by route and by member segment: an offered course is
  clicked when the member has a ``view`` of it afterwards, completed with a
  ``complete``; segments with fewer than ``MIN_SIZE`` served members are not shown;
* **drift of the event mix**: the population stability index (PSI) of the event types of
  the later events against the training events.

:class:`Thresholds` turns these into flags (catalogue messages an organiser reads);
:func:`monitoring_section` renders the section of the organiser report
(``render_report(..., sections=[...])``), :func:`log_monitoring` logs the figures to
MLflow (aggregates only).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recommend.engine.reasons import NEW_DAYS
from recommend.errors import DataError
from recommend.insights.portraits import MIN_SIZE
from recommend.messages import DEFAULT_LANG, Lang, Message, check_lang, render
from recommend.schema import Columns as C
from recommend.tracking import ensure_experiment, log_batch, metric_key, mlflow_client, tracked_run

__all__ = ["MonitorReport", "Thresholds", "log_monitoring", "monitor_menus", "monitoring_section"]

_EPS = 1e-4  # PSI: shares floored so that an event type absent on one side stays finite


@dataclass(frozen=True)
class Thresholds:
    """When a monitored figure is flagged.

    Attributes
    ----------
    min_coverage : float
        Catalogue coverage below this (menus concentrate on too few courses).
    max_fallback_share : float
        Share of members served by a cold-start route (not ``personal``) above this.
    min_ctr : float
        Overall click-through below this.
    min_fresh_share : float
        Share of offered courses that are new below this (new courses are not reaching
        members).
    max_drift_psi : float
        PSI of the event mix above this (0.1: some change; 0.2: a shift worth a refit).
    """

    min_coverage: float = 0.05
    max_fallback_share: float = 0.5
    min_ctr: float = 0.02
    min_fresh_share: float = 0.01
    max_drift_psi: float = 0.2


@dataclass(frozen=True)
class MonitorReport:
    """What :func:`monitor_menus` found (aggregates only; see the module docs)."""

    members: int
    rows: int
    routes: pd.Series
    coverage: float
    fresh_share: float
    median_age_days: float
    ctr: float
    completion: float
    by_route: pd.DataFrame
    by_segment: pd.DataFrame
    event_mix: pd.DataFrame
    drift_psi: float
    flags: tuple[Message, ...] = field(default=())

    def metrics(self) -> dict[str, float]:
        """Flat figures for MLflow."""
        out = {
            "members": float(self.members),
            "rows": float(self.rows),
            "coverage": self.coverage,
            "fresh_share": self.fresh_share,
            "median_age_days": self.median_age_days,
            "ctr": self.ctr,
            "completion": self.completion,
            "drift_psi": self.drift_psi,
            "flags": float(len(self.flags)),
        }
        for route, share in self.routes.items():
            out[metric_key(f"route_share.{route}")] = float(share)
        for route, row in self.by_route.iterrows():
            out[metric_key(f"ctr.{route}")] = float(row["ctr"])
            out[metric_key(f"completion.{route}")] = float(row["completion"])
        return {k: v for k, v in out.items() if np.isfinite(v)}


def _psi(now: pd.Series, before: pd.Series) -> tuple[float, pd.DataFrame]:
    kinds = sorted(set(now.index) | set(before.index))
    p = now.reindex(kinds, fill_value=0).to_numpy(float)
    q = before.reindex(kinds, fill_value=0).to_numpy(float)
    if p.sum() == 0 or q.sum() == 0:
        return np.nan, pd.DataFrame(columns=["now", "training"])
    p, q = np.maximum(p / p.sum(), _EPS), np.maximum(q / q.sum(), _EPS)
    mix = pd.DataFrame({"now": p, "training": q}, index=pd.Index(kinds, name=C.EVENT))
    return float(((p - q) * np.log(p / q)).sum()), mix


def monitor_menus(
    served: pd.DataFrame,
    events: pd.DataFrame,
    *,
    courses: pd.DataFrame | None = None,
    members: pd.DataFrame | None = None,
    training_events: pd.DataFrame | None = None,
    segment: str = C.OCCUPATION,
    now: pd.Timestamp | str | None = None,
    thresholds: Thresholds | None = None,
    min_size: int = MIN_SIZE,
) -> MonitorReport:
    """Monitor served menus against the events that followed.

    Parameters
    ----------
    served : DataFrame
        ``member_id``, ``course_id``, ``route`` (member menus or batch rows).
    events : DataFrame
        Events after serving: ``member_id``, ``course_id``, ``event``.
    courses : DataFrame, optional
        The catalogue (``course_id``, ``published_at``): coverage and freshness.
    members : DataFrame, optional
        ``member_id`` and the ``segment`` column: rates by segment.
    training_events : DataFrame, optional
        The events the model was trained on: the drift of the event mix.
    segment
        The members column to break rates down by (default ``occupation``).
    now
        Reference time of freshness (default: the latest event).
    thresholds
        When figures are flagged (:class:`Thresholds` defaults).
    min_size
        Segments with fewer served members are not shown.

    Raises
    ------
    DataError
        A table lacks a column it needs.
    """
    for name, frame, need in (
        ("served", served, (C.MEMBER, C.COURSE, C.ROUTE)),
        ("events", events, (C.MEMBER, C.COURSE, C.EVENT)),
    ):
        missing = [c for c in need if c not in frame.columns]
        if missing:
            raise DataError(f"{name} lacks column(s) {missing}; it has {list(frame.columns)}")
    limits = thresholds or Thresholds()
    rows = served[[C.MEMBER, C.COURSE, C.ROUTE]].drop_duplicates([C.MEMBER, C.COURSE])
    n_members = int(rows[C.MEMBER].nunique())
    per_member = rows.drop_duplicates(C.MEMBER)[C.ROUTE].astype(str)
    routes = per_member.value_counts(normalize=True).rename("share")

    pairs = [C.MEMBER, C.COURSE]
    viewed = events.loc[events[C.EVENT] == "view", pairs].drop_duplicates().assign(clicked=1)
    done = events.loc[events[C.EVENT] == "complete", pairs].drop_duplicates().assign(completed=1)
    rows = rows.merge(viewed, on=pairs, how="left").merge(done, on=pairs, how="left")
    rows[["clicked", "completed"]] = rows[["clicked", "completed"]].fillna(0.0)

    def rates(frame: pd.DataFrame, by: str) -> pd.DataFrame:
        g = frame.groupby(by, observed=True)
        out = pd.DataFrame(
            {
                "members": g[C.MEMBER].nunique(),
                "offered": g.size(),
                "ctr": g["clicked"].mean(),
                "completion": g["completed"].mean(),
            }
        )
        return out[out["members"] >= min_size] if by != C.ROUTE else out

    by_route = rates(rows.assign(**{C.ROUTE: rows[C.ROUTE].astype(str)}), C.ROUTE)
    by_segment = pd.DataFrame(columns=["members", "offered", "ctr", "completion"])
    if members is not None and segment in members.columns:
        seg = members.drop_duplicates(C.MEMBER).set_index(C.MEMBER)[segment]
        tagged = rows.assign(**{segment: rows[C.MEMBER].map(seg)}).dropna(subset=[segment])
        by_segment = rates(tagged, segment)

    coverage = fresh = age = np.nan
    if courses is not None and C.COURSE in courses.columns and len(courses):
        coverage = rows[C.COURSE].nunique() / courses[C.COURSE].nunique()
        if C.PUBLISHED_AT in courses.columns:
            ref = pd.Timestamp(now) if now is not None else None
            if ref is None and C.TIMESTAMP in events.columns and len(events):
                ref = pd.Timestamp(events[C.TIMESTAMP].max())
            published = courses.set_index(C.COURSE)[C.PUBLISHED_AT]
            when = pd.to_datetime(rows[C.COURSE].map(published))
            if ref is not None and when.notna().any():
                days = (ref - when).dt.total_seconds() / 86_400.0
                fresh = float(((days >= 0) & (days <= NEW_DAYS)).mean())
                age = float(days.median())

    psi, mix = np.nan, pd.DataFrame(columns=["now", "training"])
    if training_events is not None and C.EVENT in training_events.columns:
        psi, mix = _psi(
            events[C.EVENT].astype(str).value_counts(),
            training_events[C.EVENT].astype(str).value_counts(),
        )

    ctr = float(rows["clicked"].mean()) if len(rows) else np.nan
    fallback = float(1.0 - routes.get("personal", 0.0)) if len(routes) else np.nan
    flags: list[Message] = []
    if np.isfinite(coverage) and coverage < limits.min_coverage:
        flags.append(Message.of("monitor.flag.coverage", share=coverage, limit=limits.min_coverage))
    if np.isfinite(fallback) and fallback > limits.max_fallback_share:
        flags.append(
            Message.of("monitor.flag.fallback", share=fallback, limit=limits.max_fallback_share)
        )
    if np.isfinite(ctr) and ctr < limits.min_ctr:
        flags.append(Message.of("monitor.flag.ctr", share=ctr, limit=limits.min_ctr))
    if np.isfinite(fresh) and fresh < limits.min_fresh_share:
        flags.append(Message.of("monitor.flag.fresh", share=fresh, days=NEW_DAYS))
    if np.isfinite(psi) and psi > limits.max_drift_psi:
        flags.append(
            Message.of("monitor.flag.drift", psi=round(psi, 3), limit=limits.max_drift_psi)
        )
    return MonitorReport(
        members=n_members,
        rows=len(rows),
        routes=routes,
        coverage=float(coverage),
        fresh_share=float(fresh),
        median_age_days=float(age),
        ctr=ctr,
        completion=float(rows["completed"].mean()) if len(rows) else np.nan,
        by_route=by_route,
        by_segment=by_segment,
        event_mix=mix,
        drift_psi=float(psi),
        flags=tuple(flags),
    )


def _table(frame: pd.DataFrame, lang: Lang, index_key: str) -> str:
    labels = {
        "members": render("monitor.col.members", lang),
        "offered": render("monitor.col.offered", lang),
        "ctr": render("monitor.col.ctr", lang),
        "completion": render("monitor.col.completion", lang),
        "now": render("monitor.col.now", lang),
        "training": render("monitor.col.training", lang),
        "share": render("monitor.col.share", lang),
    }
    shown = frame.rename(columns=labels).rename_axis(render(index_key, lang))
    return str(shown.to_html(float_format=lambda x: f"{x:.3f}", border=0, na_rep="—"))


def monitoring_section(report: MonitorReport, lang: Lang = DEFAULT_LANG) -> str:
    """The monitoring section of the organiser report (HTML for ``render_report``'s
    ``sections=``), in ``lang``: the summary, the flags, and the tables by route, by
    segment and of the event mix."""
    lang = check_lang(lang)
    t = render
    parts = [f"<h2>{html.escape(t('monitor.title', lang))}</h2>"]
    summary = t(
        "monitor.summary",
        lang,
        members=report.members,
        rows=report.rows,
        coverage=report.coverage if np.isfinite(report.coverage) else 0.0,
        ctr=report.ctr if np.isfinite(report.ctr) else 0.0,
        completion=report.completion if np.isfinite(report.completion) else 0.0,
    )
    parts.append(f'<p class="note">{html.escape(summary)}</p>')
    if report.flags:
        items = "".join(f"<li>{html.escape(m.text(lang))}</li>" for m in report.flags)
        parts.append(f"<ul>{items}</ul>")
    else:
        parts.append(f'<p class="note">{html.escape(t("monitor.ok", lang))}</p>')
    parts.append(f"<h3>{html.escape(t('monitor.by_route', lang))}</h3>")
    by_route = report.by_route.join(report.routes.rename("share"), how="left")
    parts.append(_table(by_route, lang, "monitor.col.route"))
    if len(report.by_segment):
        parts.append(f"<h3>{html.escape(t('monitor.by_segment', lang))}</h3>")
        parts.append(_table(report.by_segment, lang, "monitor.col.segment"))
    if len(report.event_mix):
        title = t("monitor.drift", lang, psi=round(report.drift_psi, 3))
        parts.append(f"<h3>{html.escape(title)}</h3>")
        parts.append(_table(report.event_mix, lang, "monitor.col.event"))
    return "\n".join(parts)


def log_monitoring(report: MonitorReport, name: str, *, uri: str | None = None) -> str:
    """Log :meth:`MonitorReport.metrics` to MLflow (experiment ``name``); returns the run
    id. Flags are logged as their message keys (params ``flag.<i>``)."""
    client = mlflow_client(uri)
    exp_id = ensure_experiment(client, name)
    params = {f"flag.{i}": m.key for i, m in enumerate(report.flags)}
    with tracked_run(client, exp_id, run_name="menu-monitoring") as run_id:
        log_batch(client, run_id, params, report.metrics())
    return run_id
