"""Rows of a CSR matrix for some members, as plain arrays (histories, completions, pins).

For the one or few members of a request, slicing the three CSR arrays is several times
cheaper than building scipy matrices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

if TYPE_CHECKING:
    from recommend.models.base import History

__all__ = [
    "Rows",
    "completion_rows",
    "gather_rows",
    "history_rows",
    "matrix_rows",
    "small_isin",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Rows:
    """Rows of a CSR matrix: ``indices[indptr[i]:indptr[i + 1]]`` are row ``i``'s columns.

    Attributes
    ----------
    indptr : ndarray of int64, shape (m + 1,)
    indices : ndarray of int32 (course indices)
    data : ndarray of float32 (confidences, or whatever the matrix holds)
    """

    indptr: NDArray[np.int64]
    indices: NDArray[np.int32]
    data: NDArray[np.float32]

    @property
    def counts(self) -> NDArray[np.int64]:
        """Entries per row, shape (m,)."""
        return np.diff(self.indptr)

    @property
    def row_of_entry(self) -> NDArray[np.int64]:
        """The row of every entry, aligned with ``indices``."""
        if self.indptr.size == 2:
            return np.zeros(self.indices.size, dtype=np.int64)
        return np.repeat(np.arange(self.indptr.size - 1, dtype=np.int64), self.counts)

    def row(self, i: int) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
        """Columns and values of row ``i``."""
        lo, hi = self.indptr[i], self.indptr[i + 1]
        return self.indices[lo:hi], self.data[lo:hi]

    def take(self, rows: NDArray[np.int64]) -> Rows:
        """These rows (positions into this object), in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == len(self.indptr) - 1 and (rows == np.arange(rows.size)).all():
            return self
        return gather_rows(self.indptr, self.indices, self.data, rows, len(self.indptr) - 1)


def gather_rows(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, idx: np.ndarray, n_rows: int
) -> Rows:
    """Rows ``idx`` of a CSR given by its arrays; empty rows for indices outside it."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 1:
        # One member (a backend's request): two slices, no index arithmetic.
        i = int(idx[0])
        if not 0 <= i < n_rows:
            return Rows(np.zeros(2, dtype=np.int64), indices[:0], data[:0])
        lo, hi = int(indptr[i]), int(indptr[i + 1])
        return Rows(np.array([0, hi - lo], dtype=np.int64), indices[lo:hi], data[lo:hi])
    valid = (idx >= 0) & (idx < n_rows)
    if not valid.any():  # also the CSR with no rows at all (e.g. no compulsory courses)
        return Rows(np.zeros(idx.size + 1, dtype=np.int64), indices[:0], data[:0])
    safe = np.where(valid, idx, 0)
    starts = indptr[safe].astype(np.int64)
    lengths = np.where(valid, indptr[safe + 1] - starts, 0)
    out_ptr = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_ptr[1:])
    if idx.size == 1:
        take = slice(int(starts[0]), int(starts[0] + lengths[0]))
        return Rows(out_ptr, indices[take], data[take])
    pos = np.repeat(starts - out_ptr[:-1], lengths) + np.arange(out_ptr[-1])
    return Rows(out_ptr, indices[pos], data[pos])


def matrix_rows(matrix: sp.csr_matrix, idx: NDArray[np.int64]) -> Rows:
    """Rows ``idx`` of a CSR matrix; empty rows for indices outside it."""
    return gather_rows(matrix.indptr, matrix.indices, matrix.data, idx, matrix.shape[0])


def history_rows(history: History, idx: NDArray[np.int64]) -> Rows:
    """History rows of members ``idx`` (model indices; -1 or never seen: empty rows),
    folded-in members' replacement rows included."""
    return _spliced(history.base, history.extra, idx, _one_csr_row)


def completion_rows(history: History, training: sp.csr_matrix, idx: NDArray[np.int64]) -> Rows:
    """Courses members ``idx`` completed: rows of the ``training`` completion matrix, with
    the completions of events folded in since (``history.completed``) in place of a folded-in
    member's row. Values are 1."""
    return _spliced(training, history.completed, idx, _course_row)


def _one_csr_row(row: sp.csr_matrix) -> Rows:
    return matrix_rows(row, np.zeros(1, np.int64))


def _course_row(courses: np.ndarray) -> Rows:
    indices = np.asarray(courses, dtype=np.int32)
    return Rows(
        np.array([0, indices.size], dtype=np.int64), indices, np.ones(indices.size, np.float32)
    )


def _spliced(
    matrix: sp.csr_matrix,
    replaced: Mapping[int, T],
    idx: NDArray[np.int64],
    as_rows: Callable[[T], Rows],
) -> Rows:
    """Rows ``idx`` of ``matrix``, except members in ``replaced``, whose row is
    ``as_rows(replaced[member])``."""
    idx = np.asarray(idx, dtype=np.int64)
    if replaced:
        hit = np.isin(idx, np.fromiter(replaced, dtype=np.int64))
        if hit.any():
            # Folded-in members are few: splice their replacement rows in one by one.
            parts = [
                as_rows(replaced[int(i)]) if h else matrix_rows(matrix, np.array([i], np.int64))
                for i, h in zip(idx.tolist(), hit.tolist(), strict=True)
            ]
            indptr = np.zeros(len(parts) + 1, dtype=np.int64)
            np.cumsum([p.indices.size for p in parts], out=indptr[1:])
            indices = np.concatenate([p.indices for p in parts]).astype(np.int32, copy=False)
            data = np.concatenate([p.data for p in parts]).astype(np.float32, copy=False)
            return Rows(indptr, indices, data)
    return matrix_rows(matrix, idx)


def small_isin(values: np.ndarray, among: np.ndarray) -> NDArray[np.bool_]:
    """``np.isin`` for the short arrays of one member's menu, where broadcasting beats
    isin's sorting by an order of magnitude."""
    if values.size * among.size <= 4096:
        hit: NDArray[np.bool_] = (values[:, None] == among[None, :]).any(axis=1)
        return hit
    return np.isin(values, among)
