"""Red search: the BM25 index, personalised ranking, the learned blend, saving, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.errors import ArtifactError, ConfigError, DataError
from recommend.search import (
    MAX_QUERY_CHARS,
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


@pytest.fixture(scope="module")
def index(model: rc.Recommender) -> SearchIndex:
    return build_index(model)


@pytest.fixture(scope="module")
def active(model: rc.Recommender) -> list[str]:
    """Members with the longest histories."""
    counts = np.asarray(model.history_.base.getnnz(axis=1))
    top = np.argsort(-counts, kind="stable")[:10]
    return [str(m) for m in model.member_ids_.to_external(top)]


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
    out = search(model, active[0], "的 了 怎么")
    assert out.empty
    assert list(out.columns) == list(SEARCH_COLUMNS)
    assert "只有虚词或标点" in out.attrs["notes"][0]


def test_long_query_is_truncated_and_says_so(model: rc.Recommender, active: list[str]) -> None:
    query = "防诈骗" + "很长的问题" * 40
    out = search(model, active[0], query, n=5)
    assert len(out.attrs["query"]) == MAX_QUERY_CHARS
    assert any(f"只按前 {MAX_QUERY_CHARS} 个字搜索" in note for note in out.attrs["notes"])
    assert not out.empty


def test_unknown_member_gets_cold_start_or_raises(model: rc.Recommender) -> None:
    out = search(model, "no-such-member", "学习", n=5)
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
    out = search(model, active[0], "三会一课 怎么开", n=8)
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


def test_members_get_different_rankings(model: rc.Recommender, active: list[str]) -> None:
    orders = {tuple(search(model, m, "学习", n=10)["course_id"]) for m in active[:6]}
    assert len(orders) > 1


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
    out = rank_candidates(model, active[0], cand)
    assert set(out["course_id"]) == {*known, "new-upload"}
    assert "unknown to the model" in out.attrs["notes"][0]
    row = out.set_index("course_id").loc["new-upload"]
    assert row["pref_score"] == pytest.approx(0.5)
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


def test_cli_search(model: rc.Recommender, index: SearchIndex, active: list[str], tmp_path, capsys):
    from recommend.cli import main

    path = rc.save(model, tmp_path / "m", search_index=index)
    assert (
        main(["search", "--model", str(path), "--member", active[0], "党史 学习", "--n", "3"]) == 0
    )
    out = capsys.readouterr().out
    assert "  1. " in out and "  3. " in out and "matches" in out
    assert main(["search", "--model", str(path), "--member", active[0], "  "]) == 2
    assert "query is empty" in capsys.readouterr().err
