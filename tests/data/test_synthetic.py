"""Tests of the seeded platform simulator (``recommend.data.synthetic``), on the small preset."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommend.data.synthetic import (
    PRESETS,
    TOPICS,
    Platform,
    SynthConfig,
    Truth,
    read_platform,
    synthesize,
)
from recommend.data.validation import check_references, personal_columns, validate
from recommend.errors import ConfigError, DataError
from recommend.schema import (
    CHANNELS,
    EVENT_TYPES,
    OCCUPATIONS,
    ORG_KINDS,
    SOURCES,
    TABLES,
    Columns,
)

C = Columns
FILES = (
    "events.parquet",
    "courses.parquet",
    "members.parquet",
    "orgs.parquet",
    "searches.parquet",
    "lecturers.parquet",
    "truth.npz",
    "meta.json",
)


@pytest.fixture(scope="module")
def platform(small_platform: Platform) -> Platform:
    """The shared small platform (conftest): ``synthesize("small", seed=0)``."""
    return small_platform


@pytest.fixture(scope="module")
def events(platform: Platform) -> pd.DataFrame:
    """Events joined with course and member attributes."""
    courses = platform.courses[[C.COURSE, C.CATEGORY, C.DURATION, C.PUBLISHED_AT, C.SOURCE]]
    courses = courses.rename(columns={C.ORG: "course_org"})
    members = platform.members[[C.MEMBER, C.ORG, C.OCCUPATION, C.BIRTH_YEAR]]
    return platform.events.merge(courses, on=C.COURSE, how="left").merge(
        members, on=C.MEMBER, how="left"
    )


def _watched(events: pd.DataFrame) -> pd.DataFrame:
    """Seconds watched per (member, course): the maximum cumulative watch of its events."""
    keys = [C.MEMBER, C.COURSE, C.CATEGORY, C.DURATION, C.OCCUPATION, C.BIRTH_YEAR]
    return events.groupby(keys, as_index=False)[C.WATCH_SECONDS].max()


# ---- determinism and files ------------------------------------------------------------------


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    synthesize("small", seed=3).write(tmp_path / "a")
    synthesize("small", seed=3).write(tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_gives_different_data(tmp_path: Path) -> None:
    synthesize("small", seed=3).write(tmp_path / "a")
    synthesize("small", seed=4).write(tmp_path / "b")
    for name in ("events.parquet", "courses.parquet", "members.parquet", "truth.npz"):
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_write_read_round_trip(platform: Platform, tmp_path: Path) -> None:
    out = platform.write(tmp_path / "platform")
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    back = read_platform(out)
    for name, frame in platform.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], frame, check_exact=True)
    assert back.truth == platform.truth
    assert back.config == platform.config
    assert back.seed == platform.seed
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    assert meta["counts"]["events"] == len(platform.events)
    with np.load(out / "truth.npz", allow_pickle=False) as npz:
        assert set(npz.files) == {f.name for f in dataclasses.fields(Truth)}


def test_write_into_existing_directory_keeps_other_files(
    platform: Platform, tmp_path: Path
) -> None:
    target = tmp_path / "sample"
    target.mkdir()
    (target / "README.md").write_text("keep me", encoding="utf-8")
    (target / "events.parquet").write_bytes(b"stale")
    platform.write(target)
    assert (target / "README.md").read_text(encoding="utf-8") == "keep me"
    assert len(read_platform(target).events) == len(platform.events)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left


def test_read_platform_detects_tampering(platform: Platform, tmp_path: Path) -> None:
    out = platform.write(tmp_path / "platform")
    file = out / "events.parquet"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(DataError, match="checksum"):
        read_platform(out)
    with pytest.raises(DataError, match=r"meta\.json"):
        read_platform(tmp_path / "nowhere")


# ---- configuration --------------------------------------------------------------------------


def test_presets_and_config_errors() -> None:
    assert {"small", "sample", "city"} <= set(PRESETS)
    assert PRESETS["city"].n_members == 100_000 and PRESETS["city"].n_courses == 10_000
    with pytest.raises(ConfigError, match="unknown preset"):
        synthesize("huge")
    with pytest.raises(ConfigError, match="ugc_share"):
        SynthConfig(ugc_share=1.5)
    with pytest.raises(ConfigError, match="n_members"):
        SynthConfig(n_members=0)
    with pytest.raises(ConfigError, match="start"):
        SynthConfig(start="yesterday")
    with pytest.raises(ConfigError, match="seed"):
        synthesize("small", seed=-1)


def test_config_controls_size() -> None:
    cfg = dataclasses.replace(PRESETS["small"], n_members=150, n_courses=60, days=90)
    p = synthesize(cfg, seed=1)
    assert len(p.members) == 150 and len(p.courses) == 60
    start, end = p.period
    assert (end - start).days == 90
    assert p.events[C.TIMESTAMP].between(start, end, inclusive="left").all()


def test_vocabulary_terms_are_unique_and_rich() -> None:
    terms = [t for _, _, ts in TOPICS for t in ts]
    assert len(terms) == len(set(terms))
    for channel in CHANNELS:
        n = sum(len(ts) for ch, _, ts in TOPICS if ch == channel)
        assert 30 <= n <= 60, channel


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n_members=st.integers(1, 80),
    n_courses=st.integers(20, 60),
    days=st.integers(30, 120),
    ugc_share=st.floats(0.0, 1.0),
    dormant_share=st.floats(0.0, 1.0),
    searches_per_member=st.sampled_from([0.0, 2.0]),
    seed=st.integers(0, 2**32 - 1),
)
def test_invariants_hold_for_any_config(
    tmp_path_factory: pytest.TempPathFactory,
    n_members: int,
    n_courses: int,
    days: int,
    ugc_share: float,
    dormant_share: float,
    searches_per_member: float,
    seed: int,
) -> None:
    cfg = SynthConfig(
        n_members=n_members,
        n_courses=n_courses,
        days=days,
        ugc_share=ugc_share,
        dormant_share=dormant_share,
        searches_per_member=searches_per_member,
    )
    p = synthesize(cfg, seed=seed)
    assert len(p.members) == n_members and len(p.courses) == n_courses
    ev = p.events.merge(p.courses, on=C.COURSE, how="left")
    start, end = p.period
    assert ev[C.TIMESTAMP].between(start, end, inclusive="left").all()
    assert (ev[C.TIMESTAMP] > ev[C.PUBLISHED_AT]).all()
    assert (ev[C.WATCH_SECONDS] <= ev[C.DURATION]).all() and (ev[C.WATCH_SECONDS] >= 0).all()
    assert set(p.events[C.MEMBER]) <= set(p.members[C.MEMBER])
    out = p.write(tmp_path_factory.mktemp("platform") / "p")
    back = read_platform(out)
    for name, frame in p.tables().items():
        pd.testing.assert_frame_equal(back.tables()[name], frame)


# ---- schema ---------------------------------------------------------------------------------


def test_tables_pass_validation(platform: Platform) -> None:
    for name in ("events", "courses", "members", "orgs", "searches"):
        frame = platform.tables()[name]
        assert not personal_columns(frame)
        assert set(frame.columns) <= set(TABLES[name].columns), name
        cleaned = validate(name, frame)
        assert len(cleaned) == len(frame), name
    _, report = check_references(
        platform.events, courses=platform.courses, members=platform.members
    )
    assert report.dropped == 0


def test_dtypes(platform: Platform) -> None:
    for name, frame in platform.tables().items():
        for column in frame.columns:
            dtype = frame[column].dtype
            if column in (C.TIMESTAMP, C.PUBLISHED_AT, C.JOINED_AT):
                assert dtype == np.dtype("datetime64[ns]"), (name, column)
            elif column in (C.TAGS, C.COMPULSORY_FOR, C.SKILLS, C.SHOWN, C.CLICKED):
                values = frame[column]
                assert values.map(lambda v: isinstance(v, list)).all(), (name, column)
                assert all(isinstance(s, str) for v in values for s in v), (name, column)
            elif column in (C.WATCH_SECONDS, C.DURATION):
                assert dtype == np.float64, (name, column)
            elif column == C.BIRTH_YEAR:
                assert dtype == np.int64
            elif column == C.MOBILE:
                assert dtype == np.bool_
            else:
                assert pd.api.types.is_string_dtype(dtype), (name, column)


def test_ids_are_unique_and_well_formed(platform: Platform) -> None:
    for frame, column, pattern in (
        (platform.members, C.MEMBER, r"m\d{6}"),
        (platform.courses, C.COURSE, r"c\d{5}"),
        (platform.orgs, C.ORG, r"o\d{4}"),
        (platform.lecturers, C.LECTURER, r"l\d{4}"),
    ):
        ids = frame[column]
        assert ids.notna().all() and ids.is_unique, column
        assert ids.str.fullmatch(pattern).all(), column
        assert ids.is_monotonic_increasing, column
    truth = platform.truth
    assert (truth.member_ids == platform.members[C.MEMBER].to_numpy()).all()
    assert (truth.course_ids == platform.courses[C.COURSE].to_numpy()).all()


def test_categorical_values(platform: Platform) -> None:
    assert set(platform.events[C.EVENT]) <= set(EVENT_TYPES)
    expected = {"view", "progress", "complete", "like", "favorite", "checkin", "search_click"}
    assert expected <= set(platform.events[C.EVENT])
    assert set(platform.courses[C.CATEGORY]) == set(CHANNELS)
    assert set(platform.courses[C.SOURCE]) == set(SOURCES)
    assert set(platform.members[C.OCCUPATION]) <= set(OCCUPATIONS)
    assert len(set(platform.members[C.OCCUPATION])) >= 5
    assert set(platform.orgs[C.ORG_KIND]) == set(ORG_KINDS)
    assert set(platform.members[C.GENDER]) == {"male", "female"}


def test_member_attributes_are_plausible(platform: Platform) -> None:
    members = platform.members
    start, _ = platform.period
    age = start.year - members[C.BIRTH_YEAR]
    assert age.between(18, 95).all()
    retired = members[C.OCCUPATION] == "retired"
    assert age[retired].min() >= 55 and age[retired].mean() > age[~retired].mean() + 10
    assert (members[C.JOINED_AT] < start).all()
    assert (members[C.JOINED_AT].dt.year - members[C.BIRTH_YEAR] >= 17).all()
    assert 0 < members[C.MOBILE].mean() < 0.3
    # Mobile members live away from their branch's district; the others mostly in it.
    branch_district = members[C.ORG].map(platform.orgs.set_index(C.ORG)[C.DISTRICT])
    same = (members[C.DISTRICT] == branch_district).to_numpy()
    mobile = members[C.MOBILE].to_numpy()
    assert not same[mobile].any() and same[~mobile].all()


def test_course_attributes(platform: Platform) -> None:
    courses = platform.courses
    minutes = courses[C.DURATION] / 60
    assert minutes.min() >= 3 and minutes.max() <= 90
    assert minutes.min() < 8 and minutes.max() > 45  # micro-lessons and long lectures
    assert courses[C.TITLE].str.len().gt(2).all() and courses[C.DESCRIPTION].str.len().gt(10).all()
    # Titles and tags share terms, so text search has signal.
    assert courses.apply(lambda r: r[C.TAGS][1] in r[C.TITLE], axis=1).mean() > 0.9
    assert courses[C.PUBLISHED_AT].is_monotonic_increasing
    ugc = courses[C.SOURCE] == "ugc"
    assert courses.loc[ugc, C.ORG].notna().all() and courses.loc[ugc, C.LECTURER].isna().all()
    assert courses.loc[~ugc, C.ORG].isna().all() and courses.loc[~ugc, C.LECTURER].notna().all()
    start, _ = platform.period
    # UGC arrives over the period (cold), official courses are mostly a back catalogue.
    assert (courses.loc[ugc, C.PUBLISHED_AT] >= start).mean() > 0.5
    assert (courses.loc[~ugc, C.PUBLISHED_AT] < start).mean() > 0.5


# ---- integrity ------------------------------------------------------------------------------


def test_referential_integrity(platform: Platform) -> None:
    members = set(platform.members[C.MEMBER])
    courses = set(platform.courses[C.COURSE])
    orgs = platform.orgs.set_index(C.ORG)
    branches = set(orgs.index[orgs[C.ORG_KIND] == "branch"])
    assert set(platform.events[C.MEMBER]) <= members
    assert set(platform.events[C.COURSE]) <= courses
    assert set(platform.searches[C.MEMBER]) <= members
    assert set(platform.members[C.ORG]) <= branches
    assert set(platform.courses[C.ORG].dropna()) <= branches
    assert set(platform.courses[C.LECTURER].dropna()) <= set(platform.lecturers[C.LECTURER])
    for ids in platform.courses[C.COMPULSORY_FOR]:
        assert set(ids) <= branches and len(ids) == len(set(ids))
    for shown, clicked in zip(
        platform.searches[C.SHOWN], platform.searches[C.CLICKED], strict=True
    ):
        assert set(shown) <= courses and len(shown) == len(set(shown))
        assert [c for c in shown if c in set(clicked)] == clicked  # clicks in shown order


def test_org_tree_nests(platform: Platform) -> None:
    orgs = platform.orgs.set_index(C.ORG)
    kind = orgs[C.ORG_KIND]
    parent_kind = orgs[C.PARENT].map(kind)
    assert orgs.loc[kind == "committee", C.PARENT].isna().all()
    assert (parent_kind[kind == "general_branch"] == "committee").all()
    assert parent_kind[kind == "branch"].isin(["general_branch", "committee"]).all()
    assert (parent_kind[kind == "branch"] == "general_branch").any()
    # Every general branch has branches under it.
    assert set(orgs.index[kind == "general_branch"]) <= set(orgs[C.PARENT].dropna())


def test_timestamps_respect_publication_and_period(
    platform: Platform, events: pd.DataFrame
) -> None:
    start, end = platform.period
    assert events[C.TIMESTAMP].between(start, end, inclusive="left").all()
    assert (events[C.TIMESTAMP] > events[C.PUBLISHED_AT]).all()
    searches = platform.searches.explode(C.SHOWN).dropna(subset=[C.SHOWN])
    published = searches[C.SHOWN].map(platform.courses.set_index(C.COURSE)[C.PUBLISHED_AT])
    assert (published <= searches[C.TIMESTAMP]).all()
    assert platform.searches[C.TIMESTAMP].between(start, end, inclusive="left").all()


def test_watch_seconds_bounded(events: pd.DataFrame) -> None:
    watch = events[C.WATCH_SECONDS]
    assert np.isfinite(watch).all() and (watch >= 0).all()
    assert (watch <= events[C.DURATION]).all()
    complete = events[C.EVENT] == "complete"
    assert (watch[complete] == events.loc[complete, C.DURATION]).all()
    assert (watch[events[C.EVENT] == "view"] == 0).all()


def test_funnel_order(platform: Platform) -> None:
    ev = platform.events
    first = ev.groupby([C.MEMBER, C.COURSE, C.EVENT])[C.TIMESTAMP].min().unstack(C.EVENT)
    for later in ("progress", "complete", "like", "checkin"):
        has = first[later].notna()
        assert has.any(), later
        assert (first.loc[has, "view"] < first.loc[has, later]).all(), later
    funnel = ev[C.EVENT].value_counts()
    assert funnel["view"] > funnel["progress"] > funnel["complete"] > funnel["like"]
    # Events are sorted by member, then time.
    assert ev[C.MEMBER].is_monotonic_increasing
    assert (ev.groupby(C.MEMBER)[C.TIMESTAMP].diff().dropna() >= pd.Timedelta(0)).all()


# ---- planted structure ----------------------------------------------------------------------


def test_activity_levels_vary(platform: Platform) -> None:
    per_member = platform.events.groupby(C.MEMBER).size()
    per_member = per_member.reindex(platform.members[C.MEMBER], fill_value=0)
    assert (per_member == 0).mean() > 0.05  # pocket members
    assert per_member.quantile(0.95) > 2 * per_member.median()  # heavy learners
    assert per_member.max() > 5 * per_member.median()


def test_segment_tastes_are_visible(events: pd.DataFrame) -> None:
    watched = _watched(events)
    start_year = events[C.TIMESTAMP].min().year
    retired = watched[watched[C.OCCUPATION] == "retired"]
    young_white = watched[
        (watched[C.OCCUPATION] == "white_collar") & (start_year - watched[C.BIRTH_YEAR] < 40)
    ]

    def share(frame: pd.DataFrame, mask: pd.Series) -> float:
        return frame.loc[mask, C.WATCH_SECONDS].sum() / frame[C.WATCH_SECONDS].sum()

    theory, skills = "理论学习", "技能培训"
    assert share(retired, retired[C.CATEGORY] == theory) > 3 * share(
        young_white, young_white[C.CATEGORY] == theory
    )
    assert share(young_white, young_white[C.CATEGORY] == skills) > share(
        retired, retired[C.CATEGORY] == skills
    )
    assert (young_white[C.DURATION] <= 600).mean() > 2 * (retired[C.DURATION] <= 600).mean()


def test_commuters_watch_short_courses(platform: Platform, events: pd.DataFrame) -> None:
    truth = platform.truth
    commuter = pd.Series(truth.member_commuter, index=truth.member_ids)
    watched = _watched(events)
    is_commuter = watched[C.MEMBER].map(commuter).to_numpy(dtype=bool)
    short = (watched[C.DURATION] <= 600).to_numpy()
    assert short[is_commuter].mean() > 1.2 * short[~is_commuter].mean()


def test_rural_members_study_agriculture(platform: Platform) -> None:
    agriculture = platform.courses[C.TAGS].map(lambda tags: tags[0] == "农业技术")
    agri_ids = set(platform.courses.loc[agriculture, C.COURSE])
    views = platform.events[platform.events[C.EVENT] == "view"]
    occupation = views[C.MEMBER].map(platform.members.set_index(C.MEMBER)[C.OCCUPATION])
    is_agri = views[C.COURSE].isin(agri_ids)
    rural = occupation == "rural"
    assert rural.any()
    assert is_agri[rural].mean() > 2 * is_agri[~rural].mean()


def test_popularity_is_heavy_tailed(platform: Platform) -> None:
    views = platform.events.loc[platform.events[C.EVENT] == "view", C.COURSE].value_counts()
    views = views.reindex(platform.courses[C.COURSE], fill_value=0).sort_values(ascending=False)
    top_tenth = views.iloc[: len(views) // 10].sum() / views.sum()
    assert top_tenth > 0.3
    assert views.iloc[0] > 5 * views.median()


def test_compulsory_courses_are_completed_by_their_branches(platform: Platform) -> None:
    assigned = platform.courses[[C.COURSE, C.COMPULSORY_FOR]].explode(C.COMPULSORY_FOR)
    assigned = assigned.dropna().rename(columns={C.COMPULSORY_FOR: C.ORG})
    assert assigned.groupby(C.ORG).size().min() >= 2  # a few per branch
    active = platform.truth.member_activity > 0.2
    members = platform.members.loc[active, [C.MEMBER, C.ORG]]
    due = members.merge(assigned, on=C.ORG)
    done = platform.events.loc[platform.events[C.EVENT] == "complete", [C.MEMBER, C.COURSE]]
    done = set(map(tuple, done.drop_duplicates().to_numpy()))
    rate_due = np.mean([(m, c) in done for m, c in due[[C.MEMBER, C.COURSE]].to_numpy()])
    assert rate_due > 0.6
    # Members of other branches complete those courses far less often.
    other = members.merge(assigned[[C.COURSE]].drop_duplicates(), how="cross")
    other = other.merge(due, how="left", indicator=True)
    other = other[other["_merge"] == "left_only"]
    rate_other = np.mean([(m, c) in done for m, c in other[[C.MEMBER, C.COURSE]].to_numpy()])
    assert rate_due > 3 * rate_other


def test_ugc_is_consumed_locally() -> None:
    # Enough branches that a same-branch match is rare by chance.
    cfg = dataclasses.replace(PRESETS["small"], members_per_branch=10, ugc_share=0.4)
    platform = synthesize(cfg, seed=0)
    courses = platform.courses.set_index(C.COURSE)
    views = platform.events[platform.events[C.EVENT] == "view"]
    ugc_views = views[views[C.COURSE].map(courses[C.SOURCE]) == "ugc"]
    assert len(ugc_views) > 100
    branch = ugc_views[C.MEMBER].map(platform.members.set_index(C.MEMBER)[C.ORG])
    same_branch = (branch == ugc_views[C.COURSE].map(courses[C.ORG])).mean()
    # Baseline: the same viewers watching a UGC course drawn at random.
    uploads = courses.loc[courses[C.SOURCE] == "ugc", C.ORG].value_counts(normalize=True)
    chance = branch.map(uploads).fillna(0.0).mean()
    assert same_branch > 2 * chance


def test_truth_is_recoverable_from_behaviour(platform: Platform) -> None:
    truth = platform.truth
    views = platform.events.loc[platform.events[C.EVENT] == "view", [C.MEMBER, C.COURSE]]
    views = views.drop_duplicates()
    m = truth.member_index(views[C.MEMBER])
    c = truth.course_index(views[C.COURSE])
    k = 10
    top = truth.top_n(k)
    in_top = (top[m] == c[:, None]).any(axis=1).mean()
    assert in_top > 3 * k / truth.n_courses
    # The utility of what members chose beats that of random courses for the same members.
    rng = np.random.default_rng(0)
    random_c = rng.integers(0, truth.n_courses, m.size)
    assert truth.pair_utility(m, c).mean() > truth.pair_utility(m, random_c).mean() + 1.0


def test_search_clicks_show_position_bias(platform: Platform) -> None:
    s = platform.searches
    lengths = s[C.SHOWN].map(len)
    assert lengths.between(1, 20).all() and lengths.max() >= 10
    rows = [
        (pos, course in set(clicked))
        for shown, clicked in zip(s[C.SHOWN], s[C.CLICKED], strict=True)
        for pos, course in enumerate(shown)
    ]
    by_pos = pd.DataFrame(rows, columns=["pos", "clicked"]).groupby("pos")["clicked"].mean()
    assert by_pos.loc[0:2].mean() > 2 * by_pos.loc[7:].mean()
    assert 0 < s[C.CLICKED].map(len).mean() < 5
    # Clicks become search_click events.
    clicks = platform.events[platform.events[C.EVENT] == "search_click"]
    assert len(clicks) == s[C.CLICKED].map(len).sum()


def test_search_results_match_the_query(platform: Platform) -> None:
    courses = platform.courses.set_index(C.COURSE)
    s = platform.searches[platform.searches[C.SHOWN].map(len) > 0]
    keyword = s[C.QUERY].str.split(" ").str[0]
    first = s[C.SHOWN].str[0]
    text = first.map(courses[C.TITLE]) + "|" + first.map(courses[C.TAGS]).map("|".join)
    hits = [kw in t for kw, t in zip(keyword, text, strict=True)]
    assert np.mean(hits) > 0.8
    assert s[C.QUERY].str.len().between(2, 20).all()


# ---- truth API ------------------------------------------------------------------------------


def test_truth_utility_block_and_pairs_agree(platform: Platform) -> None:
    truth = platform.truth
    members = np.array([0, 5, 17, truth.n_members - 1])
    block = truth.utility(members)
    assert block.shape == (4, truth.n_courses) and block.dtype == np.float32
    courses = np.array([3, 1, 2])
    sub = truth.utility(members, courses)
    np.testing.assert_allclose(sub, block[:, courses], rtol=1e-5, atol=1e-5)
    m, c = np.meshgrid(members, np.arange(truth.n_courses), indexing="ij")
    pairs = truth.pair_utility(m.ravel(), c.ravel()).reshape(block.shape)
    np.testing.assert_allclose(pairs, block, rtol=1e-4, atol=1e-4)


def test_truth_top_n(platform: Platform) -> None:
    truth = platform.truth
    members = np.arange(0, truth.n_members, 7)
    top = truth.top_n(5, members)
    scores = truth.utility(members)
    expected = np.sort(scores, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(np.take_along_axis(scores, top, axis=1), expected)
    recs = truth.recommendations(3, platform.members[C.MEMBER].iloc[:4])
    assert list(recs.columns) == [C.MEMBER, C.COURSE, C.SCORE, C.RANK]
    assert len(recs) == 12 and recs[C.RANK].tolist() == [1, 2, 3] * 4
    assert (recs.groupby(C.MEMBER)[C.SCORE].diff().dropna() <= 0).all()


def test_truth_rejects_bad_input(platform: Platform) -> None:
    truth = platform.truth
    with pytest.raises(DataError, match="unknown member_id"):
        truth.member_index(["m999999"])
    with pytest.raises(DataError, match="out of range"):
        truth.utility(np.array([truth.n_members]))
    with pytest.raises(DataError, match="shape"):
        truth.pair_utility(np.array([0, 1]), np.array([0]))
