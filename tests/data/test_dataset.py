from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommend.data.dataset import Dataset, age_band, align_rows
from recommend.data.idmap import IdMap
from recommend.data.synthetic import Platform
from recommend.data.weighting import Weighting
from recommend.errors import ConfigError, DataError


@pytest.fixture
def frames() -> dict[str, pd.DataFrame]:
    events = pd.DataFrame(
        {
            "member_id": ["m1", "m1", "m2", "m3", "m3"],
            "course_id": ["c1", "c2", "c1", "c2", "c2"],
            "event": ["view", "complete", "like", "view", "complete"],
            "timestamp": pd.to_datetime(
                ["2024-01-01", "2024-03-01", "2024-03-01", "2024-02-01", "2024-03-01"]
            ),
            "watch_seconds": [300.0, 1200.0, np.nan, 600.0, 2400.0],
        }
    )
    courses = pd.DataFrame(
        {
            "course_id": ["c1", "c2", "c3"],
            "title": ["三会一课 怎么开", "党史学习教育 专题讲座", "三会一课 实务"],
            "category": ["党员教育", "理论学习", "党员教育"],
            "tags": [["组织生活"], ["党史"], ["组织生活", "实务"]],
            "duration_seconds": [600.0, 1200.0, 180.0],
            "lecturer_id": ["l1", "l2", None],
            "source": ["official", "official", "ugc"],
        }
    )
    members = pd.DataFrame(
        {
            "member_id": ["m1", "m2", "m3", "m4"],
            "org_id": ["o1", "o1", "o2", "o2"],
            "birth_year": [1950, 1990, 1985, 2001],
            "occupation": ["retired", "white_collar", "rural", "student"],
            "mobile": [False, True, False, False],
        }
    )
    return {"events": events, "courses": courses, "members": members}


def test_matrix_shape_dtype_and_universe(frames: dict[str, pd.DataFrame]) -> None:
    ds = Dataset.from_frames(frames["events"], courses=frames["courses"], members=frames["members"])
    assert ds.interactions.shape == (4, 3)  # m4 and c3 have no events but are in the tables
    assert ds.interactions.dtype == np.float32
    assert ds.member_ids.external_ids.tolist() == ["m1", "m2", "m3", "m4"]
    assert ds.interactions[3].nnz == 0 and ds.interactions[:, 2].nnz == 0
    assert ds.courses is not None and ds.courses["course_id"].tolist() == ["c1", "c2", "c3"]


def test_confidence_follows_the_documented_formula(frames: dict[str, pd.DataFrame]) -> None:
    w = Weighting(half_life_days=30.0)
    ds = Dataset.from_frames(frames["events"], courses=frames["courses"], weighting=w)
    now = pd.Timestamp("2024-03-01")
    assert ds.now == now
    m3, c2 = ds.member_ids.to_index(["m3"])[0], ds.course_ids.to_index(["c2"])[0]
    # m3/c2: a view 29 days before now watching half, plus a complete now watching 2x (capped 1).
    view = 1.0 * (1 + 0.5) * 0.5 ** (29 / 30)
    complete = 4.0 * (1 + 1.0)
    assert ds.interactions[m3, c2] == pytest.approx(view + complete, rel=1e-5)
    m2, c1 = ds.member_ids.to_index(["m2"])[0], ds.course_ids.to_index(["c1"])[0]
    assert ds.interactions[m2, c1] == pytest.approx(3.0)  # like, no watch time, no decay


def test_log_and_bm25_scaling(frames: dict[str, pd.DataFrame]) -> None:
    plain = Dataset.from_frames(frames["events"], weighting=Weighting(half_life_days=None))
    logged = Dataset.from_frames(
        frames["events"], weighting=Weighting(half_life_days=None, scaling="log", log_alpha=2.0)
    )
    np.testing.assert_allclose(logged.interactions.data, 2 * np.log1p(plain.interactions.data))
    bm25 = Dataset.from_frames(frames["events"], weighting=Weighting(scaling="bm25"))
    assert bm25.interactions.nnz == plain.interactions.nnz
    assert bm25.interactions.dtype == np.float32


