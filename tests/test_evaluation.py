from __future__ import annotations

import numpy as np
import pytest

from recommend.data.dataset import Dataset
from recommend.data.splits import TimeSplit
from recommend.data.synthetic import Platform
from recommend.errors import ConfigError, DataError
from recommend.evaluation import compare, evaluate
from recommend.models.base import Factors, Recommender


class Fixed(Recommender):
    """Scores from given factors (or from a dense score matrix through factors)."""

    name = "fixed"

    def __init__(self, member_factors: np.ndarray | None = None, seed: int = 0) -> None:
        self.member_factors = member_factors
        self.seed = seed

    def _fit(self, dataset: Dataset) -> None:
        rng = np.random.default_rng(self.seed)
        f = 8
        self.m_ = rng.normal(size=(dataset.n_members, f)).astype(np.float32)
        self.c_ = rng.normal(size=(dataset.n_courses, f)).astype(np.float32)

    def factors(self) -> Factors:
        return Factors(self.m_, self.c_)


class Oracle(Recommender):
    """Ranks by the test matrix itself: every held-out course first."""

    name = "oracle"

    def __init__(self, test: Dataset | None = None) -> None:
        self.test = test

    def _fit(self, dataset: Dataset) -> None:
        self.scores_ = self.test.interactions.toarray().astype(np.float32)

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        return self.scores_[member_idx].copy()


@pytest.fixture(scope="module")
def split(small_platform: Platform, small_dataset: Dataset) -> tuple[Dataset, Dataset, object]:
    train, test = small_dataset.split(TimeSplit(test_fraction=0.2))
    return train, test, small_platform.truth


def test_oracle_is_perfect_and_random_is_not(split: tuple[Dataset, Dataset, object]) -> None:
    train, test, _ = split
    oracle = evaluate(Oracle(test), train, test, ks=(5, 10), n_boot=100)
    assert oracle.metrics["hit_rate@10"] == 1.0
    assert oracle.metrics["recall@10"] == pytest.approx(
        np.mean(np.minimum(10, oracle_nrel(train, test)) / oracle_nrel(train, test))
    )
    assert oracle.metrics["ndcg@5"] == 1.0 and oracle.metrics["mrr@10"] == 1.0
    rand = evaluate(Fixed(seed=3), train, test, ks=(5, 10), n_boot=100)
    assert rand.metrics["ndcg@10"] < 0.5 * oracle.metrics["ndcg@10"]
    assert rand.metrics["n_evaluated"] == oracle.metrics["n_evaluated"]


def oracle_nrel(train: Dataset, test: Dataset) -> np.ndarray:
    rel = test.interactions.getnnz(axis=1)
    warm = train.interactions.getnnz(axis=1) > 0
    return rel[(rel > 0) & warm]


def test_result_contents(split: tuple[Dataset, Dataset, object]) -> None:
    train, test, truth = split
    res = evaluate(Fixed(), train, test, ks=(10,), n_boot=200, truth=truth)
    for key in (
        "precision@10",
        "map@10",
        "coverage@10",
        "novelty@10",
        "diversity@10",
        "gini@10",
        "truth_overlap@10",
        "truth_regret@10",
        "fit_seconds",
    ):
        assert key in res.metrics, key
    assert set(res.segments) == {"activity", "age_band", "occupation", "mobile"}
    occ = res.segments["occupation"]
    assert occ["members"].sum() == res.metrics["n_evaluated"]
    # Whom it left out: members with held-out courses but no training history.
    has_test = test.interactions.getnnz(axis=1) > 0
    has_train = train.interactions.getnnz(axis=1) > 0
    assert res.metrics["n_test_members"] == has_test.sum()
    assert res.metrics["n_left_out"] == (has_test & ~has_train).sum()
    assert res.metrics["n_evaluated"] + res.metrics["n_left_out"] == has_test.sum()
    ci = res.intervals.loc["ndcg@10"]
    assert ci["low"] <= ci["mean"] <= ci["high"]
    assert ci["mean"] == pytest.approx(res.metrics["ndcg@10"])
    # Aggregates only: no member ids anywhere in the result tables.
    assert "member_id" not in res.per_member.columns


