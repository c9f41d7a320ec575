"""Red search: the BM25 index, personalised ranking, the learned blend, saving, the CLI."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import events_frame

import recommend as rc
from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.search import (
    MAX_QUERY_CHARS,
    PREFERENCE_ONLY,
    SEARCH_COLUMNS,
    TEXT_ONLY,
    BlendWeights,
    SearchIndex,
    build_index,
    evaluate_search,
    fit_blend,
    rank_candidates,
    search,
    standard_methods,
)
from recommend.search.blend import _pairs, log2_examination
from recommend.search.index import words_of
from recommend.text import tokenize


def _windows(platform: rc.Platform) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Where the search log is split: fit the blend on the first window, test on the rest."""
    lo, hi = platform.period
    return lo + (hi - lo) * 0.6, lo + (hi - lo) * 0.8


def _als_before(platform: rc.Platform, start: pd.Timestamp) -> rc.Recommender:
    """ALS trained on the events before ``start`` (the first search window)."""
    events = platform.events[platform.events["timestamp"] < start]
    ds = rc.Dataset.from_frames(
        events,
        courses=platform.courses,
        members=platform.members,
        orgs=platform.orgs,
        on_unknown="drop",
    )
    return rc.ALS(n_factors=16, iterations=8, random_state=0).fit(ds)


@pytest.fixture(scope="module")
def platform(small_platform: rc.Platform) -> rc.Platform:
    """The shared small platform (conftest)."""
    return small_platform


@pytest.fixture(scope="module")
def model(platform: rc.Platform) -> rc.Recommender:
    return _als_before(platform, _windows(platform)[0])


@pytest.fixture
def fresh_model(model: rc.Recommender, tmp_path) -> rc.Recommender:
    """``model`` saved and loaded: its search lookups are built afresh, in the test."""
    return rc.load(rc.save(model, tmp_path / "model"))


@pytest.fixture(scope="module")
def index(model: rc.Recommender) -> SearchIndex:
    return build_index(model)


@pytest.fixture(scope="module")
def active(model: rc.Recommender) -> list[str]:
    """Members with the longest histories."""
    counts = np.asarray(model.history_.base.getnnz(axis=1))
    top = np.argsort(-counts, kind="stable")[:10]
    return [str(m) for m in model.member_ids_.to_external(top)]


@pytest.fixture(scope="module")
def taste_groups() -> rc.Recommender:
    """Two mirror-image taste groups: members x0..x5 study courses a0..a3 together, y0..y5
    b0..b3; x9 studied a0 and a1, y9 b0 and b1. Every title matches "党史" equally."""
    a, b = [f"a{i}" for i in range(4)], [f"b{i}" for i in range(4)]
    courses = pd.DataFrame(
        {
            "course_id": a + b,
            "title": [f"党史专题 {i}" for i in range(8)],
            "category": "党的建设",
            "duration_seconds": 600.0,
            "published_at": pd.Timestamp("2024-01-01"),
        }
    )
    rows = []
    for group, studied in (("x", a), ("y", b)):
        for i in range(6):
            rows += [
                (f"{group}{i}", studied[(i + j) % 4], "complete", "2024-03-01") for j in range(3)
            ]
        rows += [(f"{group}9", studied[j], "complete", "2024-03-01") for j in range(2)]
    return rc.ItemKNN(k=10).fit(rc.Dataset.from_frames(events_frame(rows), courses=courses))


# ---------------------------------------------------------------------------- tokens


def test_domain_terms_stay_whole_and_match_recommend_text() -> None:
    text = "三会一课怎么开？两学一做、主题党日与党史学习教育 PPT制作 Excel技巧"
    words = words_of(text)
    for term in ("三会一课", "两学一做", "主题党日", "党史学习教育"):
        assert term in words
    assert "ppt" in words and "excel" in words
    assert words == tokenize(text)


def test_segmentation_matches_jieba_on_course_text(platform: rc.Platform) -> None:
    texts = platform.courses["title"].tolist()[:60] + platform.courses["description"].tolist()[:60]
    assert [words_of(t) for t in texts] == [tokenize(t) for t in texts]


