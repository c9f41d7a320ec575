"""Offline metrics of ranked recommendation lists: accuracy, beyond-accuracy, segments, CIs.

Everything works on index arrays and is vectorised over members:

- ``recommended``: ``(n_members, K)`` integer array of course indices, best first; ``-1``
  marks an empty slot (a list shorter than ``K``). A course appears at most once per row.
- ``relevant``: ``(n_members, n_courses)`` scipy sparse matrix; a stored nonzero marks a
  held-out course the member engaged with. Relevance is binary (values are ignored) except
  for the graded NDCG option.

Accuracy metrics are defined per member and averaged over the *evaluated* members, those
with at least one relevant course; a member with nothing held out cannot be scored and is
excluded (their per-member value is NaN). Definitions at cut-off ``k``, with
``hits`` = relevant courses among the first ``k`` slots and ``n_rel`` = relevant courses:

=================  ==========================================================================
precision@k        ``hits / k``; empty slots count as misses. ``implicit`` reports instead
                   ``sum(hits) / sum(min(k, n_rel))`` over all members (a pooled ratio);
                   the two agree when every member has ``n_rel >= k``.
recall@k           ``hits / n_rel``
ndcg@k             ``DCG / IDCG``, ``DCG = sum(rel_i / log2(i + 1))`` over ranks ``i = 1..k``,
                   ``IDCG`` the DCG of an ideal list: ``min(k, n_rel)`` relevant courses on
                   top (as in ``implicit``).
map@k              mean of ``AP@k = sum(precision@i * rel_i) / min(k, n_rel)`` (as in
                   ``implicit``; dividing by ``n_rel`` instead would cap AP@k below 1 for
                   members with more than ``k`` relevant courses).
mrr@k              mean of ``1 / rank`` of the first relevant course within ``k``, else 0.
hit_rate@k         share of members with at least one relevant course within ``k``.
=================  ==========================================================================

Beyond accuracy (over all members with a non-empty list): catalogue coverage, novelty
(mean self-information), intra-list channel diversity, average recommendation popularity
(ARP) and the Gini index of how often each course is recommended.

``per_member_metrics`` gives one row per evaluated member; ``by_segment`` breaks it down by
member segment (see ``recommend.data.dataset.age_band`` and ``activity_level``), and
``bootstrap_ci`` / ``bootstrap_cis`` put percentile bootstrap confidence intervals on the
means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final, TypeAlias

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.errors import ConfigError, DataError

__all__ = [
    "ACCURACY_METRICS",
    "activity_level",
    "average_popularity",
    "average_precision_at_k",
    "bootstrap_ci",
    "bootstrap_cis",
    "by_segment",
    "catalogue_coverage",
    "gini_index",
    "hit_rate_at_k",
    "intra_list_diversity",
    "ndcg_at_k",
    "novelty",
    "per_member_metrics",
    "popularity_counts",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
    "reciprocal_rank_at_k",
]

#: Accuracy metric names, in the order they appear in result tables ("ndcg@10", ...).
ACCURACY_METRICS: Final = ("precision", "recall", "ndcg", "map", "mrr", "hit_rate")

EMPTY: Final = -1  # empty slot in ``recommended``

SparseMatrix: TypeAlias = sp.spmatrix | sp.sparray

# Bootstrap resamples are drawn as an index matrix of at most this many entries at a time
# (8 bytes each), so memory stays bounded however many members or resamples there are.
_BOOT_CHUNK_ENTRIES: Final = 4_000_000


# --------------------------------------------------------------------------- validation


def _check_recommended(recommended: Any, n_courses: int | None = None) -> np.ndarray:
    """Return ``recommended`` as a 2-D integer array, or raise ``DataError``."""
    arr = np.asarray(recommended)
    if arr.ndim != 2:
        raise DataError(
            f"recommended must be a 2-D array (n_members, K) of course indices; "
            f"got shape {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"recommended must hold integer course indices (-1 for an empty slot); "
            f"got dtype {arr.dtype}"
        )
    arr = arr.astype(np.int64, copy=False)
    if arr.size == 0:
        return arr
    bad = (arr < EMPTY) if n_courses is None else ((arr < EMPTY) | (arr >= n_courses))
    if bad.any():
        row, col = np.argwhere(bad)[0]
        limit = ">= 0" if n_courses is None else f"in [0, n_courses={n_courses})"
        raise DataError(
            f"recommended[{row}, {col}] = {arr[row, col]} is not a course index; "
            f"expected -1 (empty slot) or an index {limit} ({int(bad.sum())} bad entries)"
        )
    # A course listed twice in one row would count as two hits; refuse instead of
    # silently inflating precision and recall.
    ordered = np.sort(arr, axis=1)
    dup = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] != EMPTY)
    if dup.any():
        rows = np.flatnonzero(dup.any(axis=1))
        row = int(rows[0])
        course = int(ordered[row, 1:][dup[row]][0])
        raise DataError(
            f"recommended row {row} lists course {course} more than once "
            f"({rows.size} rows with duplicates); each course may appear once per list"
        )
    return arr


def _check_k(k: Any, K: int, where: str = "") -> int:
    """Return ``k`` as an int in ``[1, K]``, or raise ``ConfigError``."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ConfigError(f"k{where} must be an integer cut-off; got {k!r}")
    if not 1 <= k <= K:
        raise ConfigError(
            f"k={k}{where} is out of range; expected 1 <= k <= K={K}, "
            f"the number of slots in each recommended list"
        )
    return int(k)


