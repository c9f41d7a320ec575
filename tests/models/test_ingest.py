"""Ingestion: micro-batches folded in as one snapshot; new courses placed from learners."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.cli import main
from recommend.errors import ConfigError, DataError
from recommend.messages import template
from recommend.models.base import Recommender


def _fitted(name: str, ds: rc.Dataset) -> Recommender:
    params = {
        "als": {"n_factors": 8, "iterations": 5, "num_threads": 1},
        "bpr": {"n_factors": 8, "iterations": 20, "num_threads": 1},
        "item_knn": {"k": 20},
        "ease": {"l2": 50.0},
        "popularity": {},
        "lightfm": {"n_factors": 8, "epochs": 10, "num_threads": 1, "random_state": 0},
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


Menu = list[tuple[object, ...]]


def _menus_while_writing(
    model: rc.Recommender, members: list[object], writes: list[Callable[[], object]]
) -> tuple[dict[int, Menu], list[tuple[int, Menu]]]:
    """Three threads ask for the members' menus while this thread runs ``writes`` one by
    one. Returns the menu at each version as this thread saw it right after each write (only
    this thread writes: the latest version is its own), and every (version, menu) the
    readers got."""

    def menu() -> tuple[int, Menu]:
        with model.reading() as snap:
            frame = rc.member_menu(model, members, n=8)
            return snap.version, list(frame[["member_id", "course_id"]].itertuples(index=False))

    expected = dict([menu()])
    seen: list[tuple[int, Menu]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(menu())

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for write in writes:
            write()
            version, rows = menu()
            expected[version] = rows
    finally:
        done.set()
        for t in threads:
            t.join()
    return expected, seen


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

    expected, seen = _menus_while_writing(
        model, members, [functools.partial(rc.ingest, model, batch) for batch in batches]
    )
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


# ------------------------------------------------------------------ new catalogue rows


@pytest.fixture(scope="module")
def upload(small_platform: rc.Platform) -> tuple[rc.Dataset, pd.DataFrame, pd.DataFrame]:
    """A catalogue without three courses of middling popularity, their catalogue rows (as a
    branch uploads them: published at the data's time, compulsory for nobody) and the
    events of their learners, which the training data never saw."""
    p = small_platform
    gone = p.events["course_id"].value_counts().index[10:13].tolist()
    seen = ~p.events["course_id"].isin(gone)
    known = ~p.courses["course_id"].isin(gone)
    ds = rc.Dataset.from_frames(
        p.events[seen], courses=p.courses[known], members=p.members, orgs=p.orgs
    )
    rows = p.courses[~known].drop(columns=["compulsory_for"]).copy()
    rows["published_at"] = ds.now
    return ds, rows, p.events[~seen]


def _with_rows_in_catalogue(ds: rc.Dataset, rows: pd.DataFrame) -> rc.Dataset:
    """The same training events with the uploaded courses in the catalogue at fit."""
    events = ds.events.drop(columns=["member_idx", "course_idx"])
    courses = pd.concat([ds.courses, rows], ignore_index=True)
    return rc.Dataset.from_frames(events, courses=courses, members=ds.members, orgs=ds.orgs)


@pytest.mark.parametrize("name", ["ease", "item_knn"])
def test_catalogue_rows_are_placed_as_at_fit(
    name: str, upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame]
) -> None:
    """A course ingested with its catalogue row gets the placement a fit gives a course of
    the catalogue without learners (EASE and item-kNN are deterministic: the same
    weights, up to the order of the courses)."""
    ds, rows, _ = upload
    ingested = _fitted(name, ds)
    result = rc.ingest_arrays(ingested, [], [], [], [], courses=rows)
    assert sorted(result.added_courses) == sorted(rows["course_id"])
    fitted = _fitted(name, _with_rows_in_catalogue(ds, rows))
    ids = fitted.course_ids_.external_ids
    a = fitted.course_ids_.to_index(ids)
    b = ingested.course_ids_.to_index(ids)
    attr = "B_" if name == "ease" else "similarity_"

    def dense(model: Recommender, idx: np.ndarray) -> np.ndarray:
        matrix = getattr(model, attr)
        matrix = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
        return matrix[np.ix_(idx, idx)]

    new = fitted.course_ids_.to_index(rows["course_id"])
    assert np.abs(dense(fitted, a)[:, new]).sum() > 0  # placed, not empty
    # float32 weights computed in another course order: rounding only.
    np.testing.assert_allclose(dense(ingested, b), dense(fitted, a), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("name", ["als", "bpr", "item_knn", "ease", "lightfm"])
def test_an_uploaded_course_is_offered_to_members_it_suits(
    name: str, upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame]
) -> None:
    """Uploaded with no learner yet, a course reaches the menus of the members who later
    study it (their histories match its content) more often than other members', with
    the 'new course' reason; its first learners then fold in as for any new course."""
    ds, rows, later = upload
    model = _fitted(name, ds)
    course = rows["course_id"].iloc[0]
    rc.ingest(model, later.iloc[:0], courses=rows)
    assert course in model.course_ids_ and model.n_courses == ds.n_courses + len(rows)
    suited = np.intersect1d(
        later.loc[later["course_id"] == course, "member_id"].unique(), ds.member_ids.external_ids
    )
    others = np.setdiff1d(ds.member_ids.external_ids, suited)
    menus = rc.member_menu(model, ds.member_ids.external_ids.tolist(), n=20)
    offered = menus[menus["course_id"] == course]
    share_suited = offered["member_id"].isin(suited).sum() / suited.size
    share_others = offered["member_id"].isin(others).sum() / others.size
    assert share_suited > share_others
    new_reason = template("reason.new").replace("{reason}", "").strip("，")  # 新上线
    assert offered["reason"].str.contains(new_reason).all()
    # Its first learners (the members who studied it, in time order) fold in.
    first = later[later["course_id"] == course].sort_values("timestamp").head(40)
    result = rc.ingest(model, first)
    assert course in result.new_courses and not result.added_courses
    assert model.course_ids_.to_index([course])[0] in model.new_course_learners()
    if name == "lightfm":  # keeps its feature-based vector until the next refit
        vectors, _ = model.cold_course_factors(rows.iloc[[0]])
        np.testing.assert_allclose(model.course_factors_[-len(rows)], vectors[0], rtol=1e-6)


def test_catalogue_rows_survive_save_and_load(
    upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    ds, rows, later = upload
    model = _fitted("als", ds)
    first = later[later["course_id"].isin(rows["course_id"])].sort_values("timestamp").head(60)
    rc.ingest(model, first, courses=rows)
    rc.save(model, tmp_path / "model")
    loaded = rc.load(tmp_path / "model")
    assert loaded.course_ids_ == model.course_ids_
    np.testing.assert_array_equal(loaded.course_factors_, model.course_factors_)
    np.testing.assert_array_equal(loaded.cold_courses_, model.cold_courses_)
    members = ds.member_ids.external_ids[:30].tolist()
    pd.testing.assert_frame_equal(
        rc.member_menu(loaded, members, n=10), rc.member_menu(model, members, n=10)
    )
    added = loaded.dataset_.courses.set_index("course_id").loc[rows["course_id"], "title"]
    assert added.tolist() == rows["title"].tolist()
    # The loaded model folds the next learners of the uploaded courses in as before.
    more = later[later["course_id"].isin(rows["course_id"])].sort_values("timestamp")
    assert rc.ingest(loaded, more.iloc[60:120]).new_courses


def test_a_bad_catalogue_row_is_refused_naming_column_and_row(
    upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame],
) -> None:
    ds, rows, later = upload
    model = _fitted("item_knn", ds)
    version, n = model.snapshot().version, model.n_courses
    bad = rows.copy()
    bad.loc[bad.index[1], "duration_seconds"] = -60
    with pytest.raises(DataError, match=r"duration_seconds.*row 1"):
        rc.ingest(model, later.iloc[:0], courses=bad)
    known = rows.copy()
    known.loc[known.index[2], "course_id"] = ds.course_ids.external_ids[0]
    with pytest.raises(DataError, match=r"course_id: courses already in the model's catalogue"):
        rc.ingest(model, later.iloc[:0], courses=known)
    # Events of a course whose row the batch does not bring stay refused.
    with pytest.raises(DataError, match="courses=rows"):
        rc.ingest(model, later[later["course_id"] == rows["course_id"].iloc[0]].head(3))
    assert (model.snapshot().version, model.n_courses) == (version, n)
    with pytest.raises(ConfigError, match="cannot take new catalogue rows"):
        rc.ingest(_fitted("popularity", ds), later.iloc[:0], courses=rows)


def test_readers_never_see_half_a_catalogue(
    upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame],
) -> None:
    """Menus asked while batches add catalogue rows (one course each, with learners):
    every menu equals the menu single-threaded at the version it read."""
    ds, rows, later = upload
    model = _fitted("als", ds)
    members = ds.member_ids.external_ids[:8].tolist()

    def upload_one(k: int) -> None:
        row = rows.iloc[[k]]
        learners = later[later["course_id"] == row["course_id"].iloc[0]].head(30)
        rc.ingest(model, learners, courses=row)

    expected, seen = _menus_while_writing(
        model, members, [functools.partial(upload_one, k) for k in range(len(rows))]
    )
    assert model.n_courses == ds.n_courses + len(rows)
    assert len({tuple(r) for r in expected.values()}) > 1
    assert seen
    for version, got in seen:
        assert got == expected[version], f"a menu mixes versions (read {version})"


def test_cli_ingests_catalogue_rows(
    upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    ds, rows, later = upload
    rc.save(_fitted("item_knn", ds), tmp_path / "model")
    rows.to_parquet(tmp_path / "courses.parquet")
    learners = later[later["course_id"] == rows["course_id"].iloc[0]].head(10)
    learners.to_parquet(tmp_path / "events.parquet")
    args = ["ingest", "--model", str(tmp_path / "model"), "--courses"]
    assert main([*args, str(tmp_path / "courses.parquet")]) == 0  # catalogue rows alone
    assert set(rows["course_id"]) <= set(rc.load(tmp_path / "model").course_ids_.external_ids)
    # Again: the courses are known now, a clear error, the artifact unchanged.
    before = (tmp_path / "model" / "model.json").read_bytes()
    assert main([*args, str(tmp_path / "courses.parquet")]) == 2
    assert (tmp_path / "model" / "model.json").read_bytes() == before
    assert (
        main(
            [
                "ingest",
                "--model",
                str(tmp_path / "model"),
                "--events",
                str(tmp_path / "events.parquet"),
            ]
        )
        == 0
    )
    loaded = rc.load(tmp_path / "model")
    c = loaded.course_ids_.to_index([rows["course_id"].iloc[0]])[0]
    assert c in loaded.new_course_learners()


def test_similar_courses_at_once_search_when_its_index_is_rebuilt(
    upload: tuple[rc.Dataset, pd.DataFrame, pd.DataFrame],
) -> None:
    """An uploaded course has similar courses at once; the search index is separate from
    the model: the index in use keeps serving what it indexed until it is rebuilt."""
    from recommend.search import attach_index, build_index, search

    ds, rows, later = upload
    model = _fitted("item_knn", ds)
    course, title = rows["course_id"].iloc[0], rows["title"].iloc[0]
    member = ds.member_ids.external_ids[0]
    assert course not in set(search(model, member, title, n=20)["course_id"])  # builds it
    rc.ingest(model, later.iloc[:0], courses=rows)
    similar = rc.similar_courses(model, course, n=5)
    assert len(similar) == 5 and course not in set(similar["course_id"])
    assert course not in set(search(model, member, title, n=20)["course_id"])
    attach_index(model, build_index(model))
    assert course in set(search(model, member, title, n=20)["course_id"])
