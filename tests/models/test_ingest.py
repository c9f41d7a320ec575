"""Ingestion: micro-batches folded in as one snapshot; new courses placed from learners."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.cli import main
from recommend.errors import ConfigError, DataError
from recommend.models.base import Recommender


def _fitted(name: str, ds: rc.Dataset) -> Recommender:
    params = {
        "als": {"n_factors": 8, "iterations": 5, "num_threads": 1},
        "bpr": {"n_factors": 8, "iterations": 20, "num_threads": 1},
        "item_knn": {"k": 20},
        "ease": {"l2": 50.0},
        "popularity": {},
    }[name]
    return rc.make_model(name, **params).fit(ds)


def _cold_courses(ds: rc.Dataset) -> np.ndarray:
    return np.flatnonzero(ds.interactions.getnnz(axis=0) == 0)


def _batch(ds: rc.Dataset, members: list[str], courses: list[str], kind: str = "view"):
    return pd.DataFrame(
        {
            "member_id": members,
            "course_id": courses,
            "event": [kind] * len(members),
            "timestamp": [ds.now] * len(members),
        }
    )


@pytest.fixture(scope="module")
def dataset(small_platform: rc.Platform) -> rc.Dataset:
    """The small platform with three courses stripped of their learners (new courses
    with catalogue rows)."""
    p = small_platform
    counts = p.events["course_id"].value_counts()
    new = counts.index[-3:].tolist()
    events = p.events[~p.events["course_id"].isin(new)]
    ds = rc.Dataset.from_frames(events, courses=p.courses, members=p.members, orgs=p.orgs)
    assert set(new) <= set(ds.course_ids.external_ids[_cold_courses(ds)].tolist())
    return ds


def _learner_batch(ds: rc.Dataset, course: str, n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    members = rng.choice(ds.member_ids.external_ids, size=n, replace=False).tolist()
    return _batch(ds, members, [course] * n)


# ------------------------------------------------------------------ one snapshot per batch


def test_a_batch_is_one_snapshot_and_adds_to_histories(dataset: rc.Dataset) -> None:
    model = _fitted("als", dataset)
    before = model.snapshot()
    m0, m1 = dataset.member_ids.external_ids[:2].tolist()
    course = dataset.course_ids.external_ids[0]
    idx = model.member_ids_.to_index([m0, m1])
    rows_before = model.history_.rows(idx).toarray()
    result = rc.ingest(model, _batch(dataset, [m0, m1, "brand-new"], [course] * 3))
    after = model.snapshot()
    assert after.version == before.version + 1 == result.version
    assert (result.events, result.members, result.new_members) == (3, 3, 1)
    rows_after = model.history_.rows(idx).toarray()
    # Added to what the members had, not in place of it.
    assert (rows_after[:, 0] > rows_before[:, 0]).all()
    np.testing.assert_array_equal(rows_after[:, 1:], rows_before[:, 1:])
    assert "brand-new" in model.member_ids_
    # The old snapshot is untouched (copy-on-write).
    assert "brand-new" not in before.member_ids


def test_readers_see_a_whole_batch_or_none_of_it(dataset: rc.Dataset) -> None:
    """Menus of several members asked in one request while batches touching all of them
    are ingested: every menu equals the menu single-threaded at the version it read."""
    model = _fitted("als", dataset)
    members = dataset.member_ids.external_ids[:6].tolist()
    courses = dataset.course_ids.external_ids
    new = courses[_cold_courses(dataset)].tolist()
    rng = np.random.default_rng(1)
    batches = [
        _batch(dataset, members, rng.choice(courses[:40], size=6).tolist()) for _ in range(15)
    ]
    # Each batch also gives a new course learners: course vectors change with it.
    batches = [
        pd.concat([b, _learner_batch(dataset, new[k % len(new)], 4, k)])
        for k, b in enumerate(batches)
    ]

    def menu() -> tuple[int, list[tuple[object, ...]]]:
        with model.reading() as snap:
            frame = rc.member_menu(model, members, n=8)
            return snap.version, list(frame[["member_id", "course_id"]].itertuples(index=False))

    expected = dict([menu()])
    seen: list[tuple[int, list[tuple[object, ...]]]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(menu())

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for batch in batches:
            rc.ingest(model, batch)
            version, rows = menu()  # only this thread writes: the latest is this batch
            expected[version] = rows
    finally:
        done.set()
        for t in threads:
            t.join()
    assert len(expected) == len(batches) + 1
    assert len({tuple(r) for r in expected.values()}) > 1  # the batches change the menus
    assert seen
    for version, rows in seen:
        assert rows == expected[version], f"a menu mixes versions (read {version})"


# ------------------------------------------------------------------ new courses


def test_als_new_course_gets_the_least_squares_vector(dataset: rc.Dataset) -> None:
    model = _fitted("als", dataset)
    c = int(_cold_courses(dataset)[0])
    course = dataset.course_ids.external_ids[c]
    placed = model.course_factors_[c].astype(np.float64).copy()
    batch = _learner_batch(dataset, course, 12)
    result = rc.ingest(model, batch)
    assert course in result.new_courses
    # Reference: ALS's course step written out in full over every member, float64,
    # pulled towards the content placement.
    x = model.member_factors_.astype(np.float64)
    learners = model.member_ids_.to_index(batch["member_id"])
    conf = np.ones(x.shape[0])
    pref = np.zeros(x.shape[0])
    conf[learners] = model.history_.rows(learners).toarray()[:, c] * model.alpha
    pref[learners] = 1.0
    lam = model.regularization
    a = (x.T * conf) @ x + lam * np.eye(x.shape[1])
    expected = np.linalg.solve(a, x.T @ (conf * pref) + lam * placed)
    np.testing.assert_allclose(model.course_factors_[c], expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(model.course_factors_[c], placed)
    # Its learners now score it above the members who did not study it.
    scores = model.score(np.arange(len(dataset.member_ids)))[:, c]
    others = np.setdiff1d(np.arange(len(dataset.member_ids)), learners)
    assert scores[learners].mean() > 2 * scores[others].mean()


def test_bpr_new_course_moves_towards_its_learners(dataset: rc.Dataset) -> None:
    model = _fitted("bpr", dataset)
    c = int(_cold_courses(dataset)[0])
    course = dataset.course_ids.external_ids[c]
    batch = _learner_batch(dataset, course, 20)
    learners = model.member_ids_.to_index(batch["member_id"])
    rank_before = (model.score(learners) > model.score(learners)[:, [c]]).sum(axis=1)
    rc.ingest(model, batch)
    rank_after = (model.score(learners) > model.score(learners)[:, [c]]).sum(axis=1)
    assert np.median(rank_after) < np.median(rank_before)
    assert np.isfinite(model.course_bias_[c])


def test_item_knn_new_course_column_is_the_cosine_of_its_learners(
    dataset: rc.Dataset,
) -> None:
    model = _fitted("item_knn", dataset)
    c = int(_cold_courses(dataset)[0])
    batch = _learner_batch(dataset, dataset.course_ids.external_ids[c], 10)
    rc.ingest(model, batch)
    learners = model.member_ids_.to_index(batch["member_id"])
    rows = model.history_.rows(learners).toarray().astype(np.float64)
    base = dataset.interactions.toarray().astype(np.float64)
    norms = np.sqrt((base**2).sum(axis=0))
    own = np.sqrt((rows[:, c] ** 2).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.where(norms > 0, rows[:, c] @ rows / (norms * own), 0.0)
    cosine[c] = 0.0
    top = np.argsort(-cosine)[: model.k]
    top = top[cosine[top] > 0]
    column = model.similarity_[:, c].toarray().ravel()
    np.testing.assert_allclose(column[top], cosine[top], rtol=1e-5)
    assert np.count_nonzero(column) == top.size
    # Symmetric: the course now recommends its neighbours too.
    np.testing.assert_allclose(model.similarity_[c].toarray().ravel(), column, rtol=1e-6)


def test_ease_keeps_content_placement_until_refit(dataset: rc.Dataset) -> None:
    model = _fitted("ease", dataset)
    c = int(_cold_courses(dataset)[0])
    weights = model.B_.copy()
    rc.ingest(model, _learner_batch(dataset, dataset.course_ids.external_ids[c], 10))
    np.testing.assert_array_equal(model.B_, weights)


def test_popularity_counts_the_new_learners(dataset: rc.Dataset) -> None:
    model = _fitted("popularity", dataset)
    c = int(_cold_courses(dataset)[0])
    before = model.global_.copy()
    rc.ingest(model, _learner_batch(dataset, dataset.course_ids.external_ids[c], 7))
    assert model.global_[c] == before[c] + 7
    # Ingesting the same members' events again reaches no new member.
    rc.ingest(model, _learner_batch(dataset, dataset.course_ids.external_ids[c], 7))
    assert model.global_[c] == before[c] + 7


# ------------------------------------------------------------------ the array path


def test_array_path_equals_frame_path(dataset: rc.Dataset) -> None:
    a, b = _fitted("als", dataset), _fitted("als", dataset)
    np.testing.assert_array_equal(a.member_factors_, b.member_factors_)
    rng = np.random.default_rng(3)
    n = 40
    courses = dataset.course_ids.external_ids
    frame = pd.DataFrame(
        {
            "member_id": rng.choice(dataset.member_ids.external_ids[:20], n).tolist(),
            "course_id": rng.choice(courses, n).tolist(),
            "event": rng.choice(["view", "complete", "like"], n).tolist(),
            "timestamp": dataset.now - pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
            "watch_seconds": rng.uniform(0, 900, n),
        }
    )
    frame.loc[:3, "member_id"] = "walk-in"
    rc.ingest(a, frame)
    rc.ingest_arrays(
        b,
        frame["member_id"].to_numpy(),
        frame["course_id"].to_numpy(),
        frame["event"].to_numpy(),
        frame["timestamp"].to_numpy(),
        watch_seconds=frame["watch_seconds"].to_numpy(),
    )
    assert a.member_ids_ == b.member_ids_
    idx = np.arange(len(a.member_ids_))
    np.testing.assert_array_equal(a.history_.rows(idx).toarray(), b.history_.rows(idx).toarray())
    np.testing.assert_array_equal(a.member_factors_, b.member_factors_)
    np.testing.assert_array_equal(a.course_factors_, b.course_factors_)
    assert a.history_.completed.keys() == b.history_.completed.keys()
    for k, v in a.history_.completed.items():
        np.testing.assert_array_equal(v, b.history_.completed[k])


def test_completions_are_added(dataset: rc.Dataset) -> None:
    model = _fitted("ease", dataset)
    member = dataset.member_ids.external_ids[0]
    i = int(model.member_ids_.to_index([member])[0])
    trained = set(model.training_completions()[i].indices.tolist())
    course = dataset.course_ids.external_ids[5]
    rc.ingest(model, _batch(dataset, [member], [course], "complete"))
    assert set(model.history_.completed[i].tolist()) == trained | {5}
    menu = rc.member_menu(model, [member], n=50, exclude="completed")
    assert course not in set(menu["course_id"])


# ------------------------------------------------------------------ bad input


def test_bad_input_is_named(dataset: rc.Dataset) -> None:
    model = _fitted("ease", dataset)
    version = model.snapshot().version
    member = dataset.member_ids.external_ids[0]
    with pytest.raises(DataError, match="no-such-course"):
        rc.ingest(model, _batch(dataset, [member], ["no-such-course"]))
    late = _batch(dataset, [member], [dataset.course_ids.external_ids[0]])
    late["timestamp"] = pd.Timestamp("2100-01-01")
    with pytest.raises(DataError, match="timestamp"):
        rc.ingest(model, late)
    with pytest.raises(DataError, match="different lengths"):
        rc.ingest_arrays(model, [member], ["c", "d"], ["view"], [dataset.now])
    with pytest.raises(ConfigError, match="teleport"):
        rc.ingest_arrays(
            model, [member], [dataset.course_ids.external_ids[0]], ["teleport"], [dataset.now]
        )
    with pytest.raises(DataError, match="member_id"):
        rc.ingest(
            model,
            _batch(dataset, [member], [dataset.course_ids.external_ids[0]]).drop(
                columns="member_id"
            ),
        )
    assert model.snapshot().version == version  # nothing was published


# ------------------------------------------------------------------ the command


def test_cli_writes_a_new_artifact_version_atomically(dataset: rc.Dataset, tmp_path: Path) -> None:
    model = _fitted("als", dataset)
    rc.save(model, tmp_path / "model")
    c = int(_cold_courses(dataset)[0])
    course = dataset.course_ids.external_ids[c]
    batch = pd.concat([_learner_batch(dataset, course, 5), _batch(dataset, ["walk-in"], [course])])
    batch.to_csv(tmp_path / "events.csv", index=False)
    files_before = sorted(p.name for p in (tmp_path / "model").iterdir())
    bytes_before = (tmp_path / "model" / "model.json").read_bytes()

    assert (
        main(
            [
                "ingest",
                "--model",
                str(tmp_path / "model"),
                "--events",
                str(tmp_path / "events.csv"),
                "--out",
                str(tmp_path / "next"),
            ]
        )
        == 0
    )
    nxt = rc.load(tmp_path / "next")
    assert "walk-in" in nxt.member_ids_
    assert not np.allclose(nxt.course_factors_[c], model.course_factors_[c])
    assert (tmp_path / "model" / "model.json").read_bytes() == bytes_before

    # A bad batch leaves the artifact exactly as it was, and no half-written folder.
    batch.loc[0, "course_id"] = "no-such-course"
    batch.to_csv(tmp_path / "bad.csv", index=False)
    assert (
        main(["ingest", "--model", str(tmp_path / "model"), "--events", str(tmp_path / "bad.csv")])
        == 2
    )
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == files_before
    assert (tmp_path / "model" / "model.json").read_bytes() == bytes_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "events.csv", "model", "next"]

    # In place: the folder now holds the new version.
    assert (
        main(
            ["ingest", "--model", str(tmp_path / "model"), "--events", str(tmp_path / "events.csv")]
        )
        == 0
    )
    assert "walk-in" in rc.load(tmp_path / "model").member_ids_
