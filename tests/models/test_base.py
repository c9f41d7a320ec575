"""The model protocol (recommend.models.base): the fitted check, parameters, restore, the
lock and the serving cache."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from helpers import FixedFactors, RandomFactors

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError, NotFittedError
from recommend.models.base import History, Recommender


class _Args(Recommender):
    def __init__(self, a: int = 1, *more: int, b: str = "x", **extra: object) -> None:
        self.a, self.b = a, b

    def _fit(self, dataset: Dataset) -> None:
        self.fitted_ = True


def test_param_names_are_the_init_arguments() -> None:
    assert _Args.param_names() == ["a", "b"]
    assert RandomFactors.param_names() == ["n_factors", "seed"]
    assert RandomFactors(4, seed=2).get_params() == {"n_factors": 4, "seed": 2}
    with pytest.raises(ConfigError, match=r"RandomFactors has no parameter\(s\) \['rank'\]"):
        RandomFactors().set_params(rank=3)
    assert RandomFactors().set_params(seed=5).seed == 5


def test_check_fitted(tiny_dataset: Dataset) -> None:
    model = FixedFactors()
    assert not model.is_fitted
    with pytest.raises(NotFittedError, match=r"FixedFactors is not fitted: call fit\(dataset\)"):
        model.check_fitted()
    with pytest.raises(NotFittedError):
        model.cached("k", object)
    model.fit(tiny_dataset)
    assert model.is_fitted
    model.check_fitted()


def test_restore_sets_the_fitted_state(tiny_model: FixedFactors, tiny_dataset: Dataset) -> None:
    other = FixedFactors().restore(
        member_ids=tiny_model.member_ids_,
        course_ids=tiny_model.course_ids_,
        dataset=None,
        history=History(tiny_dataset.interactions),
        state={
            "member_factors_": tiny_model.member_factors_,
            "course_factors_": tiny_model.course_factors_,
        },
    )
    assert other.is_fitted and not hasattr(other, "dataset_")
    idx = np.arange(5)
    np.testing.assert_array_equal(other.score(idx), tiny_model.score(idx))
    for bad in ("member_factors", "_private_"):
        with pytest.raises(ValueError, match=f"{bad!r} is not a learned attribute"):
            FixedFactors().restore(
                member_ids=tiny_model.member_ids_,
                course_ids=tiny_model.course_ids_,
                dataset=None,
                history=History(tiny_dataset.interactions),
                state={bad: 1},
            )


def test_cached_is_built_once_under_concurrent_calls(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    built: list[int] = []

    def build() -> object:
        built.append(1)
        time.sleep(0.01)  # long enough for every thread to ask while it runs
        return object()

    barrier = threading.Barrier(8)
    got: list[object] = []

    def work() -> None:
        barrier.wait()
        got.append(model.cached("part", build))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1
    assert len(got) == 8 and all(g is got[0] for g in got)
    assert model.cache_entry("part") is got[0]


def test_a_refit_or_restore_empties_the_cache(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    first = model.cached("part", object)
    assert model.cached("part", object) is first  # kept while the state lasts
    model.fit(tiny_dataset)
    assert model.cache_entry("part") is None
    second = model.cached("part", object)
    assert second is not first
    model.restore(
        member_ids=model.member_ids_,
        course_ids=model.course_ids_,
        dataset=tiny_dataset,
        history=model.history_,
    )
    assert model.cache_entry("part") is None


def test_cache_entries(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    assert model.cache_entry("x") is None
    model.set_cache_entry("x", 1)
    assert model.cache_entry("x") == 1
    model.set_cache_entry("x", 2)  # replaced
    assert model.cached("x", lambda: 3) == 2
    with pytest.raises(NotFittedError):
        FixedFactors().set_cache_entry("x", 1)


def test_lock_is_one_reentrant_lock(tiny_dataset: Dataset) -> None:
    model = FixedFactors().fit(tiny_dataset)
    lock = model.lock
    assert model.lock is lock
    with model.lock, model.lock:  # re-entrant: fold-in may call code that locks again
        assert model.cached("inside", lambda: 5) == 5


def test_a_failed_fit_leaves_the_model_unfitted(tiny_dataset: Dataset) -> None:
    class Failing(FixedFactors):
        def _fit(self, dataset: Dataset) -> None:
            raise RuntimeError("boom")

    model = Failing()
    with pytest.raises(RuntimeError, match="boom"):
        model.fit(tiny_dataset)
    assert not model.is_fitted
