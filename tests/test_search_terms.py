"""What members search for: checked against the simulator's planted query behaviour."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

import recommend as rc
from recommend.data.synthetic import PRESETS
from recommend.data.synthetic.searches import PLANTED_GAPS, PLANTED_TREND
from recommend.errors import ConfigError, DataError
from recommend.insights import search_terms
from recommend.insights.report import render_report


@pytest.fixture(scope="module")
def planted() -> rc.Platform:
    return rc.synthesize(dataclasses.replace(PRESETS["small"], plant_queries=True), seed=0)


def test_planting_adds_rows_and_leaves_the_rest_alone(
    planted: rc.Platform, small_platform: rc.Platform
) -> None:
    assert planted.events.equals(small_platform.events)
    assert planted.courses.equals(small_platform.courses)
    assert len(planted.searches) > len(small_platform.searches)
    plain = planted.searches[~planted.searches["query"].isin([PLANTED_TREND, *PLANTED_GAPS])]
    original = small_platform.searches[
        ~small_platform.searches["query"].isin([PLANTED_TREND, *PLANTED_GAPS])
    ]
    assert len(plain) == len(original)


def test_planted_trend_and_gaps_are_found(planted: rc.Platform) -> None:
    terms = search_terms(planted.searches, planted.members, min_size=10)
    last = terms.trending[terms.trending["period"] == terms.trending["period"].max()]
    assert last.iloc[0]["query"] == PLANTED_TREND
    assert set(terms.unmet["query"].head(3)) == set(PLANTED_GAPS)
    assert (terms.unmet.set_index("query").loc[list(PLANTED_GAPS), "zero_result_share"] == 1).all()
    assert terms.rising.iloc[0]["query"] == PLANTED_TREND


def test_small_groups_are_hidden(planted: rc.Platform) -> None:
    # 30 members typed each planted gap: shown at 30, hidden at 31.
    shown = search_terms(planted.searches, min_size=30)
    hidden = search_terms(planted.searches, min_size=31)
    assert set(PLANTED_GAPS) <= set(shown.unmet["query"])
    assert not set(PLANTED_GAPS) & set(hidden.unmet["query"])
    assert hidden.unmet.attrs["hidden"] > shown.unmet.attrs["hidden"]
    assert (shown.trending["members"] >= 30).all()
    # By segment, every shown row still has enough members.
    seg = search_terms(planted.searches, planted.members, by="occupation", min_size=5)
    assert (seg.trending["members"] >= 5).all()
    assert seg.trending["segment"].nunique() > 1


def test_traditional_and_full_width_queries_count_as_one(planted: rc.Platform) -> None:
    log = planted.searches.copy()
    gaps = log["query"] == PLANTED_GAPS[0]
    log.loc[gaps[gaps].index[:10], "query"] = "低空經濟"  # traditional
    terms = search_terms(log, min_size=30)
    assert PLANTED_GAPS[0] in set(terms.unmet["query"])


def test_bad_input(planted: rc.Platform) -> None:
    with pytest.raises(DataError, match="query"):
        search_terms(planted.searches.drop(columns="query"))
    with pytest.raises(ConfigError, match="period"):
        search_terms(planted.searches, period="D")
    with pytest.raises(ConfigError, match="occupation"):
        search_terms(planted.searches, by="occupation")
    bad = planted.searches.copy()
    bad.loc[3, "query"] = None
    with pytest.raises(DataError, match=r"rows \[3\]"):
        search_terms(bad)


def test_report_section_is_chinese_and_names_the_gaps(planted: rc.Platform) -> None:
    ds = rc.Dataset.from_frames(
        planted.events, courses=planted.courses, members=planted.members, orgs=planted.orgs
    )
    model = rc.Popularity().fit(ds)
    html = render_report(
        model, ds, by=("occupation",), courses=1, min_size=10, searches=planted.searches
    )
    assert "<h2>党员搜索词频</h2>" in html and "搜不到或没人点击的搜索词" in html
    for query in (PLANTED_TREND, *PLANTED_GAPS):
        assert query in html
    # The planted gaps are named among the key findings too.
    findings = html[html.index('<ul class="findings">') : html.index("</ul>")]
    assert "党员常搜却找不到合适课程的" in findings
    assert any(gap in findings for gap in PLANTED_GAPS)
    english = render_report(
        model, ds, by=("occupation",), courses=1, min_size=10, searches=planted.searches,
        lang="en",
    )  # fmt: skip
    assert "<h2>What members search for</h2>" in english and "党员搜索词频" not in english


def test_content_gaps_counts_unmet_searches(planted: rc.Platform) -> None:
    from recommend.insights import content_gaps

    ds = rc.Dataset.from_frames(
        planted.events, courses=planted.courses, members=planted.members, orgs=planted.orgs
    )
    model = rc.ALS(n_factors=8, iterations=3, random_state=0).fit(ds)
    log = planted.searches.copy()
    gaps = content_gaps(model, min_size=10, searches=log)
    assert set(PLANTED_GAPS) <= set(gaps.attrs["unmet_queries"]["query"])
    assert "unmet_searches" in gaps.columns
    assert isinstance(gaps.attrs["unmet_queries"], pd.DataFrame)


def test_report_counts_the_org_s_own_members(planted: rc.Platform, tmp_path) -> None:
    from recommend.insights import build_report

    ds = rc.Dataset.from_frames(
        planted.events, courses=planted.courses, members=planted.members, orgs=planted.orgs
    )
    model = rc.ALS(n_factors=8, iterations=3, random_state=0).fit(ds)
    everyone = build_report(
        model, ds, tmp_path / "all.html", by=("occupation",), min_size=10,
        searches=planted.searches,
    ).read_text(encoding="utf-8")  # fmt: skip
    assert "<h2>党员搜索词频</h2>" in everyone and PLANTED_GAPS[0] in everyone
    # One branch has fewer than 10 of the 30 members who typed a planted gap: hidden.
    branch = planted.members["org_id"].value_counts().index[0]
    one = build_report(
        model, ds, tmp_path / "one.html", org=branch, by=("occupation",), min_size=10,
        searches=planted.searches,
    ).read_text(encoding="utf-8")  # fmt: skip
    assert "<h2>党员搜索词频</h2>" in one
    assert not any(gap in one for gap in PLANTED_GAPS)
