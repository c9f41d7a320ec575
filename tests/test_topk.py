"""Tests of the shared scoring / top-k kernel against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_info

from recommend.errors import ConfigError, DataError
from recommend.topk import TopK, rank_keys, topk_factors, topk_scores

# ----------------------------------------------------------------------------- reference


def reference(
    scores: np.ndarray,
    k: int,
    exclude: sp.spmatrix | None = None,
    forbid: np.ndarray | None = None,
    allow: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Full sort by (score desc, course asc); -inf / NaN / masked never returned."""
    s = np.array(scores, dtype=np.float64)
    n, m = s.shape
    if exclude is not None:
        coo = exclude.tocoo()  # every stored entry counts, explicit zeros included
        rows, cols = coo.row, coo.col
        s[rows, cols] = -np.inf
    if forbid is not None:
        s[:, forbid] = -np.inf
    if allow is not None:
        keep = np.zeros(m, dtype=bool)
        keep[allow] = True
        s[:, ~keep] = -np.inf
    s[np.isnan(s)] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(m), (n, m)), -s), axis=1)[:, :k]
    best = np.take_along_axis(s, order, axis=1)
    idx = np.where(np.isneginf(best), -1, order)
    if k > m:
        pad = k - m
        idx = np.hstack([idx, np.full((n, pad), -1)])
        best = np.hstack([best, np.full((n, pad), -np.inf)])
    return idx.astype(np.int32), best.astype(np.float32)


def int_factors(rng: np.random.Generator, rows: int, f: int, low: int = -3, high: int = 3):
    """Small integer factors: products and sums are exact in float32 and ties are common."""
    return rng.integers(low, high + 1, size=(rows, f)).astype(np.float32)


def random_exclude(rng: np.random.Generator, n: int, m: int, density: float) -> sp.csr_matrix:
    mask = rng.random((n, m)) < density
    return sp.csr_matrix(mask.astype(np.float32))