def test_weighting_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="half_life_days"):
        Weighting(half_life_days=0)
    with pytest.raises(ConfigError, match="event_weights"):
        Weighting(event_weights={"view": -1.0})
    w = Weighting(scaling="log", event_weights={"view": 2.0})
    assert Weighting.from_params(w.get_params()) == w


def test_inputs_are_never_mutated(frames: dict[str, pd.DataFrame]) -> None:
    before = {k: v.copy(deep=True) for k, v in frames.items()}
    Dataset.from_frames(frames["events"], courses=frames["courses"], members=frames["members"])
    for k, v in frames.items():
        pd.testing.assert_frame_equal(v, before[k])


def test_unknown_ids_raise_or_are_dropped_and_reported(frames: dict[str, pd.DataFrame]) -> None:
    courses = frames["courses"][frames["courses"]["course_id"] != "c2"]
    with pytest.raises(DataError, match="missing from the courses table"):
        Dataset.from_frames(frames["events"], courses=courses)
    ds = Dataset.from_frames(frames["events"], courses=courses, on_unknown="drop")
    assert ds.report.dropped == 3 and ds.summary()["dropped_events"] == 3
    assert len(ds.events) == 2


def test_features(frames: dict[str, pd.DataFrame]) -> None:
    ds = Dataset.from_frames(frames["events"], courses=frames["courses"], members=frames["members"])
    mf, cf = ds.member_features, ds.course_features
    assert mf is not None and cf is not None
    assert mf.matrix.shape == (4, len(mf.names)) and mf.matrix.dtype == np.float32
    names = set(mf.names)
    assert {"occupation=retired", "age_band=70+", "mobile=True", "org_id=o2"} <= names
    m1 = ds.member_ids.to_index(["m1"])[0]
    row = set(mf.names[mf.matrix[m1].indices])
    assert row == {"occupation=retired", "age_band=70+", "mobile=False", "org_id=o1"}
    cnames = set(cf.names)
    assert {"category=理论学习", "tags=组织生活", "source=ugc", "lecturer_id=l1"} <= cnames
    # 三会一课 occurs in two titles and is kept whole; words of one title are not features.
    assert "title=三会一课" in cnames and "title=专题讲座" not in cnames
    assert "duration=<=5min" in cnames


def test_fingerprint_is_content_based(frames: dict[str, pd.DataFrame]) -> None:
    a = Dataset.from_frames(frames["events"], courses=frames["courses"])
    b = Dataset.from_frames(frames["events"].iloc[::-1], courses=frames["courses"].iloc[::-1])
    assert a.fingerprint() == b.fingerprint()  # row order does not matter
    changed = frames["events"].copy()
    changed.loc[0, "event"] = "complete"
    assert Dataset.from_frames(changed, courses=frames["courses"]).fingerprint() != a.fingerprint()
    other_w = Dataset.from_frames(
        frames["events"], courses=frames["courses"], weighting=Weighting(half_life_days=10)
    )
    assert other_w.fingerprint() != a.fingerprint()


def test_age_band() -> None:
    bands = age_band(np.array([1995, 1960, 1940, np.nan]), 2024)
    assert bands.tolist() == ["<30", "60-69", "70+", "unknown"]


def test_unknown_member_org_is_refused(frames: dict[str, pd.DataFrame]) -> None:
    orgs = pd.DataFrame({"org_id": ["o1"], "kind": ["branch"]})
    with pytest.raises(DataError, match=r"members\.org_id: branches missing from the orgs table"):
        Dataset.from_frames(frames["events"], members=frames["members"], orgs=orgs)


def test_align_rows_follows_the_id_map() -> None:
    table = pd.DataFrame({"course_id": ["b", "a"], "x": [2, 1]})
    out = align_rows(table, "course_id", IdMap(["a", "b", "c"]))
    assert out is not None and out.index.tolist() == [0, 1, 2]
    assert out["course_id"].tolist() == ["a", "b", "c"]  # a missing id keeps its row
    assert out["x"].iloc[:2].tolist() == [1, 2] and pd.isna(out["x"].iloc[2])
    assert align_rows(None, "course_id", IdMap(["a"])) is None