def test_truth_agreement_of_an_oracle_of_truth(split: tuple[Dataset, Dataset, object]) -> None:
    train, test, truth = split

    class TruthModel(Recommender):
        name = "truth"

        def _fit(self, dataset: Dataset) -> None:
            m = truth.member_index(dataset.member_ids.external_ids)
            c = truth.course_index(dataset.course_ids.external_ids)
            self.u_ = truth.utility(m, c)

        def score_block(self, member_idx: np.ndarray) -> np.ndarray:
            return self.u_[member_idx].copy()

    best = evaluate(TruthModel(), train, test, ks=(10,), n_boot=0, truth=truth)
    assert best.metrics["truth_overlap@10"] == pytest.approx(1.0)
    assert best.metrics["truth_regret@10"] == pytest.approx(0.0, abs=1e-9)
    rand = evaluate(Fixed(seed=5), train, test, ks=(10,), n_boot=0, truth=truth)
    assert rand.metrics["truth_overlap@10"] < 0.5
    # The planted preferences are what members act on, so truth beats random on test too.
    assert best.metrics["ndcg@10"] > rand.metrics["ndcg@10"]


def test_compare_table_and_untouched_models(split: tuple[Dataset, Dataset, object]) -> None:
    train, test, _ = split
    models = {"oracle": Oracle(test), "random": Fixed(seed=2)}
    table, results = compare(models, train, test, ks=(10,), n_boot=0)
    assert list(table.index) == ["oracle", "random"]  # sorted by ndcg
    assert not models["random"].is_fitted
    assert results["oracle"].metrics["ndcg@10"] == table.loc["oracle", "ndcg@10"]


def test_bad_arguments(split: tuple[Dataset, Dataset, object]) -> None:
    train, test, _ = split
    with pytest.raises(ConfigError, match="ks="):
        evaluate(Fixed(), train, test, ks=(0,))
    other = Dataset.from_frames(test.events.drop(columns=["member_idx", "course_idx"]))
    with pytest.raises(DataError, match="do not share id maps"):
        evaluate(Fixed(), train, other)


def test_candidates_restrict_the_ranking(split: tuple[Dataset, Dataset, object]) -> None:
    """With candidates="test" every list holds held-out courses only, and only those count."""
    train, test, _ = split
    held_out = np.flatnonzero(test.interactions.getnnz(axis=0) > 0)
    result = evaluate(Fixed(seed=3), train, test, ks=(10,), n_boot=0, candidates="test")
    everything = evaluate(Fixed(seed=3), train, test, ks=(10,), n_boot=0)
    model = Fixed(seed=3).fit(train)
    members = np.flatnonzero(
        (test.interactions.getnnz(axis=1) > 0) & (train.interactions.getnnz(axis=1) > 0)
    )
    lists = model.topk(members, 10, exclude=model.history_.rows(members), allow=held_out).indices
    assert np.isin(lists[lists >= 0], held_out).all()
    # the same random model finds more held-out courses when it ranks only candidates
    assert result.metrics["recall@10"] > everything.metrics["recall@10"]
    # coverage is relative to the candidates: distinct recommended / number of candidates
    distinct = np.unique(lists[lists >= 0]).size
    assert result.metrics["coverage@10"] == pytest.approx(distinct / held_out.size)
    explicit = evaluate(Fixed(seed=3), train, test, ks=(10,), n_boot=0, candidates=held_out)
    assert explicit.metrics["ndcg@10"] == result.metrics["ndcg@10"]
    with pytest.raises(ConfigError, match="candidates"):
        evaluate(Fixed(), train, test, candidates="some")
    with pytest.raises(ConfigError, match="candidates"):
        evaluate(Fixed(), train, test, candidates=np.array([train.n_courses]))


def test_compare_hands_out_fitted_models(split: tuple[Dataset, Dataset, object]) -> None:
    train, test, _ = split
    fitted: dict[str, Recommender] = {}
    compare(
        {"random": Fixed(seed=2)}, train, test, ks=(10,), n_boot=0, on_fitted=fitted.__setitem__
    )
    assert list(fitted) == ["random"] and fitted["random"].is_fitted


def test_candidates_as_a_mask_and_the_protocol_in_params(
    split: tuple[Dataset, Dataset, object],
) -> None:
    train, test, _ = split
    mask = test.interactions.getnnz(axis=0) > 0
    by_mask = evaluate(Fixed(seed=3), train, test, ks=(10,), n_boot=0, candidates=mask)
    by_name = evaluate(Fixed(seed=3), train, test, ks=(10,), n_boot=0, candidates="test")
    assert by_mask.metrics["ndcg@10"] == by_name.metrics["ndcg@10"]
    assert by_name.params["evaluation.candidates"] == "test"
    assert by_mask.params["evaluation.candidates"] == f"{int(mask.sum())} courses"
    assert by_name.params["evaluation.members"] == "warm"
    with pytest.raises(ConfigError, match="one value per course"):
        evaluate(Fixed(), train, test, candidates=mask[:-1])
    with pytest.raises(ConfigError, match="array of"):
        evaluate(Fixed(), train, test, candidates=np.array(["c1"]))
