"""New courses get scores from their content neighbours (recommend.models.content)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import events_frame

from recommend.data.dataset import Dataset
from recommend.models.content import content_neighbour_weights, place_cold_columns
from recommend.models.ease import EASE
from recommend.models.implicit_models import ItemKNN


def test_weights_hand_worked() -> None:
    # Features: course 0 {a}, 1 {a, b}, 2 {c}, 3 (cold) {a, b}, 4 (cold) {z}.
    features = sp.csr_matrix(
        np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], float)
    )
    placed, w = content_neighbour_weights(np.array([3, 4]), features, n_neighbours=2)
    # Course 4 shares nothing with a warm course: not placed.
    assert placed.tolist() == [3]
    # cos(3, 0) = 1/sqrt(2), cos(3, 1) = 1: weights proportional, summing to 1.
    expected = np.array([1 / np.sqrt(2), 1.0]) / (1 / np.sqrt(2) + 1.0)
    np.testing.assert_allclose(w.toarray()[0, :2], expected, rtol=1e-6)
    assert w.toarray()[0, 2:].sum() == 0


def test_place_cold_columns_dense_and_sparse_agree() -> None:
    rng = np.random.default_rng(0)
    ds = _dataset()
    b = rng.random((ds.n_courses, ds.n_courses)).astype(np.float32)
    cold = np.flatnonzero(ds.interactions.getnnz(axis=0) == 0)
    b[:, cold] = 0
    dense, n_dense = place_cold_columns(b.copy(), ds)
    sparse, n_sparse = place_cold_columns(sp.csr_matrix(b), ds)
    assert n_dense == n_sparse == len(cold)
    np.testing.assert_allclose(dense, sparse.toarray(), rtol=1e-5, atol=1e-6)


def _dataset() -> Dataset:
    """Two taste groups (theory vs skills); one new course of each kind nobody studied."""
    rng = np.random.default_rng(1)
    courses = pd.DataFrame(
        {
            "course_id": [f"c{i}" for i in range(12)],
            "category": ["理论学习"] * 5 + ["技能培训"] * 5 + ["理论学习", "技能培训"],
            "tags": [["党史", "理论"]] * 5 + [["电商", "技能"]] * 5 + [["党史"], ["电商"]],
        }
    )
    rows = []
    for m in range(40):
        pool = range(5) if m % 2 == 0 else range(5, 10)
        for c in rng.choice(list(pool), size=3, replace=False):
            rows.append((f"m{m}", f"c{c}", "complete", "2025-01-01"))
    return Dataset.from_frames(events_frame(rows), courses=courses)


@pytest.mark.parametrize("model", [EASE(l2=10.0), ItemKNN(k=10)], ids=["ease", "item_knn"])
def test_new_course_scores_like_its_content_neighbours(model: EASE | ItemKNN) -> None:
    ds = _dataset()
    model.fit(ds)
    theory_new, skills_new = ds.course_ids.to_index(["c10", "c11"])
    theory_fans = ds.member_ids.to_index([f"m{m}" for m in range(0, 40, 2)])
    skills_fans = ds.member_ids.to_index([f"m{m}" for m in range(1, 40, 2)])
    s_theory = model.score(theory_fans)
    s_skills = model.score(skills_fans)
    assert (s_theory[:, theory_new] > s_theory[:, skills_new]).all()
    assert (s_skills[:, skills_new] > s_skills[:, theory_new]).all()
    # Switched off, new courses score nothing.
    off = type(model)(**{**model.get_params(), "cold_neighbours": 0}).fit(ds)
    assert np.all(off.score(theory_fans)[:, [theory_new, skills_new]] == 0)
