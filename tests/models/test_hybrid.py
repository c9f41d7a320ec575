"""Tests of the LightFM hybrid model (``recommend.models.hybrid``).

The data are planted: a member's occupation decides which channel they mostly study (85% of
their courses, the rest drawn from the whole catalogue), and they complete most of the
courses of their channel but rarely the others. Member attributes therefore predict taste,
which is what cold start from features must recover.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightfm
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.data.synthetic import Platform
from recommend.errors import ConfigError, DataError, NotFittedError
from recommend.models.hybrid import LightFM, course_feature_rows, member_feature_rows
from recommend.schema import CHANNELS
from recommend.topk import topk_factors

OCCUPATIONS = ("retired", "white_collar", "blue_collar", "student")  # occupation i -> channel i
START = pd.Timestamp("2024-01-01")


@dataclass(frozen=True)
class Planted:
    events: pd.DataFrame  # all events, warm and cold members
    courses: pd.DataFrame  # catalogue: studied courses, then new UGC courses nobody studied
    members: pd.DataFrame  # warm members first, then cold ones
    taste: np.ndarray  # (n_members,) preferred channel index of every member
    channel: np.ndarray  # (n_courses,) channel index of every course
    n_warm: int
    n_studied: int  # courses [0, n_studied) can be studied; the rest are new uploads


def plant(
    seed: int,
    n_warm: int = 600,
    n_cold: int = 150,
    n_studied: int = 160,
    n_new: int = 8,
    per_member: int = 10,
    taste_share: float = 0.85,
) -> Planted:
    """Planted-taste platform; course ids ``c0000..``, member ids ``m00000..``."""
    rng = np.random.default_rng(seed)
    n_ch = len(CHANNELS)
    n_courses, n_members = n_studied + n_new, n_warm + n_cold
    channel = np.arange(n_courses) % n_ch
    tag_pool = np.array([[f"{ch}-{j}" for j in range(5)] for ch in CHANNELS], dtype=object)
    picks = np.argsort(rng.random((n_courses, 5)), axis=1)[:, :2]  # two distinct tags each
    lecturer = rng.integers(0, 4, n_courses)  # four lecturers per channel
    courses = pd.DataFrame(
        {
            "course_id": [f"c{i:04d}" for i in range(n_courses)],
            "category": [CHANNELS[c] for c in channel],
            "tags": [list(tag_pool[c, p]) for c, p in zip(channel, picks, strict=True)],
            "lecturer_id": [f"l{c}{k}" for c, k in zip(channel, lecturer, strict=True)],
            "source": np.where(np.arange(n_courses) >= n_studied, "ugc", "official"),
            "duration_seconds": rng.integers(120, 3600, n_courses).astype(float),
        }
    )
    taste = rng.integers(0, n_ch, n_members)
    birth_year = np.select(
        [taste == 0, taste == 3],
        [rng.integers(1945, 1962, n_members), rng.integers(2000, 2006, n_members)],
        rng.integers(1965, 1995, n_members),
    )
    members = pd.DataFrame(
        {
            "member_id": [f"m{i:05d}" for i in range(n_members)],
            "org_id": rng.integers(1, 21, n_members),
            "gender": rng.choice(["F", "M"], n_members),
            "birth_year": birth_year,
            "occupation": [OCCUPATIONS[t] for t in taste],
            "district": rng.choice([f"d{j}" for j in range(5)], n_members),
            "mobile": rng.random(n_members) < 0.2,
        }
    )
    # Popularity inside the catalogue, independent of channel.
    popularity = 1.0 / (1.0 + rng.permutation(n_studied)) ** 0.7
    liked = channel[None, :n_studied] == taste[:, None]  # (n_members, n_studied)
    in_channel = popularity * liked / (popularity * liked).sum(axis=1, keepdims=True)
    anywhere = popularity / popularity.sum()
    p = taste_share * in_channel + (1 - taste_share) * anywhere
    # Sampling without replacement proportional to p (Gumbel top-k).
    keys = np.log(p) + rng.gumbel(size=p.shape)
    chosen = np.argsort(-keys, axis=1)[:, :per_member]
    member = np.repeat(np.arange(n_members), per_member)
    course = chosen.ravel()
    when = START + pd.to_timedelta(rng.integers(0, 60 * 86_400, member.size), unit="s")
    completed = rng.random(member.size) < np.where(liked[member, course], 0.8, 0.1)
    views = pd.DataFrame({"m": member, "c": course, "event": "view", "timestamp": when})
    done = views[completed].assign(
        event="complete", timestamp=when[completed] + pd.Timedelta(30, "m")
    )
    events = pd.concat([views, done], ignore_index=True)
    events.insert(0, "member_id", members["member_id"].to_numpy()[events.pop("m")])
    events.insert(1, "course_id", courses["course_id"].to_numpy()[events.pop("c")])
    return Planted(events, courses, members, taste, channel, n_warm, n_studied)


@dataclass(frozen=True)
class Split:
    planted: Planted
    train: Dataset  # warm members' events minus two held-out courses each
    truth: sp.csr_matrix  # (n_warm, n_courses) held-out courses of warm members
    cold_members: pd.DataFrame  # attributes of members outside the training universe
    cold_truth: sp.csr_matrix  # (n_cold, n_courses) what those members studied


def split(planted: Planted, seed: int = 1) -> Split:
    warm_ids = planted.members["member_id"].iloc[: planted.n_warm]
    is_warm = planted.events["member_id"].isin(warm_ids)
    warm = planted.events[is_warm]
    pairs = warm[["member_id", "course_id"]].drop_duplicates()
    held = pairs.groupby("member_id").sample(n=2, random_state=seed)
    key = warm["member_id"] + "|" + warm["course_id"]
    train_events = warm[~key.isin(set(held["member_id"] + "|" + held["course_id"]))]
    train = Dataset.from_frames(
        train_events, courses=planted.courses, members=planted.members.iloc[: planted.n_warm]
    )

    def relevance(frame: pd.DataFrame, ids: pd.Series) -> sp.csr_matrix:
        rows = pd.Index(ids).get_indexer(frame["member_id"])
        cols = train.course_ids.to_index(frame["course_id"])
        shape = (len(ids), train.n_courses)
        return sp.csr_matrix((np.ones(len(frame), np.float32), (rows, cols)), shape=shape)

    cold = planted.members.iloc[planted.n_warm :].reset_index(drop=True)
    cold_pairs = planted.events.loc[~is_warm, ["member_id", "course_id"]].drop_duplicates()
    return Split(
        planted,
        train,
        relevance(held, train.member_ids.external_ids),
        cold.drop(columns="member_id"),
        relevance(cold_pairs, cold["member_id"]),
    )


def recall_at(top: np.ndarray, truth: sp.csr_matrix) -> float:
    """Mean recall@k of ``top`` (n, k) course indices over rows with relevant courses."""
    k = top.shape[1]
    hits = np.asarray(truth[np.arange(top.shape[0])[:, None], top].sum(axis=1)).ravel()
    n_relevant = truth.getnnz(axis=1)
    rows = n_relevant > 0
    return float(np.mean(hits[rows] / np.minimum(n_relevant[rows], k)))


def top_courses(model: LightFM, dataset: Dataset, k: int = 10) -> np.ndarray:
    f = model.factors()
    return topk_factors(
        f.members, f.courses, k, course_bias=f.course_bias, exclude=dataset.interactions
    ).indices


@pytest.fixture(scope="module")
def data() -> Split:
    return split(plant(seed=0))


@pytest.fixture(scope="module")
def warp(data: Split) -> LightFM:
    return LightFM(loss="warp").fit(data.train)


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    p = plant(seed=3, n_warm=40, n_cold=0, n_studied=24, n_new=0, per_member=5)
    return Dataset.from_frames(p.events, courses=p.courses, members=p.members)


# --------------------------------------------------------------------------- fitting


def test_fit_sets_state_and_keeps_the_dataset(tiny: Dataset) -> None:
    before = tiny.interactions.copy()
    features_before = tiny.member_features.matrix.copy()
    model = LightFM(n_factors=8, epochs=5)
    assert model.fit(tiny) is model
    assert LightFM.name == "lightfm" and LightFM.uses_features
    params = model.get_params()
    assert params["n_factors"] == 8 and params["loss"] == "warp" and params["epochs"] == 5
    assert "LightFM(n_factors=8" in repr(model)

    f = model.factors()
    assert f.members.shape == (tiny.n_members, 8) and f.members.dtype == np.float32
    assert f.courses.shape == (tiny.n_courses, 8) and f.courses.dtype == np.float32
    assert f.course_bias is not None and f.course_bias.shape == (tiny.n_courses,)
    assert f.course_bias.dtype == np.float32
    assert model.score([0, 1]).shape == (2, tiny.n_courses)
    assert "occupation=retired" in set(model.member_feature_names_)
    assert any(name.startswith("tags=") for name in model.course_feature_names_)

    assert (tiny.interactions != before).nnz == 0
    assert (tiny.member_features.matrix != features_before).nnz == 0


@pytest.mark.parametrize(
    "params",
    [{"loss": "logistic"}, {"n_factors": 0}, {"epochs": 1.5}, {"learning_rate": -1.0}],
)
def test_bad_parameters_are_refused(tiny: Dataset, params: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=next(iter(params))):
        LightFM(**params).fit(tiny)  # type: ignore[arg-type]


def test_unfitted_model_refuses_to_score() -> None:
    with pytest.raises(NotFittedError):
        LightFM().factors()


def test_identity_free_model_needs_features(tiny: Dataset) -> None:
    no_members = Dataset.from_frames(tiny.events.iloc[:, :4], courses=tiny.courses)
    with pytest.raises(ConfigError, match="member features"):
        LightFM(identity_features=False).fit(no_members)
    model = LightFM(identity_features=False, n_factors=8, epochs=3).fit(tiny)
    # Members with the same attributes are the same member to this model.
    assert model.member_feature_embeddings_.shape[0] == len(model.member_feature_names_)


def test_features_can_be_switched_off(tiny: Dataset) -> None:
    model = LightFM(use_member_features=False, use_course_features=False, epochs=3).fit(tiny)
    assert len(model.member_feature_names_) == 0 == len(model.course_feature_names_)
    assert model.member_feature_embeddings_.shape[0] == tiny.n_members
    # Nothing to go on: a cold member is ranked by the course biases alone.
    scores = model.cold_member_scores(pd.DataFrame({"occupation": ["retired"]}))
    np.testing.assert_allclose(scores[0], model.course_bias_)


# --------------------------------------------------------------------------- scoring


@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_factors_reproduce_lightfm_predict(tiny: Dataset, loss: str) -> None:
    model = LightFM(n_factors=8, loss=loss, epochs=5, random_state=7).fit(tiny)
    # The same training run done with lightfm directly (deterministic with one thread).
    interactions, weights, member_x, course_x = model.training_inputs(tiny)
    reference = lightfm.LightFM(no_components=8, loss=loss, random_state=7)
    reference.fit(interactions, member_x, course_x, sample_weight=weights, epochs=5)
    np.testing.assert_array_equal(model.member_feature_embeddings_, reference.user_embeddings)
    np.testing.assert_array_equal(model.course_feature_biases_, reference.item_biases)

    assert (tiny.interactions.getnnz(axis=0) > 0).all()  # no cold courses in this case
    f = model.factors()
    courses = np.arange(tiny.n_courses, dtype=np.int32)
    for member in range(0, tiny.n_members, 7):
        predicted = reference.predict(
            np.full(tiny.n_courses, member, dtype=np.int32),
            courses,
            user_features=member_x,
            item_features=course_x,
        )
        ours = f.members[member] @ f.courses.T + f.course_bias
        # Equal up to the member bias, a constant per member, so the rankings agree.
        np.testing.assert_allclose(ours + model.member_bias_[member], predicted, atol=1e-5)
        np.testing.assert_array_equal(
            np.argsort(-ours, kind="stable")[:10],
            np.argsort(-predicted.astype(np.float32), kind="stable")[:10],
        )


@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_losses_beat_random_on_held_out_courses(data: Split, loss: str) -> None:
    model = LightFM(loss=loss).fit(data.train)
    recall = recall_at(top_courses(model, data.train), data.truth)
    # A random menu of 10 among ~160 unseen courses has expected recall@10 ~0.06, with a
    # standard error under 0.01 over 600 members; planted taste lifts a working model to
    # ~0.5 (WARP) / ~0.37 (BPR). Three times random leaves room for seeds and platforms.
    random_recall = 10 / (data.train.n_courses - 8)
    assert recall > 3 * random_recall, f"{loss}: recall@10 {recall:.3f}"


def test_training_is_deterministic_with_a_seed(tiny: Dataset) -> None:
    first = LightFM(n_factors=8, epochs=5, random_state=11).fit(tiny).factors()
    second = LightFM(n_factors=8, epochs=5, random_state=11).fit(tiny).factors()
    other = LightFM(n_factors=8, epochs=5, random_state=12).fit(tiny).factors()
    np.testing.assert_array_equal(first.members, second.members)
    np.testing.assert_array_equal(first.courses, second.courses)
    assert not np.array_equal(first.members, other.members)


# --------------------------------------------------------------------------- cold start


def test_cold_members_get_their_segments_taste(data: Split, warp: LightFM) -> None:
    p = data.planted
    scores = warp.cold_member_scores(data.cold_members)
    assert scores.shape == (len(data.cold_members), data.train.n_courses)
    assert scores.dtype == np.float32
    top = np.argsort(-scores, axis=1)[:, :10]
    cold_taste = p.taste[p.n_warm :]
    retired = cold_taste == 0
    share = (p.channel[top[retired]] == 0).mean()
    assert share >= 0.8, f"retired cold members: {share:.2f} of their menu in their channel"

    # Against the best taste-blind menu: the most studied courses overall.
    popular = np.argsort(-data.train.interactions.getnnz(axis=0), kind="stable")[:10]
    baseline = recall_at(np.tile(popular, (len(top), 1)), data.cold_truth)
    recall = recall_at(top, data.cold_truth)
    # ~0.42 vs ~0.20 on this data: popularity spreads the menu over four channels.
    assert recall > baseline + 0.1, f"cold recall {recall:.3f} vs popularity {baseline:.3f}"


def test_cold_member_factors_match_scores(data: Split, warp: LightFM) -> None:
    attributes = data.cold_members.iloc[:5]
    vectors = warp.cold_member_factors(attributes)
    assert vectors.shape == (5, warp.n_factors) and vectors.dtype == np.float32
    expected = vectors @ warp.course_factors_.T + warp.course_bias_
    np.testing.assert_allclose(warp.cold_member_scores(attributes), expected, rtol=1e-6)


def test_members_without_history_are_scored_from_features(data: Split) -> None:
    # Cold members inside the training universe: in the members table, no events.
    p = data.planted
    train = Dataset.from_frames(data.train.events.iloc[:, :4], courses=p.courses, members=p.members)
    model = LightFM(epochs=5).fit(train)
    cold = np.arange(p.n_warm, len(p.members))
    expected = model.cold_member_factors(p.members.iloc[cold])
    np.testing.assert_allclose(model.factors().members[cold], expected, rtol=1e-5, atol=1e-6)


def test_unknown_attribute_values_are_ignored(warp: LightFM) -> None:
    attributes = pd.DataFrame({"occupation": ["astronaut"], "district": ["nowhere"]})
    np.testing.assert_array_equal(warp.cold_member_factors(attributes), 0.0)
    scores = warp.cold_member_scores(attributes)
    np.testing.assert_allclose(scores[0], warp.course_bias_)


def test_attribute_rows_use_dataset_feature_names(data: Split, warp: LightFM) -> None:
    members = data.planted.members.iloc[: data.planted.n_warm]
    rows = member_feature_rows(members, warp.member_feature_names_, warp.feature_year_)
    assert (rows != data.train.member_features.matrix).nnz == 0
    courses = course_feature_rows(data.planted.courses, warp.course_feature_names_)
    assert (courses != data.train.course_features.matrix).nnz == 0
    with pytest.raises(DataError, match="phone"):
        warp.cold_member_factors(pd.DataFrame({"occupation": ["retired"], "phone": ["1"]}))


def test_new_courses_are_scored_from_their_features(data: Split, warp: LightFM) -> None:
    p = data.planted
    new = np.arange(p.n_studied, data.train.n_courses)  # new UGC uploads, never studied
    assert (data.train.interactions[:, new].nnz) == 0
    scores = warp.score(np.arange(p.n_warm))[:, new]
    taste = p.taste[: p.n_warm]
    matching = p.channel[new][None, :] == taste[:, None]
    # For each member: their best matching new course beats their best unrelated one.
    best_match = np.where(matching, scores, -np.inf).max(axis=1)
    best_other = np.where(~matching, scores, -np.inf).max(axis=1)
    assert (best_match > best_other).mean() >= 0.9

    # Same representation for a course outside the catalogue, from its attributes.
    vectors, bias = warp.cold_course_factors(p.courses.iloc[new])
    np.testing.assert_allclose(vectors, warp.course_factors_[new], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias, warp.course_bias_[new], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- fold-in


def test_fold_in_moves_the_menu_to_new_interests(data: Split) -> None:
    p, train = data.planted, data.train
    model = LightFM().fit(train)
    member = int(np.flatnonzero(p.taste[: p.n_warm] == 0)[0])  # a retired member
    member_id = train.member_ids.external_ids[member]
    student_courses = np.flatnonzero(p.channel[: p.n_studied] == 3)[:6]

    def student_share() -> float:
        top = np.argsort(-model.score([member])[0])
        top = top[~np.isin(top, student_courses)][:10]
        return float((p.channel[top] == 3).mean())

    assert student_share() <= 0.2
    before = model.member_factors_
    events = pd.DataFrame(
        {
            "member_id": member_id,
            "course_id": train.course_ids.external_ids[student_courses],
            "event": "complete",
            "timestamp": START + pd.Timedelta(days=61),
        }
    )
    model.update(member_id, events)
    assert model.member_factors_ is not before  # published copy-on-write
    assert student_share() >= 0.7
    others = np.arange(train.n_members) != member
    np.testing.assert_array_equal(model.member_factors_[others], before[others])

    # A member first seen through update is appended and scored from their history.
    model.update("newcomer", events.assign(member_id="newcomer"))
    assert model.member_factors_.shape[0] == train.n_members + 1
    assert student_share() >= 0.7
    newcomer = model.member_ids_.to_index(["newcomer"])[0]
    top = np.argsort(-model.score([newcomer])[0])
    top = top[~np.isin(top, student_courses)][:10]
    assert (p.channel[top] == 3).mean() >= 0.7


def test_simulated_platform_features_round_trip(
    small_platform: Platform, small_dataset: Dataset
) -> None:
    platform, dataset = small_platform, small_dataset
    model = LightFM(epochs=3).fit(dataset)
    # Attribute tables give the training feature rows back (titles, skills, branches...).
    courses = course_feature_rows(platform.courses, model.course_feature_names_)
    assert (courses != dataset.course_features.matrix).nnz == 0
    members = member_feature_rows(dataset.members, model.member_feature_names_, model.feature_year_)
    assert (members != dataset.member_features.matrix).nnz == 0
    scores = model.cold_member_scores(platform.members.drop(columns="member_id").iloc[:3])
    assert scores.shape == (3, dataset.n_courses) and np.isfinite(scores).all()