def _check_ks(ks: Any, K: int) -> tuple[int, ...]:
    if isinstance(ks, int | np.integer) and not isinstance(ks, bool):
        ks = (ks,)
    ks = tuple(ks)
    if not ks:
        raise ConfigError("ks must name at least one cut-off, e.g. ks=(10, 20)")
    return tuple(sorted({_check_k(k, K, " (in ks)") for k in ks}))


def _check_relevant(relevant: Any, n_members: int) -> sp.csr_matrix:
    """Return a canonical CSR copy of ``relevant`` (sorted, no duplicates, no stored 0)."""
    if not sp.issparse(relevant):
        raise DataError(
            f"relevant must be a scipy sparse matrix (n_members, n_courses); "
            f"got {type(relevant).__name__} (wrap a dense array in scipy.sparse.csr_matrix)"
        )
    if relevant.ndim != 2 or relevant.shape[0] != n_members:
        raise DataError(
            f"relevant has shape {relevant.shape} but recommended has {n_members} rows; "
            f"row u of both must be the same member"
        )
    # A copy: canonicalising in place would mutate the caller's matrix.
    rel = sp.csr_matrix(relevant, dtype=np.float64, copy=True)
    rel.sum_duplicates()  # also sorts indices, which the lookup in _Hits relies on
    rel.eliminate_zeros()
    return rel


def _check_vector(values: Any, name: str, n_courses: int | None, *, integer: bool) -> np.ndarray:
    """Return a per-course vector; ``n_courses=None`` lets its length define the catalogue."""
    arr = np.asarray(values)
    if arr.ndim != 1 or (n_courses is not None and arr.shape[0] != n_courses):
        expected = "" if n_courses is None else f" (n_courses={n_courses})"
        raise DataError(
            f"{name} must be a 1-D array with one entry per course{expected}; got shape {arr.shape}"
        )
    if integer and arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{name} must hold integer codes; got dtype {arr.dtype}")
    if not integer and arr.size and not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{name} must be numeric; got dtype {arr.dtype}")
    return arr


def _check_popularity(
    item_popularity: Any, n_courses: int | None, n_members: int | None = None
) -> np.ndarray:
    pop = _check_vector(item_popularity, "item_popularity", n_courses, integer=False)
    pop = pop.astype(np.float64, copy=False)
    bad = ~np.isfinite(pop) | (pop < 0)
    if n_members is not None:
        bad |= pop > n_members
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        upper = "" if n_members is None else f" and <= n_members={n_members}"
        raise DataError(
            f"item_popularity[{i}] = {pop[i]:g} is invalid; expected a finite count "
            f">= 0{upper} ({int(bad.sum())} bad entries)"
        )
    return pop


def _positive_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise DataError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _check_n_courses(n_courses: Any) -> int:
    return _positive_count(n_courses, "n_courses")


# --------------------------------------------------------------------------- hit matrix