def test_short_form_finds_long_term(index: SearchIndex, platform: rc.Platform) -> None:
    query = index.parse("党史")
    docs, scores = index.top(query, 50)
    assert docs.size > 0
    assert (np.diff(scores) <= 0).all()
    titles = platform.courses["title"].to_numpy()[docs]
    tags = platform.courses["tags"].to_numpy()[docs]
    for title, tag in zip(titles, tags, strict=True):
        assert "党史" in title or any("党史" in t for t in tag)
    assert all(m == ["党史"] for m in index.matched_words(query, docs))


# ---------------------------------------------------------------------------- bad input


def test_empty_and_whitespace_queries_raise(model: rc.Recommender, active: list[str]) -> None:
    for query in ("", "   \t"):
        with pytest.raises(DataError, match="query is empty"):
            search(model, active[0], query)
    with pytest.raises(DataError, match="must be a string"):
        search(model, active[0], None)  # type: ignore[arg-type]


def test_stop_word_query_gives_empty_result_with_note(
    model: rc.Recommender, active: list[str]
) -> None:
    out = search(model, active[0], "的 了 怎么", lang="en")
    assert out.empty
    assert list(out.columns) == list(SEARCH_COLUMNS)
    assert "only stop words" in out.attrs["notes"][0]
    zh = search(model, active[0], "的 了 怎么")  # Chinese by default
    assert zh.attrs["notes"] == ["搜索词只有虚词或标点，无从搜索"]


def test_long_query_is_truncated_and_says_so(model: rc.Recommender, active: list[str]) -> None:
    query = "防诈骗" + "很长的问题" * 40
    out = search(model, active[0], query, n=5, lang="en")
    assert len(out.attrs["query"]) == MAX_QUERY_CHARS
    assert any("truncated" in note for note in out.attrs["notes"])
    assert not out.empty


def test_unknown_member_gets_cold_start_or_raises(model: rc.Recommender) -> None:
    out = search(model, "no-such-member", "学习", n=5, lang="en")
    assert out.attrs["route"] == "cold_global"
    assert len(out) == 5
    assert out["reason"].str.contains("popular on the platform").all()
    with pytest.raises(DataError, match="unknown to the model"):
        search(model, "no-such-member", "党史", unknown="raise")


def test_options_are_checked(model: rc.Recommender, active: list[str]) -> None:
    # The menu's options are validated by the engine (tests/engine/test_options.py).
    with pytest.raises(ConfigError, match="exclude='all'; expected"):
        search(model, active[0], "党史", exclude="all")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one member"):
        search(model, active[:2], "党史")


# ---------------------------------------------------------------------------- ranking


def test_result_shape_and_blend(model: rc.Recommender, active: list[str]) -> None:
    out = search(model, active[0], "三会一课 怎么开", n=8, lang="en")
    assert list(out.columns) == list(SEARCH_COLUMNS)
    assert out["rank"].tolist() == list(range(1, len(out) + 1))
    assert (np.diff(out["score"].to_numpy()) <= 1e-6).all()
    assert out["text_score"].between(0, 1).all() and out["pref_score"].between(0, 1).all()
    assert out["reason"].str.startswith("matches 三会一课").all()
    assert out.attrs["route"] == "personal"


def test_text_only_is_bm25_order(model: rc.Recommender, index: SearchIndex, active: list[str]):
    out = search(model, active[0], "防诈骗 安全", n=20, weights=TEXT_ONLY)
    docs, _ = index.top(index.parse("防诈骗 安全"), 20)
    assert out["course_id"].tolist() == index.course_ids[docs].tolist()
    assert (np.diff(out["text_score"].to_numpy()) <= 0).all()


def test_rankings_follow_each_members_own_history(taste_groups: rc.Recommender) -> None:
    # Two mirror-image groups: x-members study a-courses together, y-members b-courses.
    # Every title matches "党史" equally, so only the member's history tells them apart.
    x_menu = search(taste_groups, "x9", "党史", n=8)
    y_menu = search(taste_groups, "y9", "党史", n=8)
    assert x_menu["course_id"].str[0].tolist() == ["a"] * 4 + ["b"] * 4
    assert y_menu["course_id"].str[0].tolist() == ["b"] * 4 + ["a"] * 4
    # Within the group, the courses the member studied come first (a search may show them).
    assert set(x_menu["course_id"][:2]) == {"a0", "a1"}
    assert set(y_menu["course_id"][:2]) == {"b0", "b1"}
    # The data is symmetric under a <-> b and x <-> y, so the rankings are too.
    swapped = x_menu["course_id"].str.translate(str.maketrans("ab", "ba"))
    assert y_menu["course_id"].tolist() == swapped.tolist()
    np.testing.assert_allclose(y_menu["score"], x_menu["score"], rtol=1e-6)
    assert x_menu.attrs["route"] == y_menu.attrs["route"] == "personal"


