"""Insights: intervals, segment/branch/course portraits, predicted demand, gaps, plots, report.

The truth checks compare what the portraits and the model's demand recover with the segment
tastes the simulator planted (``Truth.segment_channel``, ``segment_topic``, skills, duration
preference, activity), never with numbers written here.
"""

from __future__ import annotations

import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import SAMPLE, no_cjk_font
from scipy.stats import binomtest, pearsonr, spearmanr

import recommend as rc
from recommend.cli import main
from recommend.errors import ConfigError, DataError
from recommend.insights import (
    branch_portrait,
    build_report,
    content_gaps,
    course_portrait,
    mean_interval,
    median_interval,
    predicted_demand,
    render_report,
    segment_portrait,
    top_courses,
    wilson_interval,
)
from recommend.insights.plots import (
    figure_svg,
    plot_activity,
    plot_branch_comparison,
    plot_branch_trend,
    plot_course,
    plot_demand,
    plot_gaps,
    plot_lift,
    use_cjk_font,
)
from recommend.schema import CHANNELS, OCCUPATIONS


@pytest.fixture(scope="module")
def platform(sample_platform: rc.Platform) -> rc.Platform:
    """The shared sample platform (conftest)."""
    return sample_platform


@pytest.fixture(scope="module")
def ds(sample_dataset: rc.Dataset) -> rc.Dataset:
    return sample_dataset


@pytest.fixture(scope="module")
def model(ds: rc.Dataset) -> rc.ALS:
    return rc.ALS(n_factors=32, iterations=10, random_state=0).fit(ds)


def _planted(platform: rc.Platform, weights: np.ndarray) -> pd.DataFrame:
    """The planted segment effect on each topic: channel taste + topic taste + skills +
    duration taste x the topic's mean duration, centred over segments (as lift is)."""
    t = platform.truth
    topic_channel = np.array([CHANNELS.index(c) for c in _topic_channels(platform)])
    seg = t.member_segment
    n_seg, n_topic = t.segment_topic.shape
    skills = np.zeros((n_seg, n_topic))
    has = t.member_skill_topic >= 0
    np.add.at(skills, (seg[has], t.member_skill_topic[has]), 1.0)
    skills = skills / np.bincount(seg, minlength=n_seg)[:, None] * t.skill_weight
    pref = np.bincount(seg, weights=t.member_duration_pref) / np.bincount(seg)
    dur = np.bincount(t.course_topic, weights=t.course_duration_z) / np.bincount(t.course_topic)
    effect = t.segment_channel[:, topic_channel] + t.segment_topic + skills + np.outer(pref, dur)
    effect = effect - (weights[:, None] * effect).sum(axis=0)
    return pd.DataFrame(effect, index=list(OCCUPATIONS), columns=list(t.topic_names))


def _topic_channels(platform: rc.Platform) -> list[str]:
    t = platform.truth
    first = pd.Series(t.course_channel).groupby(t.course_topic).first()
    return [CHANNELS[i] for i in first.reindex(range(len(t.topic_names))).to_numpy()]


def _occupation_weights(platform: rc.Platform) -> np.ndarray:
    counts = platform.members["occupation"].value_counts()
    return (counts / counts.sum()).reindex(list(OCCUPATIONS)).fillna(0).to_numpy()


# ============================================================================ intervals


def test_wilson_matches_reference_and_contains_the_share() -> None:
    k, n = np.array([0, 3, 17, 50]), np.array([10, 10, 40, 50])
    p, lo, hi = wilson_interval(k, n)
    for ki, ni, l_, h in zip(k, n, lo, hi, strict=True):
        ref = binomtest(int(ki), int(ni)).proportion_ci(method="wilson")
        assert l_ == pytest.approx(ref.low, abs=1e-9) and h == pytest.approx(ref.high, abs=1e-9)
    assert np.all((lo <= p) & (p <= hi))
    # More trials, narrower interval.
    _, lo2, hi2 = wilson_interval(k * 10, n * 10)
    assert np.all(hi2 - lo2 < hi - lo)
    assert np.isnan(wilson_interval([0], [0])[0]).all()
    with pytest.raises(ConfigError, match="successes"):
        wilson_interval([5], [3])