class _Hits:
    """Relevance of every slot of ``recommended``, computed once for all metrics and ks.

    ``gain`` is ``(n_members, K)`` float64: the relevance value of the course in each slot
    (0 for a miss or an empty slot); ``hit`` marks the slots holding a relevant course
    (any stored nonzero, whatever its value). ``n_relevant`` is
    ``(n_members,)`` int64 and ``evaluated`` the boolean mask ``n_relevant > 0``.
    """

    def __init__(self, recommended: Any, relevant: Any) -> None:
        rec = _check_recommended(recommended)
        rel = _check_relevant(relevant, rec.shape[0])
        n_members, n_courses = rel.shape
        if rec.size and rec.max() >= n_courses:
            row, col = np.argwhere(rec >= n_courses)[0]
            raise DataError(
                f"recommended[{row}, {col}] = {rec[row, col]} is not a course index; "
                f"relevant has n_courses={n_courses} columns"
            )
        # Membership test for all (member, course) slots at once: encode each pair as one
        # int64 key; CSR order (rows ascending, sorted indices) makes the relevant keys
        # sorted, so a single searchsorted answers every slot.
        rows = np.repeat(np.arange(n_members, dtype=np.int64), np.diff(rel.indptr))
        rel_keys = rows * n_courses + rel.indices.astype(np.int64)
        rec_keys = np.arange(n_members, dtype=np.int64)[:, None] * n_courses + rec
        pos = np.searchsorted(rel_keys, rec_keys)
        pos_c = np.minimum(pos, max(rel_keys.size - 1, 0))
        found = (rec != EMPTY) & (pos < rel_keys.size)
        if rel_keys.size:
            found &= rel_keys[pos_c] == rec_keys
        self.gain = np.where(found, rel.data[pos_c] if rel.nnz else 0.0, 0.0)
        self.hit = found
        self.n_relevant = np.diff(rel.indptr).astype(np.int64)
        self.evaluated = self.n_relevant > 0
        self.relevant = rel
        self.K = rec.shape[1]

    def _undefined_as_nan(self, values: np.ndarray) -> np.ndarray:
        return np.where(self.evaluated, values, np.nan)

    def n_hits(self, k: int) -> np.ndarray:
        return self.hit[:, :k].sum(axis=1)

    def precision(self, k: int) -> np.ndarray:
        return self._undefined_as_nan(self.n_hits(k) / k)

    def recall(self, k: int) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._undefined_as_nan(self.n_hits(k) / self.n_relevant)

    def ndcg(self, k: int, graded: bool = False) -> np.ndarray:
        discount = 1.0 / np.log2(np.arange(2, k + 2))
        if not graded:
            dcg = self.hit[:, :k] @ discount
            # IDCG: min(k, n_rel) relevant courses in the top slots.
            ideal = np.concatenate(([0.0], np.cumsum(discount)))
            idcg = ideal[np.minimum(self.n_relevant, k)]
        else:
            dcg = self.gain[:, :k] @ discount
            idcg = self._graded_idcg(k, discount)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._undefined_as_nan(dcg / idcg)

    def _graded_idcg(self, k: int, discount: np.ndarray) -> np.ndarray:
        """IDCG with graded gains: each member's top ``k`` relevance values, best first."""
        rel = self.relevant
        rows = np.repeat(np.arange(rel.shape[0]), np.diff(rel.indptr))
        order = np.lexsort((-rel.data, rows))  # by member, then by value descending
        rank = np.arange(rel.nnz) - rel.indptr[rows[order]]
        keep = rank < k
        weights = rel.data[order][keep] * discount[rank[keep]]
        return np.bincount(rows[order][keep], weights=weights, minlength=rel.shape[0])

    def average_precision(self, k: int) -> np.ndarray:
        hit = self.hit[:, :k]
        precision_at_i = np.cumsum(hit, axis=1) / np.arange(1, k + 1)
        ap_sum = (precision_at_i * hit).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._undefined_as_nan(ap_sum / np.minimum(self.n_relevant, k))

    def reciprocal_rank(self, k: int) -> np.ndarray:
        hit = self.hit[:, :k]
        first = hit.argmax(axis=1)  # first True; 0 also when there is no hit
        rr = np.where(hit.any(axis=1), 1.0 / (first + 1), 0.0)
        return self._undefined_as_nan(rr)

    def hit_rate(self, k: int) -> np.ndarray:
        return self._undefined_as_nan(self.hit[:, :k].any(axis=1).astype(np.float64))

    def metric(self, name: str, k: int) -> np.ndarray:
        fn = {
            "precision": self.precision,
            "recall": self.recall,
            "ndcg": self.ndcg,
            "map": self.average_precision,
            "mrr": self.reciprocal_rank,
            "hit_rate": self.hit_rate,
        }[name]
        return fn(k)