def test_each_member_is_ranked_by_their_own_scores(
    model: rc.Recommender, active: list[str]
) -> None:
    orders = set()
    for member in active[:6]:
        out = search(model, member, "党员", n=30, weights=PREFERENCE_ONLY)
        courses = model.course_ids_.to_index(out["course_id"])
        own = model.score(model.member_ids_.to_index([member]), courses)[0]
        assert (np.diff(own) <= 1e-5).all(), member
        orders.add(tuple(out["course_id"]))
    assert len(orders) == 6


def test_ties_go_to_the_lower_course_index(taste_groups: rc.Recommender) -> None:
    # Equal titles: equal BM25 scores, so text alone ties every course.
    out = search(taste_groups, "x9", "党史", n=8, weights=TEXT_ONLY)
    order = taste_groups.course_ids_.to_index(out["course_id"])
    assert out["score"].nunique() == 1
    assert order.tolist() == sorted(order.tolist())


def test_equal_blends_go_to_the_higher_text_score_then_the_lower_course_index(
    model: rc.Recommender, active: list[str]
) -> None:
    ids = model.course_ids_.external_ids[:12]
    text = np.array([1.0, 3.0, 2.0, 1.0, 3.0, 2.0, 2.0, 1.0, 3.0, 1.0, 2.0, 3.0])
    cand = pd.DataFrame({"course_id": ids, "text_score": text}).sample(frac=1.0, random_state=1)
    zero = BlendWeights(0.0, 0.0, 0.0, 0.0)
    out = rank_candidates(model, active[0], cand, weights=zero, only_published=False)
    assert (out["score"] == 0).all()
    idx = model.course_ids_.to_index(out["course_id"])
    by_text = dict(zip(ids, text, strict=True))
    got = [(-by_text[c], i) for c, i in zip(out["course_id"], idx, strict=True)]
    assert got == sorted(got)
    assert len(got) == 12


def _freshness(platform: rc.Platform, model: rc.Recommender, courses: pd.Series) -> np.ndarray:
    """``0.5 ** (age_days / 90)`` at the data's time, 1 for a course not yet published."""
    published = platform.courses.set_index("course_id").loc[courses, "published_at"]
    age_days = (model.dataset_.now - published).dt.total_seconds().to_numpy() / 86_400
    return 0.5 ** (np.maximum(age_days, 0.0) / 90.0)


def test_features_of_courses_with_few_learners_or_no_date() -> None:
    # Three courses with one learner each (the most any has); d1's publication is unknown.
    courses = pd.DataFrame(
        {
            "course_id": ["d0", "d1", "d2"],
            "title": ["党史专题 一", "党史专题 二", "党史专题 三"],
            "category": "党的建设",
            "duration_seconds": 600.0,
            "published_at": pd.to_datetime(["2024-03-01", None, "2024-03-01"]),
        }
    )
    events = events_frame([(f"u{i}", f"d{i}", "view", "2024-03-01") for i in range(3)])
    model = rc.ItemKNN(k=5).fit(rc.Dataset.from_frames(events, courses=courses))
    popular = search(model, "u9", "党史", n=3, weights=BlendWeights(0.0, 0.0, 1.0, 0.0))
    np.testing.assert_allclose(popular["score"], [1.0, 1.0, 1.0])
    fresh = search(model, "u9", "党史", n=3, weights=BlendWeights(0.0, 0.0, 0.0, 1.0))
    assert dict(zip(fresh["course_id"], fresh["score"], strict=True)) == {
        "d0": 1.0,
        "d2": 1.0,
        "d1": 0.0,
    }
    # Without publication dates nothing is fresh.
    undated = courses.drop(columns="published_at")
    model = rc.ItemKNN(k=5).fit(rc.Dataset.from_frames(events, courses=undated))
    fresh = search(model, "u9", "党史", n=3, weights=BlendWeights(0.0, 0.0, 0.0, 1.0))
    assert len(fresh) == 3 and (fresh["score"] == 0.0).all()


