"""The model protocol (recommend.models.base): the fitted check, parameters, restore, the
lock, the serving cache and the snapshots that update() publishes."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from helpers import FixedFactors, RandomFactors, events_frame

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError, NotFittedError
from recommend.models.base import History, MemberState, Recommender


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


# ---------------------------------------------------------------------------- snapshots


class _Vectors(Recommender):
    """One learned number per member (its history's total confidence), per snapshot; a
    ``pause`` hook holds ``_fold_in`` after it staged the new value."""

    name = "vectors"
    totals_ = MemberState()

    def __init__(self) -> None:
        self.pause: Callable[[], None] | None = None

    def _fit(self, dataset: Dataset) -> None:
        self.totals_ = np.asarray(dataset.interactions.sum(axis=1), np.float32).ravel()

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        totals = self.totals_[np.asarray(member_idx)]
        return np.tile(totals[:, None], (1, self.n_courses)).astype(np.float32)

    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        totals = self.totals_
        new = np.zeros(max(totals.size, member_idx + 1), np.float32)
        new[: totals.size] = totals
        new[member_idx] = row.sum()
        self.totals_ = new
        # The writer reads what it staged; nobody else does until update() publishes.
        assert self.totals_ is new
        if self.pause is not None:
            self.pause()


def _one_view(member: str, course: str = "c01") -> pd.DataFrame:
    return events_frame([(member, course, "view", "2024-03-11")])


def test_update_publishes_one_new_snapshot(tiny_dataset: Dataset) -> None:
    model = _Vectors().fit(tiny_dataset)
    first = model.snapshot()
    model.update("m1", _one_view("m1"))
    second = model.snapshot()
    assert second.version == first.version + 1
    # The old snapshot is left as it was (copy-on-write).
    assert 1 not in first.history.extra and 1 in second.history.extra
    assert first.parts["totals_"] is not second.parts["totals_"]
    assert model.history_ is second.history and model.member_ids_ is second.member_ids
    model.update("fresh", _one_view("fresh"))
    third = model.snapshot()
    assert "fresh" not in second.member_ids and third.member_ids.to_index(["fresh"])[0] == 5
    assert third.parts["totals_"].size == 6


def test_reading_pins_one_snapshot_for_the_thread(tiny_dataset: Dataset) -> None:
    model = _Vectors().fit(tiny_dataset)
    with model.reading() as pinned:
        writer = threading.Thread(target=model.update, args=("m1", _one_view("m1")))
        writer.start()
        writer.join()
        assert model.snapshot() is pinned and model.history_ is pinned.history
        with model.reading() as inner:  # nested: the outer pin holds
            assert inner is pinned
        assert model.snapshot() is pinned
        assert model.score(np.array([1]))[0, 0] == pinned.parts["totals_"][1]
    assert model.snapshot().version == pinned.version + 1
    assert model.score(np.array([1]))[0, 0] != pinned.parts["totals_"][1]


def test_other_threads_never_see_a_fold_in_half_done(tiny_dataset: Dataset) -> None:
    model = _Vectors().fit(tiny_dataset)
    before = model.snapshot()
    staged = threading.Event()
    release = threading.Event()

    def pause() -> None:
        staged.set()
        assert release.wait(10)

    model.pause = pause
    writer = threading.Thread(target=model.update, args=("m1", _one_view("m1")))
    writer.start()
    try:
        assert staged.wait(10)
        # The writer has staged the new total and holds the lock: readers take no lock and
        # see the published snapshot, per-member state and history of one version.
        assert model.snapshot() is before
        assert model.totals_ is before.parts["totals_"]
        assert 1 not in model.history_.extra
    finally:
        release.set()
        writer.join()
    after = model.snapshot()
    assert after.version == before.version + 1 and 1 in after.history.extra
    assert after.parts["totals_"][1] == pytest.approx(after.history.extra[1].sum())


def test_fold_in_outside_the_snapshot_is_reported(
    tiny_dataset: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    class PlainFactors(FixedFactors):  # rebinds member_factors_, a plain attribute
        pass

    model = PlainFactors().fit(tiny_dataset)
    with caplog.at_level(logging.WARNING, logger="recommend.models.base"):
        model.update("m1", _one_view("m1"))
        model.update("m2", _one_view("m2"))
    warned = [r for r in caplog.records if "PlainFactors._fold_in" in r.getMessage()]
    assert len(warned) == 1 and "member_factors_" in warned[0].getMessage()


def test_member_state_before_fit(tiny_dataset: Dataset) -> None:
    model = _Vectors()
    assert not model.is_fitted
    with pytest.raises(AttributeError):
        _ = model.totals_
    with pytest.raises(NotFittedError):
        model.reading()
