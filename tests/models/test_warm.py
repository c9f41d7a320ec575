"""Warm-started refits: a refit starts from the previous model's factors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import recommend as rc
from recommend.errors import ConfigError


@pytest.fixture(scope="module")
def split(small_platform: rc.Platform) -> tuple[rc.Dataset, rc.Dataset, rc.Dataset]:
    """Yesterday's data, tonight's (a tenth more), and the events after it."""
    p = small_platform
    ev = p.events.sort_values("timestamp", kind="stable")
    t = ev["timestamp"]
    yesterday, tonight = t.quantile(0.7), t.quantile(0.85)

    def data(frame: pd.DataFrame) -> rc.Dataset:
        return rc.Dataset.from_frames(frame, courses=p.courses, members=p.members)

    train = data(ev[t <= tonight])
    test = rc.Dataset.from_frames(
        ev[t > tonight],
        member_ids=train.member_ids,
        course_ids=train.course_ids,
        now=train.now,
        on_future="keep",
        on_unknown="drop",
    )
    return data(ev[t <= yesterday]), train, test


def _ndcg(model: rc.Recommender, train: rc.Dataset, test: rc.Dataset) -> float:
    result = rc.evaluate(model, train, test, ks=(10,), fit=False, segments=False, n_boot=0)
    return float(result.metrics["ndcg@10"])


@pytest.mark.parametrize("name", ["als", "bpr"])
def test_a_warm_refit_starts_from_the_previous_factors(name: str, split) -> None:
    before, train, _ = split
    params = {"n_factors": 16, "iterations": 1, "num_threads": 1, "random_state": 0}
    previous = rc.make_model(name, **params).fit(before)
    # One epoch with a vanishing step leaves BPR where it started; ALS's first half sweep
    # solves members from the course factors it was given.
    if name == "bpr":
        model = rc.BPR(**params, learning_rate=1e-12).fit_from(previous, train)
        idx = previous.course_ids_.to_index(train.course_ids.external_ids)
        warm = np.flatnonzero(before.interactions.getnnz(axis=0) > 0)
        keep = np.isin(idx, warm)
        np.testing.assert_allclose(
            model.course_factors_[keep], previous.course_factors_[idx[keep]], atol=1e-6
        )
    else:
        model = rc.warm_refit(previous, train)
        cold = rc.make_model(name, **params).fit(train)
        # Started from the previous course factors, not from random ones.
        assert not np.allclose(model.course_factors_, cold.course_factors_)
    assert previous.course_ids_ == before.course_ids  # the previous model is unchanged


def test_warm_als_reaches_cold_quality_in_fewer_iterations(split) -> None:
    before, train, test = split
    params = {"n_factors": 16, "num_threads": 1, "random_state": 0}
    previous = rc.ALS(**params, iterations=15).fit(before)
    cold = rc.ALS(**params, iterations=15).fit(train)
    cold_short = rc.ALS(**params, iterations=2).fit(train)
    warm = rc.warm_refit(previous, train, iterations=2)
    reference = _ndcg(cold, train, test)
    # Two warm sweeps match fifteen cold ones (within 5 %: one seed, 300 members); two
    # cold sweeps do not.
    assert _ndcg(warm, train, test) >= 0.95 * reference
    assert _ndcg(cold_short, train, test) < _ndcg(warm, train, test)


def test_warm_refit_of_models_without_iterations_is_a_fit(split) -> None:
    before, train, _ = split
    previous = rc.EASE(l2=50.0).fit(before)
    model = rc.warm_refit(previous, train)
    np.testing.assert_allclose(model.B_, rc.EASE(l2=50.0).fit(train).B_)


def test_warm_start_refuses_a_mismatched_model(split) -> None:
    before, train, _ = split
    previous = rc.ALS(n_factors=8, iterations=1).fit(before)
    with pytest.raises(ConfigError, match="n_factors"):
        rc.ALS(n_factors=16, iterations=1).fit_from(previous, train)
    with pytest.raises(ConfigError, match="fitted BPR"):
        rc.BPR(n_factors=8, iterations=1).fit_from(previous, train)