def test_blend_weights_are_checked(model: rc.Recommender, active: list[str]) -> None:
    for bad, message in (("1", "must be a number"), (True, "must be a number")):
        with pytest.raises(ConfigError, match=rf"BlendWeights\.text {message}, got {bad!r}"):
            BlendWeights(text=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"BlendWeights\.freshness must be finite, got nan"):
        BlendWeights(freshness=float("nan"))
    assert BlendWeights.from_vector(np.array([[1, 2], [3, 4]])) == BlendWeights(1, 2, 3, 4)
    assert BlendWeights.from_vector([1, 2, 3, 4]).vector().dtype == np.float64
    with pytest.raises(ConfigError, match=r"expected 4 weights .*, got 3"):
        BlendWeights.from_vector([1.0, 2.0, 3.0])
    assert BlendWeights.from_dict({"text": 2}) == BlendWeights(text=2.0)
    with pytest.raises(ConfigError, match=r"unknown blend weight\(s\) \['bogus', 'zeal'\]"):
        BlendWeights.from_dict({"zeal": 1, "text": 2, "bogus": 1})
    weights = BlendWeights(0.1, 0.2, 0.3, 0.4)
    assert BlendWeights.from_dict(weights.to_dict()) == weights
    assert BlendWeights.from_vector(weights.vector()) == weights
    with pytest.raises(ConfigError, match="weights must be BlendWeights, got dict"):
        search(model, active[0], "党员", weights={"text": 1.0})  # type: ignore[arg-type]


def test_freshness_halves_every_90_days(
    model: rc.Recommender, fresh_model: rc.Recommender, platform: rc.Platform, active: list[str]
) -> None:
    fresh_only = BlendWeights(0.0, 0.0, 0.0, 1.0)
    out = search(fresh_model, active[0], "党员", n=50, weights=fresh_only)
    assert len(out) >= 20
    expected = _freshness(platform, model, out["course_id"])
    np.testing.assert_allclose(out["score"], expected, rtol=1e-5, atol=1e-7)
    assert expected.max() - expected.min() > 0.5
    # Courses published after the data's time are as fresh as can be.
    later = search(fresh_model, active[0], "党员", n=200, weights=fresh_only, only_published=False)
    published = platform.courses.set_index("course_id").loc[later["course_id"], "published_at"]
    assert (published > model.dataset_.now).any()
    np.testing.assert_allclose(
        later["score"], _freshness(platform, model, later["course_id"]), rtol=1e-5, atol=1e-7
    )


def test_popularity_is_log_learners_over_the_catalogue_maximum(
    model: rc.Recommender, fresh_model: rc.Recommender, active: list[str]
) -> None:
    out = search(fresh_model, active[0], "党员", n=50, weights=BlendWeights(0.0, 0.0, 1.0, 0.0))
    assert len(out) >= 20
    learners = model.dataset_.events.groupby("course_id")["member_id"].nunique()
    pop = np.log1p(learners.reindex(model.course_ids_.external_ids, fill_value=0))
    expected = (pop / pop.max()).loc[out["course_id"]].to_numpy()
    np.testing.assert_allclose(out["score"], expected, rtol=1e-5, atol=1e-7)
    assert expected.max() - expected.min() > 0.3


def test_preference_follows_the_model(model: rc.Recommender, active: list[str]) -> None:
    member = active[1]
    out = search(model, member, "党员", n=30, weights=BlendWeights(0.0, 1.0, 0.0, 0.0))
    idx = model.member_ids_.to_index([member])
    courses = model.course_ids_.to_index(out["course_id"])
    model_scores = model.score(idx, courses)[0]
    assert (np.diff(model_scores) <= 1e-5).all()


def test_filters_apply(model: rc.Recommender, platform: rc.Platform, active: list[str]) -> None:
    courses = platform.courses.set_index("course_id")
    out = search(model, active[0], "学习", n=30, channel="理论学习", max_minutes=20)
    assert not out.empty
    picked = courses.loc[out["course_id"]]
    assert (picked["category"] == "理论学习").all()
    assert (picked["duration_seconds"] <= 20 * 60).all()


def test_exclude_completed(model: rc.Recommender, active: list[str]) -> None:
    ds = model.dataset_
    done = ds.events[(ds.events["event"] == "complete") & (ds.events["member_id"] == active[0])]
    titles = ds.courses.set_index("course_id").loc[done["course_id"].unique(), "title"]
    query = titles.iloc[0]
    with_all = search(model, active[0], query, n=200)
    without = search(model, active[0], query, n=200, exclude="completed")
    completed = set(done["course_id"])
    assert completed & set(with_all["course_id"])
    assert not completed & set(without["course_id"])