# ------------------------------------------------------------------ per-member accuracy


def precision_at_k(recommended: np.ndarray, relevant: SparseMatrix, k: int) -> np.ndarray:
    """Per-member precision@k: relevant courses among the first ``k`` slots, over ``k``.

    Empty slots count as misses, so a list shorter than ``k`` is penalised. This is the
    standard definition; ``implicit`` pools ``sum(hits) / sum(min(k, n_rel))`` instead.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices, best first; ``-1`` marks an empty slot.
    relevant : scipy sparse matrix
        ``(n_members, n_courses)``; a stored nonzero marks a relevant (held-out) course.
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    np.ndarray
        ``(n_members,)`` float64 in ``[0, 1]``; NaN for members without relevant courses.
        The other per-member functions below take and return the same.
    """
    hits = _Hits(recommended, relevant)
    return hits.precision(_check_k(k, hits.K))


def recall_at_k(recommended: np.ndarray, relevant: SparseMatrix, k: int) -> np.ndarray:
    """Per-member recall@k: relevant courses among the first ``k`` slots, over all relevant.

    Same parameters and result shape as ``precision_at_k``.
    """
    hits = _Hits(recommended, relevant)
    return hits.recall(_check_k(k, hits.K))


def ndcg_at_k(
    recommended: np.ndarray, relevant: SparseMatrix, k: int, *, graded: bool = False
) -> np.ndarray:
    """Per-member NDCG@k with a ``log2(rank + 1)`` discount.

    Same parameters and result shape as ``precision_at_k``. With ``graded=False`` every
    relevant course has gain 1 and the ideal DCG places ``min(k, n_rel)`` relevant courses
    on top. With ``graded=True`` the stored values of ``relevant`` are the gains (linear,
    must be >= 0) and the ideal list holds the member's ``k`` highest values.
    """
    hits = _Hits(recommended, relevant)
    k = _check_k(k, hits.K)
    if graded and (hits.relevant.data < 0).any():
        raise DataError("relevant holds negative values; graded NDCG needs gains >= 0")
    return hits.ndcg(k, graded=graded)


def average_precision_at_k(recommended: np.ndarray, relevant: SparseMatrix, k: int) -> np.ndarray:
    """Per-member AP@k: precision@i summed at hit ranks ``i <= k``, over ``min(k, n_rel)``.

    Same parameters and result shape as ``precision_at_k``; the mean over members is MAP@k.
    """
    hits = _Hits(recommended, relevant)
    return hits.average_precision(_check_k(k, hits.K))


def reciprocal_rank_at_k(recommended: np.ndarray, relevant: SparseMatrix, k: int) -> np.ndarray:
    """Per-member reciprocal rank: ``1 / rank`` of the first hit within ``k``, else 0.

    Same parameters and result shape as ``precision_at_k``; the mean over members is MRR@k.
    """
    hits = _Hits(recommended, relevant)
    return hits.reciprocal_rank(_check_k(k, hits.K))


def hit_rate_at_k(recommended: np.ndarray, relevant: SparseMatrix, k: int) -> np.ndarray:
    """Per-member hit indicator: 1.0 if any of the first ``k`` slots is relevant, else 0.0.

    Same parameters and result shape as ``precision_at_k``; the mean over members is the
    hit rate.
    """
    hits = _Hits(recommended, relevant)
    return hits.hit_rate(_check_k(k, hits.K))


# ------------------------------------------------------------------- aggregate accuracy


