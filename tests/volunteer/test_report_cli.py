"""The organiser's report section (``recommend.volunteer.report``), its place in the HTML
report, and the ``recommend volunteer`` verbs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from builders import T0, request, volunteer

import recommend as rc
from recommend.cli import main
from recommend.insights.report import render_report
from recommend.volunteer import VolunteerPool, dispatch, simulate_volunteering
from recommend.volunteer.report import volunteer_section
from recommend.volunteer.tables import validate_requests


def test_section_shows_aggregates_and_reasons_only() -> None:
    vols = pd.DataFrame([volunteer(1), volunteer(2, km=2.0)])
    pool = VolunteerPool.build(vols, None, now=T0)
    reqs = pd.DataFrame([request(1, headcount=3), request(2, kind="弱势群体帮扶", lat=31.5)])
    result = dispatch(pool, reqs)
    html = volunteer_section(
        validate_requests(reqs), result.assignments, result.unfilled, volunteers=vols
    )
    assert html.startswith("<h2>志愿服务供需速配</h2>")
    assert "满足率" in html and "按区县" in html and "按服务类型" in html
    assert "需要3人，符合条件的志愿者只有2人" in html
    assert "10公里内没有具备所需技能或条件的志愿者" in html
    assert "v1" not in html and "v2" not in html and "r1" not in html


def test_section_in_english_from_the_catalogue() -> None:
    vols = pd.DataFrame([volunteer(1), volunteer(2, km=2.0)])
    pool = VolunteerPool.build(vols, None, now=T0)
    reqs = pd.DataFrame([request(1, headcount=3), request(2, kind="弱势群体帮扶", lat=31.5)])
    result = dispatch(pool, reqs)
    args = (validate_requests(reqs), result.assignments, result.unfilled)
    html = volunteer_section(*args, volunteers=vols, lang="en")
    assert html.startswith("<h2>Volunteer service matching</h2>")
    for text in ("fill rate", "By district", "By kind of service", "Unfilled requests"):
        assert text in html
    assert "满足率" not in html and "按区县" not in html and "需要人数" not in html
    rc.set_messages({"volunteer.title": "志愿服务派单"})
    try:
        assert volunteer_section(*args, volunteers=vols).startswith("<h2>志愿服务派单</h2>")
    finally:
        rc.reset_messages()


def test_report_appends_sections(small_dataset: rc.Dataset) -> None:
    model = rc.Popularity().fit(small_dataset)
    text = render_report(
        model, small_dataset, by=("occupation",), courses=1, sections=["<h2>志愿服务供需速配</h2>"]
    )
    # Once, after the report's own sections and before its detailed tables.
    assert text.count("<h2>志愿服务供需速配</h2>") == 1
    section = text.index("<h2>志愿服务供需速配</h2>")
    assert text.index("<h2>下一步提供什么课程</h2>") < section < text.index("<h2>详细数据</h2>")


def test_cli_simulate_dispatch_shortlist_menu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "tables"
    assert (
        main(
            [
                "volunteer",
                "simulate",
                "--out",
                str(folder),
                "--volunteers",
                "300",
                "--requests",
                "40",
            ]
        )
        == 0
    )
    tables = [
        "--requests",
        str(folder / "requests.parquet"),
        "--volunteers",
        str(folder / "volunteers.parquet"),
        "--services",
        str(folder / "services.parquet"),
        "--now",
        "2025-07-07",
    ]
    out = tmp_path / "out" / "assignments.csv"
    report = tmp_path / "out" / "volunteer.html"
    capsys.readouterr()
    assert (
        main(
            ["volunteer", "dispatch", *tables, "--out", str(out), "--report", str(report), "--json"]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assignments = pd.read_csv(out)
    assert summary["assignments"] == len(assignments) > 0 and summary["solver"] == "matching"
    assert (tmp_path / "out" / "assignments_unfilled.csv").exists()
    assert "志愿服务供需速配" in report.read_text(encoding="utf-8")
    first = str(assignments["request_id"].iloc[0])
    assert main(["volunteer", "shortlist", *tables, "--request", first, "--n", "3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in rows] == [1, 2, 3] and all(r["reason"] for r in rows)
    who = str(assignments["volunteer_id"].iloc[0])
    assert main(["volunteer", "menu", *tables, "--volunteer", who, "--json"]) == 0
    assert all(r["volunteer_id"] == who for r in json.loads(capsys.readouterr().out))


def test_cli_reports_bad_input_as_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = simulate_volunteering(50, 5, seed=0)
    vols = tmp_path / "volunteers.csv"
    world.volunteers.assign(phone="13800000000").to_csv(vols, index=False)
    reqs = tmp_path / "requests.parquet"
    world.requests.to_parquet(reqs)
    code = main(
        [
            "volunteer",
            "dispatch",
            "--requests",
            str(reqs),
            "--volunteers",
            str(vols),
            "--out",
            str(tmp_path / "a.parquet"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "personal columns ['phone']" in err and "13800000000" not in err