# ---------------------------------------------------------------------------- external candidates


def test_rank_candidates_matches_search(
    model: rc.Recommender, index: SearchIndex, active: list[str]
) -> None:
    query = "党史 学习"
    docs, raw = index.top(index.parse(query), 200)
    cand = pd.DataFrame({"course_id": index.course_ids[docs], "text_score": raw})
    ranked = rank_candidates(model, active[2], cand.sample(frac=1.0, random_state=0))
    served = search(model, active[2], query, n=200)
    assert ranked["course_id"].tolist() == served["course_id"].tolist()
    np.testing.assert_allclose(ranked["score"], served["score"], rtol=1e-6)


def test_rank_candidates_unknown_courses(model: rc.Recommender, active: list[str]) -> None:
    known = model.course_ids_.external_ids[:3].tolist()
    cand = pd.DataFrame({"course_id": [*known, "new-upload"], "text_score": [1.0, 2.0, 3.0, 4.0]})
    out = rank_candidates(model, active[0], cand, lang="en")
    assert set(out["course_id"]) == {*known, "new-upload"}
    assert "unknown to the model" in out.attrs["notes"][0]
    row = out.set_index("course_id").loc["new-upload"]
    assert row["pref_score"] == pytest.approx(0.5)
    # Neither popular nor fresh: the model knows nothing of it.
    known_only = BlendWeights(0.0, 0.0, 1.0, 1.0)
    row = rank_candidates(model, active[0], cand, weights=known_only).set_index("course_id")
    assert row.loc["new-upload", "score"] == 0.0
    assert (row.drop(index="new-upload")["score"] > 0).all()
    filtered = rank_candidates(model, active[0], cand, exclude="completed")
    assert "new-upload" not in set(filtered["course_id"])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"course_id": ["a"]}), "no column"),
        (
            pd.DataFrame({"course_id": ["a", "a"], "text_score": [1, 2]}),
            r"duplicate ids.*rows \[0, 1\]",
        ),
        (pd.DataFrame({"course_id": ["a", "b"], "text_score": [1, "x"]}), r"rows \[1\]"),
        (pd.DataFrame({"course_id": ["a", "b"], "text_score": [np.inf, 1]}), r"rows \[0\]"),
    ],
)
def test_rank_candidates_bad_input(
    model: rc.Recommender, active: list[str], frame: pd.DataFrame, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        rank_candidates(model, active[0], frame)


# ---------------------------------------------------------------------------- saving


def test_index_round_trip_and_tampering(index: SearchIndex, tmp_path) -> None:
    path = tmp_path / "idx"
    entry = index.save(path)
    again = SearchIndex.load(path, expect=entry)
    query = index.parse("主题党日 学习")
    np.testing.assert_array_equal(
        index.top(query, 30)[0], again.top(again.parse("主题党日 学习"), 30)[0]
    )
    assert again.course_ids.tolist() == index.course_ids.tolist()
    with pytest.raises(ArtifactError, match="already exists"):
        index.save(path)
    data = next(p for p in path.iterdir() if p.name.startswith("data"))
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="checksum"):
        SearchIndex.load(path)


