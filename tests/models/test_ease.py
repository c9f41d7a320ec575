"""Tests of recommend.models.ease: closed form, co-occurrence, memory guard, fold-in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.errors import ConfigError, DataError, NotFittedError
from recommend.models.ease import EASE

EVENTS = ("view", "progress", "complete", "like")
START = pd.Timestamp("2024-01-01")


def _closed_form(x: np.ndarray, l2: float) -> np.ndarray:
    """Steck (2019), float64, straight from the paper."""
    g = x.T @ x + l2 * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


@pytest.fixture
def dataset() -> Dataset:
    """30 members x 12 courses, random events of several kinds over 60 days."""
    rng = np.random.default_rng(7)
    n = 240
    events = pd.DataFrame(
        {
            "member_id": [f"m{i:02d}" for i in rng.integers(0, 30, n)],
            "course_id": [f"c{i:02d}" for i in rng.integers(0, 12, n)],
            "event": rng.choice(EVENTS, n),
            "timestamp": START + pd.to_timedelta(rng.integers(0, 60 * 24, n), unit="h"),
        }
    )
    return Dataset.from_frames(events)


@pytest.mark.parametrize("binary", [False, True])
def test_weights_equal_the_closed_form(dataset: Dataset, binary: bool) -> None:
    model = EASE(l2=5.0, binary=binary).fit(dataset)
    x = dataset.interactions.toarray().astype(np.float64)
    if binary:
        x = (x != 0).astype(np.float64)
    expected = _closed_form(x, 5.0)
    assert model.B_.shape == (12, 12) and model.B_.dtype == np.float32
    np.testing.assert_array_equal(np.diag(model.B_), 0.0)
    np.testing.assert_allclose(model.B_, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    members = np.arange(dataset.n_members)
    np.testing.assert_allclose(model.score(members), x @ expected, rtol=1e-4, atol=1e-4)
    assert model.score(members).dtype == np.float32


def test_binary_and_confidence_weights_differ(dataset: Dataset) -> None:
    plain = EASE(l2=5.0).fit(dataset).B_
    binary = EASE(l2=5.0, binary=True).fit(dataset).B_
    assert not np.allclose(plain, binary)


def test_gram_in_several_row_blocks_gives_the_same_weights(
    dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = EASE(l2=5.0).fit(dataset).B_
    import recommend.models.ease as ease_module

    monkeypatch.setattr(ease_module, "_BLOCK_ENTRIES", 12 * 5)  # blocks of 5 rows
    monkeypatch.setattr(ease_module, "_SYMMETRISE_ROWS", 5)
    np.testing.assert_array_equal(EASE(l2=5.0).fit(dataset).B_, whole)


def test_recommends_courses_studied_together() -> None:
    # c1 and c2 are always studied together, as are c3 and c4; c5 is popular with both.
    rows = []
    for m in range(8):
        pair = ("c1", "c2") if m < 4 else ("c3", "c4")
        rows += [(f"m{m}", c) for c in (*pair, "c5")]
    rows.append(("new", "c1"))
    events = pd.DataFrame(rows, columns=["member_id", "course_id"]).assign(
        event="complete", timestamp=START
    )
    ds = Dataset.from_frames(events)
    model = EASE(l2=1.0).fit(ds)
    member = ds.member_ids.to_index(["new"])
    top = model.topk(member, 2, exclude=ds.interactions[member])
    assert ds.course_ids.to_external(top.indices[0]).tolist() == ["c2", "c5"]
    scores = model.score(member)[0]
    c3, c4 = ds.course_ids.to_index(["c3", "c4"])
    assert scores[c3] < 0 and scores[c4] < 0  # the other cluster is pushed away


def test_memory_guard_refuses_before_fitting(dataset: Dataset) -> None:
    model = EASE(max_courses=10)
    with pytest.raises(ConfigError) as err:
        model.fit(dataset)
    message = str(err.value)
    assert "EASE on 12 courses needs about" in message
    assert "max_courses=10" in message and "ALS" in message
    assert not model.is_fitted
    assert EASE(max_courses=12).fit(dataset).is_fitted


def test_memory_guard_names_the_memory_a_large_catalogue_needs() -> None:
    # 120,000^2 float32 = 57.6 GB, plus ~0.2 GB of sparse product block.
    assert EASE.memory_bytes(120_000) == pytest.approx(57.8e9, rel=1e-3)
    with pytest.raises(ConfigError) as err:
        EASE(max_courses=30_000)._check_size(120_000, nnz=0)
    assert str(err.value) == (
        "EASE on 120,000 courses needs about 57.8 GB (a dense 120,000 x 120,000 float32 "
        "matrix, built and inverted in place, plus working space); the limit is "
        "max_courses=30,000. Use ALS, or raise max_courses if the machine has the memory"
    )


def _member_row(ds: Dataset, member: str, events: pd.DataFrame) -> sp.csr_matrix:
    """The confidence row ``events`` give ``member`` under ``ds``'s weighting and clock."""
    one = Dataset.from_frames(
        events,
        member_ids=IdMap([member]),
        course_ids=ds.course_ids,
        weighting=ds.weighting,
        now=ds.now,
    )
    return one.interactions