def per_member_metrics(
    recommended: np.ndarray,
    relevant: SparseMatrix,
    ks: Sequence[int] | int = (10, 20),
    *,
    item_popularity: np.ndarray | None = None,
    n_members: int | None = None,
    course_category: np.ndarray | None = None,
) -> pd.DataFrame:
    """Every accuracy metric at every cut-off, one row per evaluated member.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices, best first; ``-1`` marks an empty slot.
    relevant : scipy.sparse matrix
        ``(n_members, n_courses)``; a stored nonzero marks a relevant course.
    ks : sequence of int or int
        Cut-offs, each ``1 <= k <= K``.
    item_popularity, n_members : np.ndarray, int, optional
        ``(n_courses,)`` interaction counts and the member count they are over; when given,
        adds ``novelty@k`` and ``popularity@k`` columns (see ``novelty``).
    course_category : np.ndarray, optional
        ``(n_courses,)`` integer channel codes; when given, adds ``diversity@k`` columns.

    Returns
    -------
    pd.DataFrame
        Index ``member_idx`` (row of ``recommended``) for members with at least one
        relevant course; float64 columns ``"<metric>@<k>"``, metrics ordered as
        ``ACCURACY_METRICS``, ks ascending. Its column means equal ``ranking_metrics``.
    """
    hits = _Hits(recommended, relevant)
    rec = np.asarray(recommended, dtype=np.int64)
    ks = _check_ks(ks, hits.K)
    n_courses = hits.relevant.shape[1]
    keep = hits.evaluated
    columns: dict[str, np.ndarray] = {}
    for name in ACCURACY_METRICS:
        for k in ks:
            columns[f"{name}@{k}"] = hits.metric(name, k)[keep]
    if item_popularity is not None:
        if n_members is None:
            raise ConfigError("n_members is required with item_popularity (for novelty)")
        pop = _check_popularity(item_popularity, n_courses, _check_n_members(n_members))
        for k in ks:
            columns[f"novelty@{k}"] = _novelty_rows(rec[keep, :k], pop, int(n_members))
            columns[f"popularity@{k}"] = _popularity_rows(rec[keep, :k], pop)
    if course_category is not None:
        codes = _check_vector(course_category, "course_category", n_courses, integer=True)
        for k in ks:
            columns[f"diversity@{k}"] = _diversity_rows(rec[keep, :k], codes)
    index = pd.Index(np.flatnonzero(keep), name="member_idx")
    return pd.DataFrame(columns, index=index)


def ranking_metrics(
    recommended: np.ndarray, relevant: SparseMatrix, ks: Sequence[int] | int = (10, 20)
) -> dict[str, float]:
    """Mean of every accuracy metric at every cut-off over the evaluated members.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices, best first; ``-1`` marks an empty slot.
    relevant : scipy.sparse matrix
        ``(n_members, n_courses)``; a stored nonzero marks a relevant course.
    ks : sequence of int or int
        Cut-offs, each ``1 <= k <= K``.

    Returns
    -------
    dict[str, float]
        ``{"precision@10": ..., "recall@10": ..., "ndcg@10": ..., "map@10": ...,
        "mrr@10": ..., "hit_rate@10": ..., ..., "n_evaluated": ...}``; ``n_evaluated`` is
        the number of members with at least one relevant course, the members averaged
        over. Members without relevant courses are left out.

    Raises
    ------
    DataError
        If no member has a relevant course (nothing to average).
    """
    hits = _Hits(recommended, relevant)
    ks = _check_ks(ks, hits.K)
    n_evaluated = int(hits.evaluated.sum())
    if n_evaluated == 0:
        raise DataError(
            "relevant has no nonzero entry: no member has a held-out course to evaluate on"
        )
    out: dict[str, float] = {}
    for k in ks:
        for name in ACCURACY_METRICS:
            out[f"{name}@{k}"] = float(np.nanmean(hits.metric(name, k)))
    out["n_evaluated"] = n_evaluated
    return out


# ------------------------------------------------------------------- beyond accuracy


def _check_n_members(n_members: Any) -> int:
    return _positive_count(n_members, "n_members")