def assert_same(result: TopK, expected: tuple[np.ndarray, np.ndarray]) -> None:
    idx, scores = expected
    np.testing.assert_array_equal(result.indices, idx)
    np.testing.assert_array_equal(result.scores, scores)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def model(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """40 members, 500 courses (wide enough for the grouped bound), integer factors."""
    members = int_factors(rng, 40, 6)
    courses = int_factors(rng, 500, 6)
    return {"members": members, "courses": courses, "scores": members @ courses.T}


# ------------------------------------------------------------------------ basic results


def test_matches_bruteforce_with_exclusions(model, rng):
    exclude = random_exclude(rng, 40, 500, 0.05)
    result = topk_factors(model["members"], model["courses"], 10, exclude=exclude)
    assert_same(result, reference(model["scores"], 10, exclude=exclude))


def test_output_types_and_shapes(model):
    result = topk_factors(model["members"].astype(np.float64), model["courses"], 7)
    assert isinstance(result, TopK)
    assert result.indices.shape == (40, 7) and result.indices.dtype == np.int32
    assert result.scores.shape == (40, 7) and result.scores.dtype == np.float32
    assert result.k == 7 and len(result) == 40
    assert (np.diff(result.scores, axis=1) <= 0).all()


def test_random_normal_factors_agree_with_float_reference(rng):
    members = rng.standard_normal((300, 16), dtype=np.float32)
    courses = rng.standard_normal((3000, 16), dtype=np.float32)
    exclude = random_exclude(rng, 300, 3000, 0.01)
    result = topk_factors(members, courses, 20, exclude=exclude)
    idx, scores = reference(members @ courses.T, 20, exclude=exclude)
    np.testing.assert_allclose(result.scores, scores, rtol=1e-5, atol=1e-5)
    # Rounding may differ between GEMM shapes; only near-tied courses may swap.
    assert (result.indices == idx).mean() > 0.99


def test_ties_go_to_the_lower_course_index():
    members = np.array([[0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    courses = np.array([[1, 0], [2, 0], [2, 0], [0, 5], [2, 1]], dtype=np.float32)
    result = topk_factors(members, courses, 3)
    np.testing.assert_array_equal(result.indices, [[0, 1, 2], [1, 2, 4]])
    np.testing.assert_array_equal(result.scores, [[0, 0, 0], [2, 2, 2]])


def test_negative_zero_ties_with_zero():
    # -0.0 == 0.0, so the lower index wins even though its sign bit is set.
    members = np.array([[1.0]], dtype=np.float32)
    courses = np.array([[1.0], [0.0], [-0.0]], dtype=np.float32)
    result = topk_factors(members, -courses, 3)
    np.testing.assert_array_equal(result.indices, [[1, 2, 0]])


def test_all_tied_wide_rows_take_the_exact_fallback(rng):
    # A member with a zero vector ties on every course: far more candidates than the cap.
    members = int_factors(rng, 30, 4)
    members[::3] = 0.0
    courses = int_factors(rng, 3000, 4)
    exclude = random_exclude(rng, 30, 3000, 0.002)
    result = topk_factors(members, courses, 12, exclude=exclude, block_size=8)
    assert_same(result, reference(members @ courses.T, 12, exclude=exclude))


def test_bias_is_added(model, rng):
    bias = rng.integers(-4, 5, size=500).astype(np.float32)
    result = topk_factors(model["members"], model["courses"], 9, course_bias=bias)
    assert_same(result, reference(model["scores"] + bias, 9))


def test_bias_on_large_requests(rng):
    """From 256 members the bias rides in the GEMM as one more factor: same results."""
    members, courses = int_factors(rng, 300, 5), int_factors(rng, 700, 5)
    bias = rng.integers(-3, 4, size=700).astype(np.float32)
    exclude = random_exclude(rng, 300, 700, 0.02)
    got = topk_factors(members, courses, 12, course_bias=bias, exclude=exclude, block_size=64)
    assert_same(got, reference(members @ courses.T + bias, 12, exclude))
    # Gaussian factors: the same float32 scores as scoring members a few at a time.
    members = rng.standard_normal((300, 16), dtype=np.float32)
    courses = rng.standard_normal((700, 16), dtype=np.float32)
    bias = rng.standard_normal(700, dtype=np.float32)
    whole = topk_factors(members, courses, 10, course_bias=bias)
    parts = [
        topk_factors(members[i : i + 50], courses, 10, course_bias=bias) for i in range(0, 300, 50)
    ]
    np.testing.assert_allclose(whole.scores, np.vstack([p.scores for p in parts]), rtol=1e-6)
    np.testing.assert_allclose(
        whole.scores, reference(members @ courses.T + bias, 10)[1], rtol=1e-5
    )


@pytest.mark.parametrize("n_members", [3, 40])
def test_course_factors_in_either_memory_order(model, n_members):
    members = np.repeat(model["members"], 10, axis=0)[: n_members * 10]  # >= 256 rows copies
    fortran = np.asfortranarray(model["courses"])
    for allow in (None, np.arange(0, 500, 3)):
        by_c = topk_factors(members, model["courses"], 6, allow=allow)
        by_f = topk_factors(members, fortran, 6, allow=allow)
        assert_same(by_f, (by_c.indices, by_c.scores))
        assert_same(by_c, reference(members @ model["courses"].T, 6, allow=allow))


def test_empty_member_set(model):
    result = topk_factors(np.empty((0, 6), np.float32), model["courses"], 5)
    assert result.indices.shape == (0, 5) and result.scores.shape == (0, 5)
    result = topk_scores(lambda rows: np.zeros((len(rows), 500)), [], 500, 5)
    assert result.indices.shape == (0, 5)


def test_inputs_are_not_modified(model, rng):
    exclude = random_exclude(rng, 40, 500, 0.05)
    before = (model["members"].copy(), model["courses"].copy(), exclude.copy())
    topk_factors(model["members"], model["courses"], 5, exclude=exclude, allow=np.arange(300))
    np.testing.assert_array_equal(model["members"], before[0])
    np.testing.assert_array_equal(model["courses"], before[1])
    assert (exclude != before[2]).nnz == 0


# ------------------------------------------------------------------------ masks and lists


def test_excluded_courses_are_never_returned(rng):
    members = rng.standard_normal((50, 8), dtype=np.float32)
    courses = rng.standard_normal((400, 8), dtype=np.float32)
    exclude = random_exclude(rng, 50, 400, 0.3)
    result = topk_factors(members, courses, 25, exclude=exclude)
    dense = exclude.toarray() != 0
    rows = np.repeat(np.arange(50), 25)
    assert not dense[rows, result.indices.ravel()].any()


def test_explicit_zeros_in_exclude_still_exclude(model):
    exclude = sp.csr_matrix(
        (np.zeros(40, np.float32), (np.arange(40), np.zeros(40, int))), shape=(40, 500)
    )
    assert exclude.nnz == 40
    result = topk_factors(model["members"], model["courses"], 500)
    assert (result.indices == 0).any(axis=1).all()
    result = topk_factors(model["members"], model["courses"], 500, exclude=exclude)
    assert not (result.indices == 0).any()


def test_forbid_and_allow(model, rng):
    forbid = rng.choice(500, 60, replace=False)
    allow = rng.choice(500, 200, replace=False)
    exclude = random_exclude(rng, 40, 500, 0.1)
    result = topk_factors(
        model["members"], model["courses"], 15, exclude=exclude, forbid=forbid, allow=allow
    )
    assert_same(result, reference(model["scores"], 15, exclude, forbid=forbid, allow=allow))
    assert np.isin(result.indices[result.indices >= 0], allow).all()
    assert not np.isin(result.indices, forbid).any()


def test_allow_as_bool_mask_equals_indices(model):
    mask = np.zeros(500, dtype=bool)
    mask[::7] = True
    by_mask = topk_factors(model["members"], model["courses"], 5, allow=mask)
    by_idx = topk_factors(model["members"], model["courses"], 5, allow=np.flatnonzero(mask))
    assert_same(by_mask, (by_idx.indices, by_idx.scores))


def test_k_larger_than_allowed_pads_with_minus_one(model):
    exclude = sp.csr_matrix(
        (np.ones(2, np.float32), ([0, 1], [3, 4])), shape=(40, 500), dtype=np.float32
    )
    result = topk_factors(model["members"], model["courses"], 6, allow=[3, 4, 5], exclude=exclude)
    assert_same(result, reference(model["scores"], 6, exclude, allow=np.array([3, 4, 5])))
    assert (result.indices[0, 2:] == -1).all() and np.isneginf(result.scores[0, 2:]).all()
    assert (result.indices[5, 3:] == -1).all()


def test_k_larger_than_catalogue(model):
    result = topk_factors(model["members"][:3], model["courses"][:4], 6)
    assert_same(result, reference(model["scores"][:3, :4], 6))


def test_empty_whitelist_returns_only_padding(model):
    result = topk_factors(model["members"], model["courses"], 3, allow=np.array([], int))
    assert (result.indices == -1).all() and np.isneginf(result.scores).all()


def test_nan_and_minus_inf_scores_are_never_returned():
    scores = np.array([[np.nan, 1.0, -np.inf, 0.5], [np.nan, np.nan, np.nan, 2.0]], np.float32)
    result = topk_scores(lambda rows: scores[rows].copy(), np.arange(2), 4, 3)
    np.testing.assert_array_equal(result.indices, [[1, 3, -1], [3, -1, -1]])


def test_nan_in_wide_rows_does_not_hide_the_best(rng):
    scores = rng.standard_normal((6, 2000)).astype(np.float32)
    scores[:, ::3] = np.nan
    result = topk_scores(lambda rows: scores[rows].copy(), np.arange(6), 2000, 10)
    assert_same(result, reference(scores, 10))


@pytest.mark.parametrize("scan_rows", [1, 3, 16])
def test_blocks_scanned_in_slices_agree_with_the_reference(rng, monkeypatch, scan_rows):
    # Slices of a few rows (a block of 40 rows spans several, the last one shorter), with
    # NaN, tied rows that take the exact fallback, and exclusions.
    import recommend.topk as topk

    monkeypatch.setattr(topk, "_SCAN_BYTES", 4 * 1000 * scan_rows)
    members = int_factors(rng, 40, 4)
    members[::5] = 0.0
    courses = int_factors(rng, 1000, 4)
    scores = (members @ courses.T).astype(np.float32)
    scores[1::4, ::7] = np.nan
    exclude = random_exclude(rng, 40, 1000, 0.01)
    result = topk_scores(
        lambda rows: scores[rows], np.arange(40), 1000, 9, exclude=exclude, block_size=40
    )
    assert_same(result, reference(scores, 9, exclude=exclude))


# -------------------------------------------------------------------------- blocking


@pytest.mark.parametrize("block_size", [1, 7, 40, 1000])
@pytest.mark.parametrize("num_threads", [1, 2])
def test_block_size_and_threads_do_not_change_results(model, rng, block_size, num_threads):
    exclude = random_exclude(rng, 40, 500, 0.05)
    expected = reference(model["scores"], 8, exclude=exclude, forbid=np.array([1, 2, 3]))
    result = topk_factors(
        model["members"],
        model["courses"],
        8,
        exclude=exclude,
        forbid=[1, 2, 3],
        block_size=block_size,
        num_threads=num_threads,
    )
    assert_same(result, expected)


@pytest.mark.parametrize("block_size", [4, None])
def test_blas_limits_are_restored_after_a_call(model, block_size):
    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    topk_factors(model["members"], model["courses"], 5, block_size=block_size, num_threads=2)
    after = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    assert before == after


def test_an_error_in_score_block_propagates_and_restores_blas_limits():
    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]

    def score_block(rows: np.ndarray) -> np.ndarray:
        if rows[0] >= 30:
            raise KeyError("member 30 is broken")
        return np.zeros((len(rows), 10), np.float32)

    with pytest.raises(KeyError, match="member 30 is broken"):
        topk_scores(score_block, np.arange(50), 10, 3, block_size=5, num_threads=2)
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()] == before


def test_concurrent_calls_agree_and_restore_blas_limits(model, rng):
    from concurrent.futures import ThreadPoolExecutor

    before = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    exclude = random_exclude(rng, 40, 500, 0.05)
    expected = reference(model["scores"], 7, exclude=exclude)

    def call(block_size: int) -> TopK:
        return topk_factors(
            model["members"], model["courses"], 7, exclude=exclude, block_size=block_size
        )

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, [1, 3, 5, 8, 13, 40] * 3))
    for result in results:
        assert_same(result, expected)
    assert [(i["internal_api"], i["num_threads"]) for i in threadpool_info()] == before