def test_mean_and_median_intervals() -> None:
    x = np.arange(1.0, 11.0)
    mean, low, hi = mean_interval(x.sum(), (x**2).sum(), x.size)
    half = 1.959963984540054 * x.std(ddof=1) / np.sqrt(x.size)
    assert mean == pytest.approx(5.5) and hi - mean == pytest.approx(mean - low)
    assert hi - mean == pytest.approx(half)
    # n = 10: the 95% interval of the median runs from the 2nd to the 9th order statistic.
    med, low, high = median_interval(x[::-1])
    assert (med, low, high) == (5.5, 2.0, 9.0)
    assert np.isnan(median_interval([])[0])
    with pytest.raises(ConfigError, match="confidence"):
        median_interval(x, confidence=1.5)


# ============================================================================ segments


def test_segment_portrait_counts_match_the_tables(platform: rc.Platform, ds: rc.Dataset) -> None:
    portrait = segment_portrait(ds, "occupation", min_size=20)
    act = portrait.activity
    mem = platform.members.set_index("member_id")
    ev = platform.events.join(mem["occupation"], on="member_id")
    assert act["members"].to_dict() == mem["occupation"].value_counts().to_dict()
    per_member = (ev.groupby("occupation").size() / mem["occupation"].value_counts()).dropna()
    assert np.allclose(act["events_per_member"], per_member.reindex(act.index))
    recent = ev[ev["timestamp"] > ds.now - pd.Timedelta(days=30)]
    active = recent.groupby("occupation")["member_id"].nunique() / act["members"]
    assert np.allclose(act["active_30d"], active.reindex(act.index))
    pairs = (
        ev.assign(done=ev["event"] == "complete")
        .groupby(["occupation", "member_id", "course_id"])["done"]
        .any()
    )
    rate = pairs.groupby(level=0).mean()
    assert np.allclose(act["completion_rate"], rate.reindex(act.index))
    assert np.all(act["completion_rate_lo"] <= act["completion_rate"])
    # Channel shares of studied (member, course) pairs, and lift against all members.
    pair_rows = ev.drop_duplicates(["member_id", "course_id"]).join(
        platform.courses.set_index("course_id")["category"], on="course_id"
    )
    share = pd.crosstab(pair_rows["occupation"], pair_rows["category"], normalize="index")
    lift = share / pair_rows["category"].value_counts(normalize=True)
    got = portrait.lift("channel")
    assert np.allclose(got.to_numpy(), lift.reindex(index=got.index, columns=got.columns))


def test_small_segments_are_suppressed(ds: rc.Dataset) -> None:
    sizes = ds.members["occupation"].value_counts()
    cut = int(sizes.sort_values().iloc[1]) + 1  # the two smallest fall below
    portrait = segment_portrait(ds, "occupation", min_size=cut)
    small = set(sizes.index[sizes < cut])
    assert set(portrait.suppressed) == small and len(small) == 2
    assert not small & set(portrait.activity.index)
    assert not small & set(portrait.preferences["segment"])
    nothing = segment_portrait(ds, "occupation", min_size=10**6)
    assert nothing.activity.empty and len(nothing.suppressed) == len(sizes)


def test_population_and_combined_attributes(platform: rc.Platform, ds: rc.Dataset) -> None:
    orgs = platform.orgs
    committee = orgs.loc[orgs["kind"] == "committee", "org_id"].iloc[0]
    below, frontier = {committee}, {committee}
    while frontier:
        frontier = set(orgs.loc[orgs["parent_id"].isin(frontier), "org_id"]) - below
        below |= frontier
    inside = platform.members[platform.members["org_id"].isin(below)]
    portrait = segment_portrait(ds, None, members=committee, min_size=1)
    assert portrait.activity.loc["all", "members"] == len(inside)
    both = segment_portrait(ds, ["occupation", "mobile"], min_size=1)
    assert both.activity["members"].sum() == len(platform.members)
    assert "retired / True" in both.activity.index
    bands = segment_portrait(ds, "age_band", min_size=1).activity.index.tolist()
    assert bands[0] == "<30" and bands == sorted(bands, key=lambda b: (b != "<30", b))


def test_segment_errors(ds: rc.Dataset) -> None:
    with pytest.raises(ConfigError, match="no column"):
        segment_portrait(ds, "favourite_colour")
    with pytest.raises(ConfigError, match="min_size"):
        segment_portrait(ds, "occupation", min_size=0)
    with pytest.raises(DataError, match="unknown"):
        segment_portrait(ds, "occupation", members="no-such-org")
    with pytest.raises(DataError, match="not in the members table"):
        segment_portrait(ds, "occupation", members=["m000001", "nobody"])
    bare = rc.Dataset.from_frames(ds.events.drop(columns=["member_idx", "course_idx"]))
    with pytest.raises(ConfigError, match="member attributes"):
        segment_portrait(bare, "occupation")