def test_model_artifact_carries_the_index(
    model: rc.Recommender, index: SearchIndex, active: list[str], tmp_path
) -> None:
    weights = BlendWeights(1.0, 2.0, 0.3, 0.0)
    path = rc.save(model, tmp_path / "model", search_index=index.with_weights(weights))
    meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
    assert set(meta["search_index"]) == {"sha256", "bytes"}
    loaded = rc.load(path)
    got = search(loaded, active[3], "乡村振兴 政策", n=10)
    want = search(model, active[3], "乡村振兴 政策", n=10, index=index, weights=weights)
    assert got["course_id"].tolist() == want["course_id"].tolist()
    np.testing.assert_allclose(got["score"], want["score"], rtol=1e-5)
    # A replaced index no longer matches the checksum recorded in model.json.
    (path / "search_index" / "search_index.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ArtifactError, match="differs"):
        search(rc.load(path), active[3], "乡村振兴")


def test_attached_index_is_kept_with_the_fitted_state(
    model: rc.Recommender, index: SearchIndex, tmp_path
) -> None:
    from recommend.search import attach_index, attached_index

    assert attached_index(rc.ALS(), build=False) is None  # not fitted: nothing attached
    other = rc.load(rc.save(model, tmp_path / "m"))  # saved without an index
    assert attached_index(other, build=False) is None
    attach_index(other, index)
    assert attached_index(other, build=False) is index
    # A path is read on first use, once.
    index.save(tmp_path / "index")
    attach_index(other, tmp_path / "index")
    found = attached_index(other, build=False)
    assert isinstance(found, SearchIndex) and found is not index
    assert found.course_ids.tolist() == index.course_ids.tolist()
    assert attached_index(other) is found
    # New fitted state starts without the index it was given.
    other.restore(
        member_ids=other.member_ids_,
        course_ids=other.course_ids_,
        dataset=other.dataset_,
        history=other.history_,
    )
    assert attached_index(other, build=False) is None


# ---------------------------------------------------------------------------- learned blend


def test_clicks_low_in_the_list_weigh_more() -> None:
    from recommend.search.blend import _Logged
    from recommend.search.rank import Candidates

    feats = np.eye(4)[[0, 1, 2, 3]]
    cand = Candidates(np.arange(4), np.zeros(4), np.zeros(4), feats, "personal", None, None)  # type: ignore[arg-type]
    top_click = _Logged(cand, np.arange(4), np.array([True, False, False, False]), np.zeros(1))
    low_click = _Logged(cand, np.arange(4), np.array([False, False, False, True]), np.zeros(1))
    _, w_top, _ = _pairs([top_click], log2_examination)
    _, w_low, _ = _pairs([low_click], log2_examination)
    assert w_low[0] / w_top[0] == pytest.approx(np.log2(5.0))


def test_pairs_pair_each_click_with_each_shown_course_not_clicked() -> None:
    from recommend.search.blend import _Logged
    from recommend.search.rank import Candidates

    feats = np.arange(20, dtype=np.float64).reshape(5, 4)
    cand = Candidates(np.arange(5), np.zeros(5), np.zeros(5), feats, "personal", None, None)  # type: ignore[arg-type]
    # Shown: candidates 4, 0, 2, one the candidates miss (-1), 1; clicked: 0, the missed, 1.
    shown = np.array([4, 0, 2, -1, 1])
    clicked = np.array([False, True, False, True, True])
    search_ = _Logged(cand, shown, clicked, np.zeros(3))
    all_clicked = _Logged(cand, np.array([0, 1]), np.array([True, True]), np.zeros(2))
    none_clicked = _Logged(cand, np.array([0, 1]), np.array([False, False]), np.zeros(0))
    diff, weight, used = _pairs([all_clicked, search_, none_clicked], log2_examination)
    assert used == 1
    # Clicked at positions 1 and 4, not clicked at 0 and 2 (position 3 is not a candidate).
    want = np.stack(
        [feats[0] - feats[4], feats[0] - feats[2], feats[1] - feats[4], feats[1] - feats[2]]
    )
    np.testing.assert_array_equal(diff, want)
    np.testing.assert_allclose(weight, np.log2([3.0, 3.0, 6.0, 6.0]))
    diff, weight, used = _pairs([all_clicked, none_clicked], log2_examination)
    assert used == 0 and diff.shape == (0, 4) and weight.size == 0
    # An examination model is clipped to [0.001, 1]: no pair weighs more than 1000 or less than 1.
    _, weight, _ = _pairs([search_], lambda position: np.where(position == 1, 0.0, 5.0))
    np.testing.assert_allclose(weight, [1000.0, 1000.0, 1.0, 1.0])


@pytest.fixture(scope="module")
def blend_platform() -> rc.Platform:
    # Own seed: on the shared seed-0 platform the learned blend does not beat text-only.
    return rc.synthesize("small", seed=3)


def test_learned_blend_beats_text_only_on_held_out_searches(
    blend_platform: rc.Platform, tmp_path
) -> None:
    platform, windows = blend_platform, _windows(blend_platform)
    model = _als_before(platform, windows[0])
    s = platform.searches
    fit_on = s[(s["timestamp"] >= windows[0]) & (s["timestamp"] < windows[1])]
    test_on = s[s["timestamp"] >= windows[1]]
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    fit = fit_blend(model, fit_on, experiment="search-test", uri=uri)
    assert fit.searches > 50 and fit.pair_accuracy > 0.5
    assert fit.weights.preference > 0
    table = evaluate_search(model, test_on, standard_methods(fit.weights))
    assert list(table.index) == ["text_only", "preference_only", "hand_set", "learned"]
    assert table.loc["learned", "mrr"] > table.loc["text_only", "mrr"]

    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=uri).get_run(fit.run_id)
    assert run.data.metrics["weight.preference"] == pytest.approx(fit.weights.preference)
    assert run.data.metrics["pairs"] == fit.pairs


