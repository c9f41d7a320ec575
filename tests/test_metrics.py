"""Tests of recommend.metrics: hand-worked examples, references, properties, validation."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from recommend import metrics as m
from recommend.errors import ConfigError, DataError

LOG2_3 = math.log2(3)
PER_MEMBER = {
    "precision": m.precision_at_k,
    "recall": m.recall_at_k,
    "ndcg": m.ndcg_at_k,
    "map": m.average_precision_at_k,
    "mrr": m.reciprocal_rank_at_k,
    "hit_rate": m.hit_rate_at_k,
}


def relevant_matrix(rows: list[set[int]], n_courses: int) -> sp.csr_matrix:
    """Binary (n_members, n_courses) CSR from one set of relevant courses per member."""
    dense = np.zeros((len(rows), n_courses))
    for u, items in enumerate(rows):
        dense[u, sorted(items)] = 1.0
    return sp.csr_matrix(dense)


# --------------------------------------------------------------------- hand-worked


@pytest.fixture
def one_member() -> tuple[np.ndarray, sp.csr_matrix]:
    # Ranked list 3, 1, 4, then an empty slot; relevant courses {1, 4, 9} of 10.
    return np.array([[3, 1, 4, -1]]), relevant_matrix([{1, 4, 9}], 10)


@pytest.mark.parametrize(
    ("name", "k", "expected"),
    [
        # k=1: the only slot holds course 3, a miss, so every metric is 0.
        ("precision", 1, 0.0),
        ("recall", 1, 0.0),
        ("ndcg", 1, 0.0),
        ("map", 1, 0.0),
        ("mrr", 1, 0.0),
        ("hit_rate", 1, 0.0),
        # k=3: hits at ranks 2 (course 1) and 3 (course 4); n_rel = 3.
        ("precision", 3, 2 / 3),  # 2 hits / k=3
        ("recall", 3, 2 / 3),  # 2 hits / 3 relevant
        # DCG = 1/log2(2+1) + 1/log2(3+1); IDCG over min(3, 3) = 3 slots = 1 + 1/log2 3 + 1/2
        ("ndcg", 3, (1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)),
        # AP = (precision@2 + precision@3) / min(3, 3) = (1/2 + 2/3) / 3 = 7/18
        ("map", 3, 7 / 18),
        ("mrr", 3, 1 / 2),  # first hit at rank 2
        ("hit_rate", 3, 1.0),
        # k=4: the 4th slot is empty, a miss for precision; the rest is as at k=3.
        ("precision", 4, 2 / 4),
        ("recall", 4, 2 / 3),
        ("ndcg", 4, (1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)),  # IDCG over min(4,3)
        ("map", 4, 7 / 18),
        ("mrr", 4, 1 / 2),
        ("hit_rate", 4, 1.0),
    ],
)
def test_hand_worked_single_member(one_member, name, k, expected):
    recommended, relevant = one_member
    got = PER_MEMBER[name](recommended, relevant, k)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, abs=1e-12)


def test_ndcg_value_spelled_out(one_member):
    # 1/log2 3 = 0.6309...; DCG = 1.1309..., IDCG = 2.1309..., NDCG = 0.53072...
    recommended, relevant = one_member
    assert m.ndcg_at_k(recommended, relevant, 3)[0] == pytest.approx(0.530721274, abs=1e-9)


def test_average_precision_divides_by_k_when_more_relevant_than_k():
    # List [0, 5], relevant {0, 1, 2}: one hit at rank 1 -> precision@1 = 1, and
    # min(k=2, n_rel=3) = 2, so AP@2 = 1/2 (dividing by n_rel would give 1/3).
    ap = m.average_precision_at_k(np.array([[0, 5]]), relevant_matrix([{0, 1, 2}], 6), 2)
    assert ap[0] == pytest.approx(0.5)


def test_recall_and_ndcg_when_more_relevant_than_k():
    # List [0, 1], relevant {0, 1, 2, 3}: both slots hit. recall = 2/4, but NDCG = 1
    # because the ideal list also has only k=2 slots to fill.
    rec, rel = np.array([[0, 1]]), relevant_matrix([{0, 1, 2, 3}], 5)
    assert m.recall_at_k(rec, rel, 2)[0] == pytest.approx(0.5)
    assert m.ndcg_at_k(rec, rel, 2)[0] == pytest.approx(1.0)
    assert m.precision_at_k(rec, rel, 2)[0] == pytest.approx(1.0)


def test_graded_ndcg_hand_worked():
    # Gains: course 1 -> 3, course 4 -> 1, course 9 -> 2; list [3, 1, 4].
    # DCG@3 = 0/1 + 3/log2 3 + 1/log2 4; ideal order 3, 2, 1: IDCG = 3 + 2/log2 3 + 1/2.
    rel = sp.csr_matrix(([3.0, 1.0, 2.0], ([0, 0, 0], [1, 4, 9])), shape=(1, 10))
    got = m.ndcg_at_k(np.array([[3, 1, 4]]), rel, 3, graded=True)[0]
    assert got == pytest.approx((3 / LOG2_3 + 1 / 2) / (3 + 2 / LOG2_3 + 1 / 2))
    # Binary NDCG ignores the values.
    binary = m.ndcg_at_k(np.array([[3, 1, 4]]), rel, 3)[0]
    assert binary == pytest.approx((1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2))


def test_graded_ndcg_refuses_negative_gains():
    rel = sp.csr_matrix(([-1.0], ([0], [1])), shape=(1, 3))
    with pytest.raises(DataError, match="negative"):
        m.ndcg_at_k(np.array([[1, 2]]), rel, 2, graded=True)


@pytest.fixture
def three_members() -> tuple[np.ndarray, sp.csr_matrix]:
    recommended = np.array(
        [
            [3, 1, 4, -1],  # relevant {1, 4, 9}: as in one_member
            [0, 2, 5, 6],  # nothing relevant: excluded from every accuracy average
            [7, 8, -1, -1],  # relevant {7}: a hit at rank 1
        ]
    )
    return recommended, relevant_matrix([{1, 4, 9}, set(), {7}], 10)


def test_member_without_relevant_courses_is_nan_and_excluded(three_members):
    recommended, relevant = three_members
    for fn in PER_MEMBER.values():
        values = fn(recommended, relevant, 3)
        assert np.isnan(values[1])
        assert not np.isnan(values[[0, 2]]).any()
    result = m.ranking_metrics(recommended, relevant, ks=3)
    assert result["n_evaluated"] == 2
    # Means over members 0 and 2 only:
    assert result["precision@3"] == pytest.approx((2 / 3 + 1 / 3) / 2)  # member 2: 1/3
    assert result["recall@3"] == pytest.approx((2 / 3 + 1) / 2)
    assert result["map@3"] == pytest.approx((7 / 18 + 1) / 2)  # member 2: 1 / min(3, 1)
    assert result["mrr@3"] == pytest.approx((1 / 2 + 1) / 2)
    assert result["hit_rate@3"] == pytest.approx(1.0)
    ndcg0 = (1 / LOG2_3 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)
    assert result["ndcg@3"] == pytest.approx((ndcg0 + 1) / 2)


def test_ranking_metrics_keys_and_per_member_frame(three_members):
    recommended, relevant = three_members
    result = m.ranking_metrics(recommended, relevant, ks=(4, 2))
    expected_keys = [f"{name}@{k}" for k in (2, 4) for name in m.ACCURACY_METRICS]
    assert list(result) == [*expected_keys, "n_evaluated"]
    frame = m.per_member_metrics(recommended, relevant, ks=(4, 2))
    assert frame.index.name == "member_idx"
    assert frame.index.tolist() == [0, 2]
    assert sorted(frame.columns) == sorted(expected_keys)
    for key in expected_keys:
        assert frame[key].mean() == pytest.approx(result[key])


def test_no_hits_and_all_hits():
    recommended = np.array([[0, 1, 2], [3, 4, 5]])
    relevant = relevant_matrix([{7, 8}, {3, 4, 5}], 9)
    result = m.per_member_metrics(recommended, relevant, ks=3)
    assert result.loc[0].tolist() == [0.0] * 6  # no hits: every metric 0
    assert result.loc[1].tolist() == [1.0] * 6  # every slot relevant, all found: every 1


def test_empty_slots_are_misses():
    # Empty slots at the end (shorter list) and in the middle both count as misses.
    relevant = relevant_matrix([{0}, {0}], 3)
    recommended = np.array([[-1, 0, -1], [-1, -1, -1]])
    assert m.precision_at_k(recommended, relevant, 3).tolist() == pytest.approx([1 / 3, 0.0])
    assert m.reciprocal_rank_at_k(recommended, relevant, 3).tolist() == pytest.approx([0.5, 0])
    assert m.hit_rate_at_k(recommended, relevant, 1).tolist() == [0.0, 0.0]


def test_explicit_zeros_and_duplicates_in_relevant():
    # A stored 0 is not relevant; duplicate entries of one course count once. The
    # caller's matrix is left untouched.
    rel = sp.csr_matrix(([0.0, 1.0, 1.0], [0, 1, 1], [0, 3]), shape=(1, 4))
    before = (rel.data.copy(), rel.indices.copy(), rel.indptr.copy())
    rec = np.array([[0, 1, 2]])
    assert m.recall_at_k(rec, rel, 3)[0] == pytest.approx(1.0)  # n_rel = 1 (course 1)
    assert m.precision_at_k(rec, rel, 3)[0] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(rel.data, before[0])
    np.testing.assert_array_equal(rel.indices, before[1])
    np.testing.assert_array_equal(rel.indptr, before[2])


def test_accepts_sparse_arrays_and_any_integer_dtype(three_members):
    recommended, relevant = three_members
    expected = m.ndcg_at_k(recommended, relevant, 4)
    got = m.ndcg_at_k(recommended.astype(np.int32), sp.csr_array(relevant).tocoo(), 4)
    np.testing.assert_allclose(got, expected)


# ---------------------------------------------------------------- beyond accuracy


@pytest.fixture
def beyond() -> dict[str, np.ndarray]:
    return {
        "recommended": np.array([[0, 1, 2], [0, 3, -1], [-1, -1, -1]]),
        # training interaction counts of courses 0..5, over 10 members
        "popularity": np.array([10, 5, 1, 0, 2, 2]),
        "category": np.array([0, 0, 1, 1, 2, 3]),
    }


def test_catalogue_coverage_hand_worked(beyond):
    rec = beyond["recommended"]
    assert m.catalogue_coverage(rec, 6, 3) == pytest.approx(4 / 6)  # courses 0, 1, 2, 3
    assert m.catalogue_coverage(rec, 6, 1) == pytest.approx(1 / 6)  # only course 0


def test_gini_index_hand_worked(beyond):
    # Counts per course at k=3: [2, 1, 1, 1, 0, 0]; sorted [0, 0, 1, 1, 1, 2], total 5.
    # G = sum((2i - n - 1) x_i) / (n * total) with weights -5, -3, -1, 1, 3, 5:
    #   (-1 + 1 + 3 + 10) / (6 * 5) = 13/30.
    assert m.gini_index(beyond["recommended"], 6, 3) == pytest.approx(13 / 30)
    # Equal counts -> 0; everything on one course -> (n - 1) / n.
    assert m.gini_index(np.array([[0, 1], [2, 3]]), 4, 2) == pytest.approx(0.0)
    assert m.gini_index(np.array([[0], [0]]), 4, 1) == pytest.approx(3 / 4)
    assert math.isnan(m.gini_index(np.array([[-1]]), 4, 1))


def test_novelty_hand_worked(beyond):
    # Self-information -log2(pop / 10): course 0 -> 0, course 1 -> 1, course 2 -> log2 10,
    # course 3 (never seen, counted as pop 1) -> log2 10.
    # Member 0: (0 + 1 + log2 10) / 3; member 1: (0 + log2 10) / 2; member 2: empty, left out.
    log2_10 = math.log2(10)
    expected = ((1 + log2_10) / 3 + log2_10 / 2) / 2
    got = m.novelty(beyond["recommended"], beyond["popularity"], 10, 3)
    assert got == pytest.approx(expected)


def test_average_popularity_hand_worked(beyond):
    # Member 0: (10 + 5 + 1) / 3 = 16/3; member 1: (10 + 0) / 2 = 5; member 2 left out.
    got = m.average_popularity(beyond["recommended"], beyond["popularity"], 3)
    assert got == pytest.approx((16 / 3 + 5) / 2)


def test_intra_list_diversity_hand_worked(beyond):
    # Member 0: channels 0, 0, 1 -> pairs (0,0) same, (0,1), (0,1) different -> 2/3.
    # Member 1: channels 0, 1 -> its one pair differs -> 1. Member 2: no pair, left out.
    rec, cat = beyond["recommended"], beyond["category"]
    assert m.intra_list_diversity(rec, cat, 3) == pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(m.intra_list_diversity(rec, cat, 1))  # no list has two courses


def test_per_member_frame_beyond_accuracy_columns(beyond):
    rec = beyond["recommended"]
    relevant = relevant_matrix([{1}, {5}, {2}], 6)
    frame = m.per_member_metrics(
        rec,
        relevant,
        ks=3,
        item_popularity=beyond["popularity"],
        n_members=10,
        course_category=beyond["category"],
    )
    assert frame.loc[0, "popularity@3"] == pytest.approx(16 / 3)
    assert frame.loc[1, "diversity@3"] == pytest.approx(1.0)
    assert frame.loc[0, "novelty@3"] == pytest.approx((1 + math.log2(10)) / 3)
    assert np.isnan(frame.loc[2, "novelty@3"])  # member 2's list is empty
    with pytest.raises(ConfigError, match="n_members"):
        m.per_member_metrics(rec, relevant, ks=3, item_popularity=beyond["popularity"])


def test_popularity_counts_counts_distinct_members():
    interactions = sp.csr_matrix(([3.0, 1.0, 2.0, 0.0], ([0, 1, 1, 2], [0, 0, 2, 1])), (3, 3))
    # Course 1 only has a stored zero: no member.
    assert m.popularity_counts(interactions).tolist() == [2, 0, 1]


# ------------------------------------------------------------------------ segments


def test_by_segment_means_and_counts():
    per_member = pd.DataFrame(
        {"ndcg@10": [0.2, 0.4, 1.0, np.nan]}, index=pd.Index([0, 2, 3, 5], name="member_idx")
    )
    labels = np.array(["young", "x", "young", "old", None, "old"], dtype=object)
    out = m.by_segment(per_member, labels)
    # member 0 and 2 young, member 3 old, member 5 old with an undefined value.
    assert out.loc["young", "members"] == 2
    assert out.loc["young", "ndcg@10"] == pytest.approx(0.3)
    assert out.loc["old", "members"] == 2
    assert out.loc["old", "ndcg@10"] == pytest.approx(1.0)  # NaN skipped
    assert "x" not in out.index  # member 1 is not in per_member
    assert list(out.columns) == ["members", "ndcg@10"]


def test_by_segment_keeps_missing_labels_and_category_order():
    per_member = pd.DataFrame({"recall@5": [1.0, 0.0, 0.5]}, index=[0, 1, 2])
    bands = pd.Categorical(["60+", "<30", None], categories=["<30", "60+"], ordered=True)
    out = m.by_segment(per_member, bands)
    assert out["members"].sum() == 3  # the member without a band is not dropped
    assert out.index[:2].tolist() == ["<30", "60+"]  # band order, not alphabetical
    assert out["recall@5"].iloc[2] == pytest.approx(0.5)  # the missing-band member


def test_by_segment_with_series_aligns_on_member_index():
    per_member = pd.DataFrame({"mrr@5": [1.0, 0.5]}, index=[7, 3])
    mobile = pd.Series([True, False], index=[3, 7])
    out = m.by_segment(per_member, mobile)
    assert out.loc[True, "mrr@5"] == pytest.approx(0.5)
    assert out.loc[False, "mrr@5"] == pytest.approx(1.0)
    with pytest.raises(DataError, match="no label"):
        m.by_segment(per_member, pd.Series([True], index=[3]))
    with pytest.raises(DataError, match="member_idx"):
        m.by_segment(per_member, np.array([True, False]))


def test_activity_level_terciles_and_edges():
    # Quantiles of 1..6: 1/3 -> 2.667, 2/3 -> 4.333 (linear interpolation).
    levels = m.activity_level(np.array([1, 2, 3, 4, 5, 6]))
    assert list(levels) == ["low", "low", "medium", "medium", "high", "high"]
    levels = m.activity_level(np.array([0, 5, 50]), edges=(0, 10))
    assert list(levels) == ["low", "medium", "high"]
    assert levels.ordered


# ----------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_mean_and_narrows_with_more_members():
    rng = np.random.default_rng(1)
    small = rng.random(100)
    large = rng.random(10_000)
    low_s, high_s = m.bootstrap_ci(small, n_boot=500)
    low_l, high_l = m.bootstrap_ci(large, n_boot=500)
    assert low_s < small.mean() < high_s
    assert low_l < large.mean() < high_l
    # Width shrinks like 1/sqrt(n): 100x the members, about a tenth of the width.
    assert (high_l - low_l) < 0.2 * (high_s - low_s)


def test_bootstrap_ci_is_seeded():
    values = np.random.default_rng(2).random(300)
    assert m.bootstrap_ci(values, seed=5) == m.bootstrap_ci(values, seed=5)
    assert m.bootstrap_ci(values, seed=5) != m.bootstrap_ci(values, seed=6)


def test_bootstrap_ci_same_result_whatever_the_chunk_size(monkeypatch):
    values = np.random.default_rng(3).random(50)
    whole = m.bootstrap_ci(values, n_boot=200)
    monkeypatch.setattr(m, "_BOOT_CHUNK_ENTRIES", 120)  # 2 resamples per chunk
    assert m.bootstrap_ci(values, n_boot=200) == whole


def test_bootstrap_ci_matches_scipy_percentile_bootstrap():
    values = np.random.default_rng(4).exponential(size=2000)
    low, high = m.bootstrap_ci(values, n_boot=4000, alpha=0.1)
    ref = scipy.stats.bootstrap(
        (values,),
        np.mean,
        n_resamples=4000,
        confidence_level=0.9,
        method="percentile",
        random_state=np.random.default_rng(9),
    ).confidence_interval
    width = ref.high - ref.low
    # Different random draws: agree to a small share of the width.
    assert low == pytest.approx(ref.low, abs=0.1 * width)
    assert high == pytest.approx(ref.high, abs=0.1 * width)


def test_bootstrap_ci_edge_cases():
    assert m.bootstrap_ci(np.full(20, 0.25)) == (0.25, 0.25)
    low, high = m.bootstrap_ci(np.array([0.0, np.nan, 1.0, np.nan]), n_boot=200)
    assert 0.0 <= low <= high <= 1.0  # NaN dropped, not propagated
    assert all(math.isnan(v) for v in m.bootstrap_ci(np.array([np.nan])))
    with pytest.raises(ConfigError, match="alpha"):
        m.bootstrap_ci(np.ones(3), alpha=0.0)
    with pytest.raises(ConfigError, match="n_boot"):
        m.bootstrap_ci(np.ones(3), n_boot=0)


def test_bootstrap_cis_per_column(three_members):
    frame = pd.DataFrame({"a": [0.0, 1.0, 0.5, 0.5], "b": [1.0, np.nan, 1.0, np.nan]})
    out = m.bootstrap_cis(frame, n_boot=300)
    assert out.index.tolist() == ["a", "b"]
    assert out.loc["a", "mean"] == pytest.approx(0.5)
    assert out.loc["a", "low"] <= 0.5 <= out.loc["a", "high"]
    assert out.loc["a", "n"] == 4
    assert out.loc["b", "n"] == 2
    assert (out.loc["b", "low"], out.loc["b", "high"]) == (1.0, 1.0)


# -------------------------------------------------------------- against references


def naive_metrics(rec: list[int], rel: set[int], k: int) -> dict[str, float]:
    """Textbook loop implementation over one list, for cross-checking."""
    top = rec[:k]
    hits = [c in rel and c != -1 for c in top]
    n_hits = sum(hits)
    dcg = sum(1 / math.log2(i + 2) for i, h in enumerate(hits) if h)
    idcg = sum(1 / math.log2(i + 2) for i in range(min(k, len(rel))))
    ap, seen = 0.0, 0
    for i, h in enumerate(hits):
        if h:
            seen += 1
            ap += seen / (i + 1)
    first = next((i for i, h in enumerate(hits) if h), None)
    return {
        "precision": n_hits / k,
        "recall": n_hits / len(rel),
        "ndcg": dcg / idcg,
        "map": ap / min(k, len(rel)),
        "mrr": 0.0 if first is None else 1 / (first + 1),
        "hit_rate": float(n_hits > 0),
    }


def random_case(seed: int, n_members: int = 60, n_courses: int = 40, K: int = 8):
    rng = np.random.default_rng(seed)
    recommended = np.argsort(rng.random((n_members, n_courses)), axis=1)[:, :K]
    lengths = rng.integers(0, K + 1, n_members)
    recommended[np.arange(K) >= lengths[:, None]] = -1
    relevant = sp.csr_matrix(rng.random((n_members, n_courses)) < 0.15, dtype=np.float64)
    return recommended, relevant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_naive_loops(seed):
    recommended, relevant = random_case(seed)
    frame = m.per_member_metrics(recommended, relevant, ks=(1, 5, 8))
    rel_sets = [set(relevant[u].indices) for u in range(relevant.shape[0])]
    assert frame.index.tolist() == [u for u, s in enumerate(rel_sets) if s]
    for u in frame.index:
        for k in (1, 5, 8):
            expected = naive_metrics(recommended[u].tolist(), rel_sets[u], k)
            for name, value in expected.items():
                assert frame.loc[u, f"{name}@{k}"] == pytest.approx(value), (u, name, k)


def test_beyond_accuracy_agree_with_naive_loops():
    recommended, _ = random_case(5, n_courses=30)
    rng = np.random.default_rng(6)
    category = rng.integers(0, 4, 30)
    popularity = rng.integers(0, 50, 30)
    ild, nov, arp = [], [], []
    for row in recommended[:, :6]:
        items = [c for c in row if c != -1]
        if len(items) >= 2:
            pairs = list(combinations(items, 2))
            ild.append(sum(category[a] != category[b] for a, b in pairs) / len(pairs))
        if items:
            nov.append(np.mean([-math.log2(max(popularity[c], 1) / 50) for c in items]))
            arp.append(np.mean([popularity[c] for c in items]))
    assert m.intra_list_diversity(recommended, category, 6) == pytest.approx(np.mean(ild))
    assert m.novelty(recommended, popularity, 50, 6) == pytest.approx(np.mean(nov))
    assert m.average_popularity(recommended, popularity, 6) == pytest.approx(np.mean(arp))
    # Gini from its mean-absolute-difference definition.
    counts = np.bincount(recommended[:, :6][recommended[:, :6] >= 0], minlength=30)
    mad = np.abs(counts[:, None] - counts[None, :]).sum() / (2 * 30**2 * counts.mean())
    assert m.gini_index(recommended, 30, 6) == pytest.approx(mad)


def test_graded_ndcg_agrees_with_naive_loop():
    recommended, binary = random_case(7)
    rng = np.random.default_rng(8)
    graded = binary.copy()
    graded.data = rng.integers(1, 5, graded.nnz).astype(np.float64)
    got = m.ndcg_at_k(recommended, graded, 5, graded=True)
    for u in range(recommended.shape[0]):
        row = graded[u]
        gains = dict(zip(row.indices.tolist(), row.data.tolist(), strict=True))
        if not gains:
            assert np.isnan(got[u])
            continue
        dcg = sum(gains.get(c, 0.0) / math.log2(i + 2) for i, c in enumerate(recommended[u, :5]))
        best = sorted(gains.values(), reverse=True)[:5]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(best))
        assert got[u] == pytest.approx(dcg / idcg)


class FixedListModel:
    """Stands in for an implicit model: ``recommend`` returns our precomputed lists."""

    def __init__(self, recommended: np.ndarray) -> None:
        self.recommended = recommended

    def recommend(self, userids, user_items, N=10, **kwargs):  # implicit's signature
        ids = self.recommended[np.asarray(userids), :N].astype(np.int32)
        return ids, np.zeros(ids.shape, dtype=np.float32)


def implicit_metrics(model, train: sp.csr_matrix, test: sp.csr_matrix, K: int) -> dict:
    from implicit.evaluation import ranking_metrics_at_k

    return ranking_metrics_at_k(model, train, test, K=K, show_progress=False)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_implicit_on_identical_lists(seed):
    recommended, relevant = random_case(seed, n_members=200, n_courses=50, K=10)
    train = sp.csr_matrix(relevant.shape, dtype=np.float32)
    ref = implicit_metrics(FixedListModel(recommended), train, relevant.astype(np.float32), 10)
    ours = m.ranking_metrics(recommended, relevant, ks=10)
    assert ours["ndcg@10"] == pytest.approx(ref["ndcg"], rel=1e-9)
    assert ours["map@10"] == pytest.approx(ref["map"], rel=1e-9)
    # implicit pools precision as sum(hits) / sum(min(k, n_rel)); rebuild that from ours.
    hits = m.precision_at_k(recommended, relevant, 10) * 10
    n_rel = np.diff(relevant.indptr)
    evaluated = n_rel > 0
    pooled = hits[evaluated].sum() / np.minimum(n_rel[evaluated], 10).sum()
    assert pooled == pytest.approx(ref["precision"], rel=1e-9)


def test_precision_agrees_with_implicit_when_every_member_has_k_relevant():
    # With n_rel >= k for every member, implicit's pooled precision is hits / k averaged.
    recommended, _ = random_case(11, n_members=100, n_courses=40, K=5)
    rng = np.random.default_rng(12)
    dense = rng.random((100, 40)) < 0.5
    dense[:, :5] = True  # n_rel >= 5 for everyone
    relevant = sp.csr_matrix(dense, dtype=np.float64)
    train = sp.csr_matrix(relevant.shape, dtype=np.float32)
    ref = implicit_metrics(FixedListModel(recommended), train, relevant.astype(np.float32), 5)
    ours = m.ranking_metrics(recommended, relevant, ks=5)
    assert ours["precision@5"] == pytest.approx(ref["precision"], rel=1e-9)


def test_agrees_with_implicit_als_model_with_fixed_factors():
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(13)
    n_members, n_courses, K = 150, 80, 10
    interactions = rng.random((n_members, n_courses)) < 0.12
    held_out = interactions & (rng.random(interactions.shape) < 0.3)
    train = sp.csr_matrix(interactions & ~held_out, dtype=np.float32)
    test = sp.csr_matrix(held_out, dtype=np.float32)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=6, random_state=0)
        model.user_factors = rng.standard_normal((n_members, 6)).astype(np.float32)
        model.item_factors = rng.standard_normal((n_courses, 6)).astype(np.float32)
        # The same call implicit's evaluation makes: top K with training courses filtered.
        recommended, _ = model.recommend(np.arange(n_members), train, N=K)
        ref = implicit_metrics(model, train, test, K)
    ours = m.ranking_metrics(recommended, test, ks=K)
    assert ours["ndcg@10"] == pytest.approx(ref["ndcg"], rel=1e-6)
    assert ours["map@10"] == pytest.approx(ref["map"], rel=1e-6)


# --------------------------------------------------------------------- properties


@st.composite
def ranking_cases(draw):
    n_courses = draw(st.integers(1, 12))
    K = draw(st.integers(1, 6))
    n_members = draw(st.integers(1, 6))
    recommended = np.full((n_members, K), -1, dtype=np.int64)
    rel_rows = []
    for u in range(n_members):
        row = draw(st.lists(st.integers(0, n_courses - 1), unique=True, max_size=K))
        recommended[u, : len(row)] = row
        rel_rows.append(draw(st.sets(st.integers(0, n_courses - 1), max_size=n_courses)))
    return recommended, relevant_matrix(rel_rows, n_courses)


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_property_accuracy_metrics_in_unit_interval(case):
    recommended, relevant = case
    evaluated = np.diff(relevant.indptr) > 0
    for k in range(1, recommended.shape[1] + 1):
        for fn in PER_MEMBER.values():
            values = fn(recommended, relevant, k)
            assert np.array_equal(np.isnan(values), ~evaluated)
            assert ((values[evaluated] >= 0) & (values[evaluated] <= 1 + 1e-12)).all()


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_property_recall_hits_and_ap_monotone_in_k(case):
    recommended, relevant = case
    K = recommended.shape[1]
    recall = np.array([m.recall_at_k(recommended, relevant, k) for k in range(1, K + 1)])
    hit = np.array([m.hit_rate_at_k(recommended, relevant, k) for k in range(1, K + 1)])
    mrr = np.array([m.reciprocal_rank_at_k(recommended, relevant, k) for k in range(1, K + 1)])
    evaluated = np.diff(relevant.indptr) > 0
    for series in (recall, hit, mrr):
        assert (np.diff(series[:, evaluated], axis=0) >= -1e-12).all()


@settings(max_examples=150, deadline=None)
@given(ranking_cases())
def test_property_hit_rate_bounds_precision_and_mrr(case):
    recommended, relevant = case
    evaluated = np.diff(relevant.indptr) > 0
    for k in range(1, recommended.shape[1] + 1):
        hit = m.hit_rate_at_k(recommended, relevant, k)[evaluated]
        assert (hit >= m.precision_at_k(recommended, relevant, k)[evaluated]).all()
        assert (hit >= m.reciprocal_rank_at_k(recommended, relevant, k)[evaluated]).all()
        assert (hit >= m.ndcg_at_k(recommended, relevant, k)[evaluated] - 1e-12).all()


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_property_ndcg_is_one_when_top_slots_all_relevant(data):
    n_courses = data.draw(st.integers(2, 15))
    K = data.draw(st.integers(1, min(6, n_courses)))
    k = data.draw(st.integers(1, K))
    order = data.draw(st.permutations(range(n_courses)))
    relevant_set = set(data.draw(st.sets(st.sampled_from(order), min_size=1)))
    # Put relevant courses first: the top min(k, n_rel) slots are all relevant.
    ranked = sorted(order, key=lambda c: c not in relevant_set)[:K]
    rec, rel = np.array([ranked]), relevant_matrix([relevant_set], n_courses)
    assert m.ndcg_at_k(rec, rel, k)[0] == pytest.approx(1.0)
    assert m.average_precision_at_k(rec, rel, k)[0] == pytest.approx(1.0)


@settings(max_examples=100, deadline=None)
@given(ranking_cases(), st.integers(0, 3))
def test_property_beyond_accuracy_ranges(case, seed):
    recommended, _ = case
    n_courses = int(recommended.max()) + 1 if (recommended >= 0).any() else 1
    rng = np.random.default_rng(seed)
    category = rng.integers(0, 3, n_courses)
    popularity = rng.integers(0, 9, n_courses)
    K = recommended.shape[1]
    coverage = m.catalogue_coverage(recommended, n_courses, K)
    assert 0 <= coverage <= 1
    assert coverage >= m.catalogue_coverage(recommended, n_courses, 1)
    ild = m.intra_list_diversity(recommended, category, K)
    assert math.isnan(ild) or 0 <= ild <= 1
    nov = m.novelty(recommended, popularity, 8, K)
    assert math.isnan(nov) or 0 <= nov <= math.log2(8) + 1e-12
    gini = m.gini_index(recommended, n_courses, K)
    assert math.isnan(gini) or 0 <= gini <= 1 - 1 / n_courses + 1e-12


# --------------------------------------------------------------------- validation


def test_bad_k_is_a_config_error(one_member):
    recommended, relevant = one_member
    for k in (0, 5, -1):
        with pytest.raises(ConfigError, match=f"k={k} is out of range.*K=4"):
            m.precision_at_k(recommended, relevant, k)
    for k in (2.0, True, "3"):
        with pytest.raises(ConfigError, match="integer"):
            m.ndcg_at_k(recommended, relevant, k)
    with pytest.raises(ConfigError, match=r"k=20 \(in ks\)"):
        m.ranking_metrics(recommended, relevant, ks=(1, 20))
    with pytest.raises(ConfigError, match="ks"):
        m.per_member_metrics(recommended, relevant, ks=())
    with pytest.raises(ConfigError, match="k=9"):
        m.catalogue_coverage(recommended, 10, 9)
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(
    ("recommended", "match"),
    [
        (np.array([[3, 10, 4]]), r"recommended\[0, 1\] = 10.*n_courses=10"),
        (np.array([[3, -2, 4]]), r"recommended\[0, 1\] = -2"),
        (np.array([[3.0, 1.0, 4.0]]), "integer course indices.*float64"),
        (np.array([3, 1, 4]), "2-D"),
        (np.array([[3, 1, 3]]), "row 0 lists course 3 more than once"),
        (np.array([[3, 1, 4], [0, 1, 2]]), "relevant has shape"),
    ],
)
def test_bad_recommended_is_a_data_error(recommended, match):
    relevant = relevant_matrix([{1, 4, 9}], 10)
    with pytest.raises(DataError, match=match):
        m.recall_at_k(recommended, relevant, 2)


def test_bad_relevant_and_side_inputs_are_data_errors(one_member):
    recommended, relevant = one_member
    with pytest.raises(DataError, match="scipy sparse"):
        m.precision_at_k(recommended, relevant.toarray(), 2)
    with pytest.raises(DataError, match="no member has a held-out course"):
        m.ranking_metrics(recommended, sp.csr_matrix((1, 10)), ks=2)
    with pytest.raises(DataError, match=r"item_popularity.*n_courses=10"):
        m.per_member_metrics(recommended, relevant, ks=2, item_popularity=np.ones(3), n_members=5)
    with pytest.raises(DataError, match=r"item_popularity\[1\] = 9 .*n_members=5"):
        m.novelty(recommended, np.array([1, 9, 0, 0, 0]), 5, 2)
    with pytest.raises(DataError, match=r"recommended\[0, 0\] = 3 .*n_courses=3"):
        m.average_popularity(recommended, np.ones(3), 3)
    with pytest.raises(DataError, match="course_category must hold integer"):
        m.intra_list_diversity(recommended, np.zeros(10), 2)
    with pytest.raises(DataError, match="n_courses must be a positive integer"):
        m.gini_index(recommended, 0, 2)
    with pytest.raises(DataError, match=r"recommended\[0, 0\] = 3.*n_courses=2"):
        m.catalogue_coverage(recommended, 2, 2)
    assert issubclass(DataError, ValueError)
