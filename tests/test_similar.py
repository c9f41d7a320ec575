"""Similar courses (``recommend.similar``): every model kind, filters, reasons, CLI, pyfunc."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.cli import main
from recommend.errors import ConfigError, DataError
from recommend.models import make_model
from recommend.serving import MenuService
from recommend.similar import SIMILAR_COLUMNS, similar_courses


@pytest.fixture(scope="module")
def dataset(small_platform: rc.Platform) -> rc.Dataset:
    """The small platform with one extra course nobody studied (content route)."""
    p = small_platform
    courses = p.courses.copy()
    template = courses.iloc[0].copy()
    template["course_id"] = "fresh"
    template["published_at"] = courses["published_at"].min()
    courses = pd.concat([courses, template.to_frame().T], ignore_index=True)
    courses = courses.astype(p.courses.dtypes.to_dict())
    return rc.Dataset.from_frames(p.events, courses=courses, members=p.members, orgs=p.orgs)


@pytest.fixture(scope="module")
def course(dataset: rc.Dataset) -> str:
    """The most studied course."""
    counts = np.asarray((dataset.interactions > 0).sum(axis=0)).ravel()
    return str(dataset.course_ids.external_ids[int(np.argmax(counts))])


@pytest.fixture(scope="module")
def models(dataset: rc.Dataset) -> dict[str, rc.Recommender]:
    return {
        "als": make_model("als", n_factors=16, iterations=5).fit(dataset),
        "ease": make_model("ease").fit(dataset),
        "item_knn": make_model("item_knn").fit(dataset),
        "popularity": make_model("popularity").fit(dataset),
    }


def _binary(dataset: rc.Dataset) -> np.ndarray:
    return (dataset.interactions.toarray() > 0).astype(np.float64)


@pytest.mark.parametrize(
    ("name", "route"),
    [
        ("als", "similar:factors"),
        ("ease", "similar:ease"),
        ("item_knn", "similar:item_knn"),
        ("popularity", "similar:cooccurrence"),
    ],
)
def test_each_model_kind_ranks_by_its_own_similarity(
    models: dict[str, rc.Recommender], dataset: rc.Dataset, course: str, name: str, route: str
) -> None:
    model = models[name]
    got = similar_courses(model, course, n=8, only_published=False)
    assert tuple(got.columns) == SIMILAR_COLUMNS
    assert len(got) == 8 and (got["route"] == route).all()
    assert got["rank"].tolist() == list(range(1, 9))
    assert (got["similar_to"] == course).all() and course not in set(got["course_id"])
    assert (np.diff(got["score"].to_numpy()) <= 1e-6).all()
    i = int(dataset.course_ids.to_index([course])[0])
    idx = dataset.course_ids.to_index(got["course_id"].tolist())
    if name == "als":
        v = model.course_vectors()[0]
        unit = v / np.linalg.norm(v, axis=1, keepdims=True)
        expected = unit @ unit[i]
    elif name == "ease":
        expected = model.B_[i]
    elif name == "item_knn":
        expected = model.similarity_[[i]].toarray().ravel()
    else:
        x = _binary(dataset)
        popularity = x.sum(axis=0)
        # Members who studied both; platform popularity breaks ties below one member.
        expected = x[:, i] @ x + popularity / (popularity.max() + 1)
    np.testing.assert_allclose(got["score"], expected[idx], rtol=1e-4, atol=1e-4)
    # No other course scores above the last one listed (ties aside): these are the best.
    others = np.delete(expected, np.r_[i, idx])
    assert others.max() <= expected[idx].min() + 1e-4


def test_cooccurrence_counts_members_who_studied_both(
    models: dict[str, rc.Recommender], dataset: rc.Dataset, course: str
) -> None:
    got = similar_courses(models["popularity"], course, n=3, only_published=False)
    x = _binary(dataset)
    i = int(dataset.course_ids.to_index([course])[0])
    both = x[:, i] @ x
    both[i] = -1
    assert got["score"].astype(int).tolist() == np.sort(both)[::-1][:3].astype(int).tolist()
    assert got["reason"].str.startswith("学过《").all()
    assert got["reason"].str.contains("的同志也常学").all()


def test_a_course_without_learners_gets_content_neighbours(
    models: dict[str, rc.Recommender], dataset: rc.Dataset
) -> None:
    courses = dataset.courses.set_index("course_id")
    twin = courses.index[0]  # "fresh" copies its channel, tags and lecturer
    for model in models.values():
        got = similar_courses(model, "fresh", n=5, only_published=False)
        assert (got["route"] == "similar:content").all()
        assert got["course_id"].iloc[0] == twin
        assert got["reason"].iloc[0] == "同一位老师主讲" or "同讲" in got["reason"].iloc[0]
        assert not got["reason"].str.contains("同志也常学").any()


def test_filters_are_the_member_menus(
    models: dict[str, rc.Recommender], dataset: rc.Dataset, course: str
) -> None:
    model = models["ease"]
    channel = str(dataset.courses["category"].value_counts().index[0])
    got = similar_courses(model, course, n=10, channel=channel, only_published=False)
    info = dataset.courses.set_index("course_id")
    assert len(got) > 0 and (info.loc[got["course_id"], "category"] == channel).all()
    now = dataset.courses["published_at"].median()
    published = similar_courses(model, course, n=30, now=now)
    assert (info.loc[published["course_id"], "published_at"] <= now).all()
    unfiltered = similar_courses(model, course, n=30, only_published=False)
    assert set(published["course_id"]) != set(unfiltered["course_id"])
    with pytest.raises(ConfigError, match="channel"):
        similar_courses(model, course, channel="no such channel")


def test_unknown_course_is_a_data_error(models: dict[str, rc.Recommender]) -> None:
    with pytest.raises(DataError, match=r"course_id 'nope' is not a course of this model"):
        similar_courses(models["ease"], "nope")
    with pytest.raises(ConfigError, match="n"):
        similar_courses(models["ease"], "fresh", n=0)


def test_reasons_name_what_the_courses_share_in_both_languages(
    models: dict[str, rc.Recommender], dataset: rc.Dataset, course: str
) -> None:
    zh = similar_courses(models["als"], course, n=10, only_published=False)
    en = similar_courses(models["als"], course, n=10, only_published=False, lang="en")
    info = dataset.courses.set_index("course_id")
    same_channel = info.loc[zh["course_id"], "category"].to_numpy() == info.at[course, "category"]
    shared = zh["reason"].str.contains("同属|同讲|同一位老师")
    # Every course of the same channel names something shared (channel at least).
    assert shared[same_channel].all()
    assert en["reason"].str.contains("members who studied|also in|also about|same lecturer").all()
    assert zh["course_id"].tolist() == en["course_id"].tolist()


def test_similar_courses_survive_save_and_load(
    models: dict[str, rc.Recommender], course: str, tmp_path: Path
) -> None:
    for name in ("als", "ease", "popularity"):
        loaded = rc.load(rc.save(models[name], tmp_path / name))
        before = similar_courses(models[name], course, n=6)
        after = similar_courses(loaded, course, n=6)
        pd.testing.assert_frame_equal(before, after)


def test_cli_similar(
    models: dict[str, rc.Recommender],
    course: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = rc.save(models["ease"], tmp_path / "ease")
    assert main(["similar", "--model", str(folder), "--course", course, "--n", "4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    want = similar_courses(models["ease"], course, n=4)
    assert [r["course_id"] for r in rows] == want["course_id"].tolist()
    assert all(r["route"] == "similar:ease" for r in rows) and "title" in rows[0]
    assert main(["similar", "--model", str(folder), "--course", "nope"]) != 0
    assert "nope" in capsys.readouterr().err


def test_pyfunc_rows_with_similar_to_get_similar_courses(
    models: dict[str, rc.Recommender], dataset: rc.Dataset, course: str
) -> None:
    service = MenuService(models["ease"])
    member = str(dataset.member_ids.external_ids[0])
    frame = pd.DataFrame(
        {
            "member_id": [member, None],
            "n": [5, 3],
            "similar_to": [None, course],
            "lang": [None, "en"],
        }
    )
    got = service.predict(frame)
    menu = got[~got["route"].str.startswith("similar")]
    similar = got[got["route"] == "similar:ease"]
    assert len(menu) == 5 and (menu["member_id"] == member).all()
    want = similar_courses(models["ease"], course, n=3, lang="en")
    assert similar["course_id"].tolist() == want["course_id"].tolist()
    assert similar["reason"].tolist() == want["reason"].tolist()
    assert list(got.columns) == ["member_id", "course_id", "score", "rank", "reason", "route"]
    with pytest.raises(DataError, match="member_id"):
        service.predict(pd.DataFrame({"member_id": [None], "similar_to": [None]}))
    with pytest.raises(DataError, match="nope"):
        service.predict(pd.DataFrame({"member_id": [member], "similar_to": ["nope"]}))