# ------------------------------------------------------------------- generic score path


def test_score_block_path_equals_factor_path(model, rng):
    members, courses = model["members"], model["courses"]
    bias = rng.integers(-2, 3, size=500).astype(np.float32)
    exclude = random_exclude(rng, 25, 500, 0.05)
    who = rng.choice(40, 25, replace=False)
    seen: list[np.ndarray] = []

    def score_block(rows: np.ndarray) -> np.ndarray:
        seen.append(rows)
        return members[rows] @ courses.T + bias

    options = {"exclude": exclude, "allow": np.arange(0, 500, 2), "block_size": 6}
    generic = topk_scores(score_block, who, 500, 10, **options)
    factor = topk_factors(members[who], courses, 10, course_bias=bias, **options)
    assert_same(generic, (factor.indices, factor.scores))
    np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.sort(who))


# ----------------------------------------------------------------- reused buffers


def test_calls_of_other_sizes_in_a_row_agree_with_the_reference(model, rng):
    """Threads keep their buffers between calls: a smaller call after a larger one (and
    a larger one after it) must not see the leftovers."""
    members, courses, scores = model["members"], model["courses"], model["scores"]
    for rows, width, k, block in [(40, 500, 9, 40), (3, 120, 4, 2), (40, 500, 1, 13), (1, 7, 3, 1)]:
        got = topk_factors(members[:rows], courses[:width], k, block_size=block, num_threads=2)
        assert_same(got, reference(scores[:rows, :width], k))


