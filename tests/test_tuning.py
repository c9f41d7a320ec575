from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommend.data.dataset import Dataset
from recommend.data.splits import TimeSplit
from recommend.errors import ConfigError
from recommend.tuning import Choice, LogUniform, Uniform, tune, tune_fusion


@pytest.fixture(scope="module")
def train(small_dataset: Dataset) -> Dataset:
    return small_dataset.split(TimeSplit(test_fraction=0.2))[0]


def test_tune_finds_the_best_trial_and_never_sees_test(train: Dataset) -> None:
    result = tune("ease", train, n_trials=5, metric="ndcg@10", seed=1)
    trials = result.trials
    assert len(trials) == 5 and "l2" in trials.columns
    assert result.best_score == pytest.approx(trials["ndcg@10"].max())
    best_row = trials.loc[trials["ndcg@10"].idxmax()]
    assert result.best_params["l2"] == pytest.approx(best_row["l2"])
    # The validation split comes from train only.
    assert trials.loc[0, "l2"] == 500.0  # trial 0 is the default
    assert result.validation["splitter"] == "TimeSplit"


def test_tune_is_seeded(train: Dataset) -> None:
    a = tune("ease", train, n_trials=3, metric="ndcg@10", seed=7)
    b = tune("ease", train, n_trials=3, metric="ndcg@10", seed=7)
    assert a.best_params == b.best_params
    assert a.trials["ndcg@10"].tolist() == b.trials["ndcg@10"].tolist()


def test_fixed_params_and_custom_space(train: Dataset) -> None:
    space = {"half_life_days": Choice((7.0, 30.0))}
    result = tune("popularity", train, n_trials=3, space=space, fixed={"segment": "occupation"})
    assert set(result.trials["segment"]) == {"occupation"}
    assert set(result.trials["half_life_days"].dropna()) <= {7.0, 30.0}


def test_bad_tuning_requests(train: Dataset) -> None:
    with pytest.raises(ConfigError, match="no parameter"):
        tune("ease", train, space={"lambda": Choice((1.0,))})
    with pytest.raises(ConfigError, match="NAME@K"):
        tune("ease", train, metric="ndcg")
    with pytest.raises(ConfigError, match="unknown model"):
        tune("svd++", train)


def test_distributions_stay_in_range() -> None:
    rng = np.random.default_rng(0)
    logs = [LogUniform(10, 1000).sample(rng) for _ in range(200)]
    assert min(logs) >= 10 and max(logs) <= 1000
    ints = {Uniform(1, 3, integer=True).sample(rng) for _ in range(100)}
    assert ints == {1, 2, 3}


# ---------------------------------------------------------------------------- samplers


def test_tpe_is_seeded_and_runs_exactly_n_trials(train: Dataset) -> None:
    a = tune("rp3beta", train, n_trials=7, metric="ndcg@10", seed=3, sampler="tpe")
    b = tune("rp3beta", train, n_trials=7, metric="ndcg@10", seed=3, sampler="tpe")
    assert len(a.trials) == 7 and a.sampler == "tpe"
    cols = ["alpha", "beta", "neighbours", "ndcg@10", "state"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])
    # Trial 0 is the model's defaults; the best is the best complete trial.
    assert a.trials.loc[0, "alpha"] == 1.0 and a.trials.loc[0, "beta"] == 0.5
    complete = a.trials[a.trials["state"] == "complete"]
    assert a.best_score == pytest.approx(complete["ndcg@10"].max())


def test_random_sampler_is_kept(train: Dataset) -> None:
    result = tune("ease", train, n_trials=4, metric="ndcg@10", seed=1, sampler="random")
    assert result.sampler == "random" and result.n_pruned == 0
    assert (result.trials["state"] == "complete").all()
    # The hand-written draws: log-uniform l2 from the seeded generator, after the default.
    rng = np.random.default_rng(1)
    expected = [LogUniform(10.0, 5000.0).sample(rng) for _ in range(3)]
    assert result.trials["l2"].tolist()[1:] == pytest.approx(expected)


def test_weak_trials_are_pruned(train: Dataset) -> None:
    # A large beta divides by a high power of popularity: the rarest courses first, weak.
    space = {"beta": Uniform(0.0, 4.0)}
    seen: list[dict[str, float]] = []
    result = tune(
        "rp3beta",
        train,
        n_trials=16,
        space=space,
        metric="ndcg@10",
        seed=1,
        on_trial=lambda trial, params, metrics: seen.append(metrics),
    )
    trials = result.trials
    pruned = trials[trials["state"] == "pruned"]
    assert len(pruned) >= 1
    # Pruned trials stopped early (fewer members scored), and they were the weak ones.
    full = trials["members_scored"].max()
    assert (pruned["members_scored"] < full).all()
    assert pruned["beta"].min() > 1.0 > result.best_params["beta"]
    # The callback says which trials were pruned, with their running score apart.
    flags = [m["pruned"] for m in seen]
    assert flags == (trials["state"] == "pruned").astype(float).tolist()
    assert all("ndcg@10" not in m for m in seen if m["pruned"])
    # Without pruning every trial completes.
    unpruned = tune(
        "rp3beta", train, n_trials=6, space=space, metric="ndcg@10", seed=0, prune=False
    )
    assert unpruned.n_pruned == 0


def test_time_budget_is_honoured(train: Dataset) -> None:
    ticks = iter(np.arange(0.0, 3600.0, 25.0))  # every clock reading is 25 s later
    result = tune(
        "ease", train, n_trials=50, metric="ndcg@10", minutes=1.0, clock=lambda: next(ticks)
    )
    # Readings: start 0 s; before trial 1: 25 s, trial 2: 50 s, trial 3: 75 s >= 60 s: stop.
    assert len(result.trials) == 3
    # The first trial always runs, whatever the budget.
    ticks2 = iter(np.arange(0.0, 3600.0, 1000.0))
    assert len(tune("ease", train, n_trials=5, minutes=0.5, clock=lambda: next(ticks2)).trials) == 1
    with pytest.raises(ConfigError, match="minutes"):
        tune("ease", train, minutes=0)
    with pytest.raises(ConfigError, match="sampler"):
        tune("ease", train, sampler="grid")


def test_fusion_is_built_from_the_tuned_parts(train: Dataset) -> None:
    parts = [
        tune(name, train, n_trials=2, metric="ndcg@10", seed=0)
        for name in ("ease", "rp3beta", "gfcf")
    ]
    result = tune_fusion(parts, train, metric="ndcg@10")
    assert result.model == "fusion" and len(result.trials) == 1
    params = result.best_params
    assert params["ease_l2"] == parts[0].best_params["l2"]
    assert params["rp3_beta"] == parts[1].best_params["beta"]
    assert params["gfcf_factors"] == parts[2].best_params["n_factors"]
    assert params["gfcf_ideal_weight"] == parts[2].best_params["ideal_weight"]
    assert params["k"] == 10 and "edlae_l2" not in params  # EDLAE untuned: its defaults
