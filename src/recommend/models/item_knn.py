"""``ItemKNN``: item-item neighbours on ``implicit`` (cosine / BM25), with new courses'
columns updated from their learners by ingestion."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.models.base import CourseLearners, MemberState, Recommender
from recommend.models.content import COLD_NEIGHBOURS, place_cold_columns
from recommend.models.implicit_params import check_bool, check_int, check_real, training_matrix
from recommend.topk import single_threaded_blas

__all__ = ["ItemKNN"]

log = logging.getLogger(__name__)


class ItemKNN(Recommender):
    """Item-item nearest neighbours on ``implicit``: cosine or BM25 similarity.

    ``similarity_`` keeps, for every course, its ``k`` most similar courses (implicit's
    ``CosineRecommender`` / ``BM25Recommender``); a member's scores are their history rows
    (confidences) times it. Fold-in needs nothing: scores come straight from the history,
    so an ``update`` shows at once. A course nobody studied has no neighbours and scores 0.

    Parameters
    ----------
    similarity
        ``"cosine"`` (courses as unit vectors over members) or ``"bm25"`` (members as
        terms, BM25-weighted: discounts heavy learners and very popular courses).
    k
        Neighbours kept per course.
    bm25_k1, bm25_b
        BM25 saturation and length normalisation (``"bm25"`` only).
    show_progress
        Show implicit's progress bar while fitting.
    num_threads
        Threads of implicit's neighbour search; 0 means all cores.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix, shape (n_courses, n_courses), float32
        Row ``i`` holds the neighbours of course ``i``; ``score_j = sum_i x_i S_ij``.
    """

    name: ClassVar[str] = "item_knn"
    takes_new_courses: ClassVar[bool] = True

    #: Per snapshot: ingestion replaces new courses' columns (and rows) from their learners.
    similarity_ = MemberState()

    def __init__(
        self,
        similarity: Literal["cosine", "bm25"] = "cosine",
        k: int = 100,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        cold_neighbours: int = COLD_NEIGHBOURS,
        show_progress: bool = False,
        num_threads: int = 0,
    ) -> None:
        self.similarity = similarity
        self.k = k
        self.bm25_k1 = bm25_k1
        self.bm25_b = bm25_b
        self.cold_neighbours = cold_neighbours
        self.show_progress = show_progress
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self) -> None:
        owner = type(self).__name__
        if self.similarity not in ("cosine", "bm25"):
            raise ConfigError(
                f"{owner}.similarity={self.similarity!r}; expected 'cosine' or 'bm25'"
            )
        check_int(owner, "k", self.k, 1)
        check_real(owner, "bm25_k1", self.bm25_k1, positive=True)
        check_real(owner, "bm25_b", self.bm25_b, positive=False)
        if self.bm25_b > 1:
            raise ConfigError(f"{owner}.bm25_b={self.bm25_b!r}; expected a number in [0, 1]")
        check_int(owner, "cold_neighbours", self.cold_neighbours, 0)
        check_bool(owner, "show_progress", self.show_progress)
        check_int(owner, "num_threads", self.num_threads, 0)

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize

        user_items = training_matrix(dataset.interactions)
        log.info(
            "item_knn: %s similarity, %d neighbours, %d courses",
            self.similarity,
            self.k,
            user_items.shape[1],
        )
        # The weighting of implicit's CosineRecommender / BM25Recommender, handed to their
        # neighbour search as CSR (theirs passes COO, which it then converts with a warning).
        if self.similarity == "bm25":
            weighted = bm25_weight(user_items.T, K1=float(self.bm25_k1), B=float(self.bm25_b)).T
        else:
            weighted = normalize(user_items.T).T
        weighted = sp.csr_matrix(weighted, dtype=np.float64)
        with single_threaded_blas():
            model = ItemItemRecommender(K=int(self.k), num_threads=int(self.num_threads))
            model.fit(weighted, show_progress=bool(self.show_progress))
        similarity = sp.csr_matrix(model.similarity, dtype=np.float32)
        similarity.sum_duplicates()
        similarity.eliminate_zeros()
        if self.cold_neighbours:
            # New courses co-occur with nothing: give them their content neighbours' columns.
            similarity, placed = place_cold_columns(similarity, dataset, self.cold_neighbours)
            log.info("item_knn: %d cold course(s) placed by content", placed)
        similarity.sort_indices()
        self.similarity_ = similarity

    def _add_courses(self, courses: np.ndarray) -> None:
        """Catalogue rows added by ingestion: ``similarity_`` grows by an empty row and
        column each, the column placed by content as cold courses are at fit."""
        n = self.n_courses
        old = self.similarity_
        wide = sp.csr_matrix((old.data, old.indices, old.indptr), shape=(old.shape[0], n))
        grown = sp.vstack(
            [wide, sp.csr_matrix((n - old.shape[0], n), dtype=np.float32)], format="csr"
        )
        if self.cold_neighbours:
            placed_matrix, placed = place_cold_columns(
                grown, self.dataset_, self.cold_neighbours, only=courses
            )
            grown = sp.csr_matrix(placed_matrix, dtype=np.float32)
            log.info("item_knn: %d new catalogue course(s) placed by content", placed)
        grown.sort_indices()
        self.similarity_ = grown

    def _fold_in_courses(self, learners: Mapping[int, CourseLearners], reach: np.ndarray) -> None:
        """Column update: a new course's neighbours become the courses its learners
        studied, by cosine over members (``Σ_u r_uc r_ui / (|r_c| |r_i|)``, training column
        norms), the ``k`` best kept, as its column and its row of ``similarity_``. (The
        BM25 variant uses the same cosine here until the next refit.) A course that lost
        all its learners keeps no neighbours. One new matrix per batch."""
        if not learners:
            return
        norms = self.cached(
            "course_norms",
            lambda: np.sqrt(
                np.asarray(self.history_.base.multiply(self.history_.base).sum(axis=0))
            ).ravel(),
        )
        courses = np.array(sorted(learners), dtype=np.int64)
        rows, cols, vals = [], [], []
        for course in courses.tolist():
            who = learners[course]
            if not who.members.size:
                continue
            studied = self.history_.rows(who.members)
            co = np.asarray(studied.T @ who.values.astype(np.float64)).ravel()
            own = float(np.sqrt(np.sum(who.values.astype(np.float64) ** 2)))
            with np.errstate(divide="ignore", invalid="ignore"):
                cosine = np.where(norms > 0, co / (norms * own), 0.0)
            cosine[course] = 0.0
            top = np.flatnonzero(cosine > 0)
            if top.size > int(self.k):
                top = top[np.argpartition(-cosine[top], int(self.k) - 1)[: int(self.k)]]
            rows.append(top)
            cols.append(np.full(top.size, course, dtype=np.int64))
            vals.append(cosine[top])
        n = self.n_courses
        keep = np.ones(n, dtype=np.float32)
        keep[courses] = 0.0
        mask = sp.diags(keep, format="csr")
        old = sp.csr_matrix(mask @ self.similarity_ @ mask, dtype=np.float32)
        if rows:
            r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
            column = sp.csr_matrix((v, (r, c)), shape=(n, n), dtype=np.float32)
            # Symmetric, as cosine is: the course also recommends its neighbours.
            old = sp.csr_matrix(old + column + column.T, dtype=np.float32)
        old.eliminate_zeros()
        old.sort_indices()
        self.similarity_ = old

    def course_similarity(self, course_idx: int) -> np.ndarray:
        """Row ``course_idx`` of ``similarity_`` (its neighbours; zero elsewhere),
        (n_courses,) float32."""
        self.check_fitted()
        row = self.similarity_[[int(course_idx)]].toarray()
        return np.asarray(row, dtype=np.float32).ravel()

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        """History rows @ ``similarity_``: shape (len(member_idx), n_courses), float32.
        Folded-in members score from their new history."""
        self.check_fitted()
        rows = self.history_.rows(np.asarray(member_idx, dtype=np.int64))
        scores = sp.csr_matrix(rows, dtype=np.float32) @ self.similarity_
        return np.ascontiguousarray(scores.toarray(), dtype=np.float32)