def test_nested_call_in_score_block(model, rng):
    """A score_block that calls the kernel itself gets buffers of its own."""
    members, courses, scores = model["members"], model["courses"], model["scores"]
    inner: list[TopK] = []

    def score_block(rows: np.ndarray) -> np.ndarray:
        inner.append(topk_factors(members[:5], courses[:50], 3, num_threads=1))
        return scores[rows]

    got = topk_scores(score_block, np.arange(40), 500, 6, block_size=8, num_threads=1)
    assert_same(got, reference(scores, 6))
    for result in inner:
        assert_same(result, reference(scores[:5, :50], 3))


# ------------------------------------------------------------------------- block hook


@pytest.mark.parametrize("entry", ["factors", "scores"])
@pytest.mark.parametrize("columns", ["all", "allow", "forbid"])
def test_on_block_sees_every_raw_row_once(model, rng, entry, columns):
    """The hook gets each row's raw scores over the scored columns, before masking."""
    members, courses = model["members"], model["courses"]
    bias = rng.integers(-2, 3, size=500).astype(np.float32)
    raw = members @ courses.T + bias
    exclude = random_exclude(rng, 40, 500, 0.1)
    options: dict = {"exclude": exclude, "block_size": 7, "num_threads": 2}
    scored = np.arange(500)
    if columns == "allow":
        scored = np.sort(rng.choice(500, 120, replace=False))
        options["allow"] = scored
    elif columns == "forbid":
        forbidden = rng.choice(500, 60, replace=False)
        scored = np.setdiff1d(np.arange(500), forbidden)
        options["forbid"] = forbidden
    seen = np.full((40, scored.size), np.nan, dtype=np.float32)
    calls = np.zeros(40, dtype=np.int64)

    def on_block(start: int, stop: int, block: np.ndarray) -> None:
        assert block.dtype == np.float32 and not block.flags.writeable
        seen[start:stop] = block
        calls[start:stop] += 1

    if entry == "factors":
        got = topk_factors(members, courses, 8, course_bias=bias, on_block=on_block, **options)
    else:
        got = topk_scores(
            lambda rows: members[rows] @ courses.T + bias,
            np.arange(40),
            500,
            8,
            on_block=on_block,
            **options,
        )
    np.testing.assert_array_equal(calls, 1)
    np.testing.assert_array_equal(seen, raw[:, scored])  # masked courses still raw
    # The hook changes nothing about the result.
    assert_same(got, reference(raw, 8, exclude, options.get("forbid"), options.get("allow")))