def test_a_million_copies_of_one_event_are_capped(small_platform: Platform) -> None:
    events = small_platform.events
    copies = pd.concat([events, events.iloc[[0]].loc[[0] * 1_000_000]], ignore_index=True)
    ds = Dataset.from_frames(copies)
    cap = Weighting().max_pair_confidence
    data = ds.interactions.data
    assert np.isfinite(data).all() and data.max() == cap
    m, c = (
        ds.member_ids.to_index([events.iloc[0]["member_id"]])[0],
        ds.course_ids.to_index([events.iloc[0]["course_id"]])[0],
    )
    assert ds.interactions[m, c] == cap
    # Summed without a cap, the pair would weigh about 60,000 times the median cell.
    assert data.max() / np.median(data) < 1_000
    clean = Dataset.from_frames(events)
    assert (ds.interactions != clean.interactions).nnz == 1  # only that pair moved


def test_duplicates_keep_or_collapse(frames: dict[str, pd.DataFrame]) -> None:
    events = frames["events"]
    doubled = pd.concat([events, events.iloc[[0, 0, 2]]], ignore_index=True)
    keep = Dataset.from_frames(doubled, weighting=Weighting(half_life_days=None))
    collapse = Dataset.from_frames(
        doubled, weighting=Weighting(half_life_days=None, duplicates="collapse")
    )
    once = Dataset.from_frames(events, weighting=Weighting(half_life_days=None))
    assert (collapse.interactions != once.interactions).nnz == 0
    m1, c1 = keep.member_ids.to_index(["m1"])[0], keep.course_ids.to_index(["c1"])[0]
    assert keep.interactions[m1, c1] == 3 * once.interactions[m1, c1]
    assert len(collapse.events) == len(doubled)  # the events are kept, counted once


def test_the_cap_and_floor_are_checked_parameters() -> None:
    for bad in (
        {"decay_floor": 0.0},
        {"decay_floor": 2.0},
        {"max_pair_confidence": 0.0},
        {"max_pair_confidence": 1e30},
        {"duplicates": "merge"},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Weighting(**bad)  # type: ignore[arg-type]
    w = Weighting(decay_floor=0.01, max_pair_confidence=50.0, duplicates="collapse")
    assert Weighting.from_params(w.get_params()) == w


def test_huge_event_weights_cannot_overflow_the_matrix(frames: dict[str, pd.DataFrame]) -> None:
    heavy = Weighting(event_weights={"view": 1e300, "complete": 1e300, "like": 1.0})
    ds = Dataset.from_frames(frames["events"].assign(value=1e6), weighting=heavy)
    assert np.isfinite(ds.interactions.data).all()
    assert ds.interactions.data.max() == heavy.max_pair_confidence


def test_with_new_courses_appends_empty_columns_and_rows(small_dataset: Dataset) -> None:
    ds = small_dataset
    assert ds.courses is not None
    rows = ds.courses.iloc[:2].assign(course_id=["up-1", "up-2"], title=["新课一", "新课二"])
    ids = ds.course_ids.add(["up-1", "up-2"])
    grown = ds.with_new_courses(ids, rows)
    assert grown.interactions.shape == (ds.n_members, ds.n_courses + 2)
    assert grown.interactions.getnnz(axis=0)[-2:].tolist() == [0, 0]
    np.testing.assert_array_equal(
        grown.interactions[:, : ds.n_courses].toarray(), ds.interactions.toarray()
    )
    assert grown.courses is not None
    assert grown.courses["course_id"].tolist()[-2:] == ["up-1", "up-2"]
    assert grown.courses["title"].tolist()[-2:] == ["新课一", "新课二"]
    assert grown.course_features is not None and grown.course_features.matrix.shape[0] == len(ids)
    assert grown.fingerprint() != ds.fingerprint()
    assert ds.n_courses == len(ds.course_ids)  # the original is unchanged
    with pytest.raises(DataError, match="extend"):
        ds.with_new_courses(IdMap(["up-1", *ds.course_ids.external_ids.tolist()]), rows)
