"""What a model's :class:`~recommend.models.base.Snapshot` holds besides learned parts:
members' histories (the training matrix plus folded-in rows) and the catalogue (course ids,
training data, the serving cache derived from them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap

__all__ = ["Catalogue", "History"]


@dataclass(frozen=True)
class History:
    """Members' interaction histories: the training matrix plus folded-in members.

    ``base`` is the (n_members, n_courses) CSR training matrix; ``extra`` maps a member index
    (possibly >= n_members for members first seen through ``update``) to its replacement row,
    a (1, n_courses) CSR matrix; ``completed`` maps the same members to the courses their
    folded-in events complete (sorted int64 course indices), which replace their training
    completions.
    """

    base: sp.csr_matrix
    extra: dict[int, sp.csr_matrix] = field(default_factory=dict)
    completed: dict[int, np.ndarray] = field(default_factory=dict)

    def with_member(self, member_idx: int, row: sp.csr_matrix, completed: np.ndarray) -> History:
        """A new history with member ``member_idx``'s row and completions replaced
        (copy-on-write: this one is left as it is)."""
        extra = dict(self.extra)
        extra[member_idx] = row
        done = dict(self.completed)
        done[member_idx] = completed
        return History(self.base, extra, done)

    def with_members(
        self, rows: Mapping[int, sp.csr_matrix], completed: Mapping[int, np.ndarray]
    ) -> History:
        """A new history with several members' rows and completions replaced at once
        (copy-on-write, one copy of the overlay for the whole batch)."""
        return History(self.base, {**self.extra, **rows}, {**self.completed, **completed})

    def rows(self, member_idx: np.ndarray) -> sp.csr_matrix:
        """History rows of ``member_idx`` (all >= 0), shape (len, n_courses), CSR float32."""
        idx = np.asarray(member_idx, dtype=np.int64)
        n_base = self.base.shape[0]
        folded = (
            np.isin(idx, np.fromiter(self.extra, dtype=np.int64, count=len(self.extra)))
            if self.extra
            else np.zeros(idx.size, dtype=bool)
        )
        if (idx < n_base).all() and not folded.any():
            return self.base[idx]
        # Row by row from the index arrays (members past the training matrix: empty).
        datas, indices, counts = [], [], np.zeros(idx.size, dtype=np.int64)
        base = self.base
        for k, (i, hit) in enumerate(zip(idx.tolist(), folded.tolist(), strict=True)):
            if hit:
                row = self.extra[i]
                data, cols = row.data, row.indices
            elif i < n_base:
                lo, hi = base.indptr[i], base.indptr[i + 1]
                data, cols = base.data[lo:hi], base.indices[lo:hi]
            else:
                continue
            datas.append(data)
            indices.append(cols)
            counts[k] = data.size
        indptr = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        flat_data = np.concatenate(datas).astype(np.float32) if datas else np.empty(0, np.float32)
        flat_cols = np.concatenate(indices) if indices else np.empty(0, np.int32)
        return sp.csr_matrix((flat_data, flat_cols, indptr), shape=(idx.size, base.shape[1]))

    def counts(self, member_idx: np.ndarray) -> np.ndarray:
        """Number of courses in each member's history, shape (len,), int64."""
        return np.asarray(self.rows(member_idx).getnnz(axis=1), dtype=np.int64)


@dataclass(frozen=True, eq=False)
class Catalogue:
    """The courses a snapshot knows and what serving derived from them.

    Attributes
    ----------
    course_ids : IdMap
        The model's courses (new catalogue rows ingested since the fit appended).
    dataset : Dataset or None
        The training data, grown by the new catalogue rows (``Dataset.with_new_courses``).
    cache : dict
        The serving cache (``Recommender.cached``): built from this catalogue, so a new
        catalogue starts a new cache (but for the entries :func:`keep_across_catalogues`
        names) while requests on the old one keep theirs.
    """

    course_ids: IdMap
    dataset: Dataset | None
    cache: dict[str, Any] = field(default_factory=dict)