def _row_mean(values: np.ndarray, filled: np.ndarray) -> np.ndarray:
    """Mean of ``values`` over the ``filled`` slots of each row; NaN for an empty row."""
    count = filled.sum(axis=1)
    total = np.where(filled, values, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _novelty_rows(rec: np.ndarray, pop: np.ndarray, n_members: int) -> np.ndarray:
    # A course nobody interacted with would have infinite self-information; count it as
    # seen once, the most informative a course can be on this data.
    info = -np.log2(np.maximum(pop, 1.0) / n_members)
    filled = rec != EMPTY
    return _row_mean(info[np.where(filled, rec, 0)], filled)


def _popularity_rows(rec: np.ndarray, pop: np.ndarray) -> np.ndarray:
    filled = rec != EMPTY
    return _row_mean(pop[np.where(filled, rec, 0)], filled)


def _diversity_rows(rec: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Share of slot pairs in each row whose courses are in different channels."""
    filled = rec != EMPTY
    n = filled.sum(axis=1)
    if rec.shape[1] == 0:
        return np.full(rec.shape[0], np.nan)
    codes = codes.astype(np.int64, copy=False)
    # Empty slots get a code below every real one, so they sort first and form their own
    # run; their pairs are subtracted below.
    sentinel = (codes.min() if codes.size else 0) - 1
    cat = np.where(filled, codes[np.where(filled, rec, 0)], sentinel)
    cat.sort(axis=1)
    # Same-channel pairs = sum over channels of C(count, 2) = sum over slots of "how many
    # earlier slots in the sorted row share my channel" = position - start of my run.
    pos = np.broadcast_to(np.arange(cat.shape[1]), cat.shape)
    starts = np.ones(cat.shape, dtype=bool)
    starts[:, 1:] = cat[:, 1:] != cat[:, :-1]
    run_start = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
    same_pairs = (pos - run_start).sum(axis=1)
    n_empty = rec.shape[1] - n
    same_pairs = same_pairs - n_empty * (n_empty - 1) // 2
    all_pairs = n * (n - 1) // 2
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(all_pairs > 0, 1.0 - same_pairs / all_pairs, np.nan)


def _top_k(recommended: Any, k: int, n_courses: int | None = None) -> np.ndarray:
    rec = _check_recommended(recommended, n_courses)
    return rec[:, : _check_k(k, rec.shape[1])]


def _mean_or_nan(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if values.size else math.nan


def catalogue_coverage(recommended: np.ndarray, n_courses: int, k: int) -> float:
    """Share of the catalogue recommended to at least one member within the first ``k``.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices; ``-1`` marks an empty slot.
    n_courses : int
        Catalogue size (courses that could have been recommended).
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        Distinct courses recommended / ``n_courses``, in ``[0, 1]``.
    """
    n_courses = _check_n_courses(n_courses)
    rec = _top_k(recommended, k, n_courses)
    shown = np.zeros(n_courses, dtype=bool)
    shown[rec[rec != EMPTY]] = True
    return float(shown.mean())


def novelty(recommended: np.ndarray, item_popularity: np.ndarray, n_members: int, k: int) -> float:
    """Mean self-information of recommended courses (Zhou et al., 2010).

    A course interacted with by ``pop`` of ``n_members`` members carries
    ``-log2(pop / n_members)`` bits; a course nobody interacted with counts as ``pop = 1``.
    Each member's list is averaged over its non-empty slots, then members are averaged
    (members whose list is empty are left out). Higher means less obvious courses.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members_rec, K)`` integer course indices; ``-1`` marks an empty slot.
    item_popularity : np.ndarray
        ``(n_courses,)`` number of distinct members who interacted with each course in the
        training data (see ``popularity_counts``).
    n_members : int
        Number of members ``item_popularity`` counts over (training members).
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        Mean novelty in bits, in ``[0, log2(n_members)]``; NaN if every list is empty.
    """
    n_members = _check_n_members(n_members)
    pop = _check_popularity(item_popularity, None, n_members)
    rec = _top_k(recommended, k, pop.shape[0])
    return _mean_or_nan(_novelty_rows(rec, pop, n_members))


def average_popularity(recommended: np.ndarray, item_popularity: np.ndarray, k: int) -> float:
    """Average recommendation popularity, ARP (Abdollahpouri et al., 2019).

    The mean training popularity of the courses in a member's list (non-empty slots),
    averaged over members with a non-empty list. Lower means less popularity bias.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices; ``-1`` marks an empty slot.
    item_popularity : np.ndarray
        ``(n_courses,)`` training interaction count of each course.
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        ARP in the units of ``item_popularity``; NaN if every list is empty.
    """
    pop = _check_popularity(item_popularity, None)
    rec = _top_k(recommended, k, pop.shape[0])
    return _mean_or_nan(_popularity_rows(rec, pop))


def intra_list_diversity(recommended: np.ndarray, course_category: np.ndarray, k: int) -> float:
    """Intra-list channel diversity: share of course pairs in a list from different channels.

    Per member, over the pairs of non-empty slots among the first ``k``; averaged over
    members with at least two recommended courses. 0 = every list from a single channel,
    1 = no two courses of a list share a channel.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices; ``-1`` marks an empty slot.
    course_category : np.ndarray
        ``(n_courses,)`` integer channel code of each course (give unknown its own code).
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        Mean diversity in ``[0, 1]``; NaN if no list has two courses.
    """
    codes = _check_vector(course_category, "course_category", None, integer=True)
    rec = _top_k(recommended, k, codes.shape[0])
    return _mean_or_nan(_diversity_rows(rec, codes))


def gini_index(recommended: np.ndarray, n_courses: int, k: int) -> float:
    """Gini index of how often each catalogue course is recommended within the first ``k``.

    0 when every course is recommended equally often; approaches 1 when a few courses
    take all the slots. Courses never recommended count with 0.

    Parameters
    ----------
    recommended : np.ndarray
        ``(n_members, K)`` integer course indices; ``-1`` marks an empty slot.
    n_courses : int
        Catalogue size.
    k : int
        Cut-off, ``1 <= k <= K``.

    Returns
    -------
    float
        Gini index in ``[0, 1 - 1/n_courses]``; NaN if nothing was recommended.
    """
    n_courses = _check_n_courses(n_courses)
    rec = _top_k(recommended, k, n_courses)
    counts = np.sort(np.bincount(rec[rec != EMPTY], minlength=n_courses)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return math.nan
    i = np.arange(1, n_courses + 1)
    return float(((2 * i - n_courses - 1) * counts).sum() / (n_courses * total))


def popularity_counts(interactions: SparseMatrix) -> np.ndarray:
    """Number of distinct members with a nonzero entry for each course.

    Parameters
    ----------
    interactions : scipy.sparse matrix
        ``(n_members, n_courses)`` training interactions.

    Returns
    -------
    np.ndarray
        ``(n_courses,)`` int64 counts, the ``item_popularity`` of ``novelty`` and
        ``average_popularity``.
    """
    if not sp.issparse(interactions):
        raise DataError(
            f"interactions must be a scipy sparse matrix; got {type(interactions).__name__}"
        )
    m = sp.csc_matrix(interactions, copy=True)
    m.sum_duplicates()
    m.eliminate_zeros()
    return np.diff(m.indptr).astype(np.int64)


# ------------------------------------------------------------------ segments


def by_segment(per_member: pd.DataFrame, segments: pd.Series | np.ndarray) -> pd.DataFrame:
    """Mean of each metric per member segment, with the member count.

    Parameters
    ----------
    per_member : pd.DataFrame
        One row per member, indexed by member index, as from ``per_member_metrics``.
    segments : pd.Series or np.ndarray
        Segment label of every member: an array indexed by member index (length at least
        ``max(per_member.index) + 1``) or a Series indexed by member index. Missing labels
        (NaN/None) form their own segment rather than being dropped.

    Returns
    -------
    pd.DataFrame
        One row per segment (index named ``segment``), column ``members`` (row count) then
        the mean of every column of ``per_member`` (NaN values skipped).
    """
    idx = per_member.index.to_numpy()
    if isinstance(segments, pd.Series):
        missing = ~per_member.index.isin(segments.index)
        if missing.any():
            raise DataError(
                f"segments has no label for {int(missing.sum())} members of per_member, "
                f"e.g. member_idx {idx[missing][:5].tolist()}"
            )
        labels = segments.reindex(per_member.index)
    else:
        if np.ndim(segments) != 1:
            raise DataError(
                f"segments must be 1-D (one label per member); got shape {np.shape(segments)}"
            )
        # A Series keeps a categorical's dtype (and so its category order) when taken.
        positional = pd.Series(segments)
        if idx.size and (idx.min() < 0 or idx.max() >= len(positional)):
            raise DataError(
                f"segments has {len(positional)} labels but per_member refers to member_idx "
                f"up to {int(idx.max())}; pass one label per member index"
            )
        labels = positional.iloc[idx]
    labels = pd.Series(labels.array, index=per_member.index, name="segment")
    grouped = per_member.groupby(labels, dropna=False, observed=True, sort=True)
    out = grouped.mean()
    out.insert(0, "members", grouped.size())
    return out


def activity_level(
    n_events: pd.Series | np.ndarray, edges: Sequence[float] | None = None
) -> pd.Categorical:
    """Activity level labels ``"low"``, ``"medium"``, ``"high"`` from event counts.

    Parameters
    ----------
    n_events : array-like
        ``(n_members,)`` number of training events (or active days) of each member.
    edges : pair of float, optional
        Upper bounds (inclusive) of ``low`` and ``medium``. Default: the 1/3 and 2/3
        quantiles of ``n_events``, so the levels are terciles up to ties.

    Returns
    -------
    pd.Categorical
        Ordered categories ``low < medium < high``.
    """
    counts = np.asarray(n_events, dtype=np.float64)
    if counts.ndim != 1:
        raise DataError(f"n_events must be 1-D; got shape {counts.shape}")
    if edges is None:
        if counts.size == 0:
            edges = (0.0, 0.0)
        else:
            q = np.quantile(counts, [1 / 3, 2 / 3])
            edges = (float(q[0]), float(q[1]))
    edges = tuple(float(e) for e in edges)
    if len(edges) != 2 or edges[0] > edges[1]:
        raise ConfigError(f"edges must be two non-decreasing bounds (low, medium); got {edges}")
    codes = np.where(counts <= edges[0], 0, np.where(counts <= edges[1], 1, 2))
    codes = np.where(np.isnan(counts), -1, codes)
    return pd.Categorical.from_codes(codes, categories=["low", "medium", "high"], ordered=True)


# ------------------------------------------------------------------ bootstrap


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval for the mean of per-member values.

    Members are resampled with replacement ``n_boot`` times; the interval is the
    ``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled means. NaN values
    (members a metric is undefined for) are dropped first.

    Parameters
    ----------
    values : np.ndarray
        ``(n,)`` float per-member metric values.
    n_boot : int
        Number of bootstrap resamples.
    alpha : float
        One minus the confidence level, in ``(0, 1)``.
    seed : int
        Seed of the resampling; the same seed and data give the same interval.

    Returns
    -------
    tuple[float, float]
        ``(low, high)``; ``(nan, nan)`` when there are no values.
    """
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer; got {n_boot!r}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), e.g. 0.05 for a 95% interval; got {alpha}")
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 1:
        raise DataError(f"values must be 1-D (one value per member); got shape {vals.shape}")
    vals = vals[~np.isnan(vals)]
    n = vals.size
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, _BOOT_CHUNK_ENTRIES // n)
    for start in range(0, n_boot, chunk):
        stop = min(start + chunk, n_boot)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = vals[idx].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bootstrap_cis(
    per_member: pd.DataFrame, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> pd.DataFrame:
    """Mean and bootstrap confidence interval of every column of a per-member frame.

    Parameters
    ----------
    per_member : pd.DataFrame
        One row per member, numeric columns, as from ``per_member_metrics``.
    n_boot, alpha, seed
        As in ``bootstrap_ci``; every column uses the same seed.

    Returns
    -------
    pd.DataFrame
        Index ``metric`` (the column names), columns ``mean``, ``low``, ``high``, ``n``
        (non-NaN values the column's mean and interval are over).
    """
    rows = []
    for name in per_member.columns:
        vals = per_member[name].to_numpy(dtype=np.float64, na_value=np.nan)
        low, high = bootstrap_ci(vals, n_boot=n_boot, alpha=alpha, seed=seed)
        n = int((~np.isnan(vals)).sum())
        rows.append((name, float(np.nanmean(vals)) if n else math.nan, low, high, n))
    frame = pd.DataFrame(rows, columns=["metric", "mean", "low", "high", "n"])
    return frame.set_index("metric")
