"""``EASE``: a shallow linear autoencoder with a closed-form solution (Steck, 2019).

EASE learns a course x course weight matrix ``B`` with a zero diagonal that reconstructs
each member's history from the rest of it; a member's scores are ``history @ B``. The
solution is closed form::

    G = XᵀX + λI,   P = G⁻¹,   B = −P / diag(P) (column j divided by −P_jj),   diag(B) = 0

It is among the strongest models on catalogues of up to a few 10^4 courses, has a single
hyper-parameter, and needs no member factors: a member's new events change their scores
at once, straight from their history (fold-in costs nothing).

Its cost is a dense ``n_courses x n_courses`` matrix and a cubic-time inversion, so a
memory guard refuses catalogues above ``max_courses`` before allocating anything, saying
how much memory the fit would take; ALS is the model for larger catalogues.

Memory and precision. The fit builds ``G`` in one float32 matrix (row block by row block,
so the sparse products never hold more than a few hundred MB), factorises and inverts it
in place (LAPACK ``spotrf``/``spotri``: G is symmetric positive definite), and scales it
into ``B`` in place: the peak is one dense float32 matrix, ``4 * n_courses**2`` bytes, half
of what float64 would need. Float32 is accurate enough: the relative error of the inverse
is about ``1e-7 * cond(G)``, and ``λ`` bounds ``cond(G) <= 1 + ||XᵀX|| / λ``, which is well
under 10^4 for usual confidence scales and ``λ`` in the hundreds — errors around 10^-3
relative, far below anything that reorders a menu.
"""

from __future__ import annotations

import logging
import numbers
from abc import abstractmethod
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.models.base import MemberState, Recommender
from recommend.models.content import COLD_NEIGHBOURS, place_cold_columns

__all__ = ["EASE", "CourseCourse", "as_input", "ease_weights", "gram_matrix"]

log = logging.getLogger(__name__)

#: Entries of one row block of XᵀX; bounds the sparse product's memory (~12 bytes each).
_BLOCK_ENTRIES = 1 << 24
_SYMMETRISE_ROWS = 1024