@pytest.mark.parametrize("kind", ["float64", "int", "sparse", "view", "readonly"])
def test_score_block_accepts_common_outputs(model, kind):
    scores = model["scores"]
    base = scores.astype(np.float32)

    def score_block(rows: np.ndarray):
        if kind == "float64":
            return scores[rows].astype(np.float64)
        if kind == "int":
            return scores[rows].astype(np.int64)
        if kind == "sparse":
            return sp.csr_matrix(np.maximum(scores[rows], 0))
        block = base[rows.min() : rows.max() + 1]  # a view into a cached array
        if kind == "readonly":
            block = block.copy()
            block.flags.writeable = False
        return block

    expected = scores if kind != "sparse" else np.maximum(scores, 0)
    exclude = sp.csr_matrix(np.eye(40, 500, dtype=np.float32))
    result = topk_scores(score_block, np.arange(40), 500, 5, exclude=exclude, block_size=9)
    assert_same(result, reference(expected, 5, exclude=exclude))
    np.testing.assert_array_equal(base, scores.astype(np.float32))  # cache untouched


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("k", [0, -1, 2.5, True, None])
def test_bad_k_is_a_config_error(model, k):
    with pytest.raises(ConfigError, match="k must be a positive integer"):
        topk_factors(model["members"], model["courses"], k)