# ============================================================================ truth


def test_portraits_recover_the_planted_tastes(platform: rc.Platform, ds: rc.Dataset) -> None:
    portrait = segment_portrait(ds, "occupation", min_size=20)
    planted = _planted(platform, _occupation_weights(platform))
    topics = list(platform.truth.topic_names)
    lift = portrait.lift("tag").reindex(columns=topics)
    shown = list(lift.index)
    assert len(shown) >= 5
    observed = np.log(lift.to_numpy())
    expected = planted.loc[shown].to_numpy()
    assert pearsonr(observed.ravel(), expected.ravel())[0] > 0.7
    for segment in shown:  # each segment's favourite topic is among its planted top two
        assert lift.loc[segment].idxmax() in planted.loc[segment].nlargest(2).index
    # Channels: the planted effect of each channel's topics (weighted by their courses).
    t = platform.truth
    topic_courses = np.bincount(t.course_topic, minlength=len(topics)).astype(float)
    topic_channel = pd.Series(_topic_channels(platform), index=topics)
    weighted = planted * topic_courses
    channel = (
        weighted.T.groupby(topic_channel).sum().T
        / pd.Series(topic_courses, index=topics).groupby(topic_channel).sum()
    )
    ch_lift = portrait.lift("channel")[list(CHANNELS)]
    ch_planted = channel.loc[shown, list(CHANNELS)]
    assert pearsonr(np.log(ch_lift.to_numpy()).ravel(), ch_planted.to_numpy().ravel())[0] > 0.7
    for segment in portrait.activity.index[portrait.activity["members"] >= 100]:
        assert ch_lift.loc[segment].idxmax() == ch_planted.loc[segment].idxmax()
    # Long courses: segments that like them (planted duration taste) study more of them.
    pref = pd.Series(t.member_duration_pref).groupby(t.member_segment).mean()
    pref.index = [OCCUPATIONS[i] for i in pref.index]
    long_lift = portrait.lift("duration")[">60min"]
    assert spearmanr(long_lift, pref.reindex(shown))[0] > 0.7
    assert long_lift.idxmax() == pref.reindex(shown).idxmax() == "retired"
    # Activity: the planted activity level orders events per member at the extremes.
    act = pd.Series(t.member_activity).groupby(t.member_segment).mean()
    act.index = [OCCUPATIONS[i] for i in act.index]
    events = portrait.activity["events_per_member"]
    assert events.idxmax() == act.reindex(shown).idxmax()
    assert spearmanr(events, act.reindex(shown))[0] > 0.5


def test_predicted_demand_recovers_the_planted_tastes(platform: rc.Platform, model: rc.ALS) -> None:
    planted = _planted(platform, _occupation_weights(platform))
    demand = predicted_demand(model, "occupation", level="tag")
    topics = list(platform.truth.topic_names)
    lift = demand.pivot(index="segment", columns="value", values="lift").reindex(columns=topics)
    shown = list(lift.index)
    observed = np.log(np.clip(lift.to_numpy(), 1e-3, None))
    assert pearsonr(observed.ravel(), planted.loc[shown].to_numpy().ravel())[0] > 0.6
    for segment in ("retired", "rural", "white_collar", "blue_collar", "civil_servant"):
        assert lift.loc[segment].idxmax() in planted.loc[segment].nlargest(3).index
    channel = predicted_demand(model, "occupation", level="channel")
    ch = channel.pivot(index="segment", columns="value", values="lift")
    t = platform.truth
    assert ch.loc["retired"].idxmax() == CHANNELS[int(np.argmax(t.segment_channel[0]))]
    assert ch.loc["retired"].idxmin() == CHANNELS[int(np.argmin(t.segment_channel[0]))]


def test_demand_shares_and_who_is_left_out(ds: rc.Dataset, model: rc.ALS) -> None:
    demand = predicted_demand(model, "occupation", level="channel", k=10)
    totals = demand.groupby("segment")["demand_share"].sum()
    assert np.allclose(totals, 1.0)  # every course has exactly one channel
    cold = int((ds.interactions.getnnz(axis=1) == 0).sum())
    assert demand.attrs["left_out"] == {"unknown_to_model": 0, "without_history": cold}
    scored = demand.drop_duplicates("segment").set_index("segment")["members"].sum()
    assert scored == ds.n_members - cold
    assert np.all(demand["demand_share_lo"] <= demand["demand_share"])
    retired = predicted_demand(model, None, level="channel", members={"occupation": "retired"})
    assert retired["members"].iloc[0] < scored
    courses = predicted_demand(model, None, level="course", k=5)
    assert courses["demand_share"].sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ConfigError, match="level"):
        predicted_demand(model, level="lecturer")
    with pytest.raises(ConfigError, match="k="):
        predicted_demand(model, k=0)


