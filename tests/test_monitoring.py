"""Monitoring served menus (recommend.insights.monitoring): route shares, coverage,
freshness, click-through and completion by route and segment, event-mix drift, flags, the
report section and MLflow metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.insights.monitoring import (
    Thresholds,
    log_monitoring,
    monitor_menus,
    monitoring_section,
)


@pytest.fixture(scope="module")
def served() -> tuple[rc.Platform, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    platform = rc.synthesize("small", seed=4)
    ev = platform.events
    cut = ev["timestamp"].quantile(0.8)
    train, later = ev[ev["timestamp"] < cut], ev[ev["timestamp"] >= cut]
    ds = rc.Dataset.from_frames(train, courses=platform.courses, members=platform.members)
    model = rc.EASE(l2=100.0).fit(ds)
    ids = [*platform.members["member_id"].tolist()[:200], "new-1", "new-2"]
    menu = rc.member_menu(model, ids, n=10, now=cut)
    return platform, menu, train, later


def test_figures_match_a_direct_count(served) -> None:  # type: ignore[no-untyped-def]
    platform, menu, train, later = served
    got = monitor_menus(
        menu, later, courses=platform.courses, members=platform.members, training_events=train
    )
    assert got.members == 202 and got.rows == len(menu)
    assert got.routes.sum() == pytest.approx(1.0)
    assert got.routes["personal"] == pytest.approx(
        (menu.drop_duplicates("member_id")["route"] == "personal").mean()
    )
    assert got.coverage == pytest.approx(menu["course_id"].nunique() / len(platform.courses))
    views = set(
        zip(*later.loc[later["event"] == "view", ["member_id", "course_id"]].T.values, strict=True)
    )
    clicked = [(m, c) in views for m, c in zip(menu["member_id"], menu["course_id"], strict=True)]
    assert got.ctr == pytest.approx(np.mean(clicked))
    assert set(got.by_route.index) == set(menu["route"])
    assert (got.by_segment["members"] >= 10).all()
    assert 0.0 <= got.drift_psi < 0.2  # the same simulated behaviour before and after
    assert np.isfinite(got.median_age_days) and 0.0 <= got.fresh_share <= 1.0


def test_thresholds_flag(served) -> None:  # type: ignore[no-untyped-def]
    platform, menu, train, later = served
    # A later period where members only view (no progress, completion...): the mix drifts.
    views = later[later["event"] == "view"]
    got = monitor_menus(
        menu,
        views,
        courses=platform.courses,
        training_events=train,
        thresholds=Thresholds(min_coverage=0.99, min_ctr=0.99),
    )
    keys = [m.key for m in got.flags]
    assert "monitor.flag.drift" in keys and got.drift_psi > 0.2
    assert "monitor.flag.coverage" in keys and "monitor.flag.ctr" in keys
    section = monitoring_section(got)
    assert "推荐效果监测" in section and "建议重新训练模型" in section
    en = monitoring_section(got, lang="en")
    assert "Menu monitoring" in en and "refit the model" in en
    quiet = monitor_menus(
        menu,
        later,
        courses=platform.courses,
        thresholds=Thresholds(
            min_ctr=0.0, min_coverage=0.0, min_fresh_share=0.0, max_fallback_share=1.0
        ),
    )
    assert quiet.flags == ()
    assert "各项指标均在正常范围内" in monitoring_section(quiet)


def test_report_section_and_mlflow(served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    platform, menu, train, later = served
    got = monitor_menus(menu, later, courses=platform.courses, training_events=train)
    ds = rc.Dataset.from_frames(train, courses=platform.courses, members=platform.members)
    model = rc.Popularity().fit(ds)
    from recommend.insights.report import render_report

    page = render_report(model, ds, sections=[monitoring_section(got)])
    assert "推荐效果监测" in page
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = rc.tracking.mlflow_client(uri).get_run(log_monitoring(got, "monitoring", uri=uri))
    assert run.data.metrics["coverage"] == pytest.approx(got.coverage)
    assert run.data.metrics["ctr"] == pytest.approx(got.ctr)


def test_missing_columns_are_named(served) -> None:  # type: ignore[no-untyped-def]
    _, menu, _, later = served
    with pytest.raises(rc.DataError, match="route"):
        monitor_menus(menu.drop(columns="route"), later)
