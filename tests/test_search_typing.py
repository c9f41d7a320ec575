"""Red search as members type: normalisation, pinyin, typos, related words, suggestions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.errors import ArtifactError, DataError
from recommend.search import SearchIndex, build_index, search, suggest
from recommend.text import initials, normalize, pinyin


@pytest.fixture(scope="module")
def platform(small_platform: rc.Platform) -> rc.Platform:
    return small_platform


@pytest.fixture(scope="module")
def model(platform: rc.Platform) -> rc.Recommender:
    ds = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    return rc.ALS(n_factors=8, iterations=3, random_state=0).fit(ds)


@pytest.fixture(scope="module")
def index(model: rc.Recommender, platform: rc.Platform) -> SearchIndex:
    return build_index(model, searches=platform.searches)


def _titles(platform: rc.Platform, index: SearchIndex, docs: np.ndarray) -> list[str]:
    by_id = dict(zip(platform.courses["course_id"], platform.courses["title"], strict=True))
    return [by_id[c] for c in index.course_ids[docs]]


def test_text_utilities() -> None:
    assert normalize("黨史學習  ＥＸＣＥＬ") == "党史学习 excel"
    assert pinyin("社会保险") == "shehuibaoxian"
    assert initials("社会保险") == "shbx"


@pytest.mark.parametrize(
    "typed", ["黨史學習", "党史学习", "ＤＡＮＧＳＨＩ", "dangshi", "dangshi学习"]
)
def test_traditional_fullwidth_pinyin_and_mixed_find_the_same_courses(
    index: SearchIndex, platform: rc.Platform, typed: str
) -> None:
    docs, _ = index.top(index.parse(typed), 5)
    assert docs.size > 0
    assert all("党史" in t for t in _titles(platform, index, docs[:1])), typed


def test_pinyin_weighs_below_the_chinese_word(index: SearchIndex) -> None:
    chinese = index.scores(index.parse("三会一课"))
    spelled = index.scores(index.parse("sanhuiyike"))
    hit = chinese > 0
    assert hit.any()
    # Same courses, lower scores (besides the title-prefix lift of the pinyin query).
    lifted = np.zeros_like(hit)
    lifted[index.parse("sanhuiyike").prefix_docs] = True
    assert np.array_equal(spelled > 0, hit | lifted)
    assert np.all(spelled[hit & ~lifted] < chinese[hit & ~lifted])


def test_homophone_typo_is_searched_as_the_word_and_says_so(index: SearchIndex) -> None:
    parsed = index.parse("三会一客")
    assert "三会一课" in parsed.tokens
    assert parsed.searched_as == "三会一课"
    assert "已按“三会一课”搜索" in [note.text("zh") for note in parsed.notes]
    assert 'searched for "三会一课"' in [note.text("en") for note in parsed.notes]
    assert parsed.typed == "三会一客"
    clean = index.parse("三会一课")
    assert clean.searched_as is None and clean.weights is None


def test_initials_read_as_index_words(index: SearchIndex) -> None:
    parsed = index.parse("shyk")  # 三会一课
    assert "三会一课" in parsed.tokens
    # Initials stand for many words: the note names the letters, not one guess.
    assert [note.text("zh") for note in parsed.notes] == ["已按拼音首字母“shyk”搜索"]
    assert parsed.searched_as is None


def test_one_character_edit_on_an_unknown_word(index: SearchIndex) -> None:
    parsed = index.parse("党史学习叫育")  # 叫 for 教: not a homophone
    assert parsed.searched_as is not None
    assert any(w in parsed.tokens for w in ("党史学习教育", "教育"))


def test_clean_query_is_unchanged_by_the_typing_aids(index: SearchIndex, platform) -> None:
    plain = index.with_aids(None)  # no aids: format 1
    for query in ("三会一课", "党史 学习", "乡村振兴 政策"):
        a, b = index.parse(query), plain.parse(query)
        assert a.tokens == b.tokens
        np.testing.assert_array_equal(index.scores(a), plain.scores(b))


def test_related_words_from_the_dictionary(index: SearchIndex) -> None:
    parsed = index.parse("excel")
    assert not parsed.empty
    assert any("相关词" in note.text("zh") for note in parsed.notes)


def test_related_words_mined_from_click_logs(platform: rc.Platform) -> None:
    courses = platform.courses
    first = courses["course_id"].iloc[0]
    log = pd.DataFrame(
        {
            "member_id": [f"m{i}" for i in range(10)],
            "query": ["甲乙丙"] * 5 + ["丁戊己"] * 5,
            "timestamp": pd.Timestamp("2025-03-01"),
            "shown": [[first]] * 10,
            "clicked": [[first]] * 10,
        }
    )
    idx = build_index(courses, searches=log)
    assert "丁戊己" in idx.aids.related.related["甲乙丙"]
    # A query typed by fewer than 5 members is neither mined nor suggested.
    few = build_index(courses, searches=log.iloc[1:])
    assert "甲乙丙" not in few.aids.related.related
    assert "甲乙丙" not in few.aids.completions.text and "丁戊己" in few.aids.completions.text


def test_no_match_falls_back_to_the_menu_in_the_channel(
    model: rc.Recommender, platform: rc.Platform
) -> None:
    # An index without the everyday-knowledge titles: 血压 and its related words
    # (高血压, 慢性病防治; dictionary channel 生活百科) match nothing.
    courses = platform.courses[platform.courses["category"] != "生活百科"]
    idx = build_index(courses[["course_id", "title"]])
    member = model.member_ids_.external_ids[0]
    assert idx.parse("血压").empty
    out = search(model, member, "血压", 5, index=idx)
    assert out.attrs["fallback"] == "menu" and out.attrs["channel"] == "生活百科"
    assert len(out) == 5
    assert "生活百科" in out.attrs["notes"][-1]
    channel = platform.courses.set_index("course_id")["category"]
    assert set(channel[out["course_id"]]) == {"生活百科"}
    # It is the member's own menu in that channel (the engine's rules: nothing studied).
    menu = rc.member_menu(model, member, 5, channel="生活百科", pin_compulsory=False)
    assert out["course_id"].tolist() == menu["course_id"].tolist()


def test_search_keeps_the_query_as_typed(model: rc.Recommender, index: SearchIndex) -> None:
    member = model.member_ids_.external_ids[0]
    out = search(model, member, "黨史", 5, index=index)
    assert out.attrs["typed"] == "黨史" and out.attrs["query"] == "党史"
    assert len(out) > 0


def test_index_round_trip_keeps_the_typing_aids(index: SearchIndex, tmp_path) -> None:
    index.save(tmp_path / "idx")
    back = SearchIndex.load(tmp_path / "idx")
    for query in ("sanhuiyike", "三会一客", "shyk"):
        np.testing.assert_allclose(back.scores(back.parse(query)), index.scores(index.parse(query)))
    assert back.aids.completions.text == index.aids.completions.text


def test_old_format_index_still_loads_without_suggestions(
    index: SearchIndex, model: rc.Recommender, tmp_path
) -> None:
    # An index as format 1 wrote it: no typing-aid files, no "typing_aids" entry.
    index.with_aids(None).save(tmp_path / "old")
    manifest = tmp_path / "old" / "search_index.json"
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    meta["format_version"] = 1
    del meta["typing_aids"]
    manifest.write_text(json.dumps(meta), encoding="utf-8")
    back = SearchIndex.load(tmp_path / "old")
    assert back.aids is None
    assert not back.parse("三会一课").empty
    with pytest.raises(ArtifactError, match="no completions"):
        suggest(model, model.member_ids_.external_ids[0], "dang", index=back)


@pytest.mark.parametrize("typed", ["党史", "黨史", "dangs", "ds", "ＤＡＮＧ"])
def test_suggestions_complete_chinese_pinyin_and_initials(
    model: rc.Recommender, index: SearchIndex, typed: str
) -> None:
    out = suggest(model, model.member_ids_.external_ids[0], typed, 5, index=index)
    assert 0 < len(out) <= 5
    assert list(out.columns) == ["text", "kind", "course_id", "score", "rank"]
    key = normalize(typed)
    for text in out["text"]:
        t = normalize(text)
        assert t.startswith(key) or pinyin(t).startswith(key) or initials(t).startswith(key)


def test_suggestions_are_personalised(model: rc.Recommender, index: SearchIndex) -> None:
    members = model.member_ids_.external_ids[:40]
    lists = {tuple(suggest(model, m, "d", 5, index=index)["text"]) for m in members}
    assert len(lists) > 1


def test_suggest_input_errors(model: rc.Recommender, index: SearchIndex) -> None:
    member = model.member_ids_.external_ids[0]
    with pytest.raises(DataError, match="prefix is empty"):
        suggest(model, member, "  ", index=index)
    with pytest.raises(DataError, match="must be a string"):
        suggest(model, member, 3, index=index)  # type: ignore[arg-type]
    assert suggest(model, member, "zzzzqqq", index=index).empty


def test_cli_suggest(model: rc.Recommender, index: SearchIndex, tmp_path, capsys) -> None:
    from recommend.cli import main

    path = rc.save(model, tmp_path / "m", search_index=index)
    member = str(model.member_ids_.external_ids[0])
    assert main(["suggest", "--model", str(path), "--member", member, "dangs"]) == 0
    assert "党" in capsys.readouterr().out


def test_near_homophone_typo_zh_z(index: SearchIndex) -> None:
    parsed = index.parse("组题党日")  # zu for zhu: many speakers do not tell zh/z apart
    assert parsed.tokens == ("主题党日",)
    assert parsed.searched_as == "主题党日"
    assert parsed.weights is not None and float(parsed.weights[0]) < 0.7  # below homophones


def test_related_tags_mined_from_co_study() -> None:
    import scipy.sparse as sp

    from recommend.search.related import RelatedWords

    courses = pd.DataFrame(
        {
            "course_id": ["c0", "c1", "c2", "c3"],
            "category": ["生活百科", "生活百科", "技能培训", "技能培训"],
            "tags": [["垃圾分类"], ["节能环保"], ["焊接技术"], ["电工技能"]],
        }
    )
    # Members 0-3 study c0 and c1 together; members 4-7 study c2 and c3 together.
    rows = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7]
    cols = [0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3]
    history = sp.csr_matrix((np.ones(16, np.float32), (rows, cols)), shape=(8, 4))
    related = RelatedWords.build(courses, history=history)
    assert related.related["垃圾分类"][:1] == ["节能环保"]
    assert "焊接技术" not in related.related["垃圾分类"]
    assert related.related["电工技能"][:1] == ["焊接技术"]
    assert related.channels["焊接技术"] == "技能培训"


def test_tampered_typing_aids_are_refused(index: SearchIndex, tmp_path) -> None:
    index.save(tmp_path / "idx")
    target = tmp_path / "idx" / "completions.parquet"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"completions\.parquet"):
        SearchIndex.load(tmp_path / "idx")


def test_stop_words_typed_in_pinyin_are_shown_not_searched(index: SearchIndex) -> None:
    parsed = index.parse("sanhuiyikehezhutidangri")  # 三会一课和主题党日
    assert set(parsed.tokens) == {"三会一课", "主题党日"}
    assert parsed.searched_as == "三会一课和主题党日"


def test_suggestions_for_an_unknown_member(model: rc.Recommender, index: SearchIndex) -> None:
    out = suggest(model, "someone-new", "三会", 3, index=index)
    assert len(out) > 0 and all(normalize(t).startswith("三会") for t in out["text"])


def test_queries_known_as_typed_read_as_through_the_aids(
    index: SearchIndex, platform: rc.Platform
) -> None:
    """``parse`` skips the typing aids when every word is an index word: the query it
    returns is the one the full reading gives, for clean, partial and mistyped queries."""
    from recommend.search.index import words_of

    titles = platform.courses["title"].astype(str).tolist()[:150]
    queries = ["三会一课 怎么开", "党史", "党史 学习", "学", "学 习", "dangshi", "三会一客"]
    for title in titles:
        queries += [title, title[: max(1, len(title) // 2)], " ".join(words_of(title)[:2])]
    assert index.aids is not None
    fast = 0
    for typed in queries:
        got = index.parse(typed)
        text = normalize(typed.strip())
        words = words_of(text)
        want = index._read_aided(index.aids, typed.strip(), text, words, [])
        fast += bool(words) and all(w in index._vocab for w in words)
        assert got.text == want.text and got.words == want.words, typed
        assert got.tokens == want.tokens and got.typed == want.typed, typed
        assert np.array_equal(got.token_ids, want.token_ids), typed
        assert got.token_ids.dtype == want.token_ids.dtype, typed
        assert (got.weights is None) == (want.weights is None), typed
        if got.weights is not None:
            assert np.array_equal(got.weights, want.weights), typed
        assert got.notes == want.notes and got.searched_as == want.searched_as, typed
        assert np.array_equal(got.prefix_docs, want.prefix_docs), typed
        assert got.prefix_docs.dtype == want.prefix_docs.dtype, typed
    assert fast > 50  # the short cut is taken for most of them


def test_a_reading_kept_by_the_index_is_the_same_and_not_shared(index: SearchIndex) -> None:
    """A query read through the aids is kept per index: typed again, it reads the same,
    and a caller changing its arrays changes nothing for the next call."""
    text = normalize("三会一客")
    from recommend.search.index import words_of

    assert index.aids is not None
    want = index._read_aided(index.aids, "三会一客", text, words_of(text), [])
    first = index.parse("三会一客")
    assert first.weights is not None and first.token_ids.size
    first.token_ids[:] = -1
    first.weights[:] = 0
    again = index.parse("三会一客")
    assert np.array_equal(again.token_ids, want.token_ids)
    assert again.weights is not None and want.weights is not None
    assert np.array_equal(again.weights, want.weights)
    assert again.notes == want.notes and again.searched_as == want.searched_as == "三会一课"
    # Truncated queries keep their note; another index keeps its own readings.
    long = "三会一客" * 20
    assert index.parse(long).notes == index.parse(long).notes
    assert index.parse(long).notes[0] != index.parse("三会一客").notes[0]
    plain = index.with_aids(None)
    assert plain.parse("三会一客").searched_as is None
