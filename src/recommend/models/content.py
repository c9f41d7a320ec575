"""Scores for courses nobody has studied yet, from content similarity.

New courses (UGC uploads above all) have no interactions, so collaborative models know
nothing about them. Each such *cold* course is mapped onto its most content-similar
*warm* courses (cosine similarity of course feature rows: channel, tags, lecturer, title
words ...): a factor model gives it the similarity-weighted mean of their factors, a
course-course model (EASE, item-kNN) the weighted mean of their columns. A member who
likes the neighbours then likes the new course.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommend.data.dataset import Dataset

__all__ = [
    "COLD_NEIGHBOURS",
    "cold_courses",
    "content_neighbour_factors",
    "content_neighbour_weights",
    "place_cold_columns",
]

#: Warm content neighbours averaged per cold course.
COLD_NEIGHBOURS = 20
#: Bytes of dense cold x warm similarities computed at once.
_COLD_BLOCK_BYTES = 32 << 20


def cold_courses(interactions: sp.csr_matrix) -> np.ndarray:
    """Indices of courses without any training interaction, (n_cold,) int64."""
    return np.flatnonzero(interactions.getnnz(axis=0) == 0).astype(np.int64)


def _normalize_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (empty rows stay empty), CSR float32."""
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    row_of = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    norms = np.sqrt(np.bincount(row_of, weights=np.square(x.data), minlength=x.shape[0]))
    x.data = (x.data / norms[row_of]).astype(np.float32)
    return x


def content_neighbour_weights(
    cold: np.ndarray,
    features: sp.csr_matrix,
    n_neighbours: int = COLD_NEIGHBOURS,
    *,
    only: np.ndarray | None = None,
) -> tuple[np.ndarray, sp.csr_matrix]:
    """Each cold course's weights over its most content-similar warm courses.

    Parameters
    ----------
    cold : ndarray of int, shape (n_cold,)
        Course indices without training interactions; never used as neighbours.
    features : sparse matrix, shape (n_courses, n_features)
        Course features, e.g. ``Dataset.course_features.matrix``.
    n_neighbours : int
        Warm neighbours (cosine similarity > 0) kept per cold course.
    only : ndarray of int, optional
        Place just these cold courses (e.g. catalogue rows added after the fit); all
        of ``cold`` by default.

    Returns
    -------
    placed : ndarray of int64, shape (n_placed,)
        The cold courses with at least one similar warm course (a subset of ``cold``, or
        of ``only``).
    weights : CSR float32, shape (n_placed, n_courses)
        Row ``i`` holds course ``placed[i]``'s neighbour weights, summing to 1.
    """
    n_courses = features.shape[0]
    cold = np.unique(np.asarray(cold, dtype=np.int64))
    warm = np.setdiff1d(np.arange(n_courses, dtype=np.int64), cold)
    if only is not None:
        cold = np.intersect1d(np.asarray(only, dtype=np.int64), cold)
    if cold.size == 0 or warm.size == 0 or features.shape[1] == 0 or n_neighbours < 1:
        return np.empty(0, np.int64), sp.csr_matrix((0, n_courses), dtype=np.float32)
    unit = _normalize_rows(sp.csr_matrix(features))
    warm_t = unit[warm].T.tocsr()
    k = min(int(n_neighbours), warm.size)
    # Blocks of cold courses bound the dense cold x warm similarity block in memory.
    step = min(4096, max(1, _COLD_BLOCK_BYTES // (4 * warm.size)))
    placed, rows, cols, vals = [], [], [], []
    n_placed = 0
    for start in range(0, cold.size, step):
        block = cold[start : start + step]
        sim = (unit[block] @ warm_t).toarray()
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        weight = np.maximum(np.take_along_axis(sim, top, axis=1), 0.0)
        total = weight.sum(axis=1)
        ok = total > 0
        weight = weight[ok] / total[ok, None]
        placed.append(block[ok])
        rows.append(np.repeat(np.arange(n_placed, n_placed + int(ok.sum())), k))
        cols.append(warm[top[ok]].ravel())
        vals.append(weight.ravel())
        n_placed += int(ok.sum())
    weights = sp.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n_placed, n_courses),
    )
    weights.eliminate_zeros()
    return np.concatenate(placed), weights


def content_neighbour_factors(
    course_factors: np.ndarray,
    cold: np.ndarray,
    features: sp.csr_matrix,
    n_neighbours: int = COLD_NEIGHBOURS,
    *,
    only: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Factors for cold courses: the weighted mean of their warm neighbours' factors.

    Returns ``placed`` (n_placed,) int64 and their factors (n_placed, f) float32; cold
    courses with no feature in common with any warm course are left out. ``only``: as
    for :func:`content_neighbour_weights`.
    """
    placed, weights = content_neighbour_weights(cold, features, n_neighbours, only=only)
    return placed, np.asarray(weights @ course_factors, dtype=np.float32)


def place_cold_columns(
    matrix: np.ndarray | sp.csr_matrix,
    dataset: Dataset,
    n_neighbours: int = COLD_NEIGHBOURS,
    *,
    only: np.ndarray | None = None,
) -> tuple[np.ndarray | sp.csr_matrix, int]:
    """Give cold courses the weighted mean of their neighbours' columns in a course x course
    matrix (EASE's ``B``, item-kNN's similarity); returns (matrix, courses placed).

    Scores are ``history @ matrix``, so column ``c`` decides how much every studied course
    recommends ``c``: a cold course then scores like its content neighbours. ``only``:
    place just these cold courses (catalogue rows added after the fit; their columns
    must be empty); a dense ``matrix`` is changed in place.
    """
    features = dataset.course_features
    cold = cold_courses(dataset.interactions)
    if features is None or len(features) == 0 or cold.size == 0:
        return matrix, 0
    placed, weights = content_neighbour_weights(cold, features.matrix, n_neighbours, only=only)
    if placed.size == 0:
        return matrix, 0
    if sp.issparse(matrix):
        # Cold columns are empty (no co-occurrence); add the mapped neighbour columns.
        n = matrix.shape[1]
        spread = sp.csr_matrix(
            (weights.tocoo().data, (weights.tocoo().col, placed[weights.tocoo().row])),
            shape=(n, n),
        )
        return sp.csr_matrix(matrix + matrix @ spread, dtype=np.float32), int(placed.size)
    out = np.asarray(matrix)
    out[:, placed] = (weights @ out.T).T
    return out, int(placed.size)