@pytest.mark.parametrize("option", ["block_size", "num_threads"])
def test_bad_block_size_or_threads(model, option):
    with pytest.raises(ConfigError, match=f"{option} must be a positive integer"):
        topk_factors(model["members"], model["courses"], 3, **{option: 0})


def test_factor_dimension_mismatch(model):
    with pytest.raises(DataError, match="6 factors but course_factors has 5"):
        topk_factors(model["members"], model["courses"][:, :5], 3)


def test_factors_must_be_2d(model):
    with pytest.raises(DataError, match="member_factors must be 2-d"):
        topk_factors(model["members"][0], model["courses"], 3)


def test_exclude_shape_mismatch(model):
    exclude = sp.csr_matrix((39, 500), dtype=np.float32)
    with pytest.raises(DataError, match=r"exclude has shape \(39, 500\); expected \(40, 500\)"):
        topk_factors(model["members"], model["courses"], 3, exclude=exclude)


def test_exclude_must_be_sparse(model):
    with pytest.raises(DataError, match="exclude must be a scipy sparse matrix"):
        topk_factors(model["members"], model["courses"], 3, exclude=np.zeros((40, 500)))


def test_bias_shape_mismatch(model):
    with pytest.raises(DataError, match="course_bias has shape"):
        topk_factors(model["members"], model["courses"], 3, course_bias=np.zeros(3))


@pytest.mark.parametrize("option", ["forbid", "allow"])
def test_course_index_out_of_range(model, option):
    with pytest.raises(
        DataError, match=rf"{option} holds 1 course indices outside \[0, 500\): 500$"
    ):
        topk_factors(model["members"], model["courses"], 3, **{option: [1, 500]})
    # The first five bad values are shown.
    bad = [-1, 3, 500, 501, -7, 900, 1000, 4]
    message = rf"{option} holds 6 course indices outside \[0, 500\): -1, 500, 501, -7, 900$"
    with pytest.raises(DataError, match=message):
        topk_factors(model["members"], model["courses"], 3, **{option: bad})


@pytest.mark.parametrize("option", ["forbid", "allow"])
def test_course_indices_must_be_integers(model, option):
    message = rf"{option} must hold course indices \(integers\), got dtype float64"
    with pytest.raises(DataError, match=message):
        topk_factors(model["members"], model["courses"], 3, **{option: [1.0, 2.5]})


def test_allow_mask_of_wrong_length(model):
    with pytest.raises(DataError, match=r"allow as a bool mask must have shape \(500,\)"):
        topk_factors(model["members"], model["courses"], 3, allow=np.ones(10, dtype=bool))


def test_score_block_of_wrong_shape(model):
    message = (
        r"score_block returned float64 scores of shape \(5, 3\) for 5 members; "
        r"expected real numbers, shape \(5, 4\)"
    )
    with pytest.raises(DataError, match=message):
        topk_scores(lambda rows: np.zeros((len(rows), 3)), np.arange(5), 4, 2)
    # Blocks after the first name their own rows: members 4..6 of 7, blocks of 4.
    with pytest.raises(DataError, match=r"shape \(3, 3\) for 3 members; .* shape \(3, 4\)"):
        topk_scores(
            lambda rows: np.zeros((len(rows), 4 if rows[0] == 0 else 3)),
            np.arange(7),
            4,
            2,
            block_size=4,
            num_threads=1,
        )


@pytest.mark.parametrize("n_courses", [0, -3, 2.5])
def test_bad_n_courses_is_a_config_error(n_courses):
    with pytest.raises(ConfigError, match=f"n_courses must be a positive integer, got {n_courses}"):
        topk_scores(lambda rows: np.zeros((len(rows), 3)), np.arange(5), n_courses, 2)


def test_score_block_of_complex_dtype():
    with pytest.raises(DataError, match="expected real numbers"):
        topk_scores(lambda rows: np.zeros((len(rows), 3), complex), np.arange(5), 3, 2)


def test_factors_must_be_real(model):
    with pytest.raises(DataError, match="course_factors must hold real numbers"):
        topk_factors(model["members"], model["courses"].astype(complex), 3)