def test_content_gaps_follow_the_planted_tastes(platform: rc.Platform, model: rc.ALS) -> None:
    # Per course, retired members want the topics the simulator made them like: the gap
    # (demand share / catalogue share) of a topic follows its planted effect for them.
    planted = _planted(platform, _occupation_weights(platform)).loc["retired"]
    gaps = content_gaps(model, level="tag", members={"occupation": "retired"}, min_courses=3)
    topics = gaps.set_index("value").reindex(list(planted.index))
    assert spearmanr(topics["gap"], planted)[0] > 0.6
    favourite = planted.idxmax()
    assert topics.loc[favourite, "gap"] > 1.5 and topics.loc[favourite, "flagged"]
    assert topics.loc[planted.idxmin(), "gap"] < 1.0
    row = topics.loc[favourite]
    assert row["gap"] == pytest.approx(row["demand_share"] / row["catalogue_share"])
    assert row["catalogue_share"] == pytest.approx(row["courses"] / len(platform.courses))
    assert gaps["gap"].is_monotonic_decreasing
    channels = content_gaps(model, level="channel")
    assert channels["catalogue_share"].sum() == pytest.approx(1.0)
    assert channels["demand_share"].sum() == pytest.approx(1.0)
    # No course is that short: every value lacks short courses, an infinite short gap.
    none_short = content_gaps(model, level="channel", short_minutes=0.01)
    assert np.isinf(none_short["short_gap"]).all() and none_short["short_flagged"].all()
    with pytest.raises(ConfigError, match="short_minutes"):
        content_gaps(model, short_minutes=0)


# ============================================================================ branches


def test_branch_portrait_against_the_tables(platform: rc.Platform, ds: rc.Dataset) -> None:
    orgs, mem = platform.orgs, platform.members
    general = orgs.loc[orgs["kind"] == "general_branch", "org_id"].iloc[0]
    portrait = branch_portrait(ds, general, min_size=5)
    summary = portrait.summary
    parent = orgs.set_index("org_id").loc[general, "parent_id"]
    siblings = set(orgs.loc[orgs["parent_id"] == parent, "org_id"])
    children = set(orgs.loc[orgs["parent_id"] == general, "org_id"])
    assert set(summary.index[summary["role"] != "child"]) == siblings
    assert set(summary.index[summary["role"] == "child"]) == children
    assert summary.loc[general, "role"] == "target" and portrait.parent == parent
    members = mem[mem["org_id"].isin(children | {general})]
    assert summary.loc[general, "members"] == len(members)
    studied = platform.events["member_id"].isin(members["member_id"])
    reached = platform.events.loc[studied, "member_id"].nunique() / len(members)
    assert summary.loc[general, "reached"] == pytest.approx(reached)
    # Compulsory completion from the courses' compulsory_for lists, computed independently.
    comp = platform.courses[["course_id", "compulsory_for", "published_at"]].explode(
        "compulsory_for"
    )
    comp = comp[comp["published_at"] <= ds.now]
    pairs = members.merge(comp, left_on="org_id", right_on="compulsory_for")
    done = platform.events[platform.events["event"] == "complete"][["member_id", "course_id"]]
    done = done.drop_duplicates().assign(done=True)
    pairs = pairs.merge(done, on=["member_id", "course_id"], how="left")
    assert summary.loc[general, "compulsory_assigned"] == len(pairs)
    rate = pairs["done"].fillna(False).astype(bool).mean()
    assert summary.loc[general, "compulsory_completion"] == pytest.approx(rate)
    assert portrait.trend.shape[1] == len(summary)
    assert ((portrait.trend.dropna(axis=1) >= 0) & (portrait.trend.dropna(axis=1) <= 1)).all().all()


