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


def test_a_warm_lightfm_starts_from_the_previous_embeddings_by_meaning(
    split, small_platform: rc.Platform
) -> None:
    """Yesterday's model knew fewer members, courses and feature values: tonight's
    embedding rows (identity block, then features) start from yesterday's where they mean
    the same member, course or feature, whatever their position."""
    _, train, _ = split
    p = small_platform
    ev = train.events.drop(columns=["member_idx", "course_idx"])
    gone_courses = p.courses["course_id"].iloc[::7]
    gone_members = p.members["member_id"].iloc[::5]
    keep = ~ev["course_id"].isin(gone_courses) & ~ev["member_id"].isin(gone_members)
    smaller = rc.Dataset.from_frames(
        ev[keep],
        courses=p.courses[~p.courses["course_id"].isin(gone_courses)].iloc[::-1],
        members=p.members[~p.members["member_id"].isin(gone_members)],
    )
    params = {"n_factors": 8, "num_threads": 1, "random_state": 0}
    previous = rc.LightFM(**params, epochs=5).fit(smaller)
    # One epoch with a vanishing step leaves the embeddings where they started.
    model = rc.LightFM(**params, epochs=1, learning_rate=1e-12).fit_from(previous, train)
    assert model.course_feature_embeddings_.shape[0] > previous.course_feature_embeddings_.shape[0]
    for side, ids, old_ids in (
        ("course", train.course_ids, smaller.course_ids),
        ("member", train.member_ids, smaller.member_ids),
    ):
        new_emb = getattr(model, f"{side}_feature_embeddings_")
        old_emb = getattr(previous, f"{side}_feature_embeddings_")
        old_idx = old_ids.to_index(ids.external_ids, unknown="mask")
        known = np.flatnonzero(old_idx >= 0)
        np.testing.assert_allclose(new_emb[known], old_emb[old_idx[known]], atol=1e-6)
        names = pd.Index(getattr(previous, f"{side}_feature_names_"))
        new_names = getattr(model, f"{side}_feature_names_")
        at = names.get_indexer(new_names)
        named = np.flatnonzero(at >= 0)
        np.testing.assert_allclose(
            new_emb[len(ids) + named], old_emb[len(old_ids) + at[named]], atol=1e-6
        )
        # Rows yesterday's model did not have start elsewhere (LightFM's random values).
        fresh = np.flatnonzero(old_idx < 0)
        assert fresh.size and not np.allclose(new_emb[fresh], 0.0)
    cold = rc.LightFM(**params, epochs=1, learning_rate=1e-12).fit(train)
    assert not np.allclose(model.course_factors_, cold.course_factors_)


def test_warm_refit_of_lightfm_counts_epochs_and_checks_the_model(split) -> None:
    """Quality against a cold refit is measured in experiments/benchmarks/warm_start.py
    (on this 300-member platform one cold epoch already beats twenty: too small to show
    convergence)."""
    before, train, _ = split
    params = {"n_factors": 8, "num_threads": 1, "random_state": 0}
    previous = rc.LightFM(**params, epochs=2).fit(before)
    warm = rc.warm_refit(previous, train, iterations=3)
    assert isinstance(warm, rc.LightFM) and warm.epochs == 3 and previous.epochs == 2
    with pytest.raises(ConfigError, match="n_factors"):
        rc.LightFM(n_factors=4).fit_from(previous, train)
    with pytest.raises(ConfigError, match="fitted LightFM"):
        rc.LightFM(**params).fit_from(rc.ALS(n_factors=8, iterations=1).fit(before), train)
