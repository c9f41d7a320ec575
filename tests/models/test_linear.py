"""Tests of recommend.models.linear: RP3beta, EDLAE/DLAE, GF-CF and the validated fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommend.artifact import load, save
from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.models import get_model_class, make_model
from recommend.models.ease import EASE
from recommend.models.linear import EDLAE, FUSED, GFCF, Fusion, RP3beta

START = pd.Timestamp("2024-01-01")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    """80 members x 15 courses with two taste groups (courses 0-7 and 7-14)."""
    rng = np.random.default_rng(3)
    rows = []
    for m in range(80):
        group = np.arange(0, 8) if m % 2 else np.arange(7, 15)
        for c in rng.choice(group, size=int(rng.integers(3, 7)), replace=False):
            rows.append((f"m{m:02d}", f"c{c:02d}", "complete", START + pd.Timedelta(hours=m)))
    events = pd.DataFrame(rows, columns=["member_id", "course_id", "event", "timestamp"])
    return Dataset.from_frames(events)


def _binary(ds: Dataset) -> np.ndarray:
    return (ds.interactions.toarray() != 0).astype(np.float64)


def test_rp3beta_is_the_random_walk_of_the_paper(dataset: Dataset) -> None:
    x = _binary(dataset)
    alpha, beta = 0.8, 0.4
    p_mc = (x / x.sum(axis=1, keepdims=True)) ** alpha  # member -> course
    p_cm = (x.T / x.T.sum(axis=1, keepdims=True)) ** alpha  # course -> member
    expected = (p_cm @ p_mc) / x.sum(axis=0)[None, :] ** beta
    np.fill_diagonal(expected, 0.0)
    model = RP3beta(alpha=alpha, beta=beta).fit(dataset)
    np.testing.assert_allclose(model.B_, expected, rtol=1e-5, atol=1e-7)
    # Scores are history @ W.
    np.testing.assert_allclose(model.score(np.arange(3)), x[:3] @ model.B_, rtol=1e-5)


def test_rp3beta_keeps_the_largest_neighbours(dataset: Dataset) -> None:
    full = RP3beta(beta=0.3).fit(dataset).B_
    kept = RP3beta(beta=0.3, neighbours=3).fit(dataset).B_
    assert ((kept != 0).sum(axis=1) <= 3).all()
    for i in range(full.shape[0]):
        top = np.sort(full[i])[-3:]
        np.testing.assert_allclose(np.sort(kept[i])[-3:], top)


def test_rp3beta_beta_lifts_rare_courses(dataset: Dataset) -> None:
    # The popularity penalty moves weight towards rarer arrival courses.
    pop = _binary(dataset).sum(axis=0)
    rare, common = int(np.argmin(pop)), int(np.argmax(pop))
    flat = RP3beta(beta=0.0).fit(dataset).B_
    penal = RP3beta(beta=1.0).fit(dataset).B_
    ratio = lambda b: b[:, rare].sum() / b[:, common].sum()  # noqa: E731
    assert ratio(penal) > ratio(flat)


def test_edlae_without_dropout_is_ease(dataset: Dataset) -> None:
    edlae = EDLAE(l2=20.0, dropout=0.0).fit(dataset)
    ease = EASE(l2=20.0).fit(dataset)
    np.testing.assert_allclose(edlae.B_, ease.B_, rtol=1e-4, atol=1e-6)


def test_edlae_solves_the_emphasised_objective(dataset: Dataset) -> None:
    x = dataset.interactions.toarray().astype(np.float64)
    g = x.T @ x
    p, l2 = 0.3, 10.0
    lam = np.diag(p / (1 - p) * np.diag(g) + l2)
    # EDLAE: EASE's zero-diagonal solution with the dropout-induced penalty Λ.
    inv = np.linalg.inv(g + lam)
    expected = np.eye(len(g)) - inv / np.diag(inv)[None, :]
    model = EDLAE(l2=l2, dropout=p).fit(dataset)
    np.testing.assert_allclose(model.B_, expected, rtol=1e-3, atol=1e-5)
    assert np.all(np.diag(model.B_) == 0)
    # DLAE: the normal equations of ||X - XB||² + ||Λ^½ B||²: (G + Λ) B = G.
    dlae = EDLAE(l2=l2, dropout=p, variant="dlae").fit(dataset)
    np.testing.assert_allclose((g + lam) @ dlae.B_, g, rtol=1e-3, atol=1e-3)


def test_edlae_popularity_power_divides_columns_by_popularity(dataset: Dataset) -> None:
    plain = EDLAE(l2=10.0, dropout=0.3).fit(dataset).B_
    penalised = EDLAE(l2=10.0, dropout=0.3, popularity_power=0.5).fit(dataset).B_
    members = _binary(dataset).sum(axis=0)
    np.testing.assert_allclose(penalised, plain / np.sqrt(1 + members)[None, :], rtol=1e-5)


def test_gfcf_is_the_graph_filter_of_the_paper(dataset: Dataset) -> None:
    x = _binary(dataset)
    du, di = x.sum(axis=1), x.sum(axis=0)
    r = x / np.sqrt(du)[:, None] / np.sqrt(di)[None, :]
    p = r.T @ r
    _, vectors = np.linalg.eigh(p)
    v = vectors[:, -4:]  # the top 4 eigenvectors
    a = 0.3
    ideal = (v / np.sqrt(di)[:, None]) @ (v.T * np.sqrt(di)[None, :])
    # The paper's scores r̃_u (P̃ + a ideal) are D_U^{-1/2} x (D_I^{-1/2} (P̃ + a ideal)).
    expected = (p + a * ideal) / np.sqrt(di)[:, None]
    np.fill_diagonal(expected, 0.0)
    # A larger fit first: the top 4 eigenvectors then come from its kept top 8.
    GFCF(n_factors=8, ideal_weight=a).fit(dataset)
    model = GFCF(n_factors=4, ideal_weight=a).fit(dataset)
    np.testing.assert_allclose(model.B_, expected, rtol=1e-3, atol=1e-5)
    linear = GFCF(ideal_weight=0.0).fit(dataset).B_
    expected_linear = p / np.sqrt(di)[:, None]
    np.fill_diagonal(expected_linear, 0.0)
    np.testing.assert_allclose(linear, expected_linear, rtol=1e-4, atol=1e-6)
    # Same menus as the paper's member-scaled scores (a positive factor per member).
    paper = (r @ (p + a * ideal))[:3]
    ours = model.score(np.arange(3))
    for row in range(3):
        unseen = x[row] == 0
        assert np.argsort(-paper[row][unseen])[:5].tolist() == (
            np.argsort(-ours[row][unseen])[:5].tolist()
        )


def test_fusion_learns_weights_on_validation(dataset: Dataset) -> None:
    model = Fusion(ease_l2=10.0, edlae_l2=10.0, k=5).fit(dataset)
    assert model.weights_.shape == (len(FUSED),)
    assert model.weights_.sum() == pytest.approx(1.0) and (model.weights_ >= 0).all()
    # Every single part is a candidate of the grid: the fusion validates at least as well.
    assert model.validation_fused_ >= np.nanmax(model.validation_ndcg_) - 1e-12
    # B_ is the weighted sum of the parts (fitted on all data), each at unit RMS.
    parts = model._parts()
    x = dataset.interactions
    expected = np.zeros_like(model.B_)
    for w, part in zip(model.weights_, parts, strict=True):
        b = part.fit(dataset).B_
        if w > 0:
            expected += w / np.sqrt(np.mean(np.asarray(x @ b) ** 2)) * b
    np.testing.assert_allclose(model.B_, expected, rtol=1e-4, atol=1e-6)


def test_fusion_with_fixed_weights_skips_validation(dataset: Dataset) -> None:
    only_ease = Fusion(ease_l2=10.0, weights=[1.0, 0.0, 0.0, 0.0]).fit(dataset)
    ease = EASE(l2=10.0).fit(dataset)
    # One part at weight 1: the same ranking as that part (scaled by a positive constant).
    scale = only_ease.B_[ease.B_ != 0] / ease.B_[ease.B_ != 0]
    np.testing.assert_allclose(scale, scale[0], rtol=1e-4)
    assert scale[0] > 0 and np.isnan(only_ease.validation_fused_)
    # Three weights (before GF-CF joined) still load: GF-CF gets weight 0.
    three = Fusion(ease_l2=10.0, weights=[1.0, 0.0, 0.0]).fit(dataset)
    np.testing.assert_allclose(three.B_, only_ease.B_)
    assert three.weights_.tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("name", ["rp3beta", "edlae", "gfcf", "fusion"])
def test_save_load_and_fold_in(dataset: Dataset, name: str, tmp_path: Path) -> None:
    model = make_model(name).fit(dataset)
    assert get_model_class(name) is type(model)
    folder = save(model, tmp_path / name)
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))
    back = load(folder)
    assert type(back) is type(model) and back.get_params() == model.get_params()
    np.testing.assert_array_equal(back.B_, model.B_)
    np.testing.assert_allclose(back.score(np.arange(5)), model.score(np.arange(5)))
    # Fold-in: a member's new history changes their scores at once (history @ B_).
    events = pd.DataFrame(
        {
            "member_id": ["new"] * 2,
            "course_id": ["c01", "c02"],
            "event": ["complete"] * 2,
            "timestamp": [START, START],
        }
    )
    back.update("new", events)
    idx = back.member_ids_.to_index(["new"])
    row = back.history_.rows(idx)
    np.testing.assert_allclose(
        back.score(idx), np.asarray(back._as_input(row) @ back.B_), rtol=1e-5
    )
    top = back.topk(idx, 3).indices[0]
    assert not set(top) & set(row.indices)


@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (RP3beta, {"alpha": 0}, "alpha"),
        (RP3beta, {"beta": -1}, "beta"),
        (RP3beta, {"neighbours": -1}, "neighbours"),
        (EDLAE, {"dropout": 1.0}, "dropout"),
        (EDLAE, {"variant": "vae"}, "variant"),
        (EDLAE, {"l2": 0}, "l2"),
        (EDLAE, {"popularity_power": -0.1}, "popularity_power"),
        (GFCF, {"n_factors": -1}, "n_factors"),
        (GFCF, {"ideal_weight": -0.5}, "ideal_weight"),
        (Fusion, {"weights": [1, 0]}, "weights"),
        (Fusion, {"weights": [0, 0, 0]}, "weights"),
        (Fusion, {"weights": [1, 0, 0, 0, 0]}, "weights"),
        (Fusion, {"split": "later"}, "split"),
        (Fusion, {"grid": 0}, "grid"),
        (Fusion, {"ease_l2": -5}, "l2"),
    ],
)
def test_bad_parameters_are_refused(cls: type, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        cls(**params)


def test_memory_guard_refuses_large_catalogues(dataset: Dataset) -> None:
    with pytest.raises(ConfigError, match="max_courses"):
        RP3beta(max_courses=5).fit(dataset)
    with pytest.raises(ConfigError, match="max_courses"):
        Fusion(max_courses=5).fit(dataset)