def test_a_branch_that_stopped_learning_is_flagged(platform: rc.Platform) -> None:
    mem, orgs = platform.members, platform.orgs
    branches = orgs.loc[orgs["kind"] == "branch", ["org_id", "parent_id"]]
    sizes = mem["org_id"].value_counts()
    parents = branches["parent_id"].value_counts()
    candidates = branches[branches["parent_id"].isin(parents.index[parents >= 3])]
    quiet = candidates.assign(n=candidates["org_id"].map(sizes)).sort_values("n").iloc[-1]
    quiet_members = mem.loc[mem["org_id"] == quiet["org_id"], "member_id"]
    ev = platform.events
    now = ev["timestamp"].max()
    cut = ev["member_id"].isin(quiet_members) & (ev["timestamp"] > now - pd.Timedelta(days=30))
    ds = rc.Dataset.from_frames(ev[~cut], courses=platform.courses, members=mem, orgs=orgs, now=now)
    portrait = branch_portrait(ds, quiet["org_id"], min_size=5)
    row = portrait.summary.loc[quiet["org_id"]]
    assert row["active_recent"] == 0.0
    assert row["declining"] and row["behind_peers"] and row["flagging"]
    assert quiet["org_id"] in portrait.flagging.index
    others = portrait.summary.drop(index=quiet["org_id"])
    assert not others["declining"].fillna(False).any()
    tiny = branch_portrait(ds, quiet["org_id"], min_size=10**6)
    assert tiny.summary["suppressed"].all() and tiny.summary["reached"].isna().all()
    assert tiny.trend.isna().all().all()


def test_platform_view_and_errors(platform: rc.Platform, ds: rc.Dataset) -> None:
    portrait = branch_portrait(ds)
    roots = set(platform.orgs.loc[platform.orgs["parent_id"].isna(), "org_id"])
    assert set(portrait.summary.index) == roots and portrait.org is None
    assert portrait.summary["members"].sum() == len(platform.members)
    with pytest.raises(DataError, match="unknown"):
        branch_portrait(ds, "o9999")
    with pytest.raises(ConfigError, match="freq"):
        branch_portrait(ds, freq="fortnightly-ish")
    cyclic = platform.orgs.copy()
    cyclic.loc[0, "parent_id"] = cyclic.loc[cyclic["parent_id"] == cyclic.loc[0, "org_id"]].iloc[0][
        "org_id"
    ]
    bad = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=cyclic
    )
    with pytest.raises(DataError, match="cycle"):
        branch_portrait(bad)


# ============================================================================ courses


def test_course_portrait(platform: rc.Platform, ds: rc.Dataset) -> None:
    top = top_courses(ds, 3)
    ev = platform.events
    counts = ev.groupby("course_id")["member_id"].nunique().sort_values(ascending=False)
    assert top["learners"].tolist() == counts.iloc[:3].tolist()
    course = top["course_id"].iloc[0]
    portrait = course_portrait(ds, course, min_size=20)
    on = ev[ev["course_id"] == course]
    assert portrait.learners == on["member_id"].nunique()
    done = on.loc[on["event"] == "complete", "member_id"].nunique() / portrait.learners
    assert portrait.completion_rate[0] == pytest.approx(done)
    curve = portrait.curve["reached"].to_numpy()
    assert curve[0] == 1.0 and np.all(np.diff(curve) <= 1e-12)
    assert curve[-1] == pytest.approx(done)  # reaching the end = completing
    a, b = portrait.drop_off
    step = dict(zip(portrait.curve["fraction"], curve, strict=True))
    losses = -np.diff(curve)
    assert step[a] - step[b] == pytest.approx(losses.max())
    assert portrait.mix["learners"].sum() == portrait.learners
    assert (portrait.mix.drop(index="(other)", errors="ignore")["learners"] >= 20).all()
    few = course_portrait(ds, course, min_size=portrait.learners + 1)
    assert few.suppressed and few.mix.empty and few.curve.empty
    with pytest.raises(DataError):
        course_portrait(ds, "no-such-course")


# ============================================================================ plots, report


def test_plots_draw(ds: rc.Dataset, model: rc.ALS, tmp_path: Path) -> None:
    portrait = segment_portrait(ds, "occupation")
    branches = branch_portrait(ds, ds.members["org_id"].iloc[0], min_size=5)
    course = course_portrait(ds, top_courses(ds, 1)["course_id"].iloc[0])
    demand = predicted_demand(model, "occupation")
    gaps = content_gaps(model, min_courses=3)
    figures = {
        "activity": plot_activity(portrait, "completion_rate"),
        "lift": plot_lift(portrait, "tag", max_values=8),
        "trend": plot_branch_trend(branches),
        "branches": plot_branch_comparison(branches),
        "course": plot_course(course),
        "demand": plot_demand(demand),
        "gaps": plot_gaps(gaps),
    }
    for name, fig in figures.items():
        out = tmp_path / f"{name}.png"
        fig.savefig(out)
        assert out.stat().st_size > 5_000, name
    heat = figures["lift"].axes[0]
    assert len(heat.get_xticklabels()) == 8
    # Chinese by default, segment values as readers know them, lift scales as 0.5x / 1x / 2x.
    activity = figures["activity"].axes[0]
    assert activity.get_title().startswith("按职业：完成率")
    assert "退休" in [t.get_text() for t in activity.get_xticklabels()]
    colorbar = figures["lift"].axes[1]
    assert {"0.5x", "1x", "2x"} <= {t.get_text() for t in colorbar.get_yticklabels()}
    english = plot_activity(portrait, "completion_rate", lang="en").axes[0]
    assert "completion rate" in english.get_title()
    assert "retired" in [t.get_text() for t in english.get_xticklabels()]
    with pytest.raises(ConfigError, match="columns"):
        plot_activity(portrait, "no_such_metric")


