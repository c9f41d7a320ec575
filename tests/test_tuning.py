from __future__ import annotations

import numpy as np
import pytest

from recommend.data.dataset import Dataset
from recommend.data.splits import TimeSplit
from recommend.errors import ConfigError
from recommend.tuning import Choice, LogUniform, Uniform, tune


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