@pytest.mark.parametrize("member", ["m03", "brand-new"])
def test_fold_in_scores_the_new_history(dataset: Dataset, member: str) -> None:
    model = EASE(l2=5.0).fit(dataset)
    events = pd.DataFrame(
        {
            "member_id": member,
            "course_id": ["c01", "c05", "c05", "c09"],
            "event": ["view", "view", "complete", "like"],
            "timestamp": pd.to_datetime(["2024-01-05", "2024-02-01", "2024-02-02", "2024-02-20"]),
        }
    )
    before = model.score(np.arange(dataset.n_members))
    model.update(member, events)
    idx = model.member_ids_.to_index([member])
    row = _member_row(dataset, member, events)
    np.testing.assert_allclose(model.score(idx), (row @ model.B_), rtol=1e-6)
    others = np.setdiff1d(np.arange(dataset.n_members), idx)
    np.testing.assert_array_equal(model.score(others), before[others])
    if member == "brand-new":
        assert idx[0] == dataset.n_members
    else:
        assert not np.allclose(model.score(idx)[0], before[idx[0]])
    seen = model.history_.rows(idx)
    top = model.topk(idx, 3, exclude=seen)
    assert not np.isin(top.indices[0], seen.indices).any()


def test_fold_in_rejects_unknown_courses(dataset: Dataset) -> None:
    model = EASE(l2=5.0).fit(dataset)
    events = pd.DataFrame(
        {"member_id": ["m01"], "course_id": ["nope"], "event": ["view"], "timestamp": [START]}
    )
    with pytest.raises(DataError, match="unknown courses"):
        model.update("m01", events)


def test_params_and_state(dataset: Dataset) -> None:
    model = EASE(l2=50.0, max_courses=100, binary=True)
    assert model.get_params() == {
        "l2": 50.0,
        "max_courses": 100,
        "binary": True,
        "cold_neighbours": 20,
    }
    assert EASE.name == "ease" and model.factors() is None
    with pytest.raises(NotFittedError):
        model.score(np.array([0]))
    bads = (
        {"l2": 0.0},
        {"l2": float("nan")},
        {"max_courses": 0},
        {"binary": "yes"},
        {"cold_neighbours": -1},
    )
    for bad in bads:
        with pytest.raises(ConfigError):
            EASE(**bad)  # type: ignore[arg-type]
    bad_model = EASE().set_params(l2=-1.0)
    with pytest.raises(ConfigError, match="l2"):
        bad_model.fit(dataset)
    assert not bad_model.is_fitted
    assert EASE(l2=np.float32(2.0), max_courses=np.int64(5)).l2 == 2.0


def test_fit_does_not_mutate_the_dataset(dataset: Dataset) -> None:
    before = dataset.interactions.copy()
    events = dataset.events.copy()
    EASE(l2=5.0, binary=True).fit(dataset)
    assert (dataset.interactions != before).nnz == 0
    np.testing.assert_array_equal(dataset.interactions.data, before.data)
    pd.testing.assert_frame_equal(dataset.events, events)
