"""Tests of the ``implicit``-based models (``recommend.models.implicit_models``).

The data are planted: courses fall into four topics (their category and tags say which),
every member has a favourite topic and picks most of their courses from it. So the
collaborative signal is learnable, and content features say which topic a new course is.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings
from dataclasses import dataclass

import implicit.cpu.als
import implicit.cpu.bpr
import implicit.gpu
import implicit.nearest_neighbours
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from implicit.cpu.als import AlternatingLeastSquares
from implicit.cpu.bpr import BayesianPersonalizedRanking
from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
from threadpoolctl import threadpool_info, threadpool_limits

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.errors import ConfigError, DataError
from recommend.models.implicit_models import (
    ALS,
    BPR,
    ItemKNN,
    MemberVectors,
    content_neighbour_factors,
)

TOPICS = ("party_history", "theory", "skills", "daily_life")
START = pd.Timestamp("2024-01-01")
N_TOPICS = len(TOPICS)


@dataclass(frozen=True)
class Planted:
    events: pd.DataFrame  # (member_id, course_id, event, timestamp)
    courses: pd.DataFrame  # every course, including those nobody studied
    taste: np.ndarray  # (n_members,) favourite topic of each member
    topic: np.ndarray  # (n_courses,) topic of each course


def plant(
    seed: int = 0,
    n_members: int = 240,
    n_courses: int = 96,
    n_cold: int = 0,
    per_member: int = 14,
    taste_share: float = 0.85,
) -> Planted:
    """Planted-taste platform: members ``m000..``, courses ``c000..``; the last ``n_cold``
    courses get no events (new uploads)."""
    rng = np.random.default_rng(seed)
    n_all = n_courses + n_cold
    topic = np.arange(n_all) % N_TOPICS
    taste = rng.integers(0, N_TOPICS, n_members)
    tags = [[f"{TOPICS[t]}-{j}" for j in rng.choice(4, 2, replace=False)] for t in topic]
    courses = pd.DataFrame(
        {
            "course_id": [f"c{i:03d}" for i in range(n_all)],
            "category": [TOPICS[t] for t in topic],
            "tags": tags,
            "source": np.where(np.arange(n_all) >= n_courses, "ugc", "official"),
        }
    )
    # Within a topic, courses differ in appeal, so that rankings have a learnable order.
    appeal = rng.gamma(2.0, 1.0, n_courses)
    rows = []
    for m in range(n_members):  # fixture set-up, not library code
        own = np.flatnonzero(topic[:n_courses] == taste[m])
        n_own = round(per_member * taste_share)
        p = appeal[own] / appeal[own].sum()
        mine = rng.choice(own, n_own, replace=False, p=p)
        rest = rng.choice(np.setdiff1d(np.arange(n_courses), mine), per_member - n_own, False)
        for c in np.concatenate([mine, rest]):
            rows.append((m, c, "view"))
            if c in mine or rng.random() < 0.3:
                rows.append((m, c, "complete"))
    m_idx, c_idx, kind = (np.array(v) for v in zip(*rows, strict=True))
    events = pd.DataFrame(
        {
            "member_id": [f"m{i:03d}" for i in m_idx],
            "course_id": [f"c{i:03d}" for i in c_idx],
            "event": kind,
            "timestamp": START + pd.to_timedelta(rng.integers(0, 60 * 24, len(kind)), unit="h"),
        }
    )
    return Planted(events, courses, taste, topic)


@pytest.fixture(scope="module")
def planted() -> Planted:
    return plant()


@pytest.fixture(scope="module")
def dataset(planted: Planted) -> Dataset:
    ds = Dataset.from_frames(planted.events, courses=planted.courses)
    assert (ds.interactions.getnnz(axis=0) > 0).all()  # every course warm
    return ds


@pytest.fixture(scope="module")
def als(dataset: Dataset) -> ALS:
    return ALS(n_factors=16, iterations=10).fit(dataset)


@pytest.fixture(scope="module")
def bpr(dataset: Dataset) -> BPR:
    return BPR(n_factors=16, iterations=60, learning_rate=0.05, num_threads=1).fit(dataset)


def _seen(model: ALS | BPR | ItemKNN, members: np.ndarray) -> sp.csr_matrix:
    return model.history_.rows(members)


def _events_of(planted: Planted, member_id: str) -> pd.DataFrame:
    return planted.events[planted.events["member_id"] == member_id].reset_index(drop=True)


def _new_events(member_id: str, courses: list[str], day: int = 61) -> pd.DataFrame:
    n = len(courses)
    return pd.DataFrame(
        {
            "member_id": [member_id] * 2 * n,
            "course_id": courses * 2,
            "event": ["view"] * n + ["complete"] * n,
            "timestamp": [START + pd.Timedelta(days=day)] * 2 * n,
        }
    )


def _assert_same_topk(ids: np.ndarray, scores: np.ndarray, ref_ids, ref_scores) -> None:
    """Same best-k lists up to ties: equal score profiles, equal sets above the k-th score."""
    ref_ids, ref_scores = np.asarray(ref_ids), np.asarray(ref_scores, dtype=np.float64)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-5)
    for row in range(ids.shape[0]):
        kth = min(scores[row, -1], ref_scores[row, -1])
        tol = 1e-4 * max(1.0, abs(kth))
        clear = set(ids[row][scores[row] > kth + tol].tolist())
        ref_clear = set(ref_ids[row][ref_scores[row] > kth + tol].tolist())
        assert clear == ref_clear, f"row {row}: {sorted(clear)} != {sorted(ref_clear)}"


# ----------------------------------------------------------------------------- protocol

MODELS = [
    pytest.param(lambda: ALS(n_factors=8, iterations=3), id="als"),
    pytest.param(lambda: BPR(n_factors=8, iterations=5), id="bpr"),
    pytest.param(lambda: ItemKNN(similarity="cosine", k=10), id="knn-cosine"),
    pytest.param(lambda: ItemKNN(similarity="bm25", k=10), id="knn-bm25"),
]


@pytest.mark.parametrize("make", MODELS)
def test_fit_returns_self_and_leaves_the_dataset_alone(make, dataset: Dataset) -> None:
    x = dataset.interactions
    before = (x.data.copy(), x.indices.copy(), x.indptr.copy())
    events = dataset.events.copy()
    model = make()
    assert model.fit(dataset) is model
    for now, then in zip((x.data, x.indices, x.indptr), before, strict=True):
        np.testing.assert_array_equal(now, then)
    pd.testing.assert_frame_equal(dataset.events, events)
    assert model.dataset_.interactions is x


def test_unsorted_input_is_copied_not_sorted_in_place(planted: Planted) -> None:
    ds = Dataset.from_frames(planted.events, courses=planted.courses)
    x = ds.interactions
    # Reverse the column order inside every row: still a valid CSR matrix, unsorted.
    order = np.concatenate(
        [np.arange(a, b)[::-1] for a, b in zip(x.indptr[:-1], x.indptr[1:], strict=True)]
    )
    x.indices[:] = x.indices[order]
    x.data[:] = x.data[order]
    x.has_sorted_indices = False
    indices = x.indices.copy()
    BPR(n_factors=4, iterations=2).fit(ds)
    np.testing.assert_array_equal(x.indices, indices)


@pytest.mark.parametrize("make", MODELS)
def test_get_params_round_trip(make) -> None:
    model = make()
    params = model.get_params()
    clone = type(model)(**params)
    assert clone.get_params() == params
    assert repr(clone) == repr(model)
    assert model.set_params(**params) is model


def test_names_and_defaults() -> None:
    assert (ALS.name, BPR.name, ItemKNN.name) == ("als", "bpr", "item_knn")
    als, bpr = ALS(), BPR()
    assert als.use_gpu is False and bpr.use_gpu is False
    assert als.show_progress is False and bpr.show_progress is False
    assert ItemKNN().show_progress is False
    assert (als.n_factors, als.regularization, als.alpha, als.iterations) == (64, 0.05, 1.0, 15)
    assert ItemKNN().get_params()["k"] == 100


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (ALS, {"n_factors": 0}),
        (ALS, {"regularization": 0.0}),
        (ALS, {"alpha": -1.0}),
        (ALS, {"iterations": 1.5}),
        (ALS, {"use_gpu": "yes"}),
        (ALS, {"random_state": -1}),
        (BPR, {"learning_rate": 0}),
        (BPR, {"cold_neighbours": -1}),
        (ItemKNN, {"similarity": "jaccard"}),
        (ItemKNN, {"k": 0}),
        (ItemKNN, {"bm25_b": 1.5}),
    ],
)
def test_bad_parameters_are_refused(cls, params) -> None:
    with pytest.raises(ConfigError, match=next(iter(params))):
        cls(**params)


@pytest.mark.skipif(implicit.gpu.HAS_CUDA, reason="a GPU is available here")
@pytest.mark.parametrize("cls", [ALS, BPR])
def test_use_gpu_without_cuda_is_a_clear_error(cls, dataset: Dataset) -> None:
    with pytest.raises(ConfigError, match="use_gpu=True"):
        cls(n_factors=4, use_gpu=True).fit(dataset)


@pytest.mark.parametrize(
    ("make", "implicit_class"),
    [
        (lambda: ALS(n_factors=4, iterations=2), implicit.cpu.als.AlternatingLeastSquares),
        (lambda: BPR(n_factors=4, iterations=2), implicit.cpu.bpr.BayesianPersonalizedRanking),
        (lambda: ItemKNN(k=5), implicit.nearest_neighbours.ItemItemRecommender),
        (lambda: ItemKNN("bm25", k=5), implicit.nearest_neighbours.ItemItemRecommender),
    ],
)
def test_fit_runs_on_the_cpu_with_single_threaded_blas(
    make, implicit_class, dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[type, list[int], bool]] = []
    original = implicit_class.fit

    def spy(self, user_items, show_progress=True, *args, **kwargs):
        blas = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
        seen.append((type(self), blas, show_progress))
        return original(self, user_items, show_progress, *args, **kwargs)

    monkeypatch.setattr(implicit_class, "fit", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # implicit warns about BLAS threads, COO input...
        make().fit(dataset)
    assert len(seen) == 1
    kind, blas, show_progress = seen[0]
    assert issubclass(kind, implicit_class)
    assert blas and all(n == 1 for n in blas)
    assert show_progress is False


# ----------------------------------------------------------------------------- factors


def test_factor_shapes_and_dtypes(dataset: Dataset, als: ALS, bpr: BPR) -> None:
    n, m = dataset.n_members, dataset.n_courses
    f = als.factors()
    assert f.members.shape == (n, 16) and f.members.dtype == np.float32
    assert f.courses.shape == (m, 16) and f.courses.dtype == np.float32
    assert f.course_bias is None
    f = bpr.factors()
    assert f.members.shape == (n, 16) and f.members.dtype == np.float32
    assert f.courses.shape == (m, 16) and f.courses.dtype == np.float32
    assert f.course_bias is not None
    assert f.course_bias.shape == (m,) and f.course_bias.dtype == np.float32
    assert als.score(np.arange(3)).dtype == np.float32
    assert bpr.score(np.arange(3)).shape == (3, m)


def test_bpr_factors_and_bias_reproduce_implicits_scores(dataset: Dataset, bpr: BPR) -> None:
    with threadpool_limits(1, "blas"):
        ref = BayesianPersonalizedRanking(
            factors=16, learning_rate=0.05, regularization=0.01, iterations=60,
            num_threads=1, random_state=0,
        )  # fmt: skip
        ref.fit(dataset.interactions, show_progress=False)
    expected = ref.user_factors @ ref.item_factors.T
    f = bpr.factors()
    np.testing.assert_allclose(f.members @ f.courses.T + f.course_bias, expected, atol=1e-5)


def _reference_als(dataset: Dataset) -> AlternatingLeastSquares:
    with threadpool_limits(1, "blas"):
        ref = AlternatingLeastSquares(
            factors=16, regularization=0.05, iterations=10, random_state=0
        )
        ref.fit(dataset.interactions, show_progress=False)
    return ref


@pytest.mark.parametrize("kind", ["als", "bpr"])
def test_topk_equals_implicits_recommend(kind: str, dataset: Dataset, als: ALS, bpr: BPR) -> None:
    """Members asked for out of order and in a subset: implicit's recommend needs rows of
    user_items aligned with the ids; our top-k must give the same lists."""
    x = dataset.interactions
    if kind == "als":
        model, ref = als, _reference_als(dataset)
    else:
        model = bpr
        with threadpool_limits(1, "blas"):
            ref = BayesianPersonalizedRanking(
                factors=16, learning_rate=0.05, regularization=0.01, iterations=60,
                num_threads=1, random_state=0,
            )  # fmt: skip
            ref.fit(x, show_progress=False)
    members = np.array([200, 3, 117, 42, 9, 230])
    ref_ids, ref_scores = ref.recommend(members, x[members], N=10)
    got = model.topk(members, 10, exclude=_seen(model, members))
    _assert_same_topk(got.indices, got.scores, ref_ids, ref_scores)


@pytest.mark.parametrize("similarity", ["cosine", "bm25"])
def test_item_knn_equals_implicit(similarity: str, dataset: Dataset) -> None:
    x = dataset.interactions
    model = ItemKNN(similarity=similarity, k=20).fit(dataset)
    cls = CosineRecommender if similarity == "cosine" else BM25Recommender
    ref = cls(K=20) if similarity == "cosine" else cls(K=20, K1=1.2, B=0.75)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # implicit converts its own COO input, with a warning
        ref.fit(x, show_progress=False)
    s = model.similarity_
    assert s.shape == (dataset.n_courses,) * 2 and s.dtype == np.float32
    np.testing.assert_allclose(s.toarray(), ref.similarity.toarray(), rtol=1e-5, atol=1e-6)
    # Scores are history @ similarity.
    members = np.array([5, 0, 77, 150])
    expected = x[members].toarray().astype(np.float64) @ s.toarray()
    np.testing.assert_allclose(model.score(members), expected, rtol=1e-5, atol=1e-5)
    # implicit zeroes (rather than removes) studied courses: compare positive scores only.
    got = model.topk(members, 10, exclude=_seen(model, members))
    ref_ids, ref_scores = ref.recommend(members, x[members], N=10)
    for row in range(len(members)):
        positive = ref_scores[row] > 0
        kth = ref_scores[row][positive][-1]
        np.testing.assert_allclose(got.scores[row][positive], ref_scores[row][positive], 1e-5)
        above = ref_ids[row][positive & (ref_scores[row] > kth * (1 + 1e-5))]
        assert set(above) <= set(got.indices[row].tolist())


# ----------------------------------------------------------------------------- fold-in


def test_als_fold_in_equals_implicits_recalculate_user(planted: Planted, dataset: Dataset) -> None:
    model = ALS(n_factors=16, iterations=10, alpha=2.0).fit(dataset)
    ref = AlternatingLeastSquares(factors=16, regularization=0.05, alpha=2.0)
    ref.item_factors = model.course_factors_.copy()
    for member_id, extra in (("m004", []), ("m031", ["c001", "c002", "c005"])):
        events = _events_of(planted, member_id)
        if extra:
            events = pd.concat([events, _new_events(member_id, extra)], ignore_index=True)
        model.update(member_id, events)
        idx = int(model.member_ids_.to_index([member_id])[0])
        row = model.history_.rows(np.array([idx]))
        expected = ref.recalculate_user(idx, row)
        got = model.member_factors_[idx]
        np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
        if not extra:  # same history: the exact solve lands near the fitted vector
            np.testing.assert_array_equal(row.toarray(), dataset.interactions[idx].toarray())


def _topic_share(model, idx: int, topic: np.ndarray, wanted: int, k: int = 10) -> float:
    got = model.topk(np.array([idx]), k, exclude=model.history_.rows(np.array([idx])))
    return float(np.mean(topic[got.indices[0]] == wanted))


@pytest.mark.parametrize("kind", ["als", "bpr", "cosine", "bm25"])
def test_update_moves_the_menu_to_what_the_member_just_studied(
    kind: str, planted: Planted, dataset: Dataset
) -> None:
    model = {
        "als": lambda: ALS(n_factors=16, iterations=10),
        "bpr": lambda: BPR(n_factors=16, iterations=60, learning_rate=0.05, num_threads=1),
        "cosine": lambda: ItemKNN("cosine", k=30),
        "bm25": lambda: ItemKNN("bm25", k=30),
    }[kind]().fit(dataset)
    idx = 7
    member_id = f"m{idx:03d}"
    old = int(planted.taste[idx])
    new = (old + 2) % N_TOPICS
    assert _topic_share(model, idx, planted.topic, old) >= 0.7
    before = model.factors()
    # The member now studies ten courses of another topic (their whole history).
    courses = [f"c{c:03d}" for c in np.flatnonzero(planted.topic == new)[:10]]
    model.update(member_id, _new_events(member_id, courses))
    assert _topic_share(model, idx, planted.topic, new) >= 0.7
    after = model.factors()
    if before is not None and after is not None:
        # Copy-on-write: what a reader took before the update never changes under it.
        assert not np.array_equal(before.members[idx], after.members[idx])
        np.testing.assert_array_equal(
            np.delete(before.members, idx, axis=0), np.delete(after.members, idx, axis=0)
        )
        assert before.courses is after.courses


@pytest.mark.parametrize("kind", ["als", "bpr", "knn"])
def test_update_adds_a_new_member(kind: str, planted: Planted, dataset: Dataset) -> None:
    model = {
        "als": lambda: ALS(n_factors=16, iterations=10),
        "bpr": lambda: BPR(n_factors=16, iterations=60, learning_rate=0.05, num_threads=1),
        "knn": lambda: ItemKNN(k=30),
    }[kind]().fit(dataset)
    n = dataset.n_members
    courses = [f"c{c:03d}" for c in np.flatnonzero(planted.topic == 1)[:8]]
    snapshot = model.factors()
    for j, member_id in enumerate(["newcomer-a", "newcomer-b"]):
        model.update(member_id, _new_events(member_id, courses))
        assert len(model.member_ids_) == n + j + 1
        idx = int(model.member_ids_.to_index([member_id])[0])
        assert idx == n + j
        assert _topic_share(model, idx, planted.topic, 1) >= 0.7
    f = model.factors()
    if f is not None:
        assert f.members.shape == (n + 2, 16) and f.members.dtype == np.float32
        np.testing.assert_array_equal(f.members[:n], snapshot.members)
        assert snapshot.members.shape[0] == n  # an earlier reader's view did not grow
        # Same history, same vector: the fold-in is repeatable.
        np.testing.assert_allclose(f.members[n], f.members[n + 1], rtol=1e-6, atol=1e-7)
    # An update of an existing member after appends keeps the newcomers.
    model.update("m000", _events_of(planted, "m000"))
    if f is not None:
        g = model.factors()
        np.testing.assert_array_equal(g.members[n:], f.members[n:])


def test_bpr_fold_in_ranks_the_new_courses_high(planted: Planted, bpr: BPR) -> None:
    courses = np.flatnonzero(planted.topic == 2)[:6]
    bpr.update("m100", _new_events("m100", [f"c{c:03d}" for c in courses]))
    idx = int(bpr.member_ids_.to_index(["m100"])[0])
    scores = bpr.score(np.array([idx]))[0]
    rank = np.argsort(np.argsort(-scores))  # 0 = best, over all courses, studied ones too
    assert np.median(rank[courses]) < 0.2 * bpr.n_courses


def test_fold_in_of_an_empty_history_gives_the_zero_vector(als: ALS) -> None:
    vector = als.member_factors_[0].copy()
    als._fold_in(0, sp.csr_matrix((1, als.n_courses), dtype=np.float32))
    np.testing.assert_array_equal(als.member_factors_[0], 0.0)
    als._publish_member(0, vector)


# ----------------------------------------------------------------------------- quality


def test_learned_models_beat_random_on_held_out_courses(planted: Planted) -> None:
    """Hold out 3 of each member's courses. A random ranking finds about
    k / n_candidates of them (~0.12 here: 10 of ~85 unseen courses); with 85% of picks
    from one topic of 24 courses, a model that learned the topics alone should reach
    several times that (0.68-0.77 when written), so 3x random is a wide margin."""
    ev = planted.events
    rng = np.random.default_rng(1)
    pairs = ev[["member_id", "course_id"]].drop_duplicates().reset_index(drop=True)
    draw = pd.Series(rng.random(len(pairs)))
    held = pairs[draw.groupby(pairs["member_id"]).rank(method="first") <= 3]
    key = ev["member_id"] + "/" + ev["course_id"]
    test_mask = key.isin(held["member_id"] + "/" + held["course_id"])
    full = Dataset.from_frames(ev, courses=planted.courses)
    ids = {"member_ids": full.member_ids, "course_ids": full.course_ids}
    train = Dataset.from_frames(ev[~test_mask], courses=planted.courses, **ids)
    test = Dataset.from_frames(ev[test_mask], courses=planted.courses, **ids)
    relevant = test.interactions.toarray() > 0
    members = np.arange(train.n_members)
    seen = train.interactions[members]

    def recall(indices: np.ndarray) -> float:
        hits = np.take_along_axis(relevant, np.maximum(indices, 0), axis=1) & (indices >= 0)
        return float(np.mean(hits.sum(axis=1) / relevant.sum(axis=1)))

    random_recall = float(np.mean(10 / (train.n_courses - seen.getnnz(axis=1))))
    models = {
        "als": ALS(n_factors=16, iterations=10),
        "bpr": BPR(n_factors=16, iterations=60, learning_rate=0.05, num_threads=1),
        "cosine": ItemKNN("cosine", k=30),
        "bm25": ItemKNN("bm25", k=30),
    }
    for name, model in models.items():
        got = recall(model.fit(train).topk(members, 10, exclude=seen).indices)
        assert got > 3 * random_recall, f"{name}: recall@10 {got:.3f}, random {random_recall:.3f}"


# ----------------------------------------------------------------------------- cold courses


@pytest.fixture(scope="module")
def with_uploads() -> Planted:
    # Eight new uploads, two per topic, nobody studied yet.
    return plant(seed=3, n_cold=8)


@pytest.mark.parametrize("kind", ["als", "bpr"])
def test_cold_courses_are_placed_by_content(kind: str, with_uploads: Planted) -> None:
    p = with_uploads
    ds = Dataset.from_frames(p.events, courses=p.courses)
    model = (
        ALS(n_factors=16, iterations=10)
        if kind == "als"
        else BPR(n_factors=16, iterations=60, learning_rate=0.05, num_threads=1)
    ).fit(ds)
    cold = np.flatnonzero(ds.interactions.getnnz(axis=0) == 0)
    np.testing.assert_array_equal(model.cold_courses_, cold)
    assert cold.size == 8
    members = np.arange(ds.n_members)
    scores = model.score(members, cold)  # (n_members, 8)
    # For each member, the new uploads of their favourite topic beat the others.
    liked = p.topic[cold][None, :] == p.taste[:, None]
    assert (scores[liked].reshape(len(members), 2).min(axis=1) > scores[~liked].reshape(
        len(members), 6).max(axis=1)).mean() > 0.9  # fmt: skip
    # A cold course's factors are not zero any more, and come from its topic's courses.
    assert np.abs(model.course_factors_[cold]).sum(axis=1).min() > 0


def test_cold_courses_without_features_get_zero_factors(with_uploads: Planted) -> None:
    p = with_uploads
    universe = IdMap(p.courses["course_id"])
    ds = Dataset.from_frames(p.events, course_ids=universe)  # no courses table
    assert ds.course_features is None
    for model in (ALS(n_factors=8, iterations=3), BPR(n_factors=8, iterations=5)):
        model.fit(ds)
        assert model.cold_courses_.size == 8
        np.testing.assert_array_equal(model.course_factors_[model.cold_courses_], 0.0)
        if model.course_bias_ is not None:
            np.testing.assert_array_equal(model.course_bias_[model.cold_courses_], 0.0)
        np.testing.assert_array_equal(model.score(np.arange(4), model.cold_courses_), 0.0)


def test_als_fold_in_with_a_new_upload_in_the_history(with_uploads: Planted) -> None:
    """A cold course counts with its placed factors, outside the YᵀY baseline."""
    p = with_uploads
    ds = Dataset.from_frames(p.events, courses=p.courses)
    model = ALS(n_factors=16, iterations=10).fit(ds)
    cold = model.cold_courses_
    member_id = "m010"
    upload = p.courses["course_id"].iloc[cold[0]]
    events = pd.concat([_events_of(p, member_id), _new_events(member_id, [upload])])
    model.update(member_id, events)
    idx = int(model.member_ids_.to_index([member_id])[0])
    row = model.history_.rows(np.array([idx]))
    # Reference: the normal equations written out in full, float64.
    y = model.course_factors_.astype(np.float64)
    c = row.toarray()[0].astype(np.float64)
    weight = np.where(c > 0, c, 1.0)
    weight[cold] = np.where(c[cold] > 0, c[cold], 0.0)  # unstudied uploads: not in the loss
    a = (y.T * weight) @ y + 0.05 * np.eye(16)
    expected = np.linalg.solve(a, y.T @ c)
    np.testing.assert_allclose(model.member_factors_[idx], expected, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- from factors


@pytest.mark.parametrize("kind", ["als", "bpr"])
def test_from_factors_gives_the_fitted_model(kind: str, with_uploads: Planted) -> None:
    """Factors learned elsewhere (Spark) finish into the model a fit with them gives."""
    p = with_uploads
    ds = Dataset.from_frames(p.events, courses=p.courses)
    fitted = (
        ALS(n_factors=16, iterations=10)
        if kind == "als"
        else BPR(n_factors=16, iterations=60, learning_rate=0.05, num_threads=1)
    ).fit(ds)
    cold = fitted.cold_courses_
    # As a learner leaves them: whatever the cold rows hold, placement overwrites it.
    courses = fitted.course_factors_.copy()
    courses[cold] = np.random.default_rng(0).normal(size=(cold.size, courses.shape[1]))
    bias = None if fitted.course_bias_ is None else fitted.course_bias_.copy()
    if bias is not None:
        bias[cold] = 5.0
    given = courses.copy()

    rebuilt = type(fitted).from_factors(
        ds, fitted.member_factors_, courses, bias, **fitted.get_params()
    )
    assert rebuilt.is_fitted and rebuilt.get_params() == fitted.get_params()
    np.testing.assert_array_equal(courses, given)  # inputs are not modified
    np.testing.assert_array_equal(rebuilt.cold_courses_, cold)
    members = np.arange(ds.n_members)
    np.testing.assert_array_equal(rebuilt.score(members), fitted.score(members))
    pd.testing.assert_frame_equal(
        rebuilt.recommend(["m000", "m010", "nobody"], n=5),
        fitted.recommend(["m000", "m010", "nobody"], n=5),
    )
    # Fold-in is ready and re-solves a member as the fitted model does (ALS: same YᵀY).
    upload = p.courses["course_id"].iloc[cold[0]]
    events = pd.concat([_events_of(p, "m010"), _new_events("m010", [upload])])
    for model in (fitted, rebuilt):
        model.update("m010", events)
    idx = fitted.member_ids_.to_index(["m010"])
    np.testing.assert_array_equal(rebuilt.member_vectors(idx), fitted.member_vectors(idx))


def test_from_factors_checks_shapes(dataset: Dataset, als: ALS, bpr: BPR) -> None:
    f = als.factors()
    model = ALS.from_factors(dataset, f.members, f.courses)
    assert model.n_factors == f.courses.shape[1]  # taken from the factors
    with pytest.raises(DataError, match="expected"):
        ALS.from_factors(dataset, f.members[:-1], f.courses)
    with pytest.raises(DataError, match="n_factors=8"):
        ALS.from_factors(dataset, f.members, f.courses, n_factors=8)
    with pytest.raises(DataError, match="no course bias"):
        ALS.from_factors(dataset, f.members, f.courses, np.zeros(dataset.n_courses))
    b = bpr.factors()
    assert b.course_bias is not None
    with pytest.raises(DataError, match="course bias"):
        BPR.from_factors(dataset, b.members, b.courses, b.course_bias[:-1])
    with pytest.raises(ConfigError):
        BPR.from_factors(dataset, b.members, b.courses, b.course_bias, learning_rate=-1.0)


def test_content_neighbour_factors_by_hand() -> None:
    factors = np.array([[1, 0], [0, 1], [1, 1], [9, 9], [9, 9]], dtype=np.float32)
    features = sp.csr_matrix(
        np.array(
            [
                [1, 0, 0],  # warm 0
                [0, 1, 0],  # warm 1
                [1, 1, 0],  # warm 2
                [1, 0, 0],  # cold 3: same as course 0 -> sim 1 with 0, 1/√2 with 2
                [0, 0, 1],  # cold 4: shares nothing
            ],
            dtype=np.float32,
        )
    )
    placed, rows = content_neighbour_factors(factors, np.array([3, 4]), features, 2)
    np.testing.assert_array_equal(placed, [3])
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(rows[0], (np.array([1, 0]) + s * np.array([1, 1])) / (1 + s))
    assert rows.dtype == np.float32
    placed, rows = content_neighbour_factors(factors, np.array([3]), features, 1)
    np.testing.assert_allclose(rows, [[1, 0]])


# ----------------------------------------------------------------------------- member vectors


def test_member_vectors_overlay_and_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    import recommend.models.implicit_models as module

    monkeypatch.setattr(module, "_merge_at", lambda n_base: 4)
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((10, 3)).astype(np.float32)
    vectors = MemberVectors.of(expected)
    snapshots = [(vectors, expected.copy())]
    for member, appended in [(2, False), (7, False), (2, False), (10, True), (12, True)]:
        vector = rng.standard_normal(3).astype(np.float32)
        if appended:
            grown = np.zeros((member + 1, 3), dtype=np.float32)
            grown[: expected.shape[0]] = expected
            expected = grown
        expected[member] = vector
        vectors = vectors.with_vector(member, vector)
        snapshots.append((vectors, expected.copy()))
    # The overlay reached 4 rows (2, 7, 10, 12) and was merged into a new base.
    assert vectors.index.size == 0 and vectors.base.shape == (13, 3)
    for state, want in snapshots:  # every earlier state is intact
        np.testing.assert_array_equal(state.array, want)
        order = np.array([12, 0, 7, 2, 11, 7])[: 6 if want.shape[0] == 13 else 4]
        order = order[order < want.shape[0]]
        np.testing.assert_array_equal(state.gather(order), want[order])
        assert not state.array.flags.writeable
    with pytest.raises(DataError, match="out of range"):
        vectors.gather(np.array([13]))
    with pytest.raises(DataError, match="out of range"):
        vectors.gather(np.array([-1]))


def test_reader_state_survives_updates(als: ALS, planted: Planted) -> None:
    """What a reader took (factors, scores) never changes under it."""
    model = ALS(n_factors=16, iterations=10).fit(als.dataset_)
    members = np.array([0, 1, 2])
    before = model.factors()
    copy = before.members.copy()
    scores = model.score(members)
    for m in range(3):
        member_id = f"m{m:03d}"
        model.update(member_id, _new_events(member_id, ["c010", "c011", "c012"]))
    np.testing.assert_array_equal(before.members, copy)
    assert not np.allclose(model.score(members), scores)
    np.testing.assert_allclose(model.score(members), model.factors().members[:3] @
                               model.course_factors_.T, rtol=1e-5, atol=1e-5)  # fmt: skip


def test_blas_libraries_loaded_after_the_kernel_ran_are_limited_during_fit(
    tmp_path: pathlib.Path,
) -> None:
    """The kernel runs first (caching its BLAS controller), then implicit loads scipy's
    BLAS: ALS must still fit with every BLAS library at one thread."""
    script = tmp_path / "order.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, warnings
            import numpy as np, pandas as pd, threadpoolctl
            from recommend.topk import topk_factors
            rng = np.random.default_rng(0)
            topk_factors(rng.random((900, 8), np.float32), rng.random((50, 8), np.float32), 5)
            from recommend.data.dataset import Dataset
            from recommend.models.implicit_models import ALS
            import implicit.cpu.als as A
            seen = []
            fit = A.AlternatingLeastSquares.fit
            def spy(self, *a, **k):
                seen.extend(i["num_threads"] for i in threadpoolctl.threadpool_info()
                            if i["user_api"] == "blas")
                return fit(self, *a, **k)
            A.AlternatingLeastSquares.fit = spy
            events = pd.DataFrame({
                "member_id": [f"m{i % 30}" for i in range(300)],
                "course_id": [f"c{(i * 7) % 40}" for i in range(300)],
                "event": "view", "timestamp": "2025-01-01"})
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                ALS(n_factors=4, iterations=2).fit(Dataset.from_frames(events))
            print(json.dumps({"threads": seen,
                              "warnings": [str(w.message) for w in caught
                                           if "OpenBLAS" in str(w.message)]}))
            """
        )
    )
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["threads"] and set(result["threads"]) == {1}
    assert result["warnings"] == []