def test_without_a_cjk_font_one_warning_and_no_glyph_flood(
    ds: rc.Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A PNG figure drawn without a CJK font: one logged warning naming the fix, none of
    matplotlib's per-character "Glyph missing" warnings; the SVG keeps the text."""
    portrait = segment_portrait(ds, "occupation")
    with warnings.catch_warnings(record=True) as seen, no_cjk_font():
        warnings.simplefilter("default")  # each distinct warning once, as a script shows them
        caplog.set_level(logging.WARNING, logger="recommend.insights.plots")
        fig = plot_lift(portrait, "channel")
        fig.savefig(tmp_path / "lift.png")
        plot_activity(portrait).savefig(tmp_path / "activity.png")
        svg = figure_svg(fig)
    glyphs = [w for w in seen if "missing from font" in str(w.message)]
    assert glyphs == []
    logged = [r for r in caplog.records if "no CJK font found" in r.getMessage()]
    assert len(logged) == 1 and "fonts-wqy-microhei" in logged[0].getMessage()
    assert "<text" in svg and "频道偏好" in svg and "<path" in svg


def test_a_font_file_can_be_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        use_cjk_font(tmp_path / "nope.ttf")
    (tmp_path / "bad.ttf").write_bytes(b"not a font")
    with pytest.raises(ConfigError, match="is not a font file"):
        use_cjk_font(tmp_path / "bad.ttf")
    with pytest.raises(ConfigError, match="is not installed"):
        use_cjk_font("No Such Family")
    use_cjk_font(None)


def test_report_and_cli(
    platform: rc.Platform, ds: rc.Dataset, model: rc.ALS, tmp_path: Path
) -> None:
    org = platform.orgs.loc[platform.orgs["kind"] == "committee", "org_id"].iloc[0]
    out = build_report(model, ds, tmp_path / "r" / "report.html", org=org, by=("occupation",))
    text = out.read_text(encoding="utf-8")
    headings = re.findall(r"<h2>(.*?)</h2>", text)
    assert headings == [
        "要点", "党员画像", "组织对比", "学得最多的课程", "下一步提供什么课程", "详细数据",
    ]  # fmt: skip
    # Findings first, in plain sentences; the detailed tables last.
    findings = re.search(r'<ul class="findings">(.*?)</ul>', text, re.S)
    assert findings and re.search(r"<li>(退休|白领|蓝领|.+)党员选.+的比例", findings.group(1))
    assert text.index("<table") > text.index("<h2>详细数据</h2>")
    assert "<th>退休</th>" in text or "<td>退休</td>" in text
    assert "retired" not in text and "white_collar" not in text
    assert text.count("<figure><svg") >= 8 and "<img" not in text
    assert "<script" not in text and "http" not in re.sub(r"<svg.*?</svg>", "", text, flags=re.S)
    english = render_report(model, ds, org=org, by=("occupation",), lang="en")
    assert "<h2>Key findings</h2>" in english and "<h2>Member portraits</h2>" in english
    assert not any(m in text for m in platform.members["member_id"].iloc[:200])
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left
    artifact = rc.save(model, tmp_path / "model")
    html_out = tmp_path / "cli.html"
    code = main(
        ["report", "--model", str(artifact), "--data", str(SAMPLE), "--out", str(html_out),
         "--org", org, "--by", "mobile", "--min-size", "30"]
    )  # fmt: skip
    assert code == 0 and "<h3>按流动党员</h3>" in html_out.read_text(encoding="utf-8")
    assert main(
        ["report", "--model", str(artifact), "--data", str(SAMPLE), "--out", str(html_out),
         "--org", org, "--by", "mobile", "--lang", "en"]
    ) == 0  # fmt: skip
    assert "<h3>By mobile</h3>" in html_out.read_text(encoding="utf-8")
    assert main(["report", "--model", str(artifact), "--out", str(html_out), "--data",
                 str(SAMPLE), "--org", "o9999"]) == 2  # fmt: skip


# ------------------------------------------------------------------ disclosure control


def _frame(
    rows: list[tuple], columns: tuple[str, ...] = ("member_id", "course_id", "event", "timestamp")
) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=list(columns))
    out["timestamp"] = pd.to_datetime(out["timestamp"])
    return out