def test_fit_blend_needs_clicks(model: rc.Recommender, platform: rc.Platform) -> None:
    none = platform.searches.head(20).assign(clicked=[[] for _ in range(20)])
    with pytest.raises(DataError, match="nothing to learn"):
        fit_blend(model, none)
    with pytest.raises(DataError, match="no column"):
        fit_blend(model, platform.searches.drop(columns=["shown"]))


# ---------------------------------------------------------------------------- CLI


def test_search_prints_no_debug_lines_without_verbose(
    model: rc.Recommender, index: SearchIndex, active: list[str], tmp_path: Path
) -> None:
    """bm25s sets its logger to DEBUG on import; ours follows the application's level, so
    ``recommend search`` without ``-v`` prints the results and nothing else."""
    import subprocess
    import sys

    path = rc.save(model, tmp_path / "m", search_index=index)
    assert logging.getLogger("bm25s").getEffectiveLevel() == logging.getLogger().level
    run = subprocess.run(
        [sys.executable, "-m", "recommend.cli", "search", "--model", str(path),
         "--member", active[0], "党史", "--n", "2"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "DEBUG" not in run.stdout + run.stderr
    assert run.stderr == ""


def test_cli_search(model: rc.Recommender, index: SearchIndex, active: list[str], tmp_path, capsys):
    from recommend.cli import main

    path = rc.save(model, tmp_path / "m", search_index=index)
    assert (
        main(["search", "--model", str(path), "--member", active[0], "党史 学习", "--n", "3"]) == 0
    )
    out = capsys.readouterr().out
    assert "  1. " in out and "  3. " in out and "含“党史”" in out
    args = ["search", "--model", str(path), "--member", active[0], "党史 学习", "--lang", "en"]
    assert main(args) == 0
    assert "matches" in capsys.readouterr().out
    assert main(["search", "--model", str(path), "--member", active[0], "  "]) == 2
    assert "query is empty" in capsys.readouterr().err


# ---------------------------------------------------------------------------- fold-in


def test_search_reads_one_snapshot_and_folded_in_completions(platform: rc.Platform) -> None:
    model = _als_before(platform, _windows(platform)[0])  # its own: it is updated here
    ds = model.dataset_
    member = model.member_ids_.external_ids[int(np.argmax(model.history_.base.getnnz(axis=1)))]
    own = ds.events.loc[ds.events["member_id"] == member, ["member_id", "course_id", "event"]]
    own = own.assign(timestamp=ds.now)
    seen = set(own["course_id"])
    course = next(c for c in ds.courses["course_id"] if c not in seen)
    query = ds.courses.set_index("course_id").loc[course, "title"]
    assert course in set(search(model, member, query, n=50, exclude="completed")["course_id"])
    done = pd.DataFrame(
        {"member_id": [member], "course_id": [course], "event": ["complete"], "timestamp": [ds.now]}
    )
    events = pd.concat([own, done], ignore_index=True)

    # An update that lands while the search scores the member: the answer is the one before.
    before = search(model, member, query, n=50, exclude="completed")
    vectors = model.member_vectors

    def vectors_after_an_update(idx: np.ndarray) -> np.ndarray:
        writer = threading.Thread(target=model.update, args=(member, events))
        writer.start()
        writer.join()
        del model.member_vectors  # once
        return vectors(idx)

    model.member_vectors = vectors_after_an_update  # type: ignore[method-assign]
    during = search(model, member, query, n=50, exclude="completed")
    assert "member_vectors" not in vars(model)  # the update landed mid-call
    pd.testing.assert_frame_equal(during, before)
    after = search(model, member, query, n=50, exclude="completed")
    assert model.snapshot().version > 0 and course not in set(after["course_id"])