class CourseCourse(Recommender):
    """A model whose scores are ``history @ B_`` (``B_`` dense float32, n_courses x n_courses).

    The one home of what EASE and the models beside it (``recommend.models.linear``) share:
    the input they see (confidence, or 0/1 with ``binary``), the memory guard that refuses
    catalogues above ``max_courses`` before anything is allocated, the fit (subclasses
    compute the matrix in ``_weights``; cold courses get their content neighbours'
    columns) and scoring. No member state: a member's new events change their scores at
    once.
    """

    binary: bool
    max_courses: int
    cold_neighbours: int
    #: Dense n x n float32 matrices alive at the peak of a fit (for the memory guard).
    dense_copies: ClassVar[int] = 1

    def _check_common(self) -> None:
        mc = self.max_courses
        if isinstance(mc, bool) or not isinstance(mc, int | np.integer) or mc < 1:
            raise ConfigError(f"max_courses={mc!r}; expected a positive integer")
        if not isinstance(self.binary, bool | np.bool_):
            raise ConfigError(f"binary={self.binary!r}; expected True or False")
        cn = self.cold_neighbours
        if isinstance(cn, bool) or not isinstance(cn, int | np.integer) or cn < 0:
            raise ConfigError(f"cold_neighbours={cn!r}; expected an integer >= 0")

    def _check_params(self) -> None:
        self._check_common()

    @classmethod
    def memory_bytes(cls, n_courses: int, nnz: int = 0) -> int:
        """Peak memory of a fit in bytes: the dense float32 matrices, the row block of the
        sparse product and a transposed copy of the ``nnz`` interactions."""
        n = int(n_courses)
        block = min(n * n, max(_BLOCK_ENTRIES, n))
        return cls.dense_copies * 4 * n * n + 12 * block + 12 * int(nnz) + 8 * (n + 1)

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset) -> Self:
        """Learn ``B_`` from ``dataset`` (never modified) and return ``self``.

        Raises ``ConfigError`` before touching any state when the catalogue is larger than
        ``max_courses``.
        """
        self._check_params()
        if isinstance(dataset, Dataset):
            self._check_size(dataset.n_courses, dataset.interactions.nnz)
        return super().fit(dataset)

    def _check_size(self, n_courses: int, nnz: int) -> None:
        if n_courses <= self.max_courses:
            return
        need = self.memory_bytes(n_courses, nnz)
        dense = "a dense" if self.dense_copies == 1 else f"{self.dense_copies} dense"
        raise ConfigError(
            f"{type(self).__name__} on {n_courses:,} courses needs about {need / 1e9:.1f} GB "
            f"({dense} {n_courses:,} x {n_courses:,} float32 matrix, built and inverted in "
            f"place, plus working space); the limit is max_courses={self.max_courses:,}. "
            "Use ALS, or raise max_courses if the machine has the memory"
        )

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        x = self._as_input(dataset.interactions)
        n = x.shape[1]
        self._check_size(n, x.nnz)
        log.info(
            "%s: %d members x %d courses, about %.2f GB",
            self.name,
            x.shape[0],
            n,
            self.memory_bytes(n, x.nnz) / 1e9,
        )
        weights = np.ascontiguousarray(self._weights(x), dtype=np.float32)
        if self.cold_neighbours:
            # A new course's column is zero (it co-occurs with nothing): give it the
            # weighted mean of its content neighbours' columns.
            weights, placed = place_cold_columns(weights, dataset, self.cold_neighbours)
            log.info("%s: %d cold course(s) placed by content", self.name, placed)
        self.B_: np.ndarray = np.asarray(weights, dtype=np.float32)

    @abstractmethod
    def _weights(self, x: sp.csr_matrix) -> np.ndarray:
        """The course x course matrix from the member x course input ``x``."""

    def _as_input(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        """``rows`` as the model sees them: confidence, or 1 per interaction if binary."""
        return as_input(rows, bool(self.binary))

    # ------------------------------------------------------------------ scoring
    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        """Scores of members ``member_idx`` (fold-in members included) for all courses:
        their history rows @ ``B_``, shape (len, n_courses), float32."""
        self.check_fitted()
        rows = self._as_input(self.history_.rows(np.asarray(member_idx, dtype=np.int64)))
        return np.ascontiguousarray(rows @ self.B_, dtype=np.float32)


class EASE(CourseCourse):
    """Closed-form linear item-item model (EASE, Steck 2019).

    Parameters
    ----------
    l2
        The L2 penalty λ added to the diagonal of XᵀX (``lambda`` is a Python keyword, and
        a trailing underscore would mark learned state). Larger values smooth more; a few
        hundred suits confidence values of a few units per cell.
    max_courses
        Refuse catalogues with more courses than this (memory guard, checked before any
        allocation): the fit needs ``4 * n_courses**2`` bytes.
    binary
        Use 0/1 interactions instead of the confidence values, both to fit and to score.

    Attributes
    ----------
    B_ : ndarray, shape (n_courses, n_courses), float32
        Course-to-course weights with a zero diagonal; scores = history @ B_.
    """

    name: ClassVar[str] = "ease"
    takes_new_courses: ClassVar[bool] = True

    #: Per snapshot: catalogue rows added by ingestion grow it by a content-placed column.
    B_ = MemberState()

    def __init__(
        self,
        l2: float = 500.0,
        max_courses: int = 30_000,
        binary: bool = False,
        cold_neighbours: int = COLD_NEIGHBOURS,
    ) -> None:
        self.l2 = l2
        self.max_courses = max_courses
        self.binary = binary
        self.cold_neighbours = cold_neighbours
        self._check_params()

    def _check_params(self) -> None:
        l2 = self.l2
        if not (isinstance(l2, numbers.Real) and not isinstance(l2, bool) and np.isfinite(l2)):
            raise ConfigError(f"l2={l2!r}; expected a number > 0")
        if l2 <= 0:
            raise ConfigError(f"l2={self.l2!r}; expected a number > 0")
        self._check_common()

    def _weights(self, x: sp.csr_matrix) -> np.ndarray:
        gram = gram_matrix(x)
        gram[np.diag_indices(x.shape[1])] += np.float32(self.l2)
        return ease_weights(gram)

    def _add_courses(self, courses: np.ndarray) -> None:
        """Catalogue rows added by ingestion: ``B_`` grows by a row and a column each, the
        column placed by content as cold courses are at fit (a copy of ``B_``: ``4 *
        n_courses**2`` bytes per batch that adds courses); the row stays zero until the
        next refit."""
        old = self.B_
        n = self.n_courses
        grown = np.zeros((n, n), dtype=np.float32)
        grown[: old.shape[0], : old.shape[1]] = old
        if self.cold_neighbours:
            grown, placed = place_cold_columns(
                grown, self.dataset_, self.cold_neighbours, only=courses
            )
            log.info("ease: %d new catalogue course(s) placed by content", placed)
        self.B_ = grown

    def course_similarity(self, course_idx: int) -> np.ndarray:
        """Row ``course_idx`` of ``B_``: the scores of a member whose history is that one
        course, (n_courses,) float32."""
        self.check_fitted()
        return np.array(self.B_[int(course_idx)], dtype=np.float32)


def as_input(rows: sp.csr_matrix, binary: bool) -> sp.csr_matrix:
    """Interaction ``rows`` as float32 CSR: confidence values, or 1 each if ``binary``."""
    rows = sp.csr_matrix(rows, dtype=np.float32)
    if binary:
        rows = sp.csr_matrix(
            (np.ones(rows.nnz, np.float32), rows.indices, rows.indptr), shape=rows.shape
        )
    return rows


def gram_matrix(x: sp.csr_matrix) -> np.ndarray:
    """XᵀX as a dense (n_courses, n_courses) float32 matrix, built row block by row block.

    Each block ``Xᵀ[a:b] @ X`` is sparse and written straight into its rows of the result,
    so no dense or sparse temporary larger than one block ever exists.
    """
    n = x.shape[1]
    xt = x.T.tocsr()
    gram = np.zeros((n, n), dtype=np.float32)
    step = max(1, _BLOCK_ENTRIES // max(n, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = (xt[start:stop] @ x).tocsr()
        block.toarray(out=gram[start:stop])
    return gram


def ease_weights(gram: np.ndarray) -> np.ndarray:
    """Turn ``gram`` (G = XᵀX + λI, symmetric positive definite, float32, C order) into B
    in place and return it (the same memory)."""
    n = gram.shape[0]
    if n == 0:
        return gram
    # G is symmetric, so its transpose is the same matrix in Fortran order: LAPACK can work
    # on it in place. The inverse lands in G's lower triangle (C view).
    fortran = gram.T
    factor, info = lapack.spotrf(fortran, lower=0, clean=0, overwrite_a=1)
    if info > 0:
        raise ConfigError(
            f"EASE: XᵀX + l2·I is not positive definite in float32 (leading minor {info}); "
            "the interactions are too large for this l2: raise l2 or use log/bm25 scaling"
        )
    if info < 0 or not np.shares_memory(factor, gram):
        raise RuntimeError(f"LAPACK spotrf failed (info={info}) or did not work in place")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0 or not np.shares_memory(inverse, gram):
        raise RuntimeError(f"LAPACK spotri failed (info={info}) or did not work in place")
    _symmetrise_from_lower(gram)
    # B_ij = -P_ij / P_jj: divide column j by -P_jj, then zero the diagonal.
    diag = np.diagonal(gram).copy()
    np.divide(gram, -diag, out=gram)
    np.fill_diagonal(gram, 0.0)
    return gram


def _symmetrise_from_lower(a: np.ndarray) -> None:
    """Copy the lower triangle of square ``a`` onto its upper triangle, in place, in row
    blocks (a whole-matrix transpose would need a second n x n array)."""
    n = a.shape[0]
    for start in range(0, n, _SYMMETRISE_ROWS):
        stop = min(start + _SYMMETRISE_ROWS, n)
        diag_block = a[start:stop, start:stop]
        upper = np.triu_indices(stop - start, 1)
        diag_block[upper] = diag_block.T[upper]
        if stop < n:
            a[start:stop, stop:] = a[stop:, start:stop].T