def _parent_with_a_lone_child() -> rc.Dataset:
    """Org P with child A (20 members, all active lately) and child B (1 member, long ago)."""
    orgs = pd.DataFrame(
        {
            "org_id": ["P", "A", "B"],
            "parent_id": [None, "P", "P"],
            "kind": ["committee", "branch", "branch"],
        }
    )
    ids = [f"m{i:02d}" for i in range(21)]
    members = pd.DataFrame({"member_id": ids, "org_id": ["A"] * 20 + ["B"], "occupation": "x"})
    events = _frame([(m, "c1", "view", "2025-03-01" if m != "m20" else "2024-06-01") for m in ids])
    return rc.Dataset.from_frames(events, members=members, orgs=orgs)


def test_complementary_suppression_hides_the_next_smallest() -> None:
    from recommend.insights.stats import complementary_suppression

    sizes = np.array([20, 30, 1, 25])
    hidden, hide_total = complementary_suppression(sizes, sizes < 20, 76, 20)
    assert hidden.tolist() == [True, False, True, False] and not hide_total
    assert 76 - sizes[~hidden].sum() >= 20
    # a remainder already large enough (or zero) leaves the shown groups alone
    assert complementary_suppression(sizes, sizes < 20, 100, 20)[0].tolist() == [
        False,
        False,
        True,
        False,
    ]
    assert complementary_suppression(np.array([20, 30]), [False, False], 50, 20)[0].tolist() == [
        False,
        False,
    ]
    # every group hidden and still a small remainder: the whole must be hidden too
    hidden, hide_total = complementary_suppression(np.array([3]), [True], 5, 20)
    assert hidden.tolist() == [True] and hide_total


def test_a_hidden_sub_org_cannot_be_recovered_from_its_parent() -> None:
    ds = _parent_with_a_lone_child()
    summary = branch_portrait(ds, "P", min_size=20).summary
    # P's figures minus the shown sub-orgs' would give B's away: A is hidden as well
    shown = ~summary.loc[["A", "B"], "suppressed"].to_numpy(bool)
    assert not shown.any() and summary.loc[["A", "B"], "active_recent"].isna().all()
    assert summary.loc["P", "members"] - summary.loc[["A", "B"], "members"][shown].sum() >= 20
    assert summary.loc["P", "active_recent"] > 0  # the parent itself stays shown
    assert summary.loc[["P", "A", "B"], "suppression"].tolist() == ["", "complementary", "small"]
    # the same family seen from a sub-org hides the same orgs
    side = branch_portrait(ds, "A", min_size=20).summary
    assert side["suppressed"].to_numpy(bool).all() and side["reached"].isna().all()


def test_a_hidden_segment_cannot_be_recovered_from_the_population() -> None:
    ids = [f"m{i:02d}" for i in range(41)]
    members = pd.DataFrame({"member_id": ids, "occupation": ["a"] * 20 + ["b"] * 20 + ["c"]})
    events = _frame([(m, "c1", "checkin", "2025-01-01") for m in ids])
    ds = rc.Dataset.from_frames(events, members=members)
    portrait = segment_portrait(ds, "occupation", min_size=20)
    assert set(portrait.suppressed) == {"a", "c"}  # "c" is small, "a" the next-smallest
    assert 41 - portrait.activity["members"].sum() >= 20
    assert segment_portrait(ds, "occupation", min_size=1).activity.shape[0] == 3


def test_course_mix_other_is_never_a_small_group() -> None:
    ids = [f"m{i:02d}" for i in range(41)]
    members = pd.DataFrame({"member_id": ids, "occupation": ["a"] * 20 + ["b"] * 20 + ["c"]})
    courses = pd.DataFrame({"course_id": ["c1"], "duration_seconds": [600.0]})
    events = _frame([(m, "c1", "view", "2025-01-01") for m in ids])
    ds = rc.Dataset.from_frames(events, members=members, courses=courses)
    mix = course_portrait(ds, "c1", min_size=20).mix
    assert mix.loc["(other)", "learners"] >= 20 and mix["learners"].sum() == 41
    assert (mix["learners"] >= 20).all() and "c" not in mix.index


