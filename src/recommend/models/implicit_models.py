"""Models on the ``implicit`` library: ``ALS``, ``BPR`` and ``ItemKNN`` (cosine / BM25).

``implicit`` has a fast numeric core and a few traps; these wrappers hide them:

- its ``recommend`` expects the rows of ``user_items`` to line up with the requested user
  ids; here every score comes from our own factors or history rows, indexed by member
  index, through the shared kernel (``recommend.topk``), so there is nothing to misalign;
- its model factories default to CUDA when it is available: here ``use_gpu`` is ``False``
  unless asked for, and a GPU model is brought back to the CPU after fitting;
- its solvers run their own thread pool and slow down badly if BLAS threads on top of
  them: fitting runs inside ``threadpool_limits(1, "blas")``;
- progress bars are off unless ``show_progress=True``;
- a course nobody studied in training has meaningless (zero) factors: ``ALS`` and ``BPR``
  give it the similarity-weighted mean factors of its most content-similar warm courses
  (``content_neighbour_factors``), so a new UGC upload gets a score from its features.

Factors learned elsewhere (Spark MLlib's ALS) become a fitted model through
``ALS.from_factors`` / ``BPR.from_factors``, which finish it as ``fit`` does (cold courses
placed, fold-in prepared).

Fold-in (``update``): ``ALS`` re-solves the member's vector exactly (one ``f x f`` linear
system), ``BPR`` maximises its pairwise objective for that member with the course factors
fixed (a few Newton steps), ``ItemKNN`` needs nothing (it scores straight from history).
The numerics take about 0.1 ms (ALS) and 1 ms (BPR) per member.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Self, cast

import numpy as np
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError, DataError
from recommend.models.base import CourseLearners, Factors, History, MemberState, Recommender
from recommend.models.content import (
    COLD_NEIGHBOURS,
    content_neighbour_factors,
)
from recommend.models.implicit_params import (
    check_bool,
    check_gpu,
    check_int,
    check_random_state,
    check_real,
    training_matrix,
)
from recommend.models.item_knn import ItemKNN
from recommend.models.pairwise import (
    BPR_COURSE_PAIRS,
    BPR_FOLD_IN_NEGATIVES,
    bpr_member_solve,
    course_logistic_solve,
    sample_negatives,
)

# BLAS runs single-threaded while implicit fits (its solvers parallelise themselves, and
# BLAS threads on top of theirs oversubscribe the cores: implicit warns of 10x slowdowns)
# and while a fold-in solves its tiny systems (on a loaded machine, waking BLAS threads for
# a 64 x 64 problem costs more than the problem). The limit is process-wide; the kernel's
# reference-counted switch keeps concurrent users from undoing each other's limit.
from recommend.topk import single_threaded_blas

__all__ = ["ALS", "BPR", "ItemKNN", "MemberVectors"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- member vectors


def _merge_at(n_base: int) -> int:
    """Overlay rows at which updates are folded into a new base array.

    An update copies the overlay (O(m f)); a merge copies everything (O(n f)) once every
    ``m`` updates. About ``8 sqrt(n)`` balances the two: for a million members, updates
    copy at most 2 MB and a merge (60 ms) comes once every 8000 updates.
    """
    return max(1024, 8 * math.isqrt(max(n_base, 0)))


@dataclass(frozen=True, eq=False)
class MemberVectors:
    """Member vectors that change one member at a time without disturbing readers.

    An immutable ``base`` array (from the fit, or the last merge) plus an immutable overlay
    of the members re-solved or added since: ``index`` (sorted member indices) and ``rows``
    (their vectors). ``with_vector`` returns a new object and never writes into an old one,
    so a reader that took an object keeps a consistent view however many updates follow.

    Copying the whole ``n_members x f`` array on every update would cost O(n f): 4 ms for
    100k members, 60 ms for a million. Here an update costs O(m f) for an overlay of m rows,
    and the overlay is folded into a new base once it holds ``_merge_at(n)`` rows.

    Attributes
    ----------
    base : ndarray, shape (n_base, f), float32, read-only
    index : ndarray of int64, shape (m,), sorted
    rows : ndarray, shape (m, f), float32, read-only
    """

    base: np.ndarray
    index: np.ndarray
    rows: np.ndarray

    @classmethod
    def of(cls, array: np.ndarray) -> MemberVectors:
        """Vectors with ``array`` (n, f) as the base (copied, float32) and no overlay."""
        base = np.array(array, dtype=np.float32, order="C", copy=True)
        base.setflags(write=False)
        rows = np.empty((0, base.shape[1]), dtype=np.float32)
        rows.setflags(write=False)
        return cls(base, np.empty(0, dtype=np.int64), rows)

    @property
    def n_members(self) -> int:
        last = int(self.index[-1]) + 1 if self.index.size else 0
        return max(self.base.shape[0], last)

    @cached_property
    def array(self) -> np.ndarray:
        """All vectors as one (n_members, f) float32 array, read-only (built once)."""
        if not self.index.size:
            return self.base
        out = np.zeros((self.n_members, self.base.shape[1]), dtype=np.float32)
        out[: self.base.shape[0]] = self.base
        out[self.index] = self.rows
        out.setflags(write=False)
        return out

    def gather(self, member_idx: np.ndarray) -> np.ndarray:
        """Vectors of ``member_idx`` (len,), shape (len, f), float32 (a new array)."""
        idx = np.asarray(member_idx, dtype=np.int64).reshape(-1)
        n = self.n_members
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][:5].tolist()
            raise DataError(f"member indices {bad} out of range for {n} members")
        if not self.index.size:
            return self.base[idx]
        out = np.zeros((idx.size, self.base.shape[1]), dtype=np.float32)
        in_base = idx < self.base.shape[0]
        out[in_base] = self.base[idx[in_base]]
        pos = np.minimum(np.searchsorted(self.index, idx), self.index.size - 1)
        hit = self.index[pos] == idx
        out[hit] = self.rows[pos[hit]]
        return out

    def with_vectors(self, member_idx: np.ndarray, vectors: np.ndarray) -> MemberVectors:
        """New vectors with members ``member_idx`` (B,) (unique) set to ``vectors`` (B, f),
        in one copy of the overlay; members past the end are appended."""
        idx = np.asarray(member_idx, dtype=np.int64).reshape(-1)
        new = np.asarray(vectors, dtype=np.float32).reshape(idx.size, -1)
        if idx.size == 1:
            return self.with_vector(int(idx[0]), new[0])
        keep = ~np.isin(self.index, idx)
        index = np.concatenate([self.index[keep], idx])
        rows = np.concatenate([self.rows[keep], new])
        order = np.argsort(index, kind="stable")
        index, rows = index[order], rows[order]
        if index.size >= _merge_at(self.base.shape[0]):
            return MemberVectors.of(MemberVectors(self.base, index, rows).array)
        rows.setflags(write=False)
        index.setflags(write=False)
        return MemberVectors(self.base, index, rows)

    def with_vector(self, member_idx: int, vector: np.ndarray) -> MemberVectors:
        """New vectors with member ``member_idx`` set to ``vector`` (f,); appends a member
        when ``member_idx >= n_members`` (members in between, if any, get zeros)."""
        pos = int(np.searchsorted(self.index, member_idx))
        row = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        if pos < self.index.size and self.index[pos] == member_idx:
            index = self.index
            rows = self.rows.copy()
            rows[pos] = row
        else:
            index = np.insert(self.index, pos, member_idx)
            rows = np.insert(self.rows, pos, row, axis=0)
        if index.size >= _merge_at(self.base.shape[0]):
            merged = MemberVectors(self.base, index, rows).array
            return MemberVectors.of(merged)
        rows.setflags(write=False)
        index.setflags(write=False)
        return MemberVectors(self.base, index, rows)


# --------------------------------------------------------------------------- factor models


class _FactorModel(Recommender):
    """What ``ALS`` and ``BPR`` share: factors, cold-course placement, publication of
    re-solved member vectors.

    Scoring gathers the requested members' rows from the current ``MemberVectors``, so a
    request never copies the whole member array, even right after an update; ``factors()``
    assembles the whole array (once per state) for bulk users such as batch scoring.

    Attributes
    ----------
    member_factors_ : ndarray, shape (n_members, f), float32, read-only
        One row per member, folded-in members included (new members are appended).
        Assigning an array replaces all member vectors.
    course_factors_ : ndarray, shape (n_courses, f), float32
        Cold courses placed by content (see ``content_neighbour_factors``).
    course_bias_ : ndarray, shape (n_courses,), float32, or None
    cold_courses_ : ndarray of int64, shape (n_cold,)
        Courses without training interactions.
    """

    #: Whether the model learns a per-course bias next to the factors.
    has_course_bias: ClassVar[bool] = False
    #: Whether a warm start (``fit_from``) starts members from the previous vectors too
    #: (else from implicit's small random values; the course side is what carries over).
    warm_members: ClassVar[bool] = True

    # Hyper-parameters both subclasses take in __init__.
    n_factors: int
    iterations: int
    cold_neighbours: int
    use_gpu: bool
    show_progress: bool
    random_state: int | None
    num_threads: int
    #: Factors a warm start hands to implicit (``fit_from``), ``None`` otherwise.
    _start: tuple[np.ndarray, np.ndarray] | None

    #: The member vectors, per snapshot (see ``Recommender.update``).
    _members = MemberState()
    #: Course side, per snapshot too: ingestion re-places new courses from their learners.
    course_factors_ = MemberState()
    course_bias_ = MemberState()
    #: ``XᵀX`` over all member vectors (float64, f x f), kept up to date by fold-in once a
    #: new course needed it (not saved: rebuilt from the member vectors).
    _member_gram = MemberState()
    #: Courses without training learners and their content placement (rows aligned),
    #: per snapshot: ingestion appends the catalogue rows it adds.
    cold_courses_ = MemberState()
    cold_placement_ = MemberState()
    takes_new_courses: ClassVar[bool] = True

    @property
    def member_factors_(self) -> np.ndarray:
        return self._members.array

    @member_factors_.setter
    def member_factors_(self, value: np.ndarray) -> None:
        self._members = MemberVectors.of(value)

    def factors(self) -> Factors:
        """``Factors(member_factors_, course_factors_, course_bias_)``; scores are
        ``members @ courses.T + course_bias``."""
        self.check_fitted()
        return Factors(self._members.array, self.course_factors_, self.course_bias_)

    def member_vectors(self, member_idx: np.ndarray) -> np.ndarray:
        """Rows of the requested members only: a request never assembles the whole member
        array, even right after an update."""
        self.check_fitted()
        return self._members.gather(member_idx)

    def course_vectors(self) -> tuple[np.ndarray, np.ndarray | None]:
        self.check_fitted()
        return self.course_factors_, self.course_bias_

    @classmethod
    def from_factors(
        cls,
        dataset: Dataset,
        member_factors: np.ndarray,
        course_factors: np.ndarray,
        course_bias: np.ndarray | None = None,
        **params: Any,
    ) -> Self:
        """A fitted model from factors learned elsewhere (e.g. by Spark MLlib's ALS).

        The model is finished as ``fit`` finishes it after learning: courses without
        interactions in ``dataset`` get content-placed factors (``cold_neighbours``), and
        whatever fold-in needs is prepared (ALS: ``YᵀY + λI``). So a model built from the
        factors a fit learned scores, recommends and folds in like that fitted model.

        Parameters
        ----------
        dataset
            The training data the factors were learned on: rows follow its
            ``member_ids``, columns its ``course_ids``; it becomes the model's history.
        member_factors
            Shape (n_members, f); copied as float32.
        course_factors
            Shape (n_courses, f); copied as float32 (the inputs are never modified).
        course_bias
            Shape (n_courses,), or ``None`` (ALS has no bias and refuses one).
        **params
            Hyper-parameters, as for ``__init__``; ``n_factors`` defaults to ``f``.

        Returns
        -------
        The fitted model (``is_fitted``), ready for ``recommend.save``.

        Raises
        ------
        DataError
            Factor shapes that do not match ``dataset`` or ``n_factors``, or a bias for ALS.
        """
        params.setdefault("n_factors", int(np.shape(course_factors)[-1]))
        model = cls(**params)
        members, courses, bias = model._checked_factors(
            dataset, member_factors, course_factors, course_bias
        )
        model.restore(
            member_ids=dataset.member_ids,
            course_ids=dataset.course_ids,
            dataset=dataset,
            history=History(dataset.interactions),
        )
        model._set_factors(dataset, training_matrix(dataset.interactions), members, courses, bias)
        return model

    def _checked_factors(
        self,
        dataset: Dataset,
        member_factors: np.ndarray,
        course_factors: np.ndarray,
        course_bias: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The factors as float32 arrays, shapes checked against ``dataset`` and the model."""
        owner = type(self).__name__
        members = np.asarray(member_factors, dtype=np.float32)
        courses = np.asarray(course_factors, dtype=np.float32)
        f = int(self.n_factors)
        if members.shape != (dataset.n_members, f) or courses.shape != (dataset.n_courses, f):
            raise DataError(
                f"{owner}.from_factors: member factors {members.shape} and course factors "
                f"{courses.shape}; expected ({dataset.n_members}, {f}) and "
                f"({dataset.n_courses}, {f}) for this dataset and n_factors={f}"
            )
        if course_bias is None:
            return members, courses, None
        if not self.has_course_bias:
            raise DataError(f"{owner}.from_factors: {owner} has no course bias; pass None")
        bias = np.asarray(course_bias, dtype=np.float32)
        if bias.shape != (dataset.n_courses,):
            raise DataError(
                f"{owner}.from_factors: course bias {bias.shape}; expected ({dataset.n_courses},)"
            )
        return members, courses, bias

    def _set_factors(
        self,
        dataset: Dataset,
        warm_interactions: sp.csr_matrix,
        members: np.ndarray,
        courses: np.ndarray,
        bias: np.ndarray | None,
    ) -> None:
        """The last steps of a fit: keep the factors (copies), place the cold courses,
        prepare fold-in."""
        self.member_factors_ = members
        self.course_factors_ = np.array(courses, dtype=np.float32, order="C")
        self.course_bias_ = None if bias is None else np.array(bias, dtype=np.float32, order="C")
        self._place_cold_courses(dataset, warm_interactions)
        self._prepare_fold_in()

    def _prepare_fold_in(self) -> None:
        """Precompute what ``_fold_in`` needs from the final course factors (none here)."""
        return None

    def _place_cold_courses(self, dataset: Dataset, warm_interactions: sp.csr_matrix) -> None:
        """Give courses without training interactions content-neighbour factors (and bias)."""
        cold = np.flatnonzero(warm_interactions.getnnz(axis=0) == 0).astype(np.int64)
        # The bias is placed with the factors: it is part of what a course scores.
        placement = self._content_placed(self._stacked_course_side(), cold, dataset, cold)
        self._set_course_rows(cold, placement)
        self.cold_courses_ = cold
        # Kept: a new course's learners refine this placement (ingestion), and a course
        # that loses them returns to it.
        self.cold_placement_ = placement

    def _add_courses(self, courses: np.ndarray) -> None:
        """Catalogue rows added by ingestion: placed by content as cold courses are at fit
        (the same neighbours over the longer catalogue's features), appended to the
        course side."""
        side = self._stacked_course_side()
        grown = np.vstack([side, np.zeros((courses.size, side.shape[1]), np.float32)])
        cold = np.union1d(self.cold_courses_, courses)
        placement = self._content_placed(grown, cold, self.dataset_, courses)
        factors = np.array(grown[:, : self.course_factors_.shape[1]], dtype=np.float32)
        self.course_factors_ = factors
        if self.course_bias_ is not None:
            self.course_bias_ = np.array(grown[:, -1], dtype=np.float32)
        self._set_course_rows(courses, placement)
        self.course_factors_.setflags(write=False)
        self.cold_courses_ = cold
        self.cold_placement_ = np.vstack([self.cold_placement_, placement])

    def _stacked_course_side(self) -> np.ndarray:
        """Course factors with the bias (if any) as a last column, (n_courses, f[+1])."""
        if self.course_bias_ is None:
            return np.asarray(self.course_factors_, dtype=np.float32)
        return np.hstack([self.course_factors_, self.course_bias_[:, None]])

    def _set_course_rows(self, courses: np.ndarray, rows: np.ndarray) -> None:
        """Set the factors (and bias, the last column) of ``courses`` from ``rows``
        (in place: arrays a fit or ``_add_courses`` just built)."""
        f = self.course_factors_.shape[1]
        self.course_factors_[courses] = rows[:, :f]
        if self.course_bias_ is not None:
            self.course_bias_[courses] = rows[:, -1]

    def _content_placed(
        self, side: np.ndarray, cold: np.ndarray, dataset: Dataset, courses: np.ndarray
    ) -> np.ndarray:
        """Content placement of ``courses`` (cold ones): the weighted mean of the factor
        rows (and bias) of their warm content neighbours, zero for a course without
        features in common with any warm course (scored 0 for everyone: neither promoted
        nor buried). (len(courses), f[+1]) float32."""
        out = np.zeros((courses.size, side.shape[1]), dtype=np.float32)
        features = dataset.course_features
        if courses.size == 0 or features is None or len(features) == 0 or not self.cold_neighbours:
            if courses.size:
                log.info(
                    "%s: %d cold course(s) get zero factors (no course features to place them by)",
                    self.name,
                    courses.size,
                )
            return out
        placed, rows = content_neighbour_factors(
            side, cold, features.matrix, self.cold_neighbours, only=courses
        )
        out[np.searchsorted(courses, placed)] = rows
        log.info(
            "%s: %d cold course(s) placed by content, %d without features left at zero",
            self.name,
            placed.size,
            courses.size - placed.size,
        )
        return out

    def _publish_member(self, member_idx: int, vector: np.ndarray) -> None:
        """Set one member's vector (staged for the snapshot ``update`` publishes); readers
        holding the old snapshot are not disturbed."""
        self._publish_members(np.array([member_idx], dtype=np.int64), vector.reshape(1, -1))

    def _publish_members(self, member_idx: np.ndarray, vectors: np.ndarray) -> None:
        """Set several members' vectors (B, f) in one new ``MemberVectors`` (and the member
        Gram matrix, when kept, by the difference of old and new rows)."""
        members = self._members
        try:
            gram = self._member_gram
        except AttributeError:
            gram = None
        if gram is not None:
            old = np.zeros_like(vectors, dtype=np.float64)
            known = member_idx < members.n_members
            old[known] = members.gather(member_idx[known])
            new = vectors.astype(np.float64)
            self._member_gram = gram + new.T @ new - old.T @ old
        self._members = members.with_vectors(member_idx, vectors)

    def _solve_member(self, member_idx: int, courses: np.ndarray, values: np.ndarray) -> np.ndarray:
        """One member's vector (f,) float32 from their history row (its course indices and
        confidences), course side fixed."""
        raise NotImplementedError

    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        csr = sp.csr_matrix(row)
        self._publish_member(member_idx, self._solve_member(member_idx, csr.indices, csr.data))

    def _fold_in_members(self, member_idx: np.ndarray, rows: sp.csr_matrix) -> None:
        f = self.course_factors_.shape[1]
        vectors = np.zeros((member_idx.size, f), dtype=np.float32)
        with single_threaded_blas():
            for k, member in enumerate(member_idx.tolist()):
                at = slice(rows.indptr[k], rows.indptr[k + 1])
                vectors[k] = self._solve_member(int(member), rows.indices[at], rows.data[at])
        self._publish_members(member_idx, vectors)

    # ------------------------------------------------------------------ new courses
    def _fold_in_courses(self, learners: Mapping[int, CourseLearners], reach: np.ndarray) -> None:
        """Give each new course the batch touched a vector solved from its learners against
        the member vectors (``_solve_course``); a course that lost all its learners goes
        back to its content placement. One copy of the course side per batch."""
        if not learners:
            return
        factors = self.course_factors_.copy()
        bias = None if self.course_bias_ is None else self.course_bias_.copy()
        gram = self._gram_of_members()
        with single_threaded_blas():
            for course, who in learners.items():
                prior = self._content_placement(course)
                # No learner left (a replaced history): back to the content placement.
                solved = who.members.size > 0
                vector = self._solve_course(course, who, gram, prior) if solved else prior
                factors[course] = vector[: factors.shape[1]]
                if bias is not None:
                    bias[course] = vector[-1]
        factors.setflags(write=False)
        self.course_factors_ = factors
        if bias is not None:
            bias.setflags(write=False)
            self.course_bias_ = bias

    def _gram_of_members(self) -> np.ndarray:
        try:
            gram = self._member_gram
        except AttributeError:
            gram = None
        if gram is None:
            x = self._members.array.astype(np.float64)
            gram = x.T @ x
            self._member_gram = gram
        return cast("np.ndarray", gram)

    def _content_placement(self, course: int) -> np.ndarray:
        """The course's vector (and bias, last) as placed by content at fit."""
        cold = getattr(self, "cold_courses_", None)
        placement = getattr(self, "cold_placement_", None)
        width = self.course_factors_.shape[1] + (self.course_bias_ is not None)
        if cold is not None and placement is not None and placement.shape[1] == width:
            pos = int(np.searchsorted(cold, course))
            if pos < cold.size and cold[pos] == course:
                return np.asarray(placement[pos], dtype=np.float64)
        return np.zeros(width, dtype=np.float64)

    def _solve_course(
        self, course: int, learners: CourseLearners, gram: np.ndarray, prior: np.ndarray
    ) -> np.ndarray:
        """A new course's vector (and bias, last) from its learners; (f[+1],) float64."""
        raise NotImplementedError

    def _train(self, make: Callable[[], Any], user_items: sp.csr_matrix) -> Any:
        """Build and fit an implicit model with BLAS limited to one thread; on the CPU."""
        log.info(
            "%s: %d members x %d courses, %d interactions, n_factors=%d, iterations=%d",
            self.name,
            *user_items.shape,
            user_items.nnz,
            self.n_factors,
            self.iterations,
        )
        with single_threaded_blas():
            # Built inside the limit too: implicit checks the BLAS threads when built.
            model = make()
            start = self.__dict__.get("_start")
            if start is not None:
                # A warm start: implicit initialises only factors that are not set.
                model.user_factors, model.item_factors = start
            model.fit(user_items, show_progress=bool(self.show_progress))
        return model.to_cpu() if self.use_gpu else model

    def fit_from(self, previous: Recommender, dataset: Dataset) -> Self:
        """Fit on ``dataset`` starting from ``previous``'s factors: a warm-started refit.

        The nightly refit of a served model: courses ``previous`` knows (by external id;
        new courses placed by ``ingest`` included, as of its latest snapshot) start from
        their vectors (and bias), members too where ``warm_members`` (ALS; its first
        half-sweep re-solves them from the courses anyway), the others from implicit's
        usual small random values; then ``iterations`` sweeps (ALS) or epochs (BPR) run as
        in a cold fit. Started near the optimum, a few iterations reach the
        quality of a cold fit (``experiments/benchmarks/warm_start.py``). ``previous`` is
        not changed, so it serves until the new model replaces it.

        Raises
        ------
        ConfigError
            ``previous`` is not a fitted model of this class with the same ``n_factors``,
            or ``use_gpu`` is set (warm starts run on the CPU).
        """
        owner = type(self).__name__
        if type(previous) is not type(self) or not previous.is_fitted:
            raise ConfigError(
                f"{owner}.fit_from: expected a fitted {owner} to start from, got "
                f"{type(previous).__name__}{'' if previous.is_fitted else ' (not fitted)'}"
            )
        f = int(self.n_factors)
        if int(getattr(previous, "n_factors", -1)) != f:
            raise ConfigError(
                f"{owner}.fit_from: the previous model has n_factors="
                f"{getattr(previous, 'n_factors', None)}, this one {f}; expected the same"
            )
        if self.use_gpu:
            raise ConfigError(f"{owner}.fit_from: warm starts run on the CPU; use_gpu=False")
        self._start = self._start_factors(previous, dataset)
        try:
            return self.fit(dataset)
        finally:
            self._start = None

    def _start_factors(
        self, previous: Recommender, dataset: Dataset
    ) -> tuple[np.ndarray, np.ndarray]:
        """implicit's (user, item) factors to start from: ``previous``'s course vectors
        (and member vectors, where ``warm_members``) where it knows the course (member),
        small random values elsewhere; BPR's bias column (1 for users, the bias for items)
        appended."""
        rng = np.random.default_rng(self.random_state)
        f = int(self.n_factors)
        with previous.reading():
            members = previous.member_ids_.to_index(dataset.member_ids.external_ids, unknown="mask")
            courses = previous.course_ids_.to_index(dataset.course_ids.external_ids, unknown="mask")
            side = previous.course_vectors()
            assert side is not None  # a factor model
            users = rng.random((members.size, f), dtype=np.float32) * 0.01
            items = rng.random((courses.size, f), dtype=np.float32) * 0.01
            if self.warm_members:
                users[members >= 0] = previous.member_vectors(members[members >= 0])
            items[courses >= 0] = side[0][courses[courses >= 0]]
            if not self.has_course_bias:
                return users, items
            bias = np.zeros(courses.size, dtype=np.float32)
            if side[1] is not None:
                bias[courses >= 0] = side[1][courses[courses >= 0]]
        ones = np.ones((users.shape[0], 1), dtype=np.float32)
        return np.hstack([users, ones]), np.hstack([items, bias[:, None]])

    def _fitted_factors(
        self, model: Any, n_members: int, n_courses: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """implicit's (CPU) user and item factors as float32 arrays, shapes checked."""
        users = np.asarray(model.user_factors, dtype=np.float32)
        items = np.asarray(model.item_factors, dtype=np.float32)
        if users.shape[0] != n_members or items.shape[0] != n_courses:
            raise RuntimeError(
                f"implicit returned {users.shape[0]} user and {items.shape[0]} item factor rows "
                f"for {n_members} members x {n_courses} courses"
            )
        if not (np.isfinite(users).all() and np.isfinite(items).all()):
            raise ConfigError(
                f"{type(self).__name__} diverged (non-finite factors): lower the learning rate "
                "or raise regularization"
            )
        return users, items

    def _check_common(self, owner: str) -> None:
        """The checks of the parameters every implicit-backed model has (with the number
        of factors, which each model checks first)."""
        check_int(owner, "iterations", self.iterations, 1)
        check_int(owner, "cold_neighbours", self.cold_neighbours, 0)
        check_random_state(owner, self.random_state)
        check_bool(owner, "use_gpu", self.use_gpu)
        check_bool(owner, "show_progress", self.show_progress)
        check_int(owner, "num_threads", self.num_threads, 0)


class ALS(_FactorModel):
    """Implicit-feedback matrix factorisation by alternating least squares (Hu, Koren &
    Volinsky 2008), fitted with ``implicit``.

    Confidence: implicit takes ``c_ui = alpha * interactions[u, i]`` for a studied course
    (preference ``p_ui = 1``) and ``c_ui = 1``, ``p_ui = 0`` for every other course, and
    minimises ``sum c_ui (p_ui - x_u·y_i)^2 + regularization (|X|^2 + |Y|^2)``. So ``alpha``
    multiplies the weighted confidences of ``Dataset.interactions`` as they are; unlike
    the paper's ``1 + alpha r``, a studied course whose ``alpha * r`` is below 1 weighs
    less in the loss than an unstudied one (it still pulls towards ``p = 1``).

    Parameters
    ----------
    n_factors
        Dimension of member and course vectors (``factors`` in implicit; here that name is
        the ``factors()`` method of every model).
    regularization
        L2 penalty ``λ`` (> 0: it keeps every fold-in solve well posed).
    alpha
        Multiplier of the interaction confidences (see above).
    iterations
        ALS sweeps (each solves all members, then all courses).
    cold_neighbours
        Warm courses averaged into a cold course's factors (0: cold courses score 0).
    random_state
        Seed of the initial factors (``None``: not repeatable).
    use_gpu
        Fit with implicit's CUDA implementation (factors come back to the CPU).
    show_progress
        Show implicit's progress bar while fitting.
    num_threads
        Threads of implicit's solver; 0 means all cores.

    Attributes
    ----------
    member_factors_ : ndarray, shape (n_members, n_factors), float32
    course_factors_ : ndarray, shape (n_courses, n_factors), float32
    course_bias_ : None
    cold_courses_ : ndarray of int64
    """

    name: ClassVar[str] = "als"

    # Fold-in state, derived from the course factors: YᵀY + λI and the warm-course mask.
    _gram: np.ndarray | None
    _warm: np.ndarray

    def __init__(
        self,
        n_factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        cold_neighbours: int = COLD_NEIGHBOURS,
        random_state: int | None = 0,
        use_gpu: bool = False,
        show_progress: bool = False,
        num_threads: int = 0,
    ) -> None:
        self.n_factors = n_factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cold_neighbours = cold_neighbours
        self.random_state = random_state
        self.use_gpu = use_gpu
        self.show_progress = show_progress
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int(owner, "n_factors", self.n_factors, 1)
        check_real(owner, "regularization", self.regularization, positive=True)
        check_real(owner, "alpha", self.alpha, positive=True)
        self._check_common(owner)

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        check_gpu("ALS", bool(self.use_gpu))
        from implicit.als import AlternatingLeastSquares

        user_items = training_matrix(dataset.interactions)
        model = self._train(
            lambda: AlternatingLeastSquares(
                factors=int(self.n_factors),
                regularization=float(self.regularization),
                alpha=float(self.alpha),
                dtype=np.float32,
                iterations=int(self.iterations),
                use_gpu=bool(self.use_gpu),
                num_threads=int(self.num_threads),
                random_state=self.random_state,
            ),
            user_items,
        )
        members, courses = self._fitted_factors(model, *user_items.shape)
        self._set_factors(dataset, user_items, members, courses, None)

    def _prepare_fold_in(self) -> None:
        self._gram = None
        self._gram_matrix()  # ready before the first update

    def _gram_matrix(self) -> np.ndarray:
        """``YᵀY + λI`` over the warm courses (float64, f x f), computed once.

        Cold courses had zero factors while the members were fitted (no interactions, so
        implicit's solver zeroes them), so they are not in the baseline of fold-in either:
        a folded-in member comes out as the fit would have left them.
        """
        gram = getattr(self, "_gram", None)
        if gram is None:
            if not hasattr(self, "cold_courses_"):  # e.g. a model rebuilt from its arrays
                counts = self.history_.base.getnnz(axis=0)
                self.cold_courses_ = np.flatnonzero(counts == 0).astype(np.int64)
            warm = np.ones(self.n_courses, dtype=bool)
            warm[self.cold_courses_] = False
            self._warm = warm
            y = self.course_factors_[warm].astype(np.float64)
            gram = y.T @ y + float(self.regularization) * np.eye(y.shape[1])
            self._gram = gram
        return gram

    def _solve_member(self, member_idx: int, courses: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Re-solve one member's vector exactly, course factors fixed (Hu et al., eq. 4).

        ``x_u = (YᵀY + Yᵀ(C_u − I)Y + λI)⁻¹ Yᵀ C_u p_u`` with ``C_u`` the member's
        confidences (``alpha * row``; a negative entry is a dislike, ``p = 0``, as in
        implicit). ``YᵀY + λI`` is precomputed, so the cost is ``O(n_u f^2 + f^3)``: about
        0.1 ms for a 64-factor model. A course the member studied that was cold at fit
        (e.g. a new upload) counts with its content-placed factors. An empty history gives
        the zero vector, as implicit gives a member without interactions.
        """
        gram = self._gram_matrix()
        courses = courses.astype(np.int64)
        value = values.astype(np.float64) * float(self.alpha)
        keep = value != 0
        courses, value = courses[keep], value[keep]
        vector = np.zeros(gram.shape[0], dtype=np.float32)
        if courses.size:
            confidence = np.abs(value)
            # Warm courses are already in YᵀY with confidence 1; cold ones are not.
            # Courses past the fit's catalogue (ingested catalogue rows) are cold too.
            warm = self._warm
            baseline = np.zeros(courses.size, dtype=np.float64)
            inside = courses < warm.size
            baseline[inside] = warm[courses[inside]]
            y = self.course_factors_[courses].astype(np.float64)
            with single_threaded_blas():
                a = gram + (y.T * (confidence - baseline)) @ y
                b = y.T @ np.where(value > 0, confidence, 0.0)
                vector = np.linalg.solve(a, b).astype(np.float32)
        return vector

    def _solve_course(
        self, course: int, learners: CourseLearners, gram: np.ndarray, prior: np.ndarray
    ) -> np.ndarray:
        """The course's vector by ALS's own course step, member vectors fixed (exact least
        squares): ``y = (XᵀX + Xᵀ(C − I)X + λI)⁻¹ (Xᵀ C p + λ y₀)`` over its learners, with
        the content placement ``y₀`` as the point the penalty pulls towards (ALS pulls
        towards 0; with few learners the placement is the better guess)."""
        value = learners.values.astype(np.float64) * float(self.alpha)
        confidence = np.abs(value)
        x = self._members.gather(learners.members).astype(np.float64)
        lam = float(self.regularization)
        a = gram + (x.T * (confidence - 1.0)) @ x + lam * np.eye(gram.shape[0])
        b = x.T @ np.where(value > 0, confidence, 0.0) + lam * prior
        return np.linalg.solve(a, b)


class BPR(_FactorModel):
    """Bayesian personalised ranking (Rendle et al. 2009), fitted with ``implicit``.

    BPR learns from which courses a member studied, not how much (confidences only mark
    a cell as studied). implicit learns a course bias next to the factors; ``factors()``
    returns it as ``course_bias``, so ``members @ courses.T + course_bias`` are implicit's
    own scores.

    Fold-in maximises the BPR objective of one member with the course factors fixed:
    ``mean_(i,j) log σ(s_i − s_j) − (regularization / 2)|x|^2`` over the member's courses
    ``i`` and ``BPR_FOLD_IN_NEGATIVES`` courses ``j`` drawn uniformly outside the history,
    seeded by ``random_state`` and the member index so it is repeatable. The problem is
    concave in the member vector: a few damped Newton steps solve it in about a
    millisecond. (Uniform negatives ranked held-out courses better than implicit's
    popularity-weighted ones on the simulated sample: recall@10 0.19 against 0.16; the
    fitted vectors scored 0.16.)

    Parameters
    ----------
    n_factors
        Dimension of member and course vectors (the bias is extra).
    learning_rate
        SGD step size.
    regularization
        L2 penalty per SGD update.
    iterations
        Epochs over the interactions.
    cold_neighbours
        Warm courses averaged into a cold course's factors and bias (0: cold courses
        score 0).
    random_state
        Seed (``None``: not repeatable). With ``num_threads != 1`` implicit's SGD updates
        race (Hogwild), so fits repeat only with ``num_threads=1``.
    use_gpu, show_progress, num_threads
        As for ``ALS``.

    Attributes
    ----------
    member_factors_ : ndarray, shape (n_members, n_factors), float32
    course_factors_ : ndarray, shape (n_courses, n_factors), float32
    course_bias_ : ndarray, shape (n_courses,), float32
    cold_courses_ : ndarray of int64
    """

    name: ClassVar[str] = "bpr"
    has_course_bias: ClassVar[bool] = True
    # A warm start keeps the course side only: vectors folded in since the fit (Newton
    # solutions, on another scale than SGD's) slowed the refit down on the simulator
    # (NDCG@10 after 10 epochs 0.108 from them, 0.120 from fresh members; cold 100
    # epochs 0.118), and SGD relearns members fast against trained courses.
    warm_members: ClassVar[bool] = False

    def __init__(
        self,
        n_factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        cold_neighbours: int = COLD_NEIGHBOURS,
        random_state: int | None = 0,
        use_gpu: bool = False,
        show_progress: bool = False,
        num_threads: int = 0,
    ) -> None:
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.cold_neighbours = cold_neighbours
        self.random_state = random_state
        self.use_gpu = use_gpu
        self.show_progress = show_progress
        self.num_threads = num_threads
        self._check_params()

    def _check_params(self) -> None:
        owner = type(self).__name__
        check_int(owner, "n_factors", self.n_factors, 1)
        check_real(owner, "learning_rate", self.learning_rate, positive=True)
        check_real(owner, "regularization", self.regularization, positive=True)
        self._check_common(owner)

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        check_gpu("BPR", bool(self.use_gpu))
        from implicit.bpr import BayesianPersonalizedRanking

        user_items = training_matrix(dataset.interactions)
        model = self._train(
            lambda: BayesianPersonalizedRanking(
                factors=int(self.n_factors),
                learning_rate=float(self.learning_rate),
                regularization=float(self.regularization),
                dtype=np.float32,
                iterations=int(self.iterations),
                use_gpu=bool(self.use_gpu),
                num_threads=int(self.num_threads),
                random_state=self.random_state,
            ),
            user_items,
        )
        users, items = self._fitted_factors(model, *user_items.shape)
        f = int(self.n_factors)
        if users.shape[1] != f + 1 or items.shape[1] != f + 1:
            raise RuntimeError(
                f"implicit BPR returned {users.shape[1]}/{items.shape[1]} columns; expected "
                f"{f} factors plus a bias column"
            )
        # implicit keeps the bias as a last column: 1 for every user, the bias for items.
        self._set_factors(dataset, user_items, users[:, :f], items[:, :f], items[:, f])

    def _solve_member(self, member_idx: int, courses: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Re-solve one member's vector by the BPR objective, course factors fixed."""
        positives = np.unique(courses[values > 0]).astype(np.int64)
        vector = np.zeros(self.course_factors_.shape[1], dtype=np.float32)
        if positives.size:
            seed = [0 if self.random_state is None else int(self.random_state), member_idx]
            negatives = sample_negatives(
                np.random.default_rng(seed), self.n_courses, positives, BPR_FOLD_IN_NEGATIVES
            )
            if negatives.size:
                with single_threaded_blas():
                    vector = bpr_member_solve(
                        self.course_factors_,
                        self.course_bias_,
                        positives,
                        negatives,
                        float(self.regularization),
                    )
        return vector

    def _solve_course(
        self, course: int, learners: CourseLearners, gram: np.ndarray, prior: np.ndarray
    ) -> np.ndarray:
        """The course's vector and bias by BPR's objective for one course, member vectors
        and the other courses fixed: its learners should score it above courses drawn at
        random, members drawn at random (not its learners) should score one of their own
        courses above it. A few Newton steps from the content placement, which the
        penalty pulls towards."""
        seed = [0 if self.random_state is None else int(self.random_state), course]
        rng = np.random.default_rng(seed)
        y, b = self.course_factors_, self.course_bias_
        bias = np.zeros(self.n_courses) if b is None else b.astype(np.float64)
        members = learners.members[learners.values > 0]
        x_pos = self._members.gather(members).astype(np.float64)
        negatives = rng.integers(0, self.n_courses, size=(members.size, BPR_COURSE_PAIRS))
        off_pos = -(np.einsum("uf,ujf->uj", x_pos, y[negatives]) + bias[negatives])
        base = self.history_.base
        others = rng.integers(0, base.shape[0], size=BPR_FOLD_IN_NEGATIVES)
        others = others[(np.diff(base.indptr)[others] > 0) & ~np.isin(others, learners.members)]
        lo, hi = base.indptr[others], base.indptr[others + 1]
        picks = base.indices[lo + (rng.random(others.size) * (hi - lo)).astype(np.int64)]
        x_neg = self._members.gather(others).astype(np.float64)
        off_neg = np.einsum("uf,uf->u", x_neg, y[picks]) + bias[picks]
        return course_logistic_solve(
            x_pos, off_pos, x_neg, off_neg, prior, float(self.regularization)
        )