def test_members_must_be_integer_indices():
    with pytest.raises(DataError, match="members must be a 1-d array of integer indices"):
        topk_scores(lambda rows: np.zeros((len(rows), 3)), np.array([0.5]), 3, 2)


def test_errors_are_value_errors(model):
    with pytest.raises(ValueError):
        topk_factors(model["members"], model["courses"], 0)


# --------------------------------------------------------------------------- properties


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(0, 25))
    m = draw(st.integers(1, 300))
    f = draw(st.integers(1, 4))
    k = draw(st.integers(1, 12))
    members = int_factors(rng, n, f, -2, 2)
    courses = int_factors(rng, m, f, -2, 2)
    exclude = random_exclude(rng, n, m, draw(st.sampled_from([0.0, 0.05, 0.5, 0.97])))
    forbid = rng.choice(m, draw(st.integers(0, m)), replace=False) if draw(st.booleans()) else None
    allow = rng.choice(m, draw(st.integers(0, m)), replace=False) if draw(st.booleans()) else None
    block_size = draw(st.sampled_from([None, 1, 3, 16]))
    threads = draw(st.sampled_from([1, 2]))
    return members, courses, k, exclude, forbid, allow, block_size, threads


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_property_equals_bruteforce(problem):
    members, courses, k, exclude, forbid, allow, block_size, threads = problem
    result = topk_factors(
        members,
        courses,
        k,
        exclude=exclude,
        forbid=forbid,
        allow=allow,
        block_size=block_size,
        num_threads=threads,
    )
    assert_same(result, reference(members @ courses.T, k, exclude, forbid, allow))


@settings(max_examples=60, deadline=None)
@given(problems())
def test_property_generic_path_equals_factor_path(problem):
    members, courses, k, exclude, forbid, allow, block_size, threads = problem
    options = {
        "exclude": exclude,
        "forbid": forbid,
        "allow": allow,
        "block_size": block_size,
        "num_threads": threads,
    }
    factor = topk_factors(members, courses, k, **options)
    generic = topk_scores(
        lambda rows: members[rows] @ courses.T, np.arange(len(members)), len(courses), k, **options
    )
    assert_same(generic, (factor.indices, factor.scores))
    valid = factor.indices >= 0
    # Filled slots come first, every filled course is allowed and appears once per row.
    assert (np.diff(valid.astype(int), axis=1) <= 0).all()
    for row, idx in enumerate(factor.indices):
        idx = idx[idx >= 0]
        assert len(np.unique(idx)) == len(idx)
        if exclude.nnz:
            assert not np.isin(idx, exclude[row].indices).any()


def test_rank_keys_order_by_score_then_course() -> None:
    rng = np.random.default_rng(3)
    values = rng.choice(
        np.array([-np.inf, -2.5, -1e-30, -0.0, 0.0, 1e-30, 0.5, 3.0, np.inf], np.float32), 400
    )
    cols = rng.integers(0, 50, 400)
    got = np.argsort(rank_keys(values, cols), kind="stable")
    # -0.0 and 0.0 are one score: compare with the order of plain float64 values.
    expected = np.lexsort((np.arange(400), cols, -(values.astype(np.float64) + 0.0)))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ("n", "width", "threads"), [(19_000, 20_000, 2), (5, 100, 2), (10_001, 3, 3)]
)
def test_default_blocks_are_even_over_the_workers(n: int, width: int, threads: int) -> None:
    from recommend import topk

    rows = topk.block_rows(n, width, threads)
    n_blocks = -(-n // rows)
    assert rows >= topk._MIN_BLOCK_ROWS
    assert rows * width * 4 <= max(topk._BLOCK_BYTES, topk._MIN_BLOCK_ROWS * width * 4)
    if n > threads * topk._MIN_BLOCK_ROWS:
        # Every worker gets the same number of blocks, all full but the last by < threads rows.
        assert n_blocks % threads == 0
        assert n - (n_blocks - 1) * rows >= rows - n_blocks