def test_top_courses_hide_a_small_population() -> None:
    ids = [f"m{i:02d}" for i in range(21)]
    members = pd.DataFrame({"member_id": ids, "occupation": "x"})
    events = _frame(
        [(m, "c1", "view", "2025-01-01") for m in ids] + [("m20", "c2", "view", "2025-01-02")]
    )
    ds = rc.Dataset.from_frames(events, members=members)
    lone = top_courses(ds, 5, members=["m20"], min_size=20)
    assert lone.empty and "fewer than 20" in lone.attrs["hidden"]
    assert list(lone.columns) == ["course_id", "learners", "completed"]
    assert top_courses(ds, 5, members=["m20"], min_size=1)["course_id"].tolist() == ["c1", "c2"]
    everyone = top_courses(ds, 5, min_size=20)
    assert everyone["learners"].tolist() == [21, 1] and "hidden" not in everyone.attrs
    with pytest.raises(ConfigError, match="min_size"):
        top_courses(ds, 5, min_size=0)


def test_content_gaps_hide_a_small_group(ds: rc.Dataset, model: rc.ALS) -> None:
    few = list(ds.member_ids.external_ids[:3])
    gaps = content_gaps(model, level="channel", members=few, min_size=20)
    assert "hidden" in gaps.attrs and gaps["demand_share"].isna().all()
    assert not gaps["flagged"].any() and not gaps["short_flagged"].any()
    shown = content_gaps(model, level="channel", members=few, min_size=1)
    assert "hidden" not in shown.attrs and shown["demand_share"].notna().all()


def test_report_hides_courses_and_demand_of_a_small_org(
    platform: rc.Platform, model: rc.ALS
) -> None:
    members = platform.members.copy()
    parent = members.loc[1, "org_id"]
    members.loc[1, "org_id"] = "oTINY"
    tiny = pd.DataFrame({"org_id": ["oTINY"], "parent_id": [parent], "kind": ["branch"]})
    orgs = pd.concat([platform.orgs, tiny], ignore_index=True)
    ds = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=members, orgs=orgs
    )
    text = render_report(model, ds, org="oTINY", by=("occupation",), courses=3, lang="en")
    tail = text.split("<h2>Courses most studied</h2>")[1].split("<h2>Details</h2>")[0]
    assert tail.count("Hidden: fewer than 20 members in oTINY") == 3
    assert "<svg" not in tail and "<table" not in tail
    assert "topic" not in text.split("<h2>Details</h2>")[1]  # no table of topics either
    studied = platform.events.loc[
        platform.events["member_id"] == members.loc[1, "member_id"], "course_id"
    ]
    titles = platform.courses.set_index("course_id").loc[studied.unique(), "title"]
    assert not any(str(t) in text for t in titles)


def test_checkins_after_now_do_not_break_regularity() -> None:
    members = pd.DataFrame({"member_id": ["a", "b"], "occupation": ["x", "y"]})
    for later in ("2025-01-10", "2025-02-20"):  # next week, and weeks past now
        events = _frame(
            [
                ("a", "c1", "checkin", "2025-01-01"),
                ("a", "c1", "checkin", later),
                ("b", "c1", "view", "2025-01-01"),
            ]
        )
        # Events after a given now are refused unless kept on purpose.
        ds = rc.Dataset.from_frames(events, members=members, now="2025-01-03", on_future="keep")
        activity = segment_portrait(ds, "occupation", min_size=1).activity
        assert activity.loc["x", "checkin_regularity"] == 1.0  # one week up to now, checked in
        assert activity.loc["y", "checkin_regularity"] == 0.0


def test_learner_figures_need_min_size_learners() -> None:
    ids = [f"m{i:02d}" for i in range(40)]
    members = pd.DataFrame({"member_id": ids, "occupation": ["busy"] * 20 + ["quiet"] * 20})
    rows = [(m, "c1", "complete", "2025-01-01", 300.0) for m in ids[:21]]  # one quiet learner
    events = _frame(rows, ("member_id", "course_id", "event", "timestamp", "watch_seconds"))
    ds = rc.Dataset.from_frames(events, members=members)
    activity = segment_portrait(ds, "occupation", min_size=20).activity
    assert activity.loc["quiet", "learners"] == 1 and activity.loc["quiet", "members"] == 20
    assert np.isnan(
        activity.loc["quiet", ["completion_rate", "median_watch_minutes"]].astype(float)
    ).all()
    assert activity.loc["busy", "completion_rate"] == 1.0
    assert activity.loc["busy", "median_watch_minutes"] == 5.0
