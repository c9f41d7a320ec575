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
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_expit

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError, DataError
from recommend.models.base import Factors, History, MemberState, Recommender
from recommend.models.content import (
    COLD_NEIGHBOURS,
    content_neighbour_factors,
    place_cold_columns,
)

# BLAS runs single-threaded while implicit fits (its solvers parallelise themselves, and
# BLAS threads on top of theirs oversubscribe the cores: implicit warns of 10x slowdowns)
# and while a fold-in solves its tiny systems (on a loaded machine, waking BLAS threads for
# a 64 x 64 problem costs more than the problem). The limit is process-wide; the kernel's
# reference-counted switch keeps concurrent users from undoing each other's limit.
from recommend.topk import single_threaded_blas

__all__ = ["ALS", "BPR", "ItemKNN", "MemberVectors"]

log = logging.getLogger(__name__)

#: Negatives drawn (uniformly, outside the history) for a BPR fold-in.
BPR_FOLD_IN_NEGATIVES = 128
#: Newton iterations of the BPR fold-in: a small concave problem, and a ranking does not
#: need the optimum to many digits (more steps changed recall@10 by < 0.005 on the sample).
BPR_FOLD_IN_ITERATIONS = 4


# --------------------------------------------------------------------------- helpers


def _training_matrix(interactions: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """The interactions as implicit wants them: ``csr_matrix``, float32, sorted indices,
    no stored zeros (implicit would read a stored 0 as a dislike).

    Copies only when the input is not already in that form, and never modifies it
    (implicit's BPR sorts the indices of its input in place).
    """
    x = interactions
    ready = (
        isinstance(x, sp.csr_matrix)
        and x.dtype == np.float32
        and x.has_sorted_indices
        and (x.data != 0).all()
    )
    if ready:
        return x
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    x.eliminate_zeros()
    x.sort_indices()
    return x


def _check_int(owner: str, name: str, value: object, minimum: int) -> None:
    ok = isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= minimum
    if not ok:
        raise ConfigError(f"{owner}.{name}={value!r}; expected an integer >= {minimum}")


def _check_real(owner: str, name: str, value: object, *, positive: bool) -> None:
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
        and (float(value) > 0 if positive else float(value) >= 0)
    )
    if not ok:
        raise ConfigError(
            f"{owner}.{name}={value!r}; expected a finite number {'> 0' if positive else '>= 0'}"
        )


def _check_bool(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool | np.bool_):
        raise ConfigError(f"{owner}.{name}={value!r}; expected True or False")


def _check_random_state(owner: str, value: object) -> None:
    if value is not None:
        _check_int(owner, "random_state", value, 0)


def _check_gpu(owner: str, use_gpu: bool) -> None:
    if use_gpu:
        import implicit.gpu

        if not implicit.gpu.HAS_CUDA:
            raise ConfigError(
                f"{owner}(use_gpu=True) but implicit has no CUDA support here (no GPU, or "
                "implicit built without CUDA); use use_gpu=False"
            )


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

    # Hyper-parameters both subclasses take in __init__.
    n_factors: int
    iterations: int
    cold_neighbours: int
    use_gpu: bool
    show_progress: bool

    #: The member vectors, per snapshot (see ``Recommender.update``).
    _members = MemberState()
    course_factors_: np.ndarray
    course_bias_: np.ndarray | None
    cold_courses_: np.ndarray

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
        model._set_factors(dataset, _training_matrix(dataset.interactions), members, courses, bias)
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
        self.cold_courses_ = np.flatnonzero(warm_interactions.getnnz(axis=0) == 0).astype(np.int64)
        if self.cold_courses_.size == 0:
            return
        features = dataset.course_features
        if features is None or len(features) == 0 or self.cold_neighbours == 0:
            # Without features there is nothing to place a cold course by: zero factors
            # (and bias) score it 0 for everyone, neither promoted nor buried.
            self.course_factors_[self.cold_courses_] = 0.0
            if self.course_bias_ is not None:
                self.course_bias_[self.cold_courses_] = 0.0
            log.info(
                "%s: %d cold course(s) get zero factors (no course features to place them by)",
                self.name,
                self.cold_courses_.size,
            )
            return
        # The bias is placed with the factors: it is part of what a course scores.
        stacked = self.course_factors_
        if self.course_bias_ is not None:
            stacked = np.hstack([stacked, self.course_bias_[:, None]])
        placed, rows = content_neighbour_factors(
            stacked, self.cold_courses_, features.matrix, self.cold_neighbours
        )
        unplaced = np.setdiff1d(self.cold_courses_, placed)
        self.course_factors_[unplaced] = 0.0
        self.course_factors_[placed] = rows[:, : self.course_factors_.shape[1]]
        if self.course_bias_ is not None:
            self.course_bias_[unplaced] = 0.0
            self.course_bias_[placed] = rows[:, -1]
        log.info(
            "%s: %d cold course(s) placed by content, %d without features left at zero",
            self.name,
            placed.size,
            unplaced.size,
        )

    def _publish_member(self, member_idx: int, vector: np.ndarray) -> None:
        """Set one member's vector (staged for the snapshot ``update`` publishes); readers
        holding the old snapshot are not disturbed."""
        self._members = self._members.with_vector(member_idx, vector)

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
            model.fit(user_items, show_progress=bool(self.show_progress))
        return model.to_cpu() if self.use_gpu else model

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
        _check_int(owner, "n_factors", self.n_factors, 1)
        _check_real(owner, "regularization", self.regularization, positive=True)
        _check_real(owner, "alpha", self.alpha, positive=True)
        _check_int(owner, "iterations", self.iterations, 1)
        _check_int(owner, "cold_neighbours", self.cold_neighbours, 0)
        _check_random_state(owner, self.random_state)
        _check_bool(owner, "use_gpu", self.use_gpu)
        _check_bool(owner, "show_progress", self.show_progress)
        _check_int(owner, "num_threads", self.num_threads, 0)

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        _check_gpu("ALS", bool(self.use_gpu))
        from implicit.als import AlternatingLeastSquares

        user_items = _training_matrix(dataset.interactions)
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

    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        """Re-solve one member's vector exactly, course factors fixed (Hu et al., eq. 4).

        ``x_u = (YᵀY + Yᵀ(C_u − I)Y + λI)⁻¹ Yᵀ C_u p_u`` with ``C_u`` the member's
        confidences (``alpha * row``; a negative entry is a dislike, ``p = 0``, as in
        implicit). ``YᵀY + λI`` is precomputed, so the cost is ``O(n_u f^2 + f^3)``: about
        0.1 ms for a 64-factor model. A course the member studied that was cold at fit
        (e.g. a new upload) counts with its content-placed factors. An empty history gives
        the zero vector, as implicit gives a member without interactions.
        """
        gram = self._gram_matrix()
        csr = sp.csr_matrix(row)
        courses = csr.indices.astype(np.int64)
        value = csr.data.astype(np.float64) * float(self.alpha)
        keep = value != 0
        courses, value = courses[keep], value[keep]
        vector = np.zeros(gram.shape[0], dtype=np.float32)
        if courses.size:
            confidence = np.abs(value)
            # Warm courses are already in YᵀY with confidence 1; cold ones are not.
            baseline = self._warm[courses].astype(np.float64)
            y = self.course_factors_[courses].astype(np.float64)
            with single_threaded_blas():
                a = gram + (y.T * (confidence - baseline)) @ y
                b = y.T @ np.where(value > 0, confidence, 0.0)
                vector = np.linalg.solve(a, b).astype(np.float32)
        self._publish_member(member_idx, vector)


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
        _check_int(owner, "n_factors", self.n_factors, 1)
        _check_real(owner, "learning_rate", self.learning_rate, positive=True)
        _check_real(owner, "regularization", self.regularization, positive=True)
        _check_int(owner, "iterations", self.iterations, 1)
        _check_int(owner, "cold_neighbours", self.cold_neighbours, 0)
        _check_random_state(owner, self.random_state)
        _check_bool(owner, "use_gpu", self.use_gpu)
        _check_bool(owner, "show_progress", self.show_progress)
        _check_int(owner, "num_threads", self.num_threads, 0)

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        _check_gpu("BPR", bool(self.use_gpu))
        from implicit.bpr import BayesianPersonalizedRanking

        user_items = _training_matrix(dataset.interactions)
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

    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        """Re-solve one member's vector by the BPR objective, course factors fixed."""
        csr = sp.csr_matrix(row)
        positives = np.unique(csr.indices[csr.data > 0]).astype(np.int64)
        vector = np.zeros(self.course_factors_.shape[1], dtype=np.float32)
        if positives.size:
            seed = [0 if self.random_state is None else int(self.random_state), member_idx]
            negatives = _sample_negatives(
                np.random.default_rng(seed), self.n_courses, positives, BPR_FOLD_IN_NEGATIVES
            )
            if negatives.size:
                with single_threaded_blas():
                    vector = _bpr_member_solve(
                        self.course_factors_,
                        self.course_bias_,
                        positives,
                        negatives,
                        float(self.regularization),
                    )
        self._publish_member(member_idx, vector)


def _sample_negatives(
    rng: np.random.Generator, n_courses: int, positives: np.ndarray, n: int
) -> np.ndarray:
    """About ``n`` course indices drawn uniformly outside ``positives`` (sorted, unique),
    int64; all of them when there are no more than ``n``."""
    if n_courses - positives.size <= n:
        return np.setdiff1d(np.arange(n_courses, dtype=np.int64), positives)
    draws = rng.integers(0, n_courses, size=n + positives.size)
    return draws[~np.isin(draws, positives)][:n].astype(np.int64)


def _bpr_member_solve(
    course_factors: np.ndarray,
    course_bias: np.ndarray | None,
    positives: np.ndarray,
    negatives: np.ndarray,
    l2: float,
) -> np.ndarray:
    """Member vector maximising ``mean_(i,j) log σ(s_i − s_j) − (l2/2)|x|^2``.

    ``s = Y x + b``; ``i`` over ``positives`` (P,), ``j`` over ``negatives`` (N,), all
    pairs. Damped Newton from ``x = 0``: the gradient and Hessian need only the (P, N)
    matrix of pair terms, never the (P*N, f) pair differences. Returns (f,) float32.
    """
    qp = course_factors[positives].astype(np.float64)
    qn = course_factors[negatives].astype(np.float64)
    f = qp.shape[1]
    bias = np.zeros(0) if course_bias is None else course_bias.astype(np.float64)
    bp = bias[positives] if bias.size else np.zeros(positives.size)
    bn = bias[negatives] if bias.size else np.zeros(negatives.size)
    pairs = float(positives.size * negatives.size)

    def loss(x: np.ndarray) -> tuple[float, np.ndarray]:
        margin = (qp @ x + bp)[:, None] - (qn @ x + bn)[None, :]
        return float(-log_expit(margin).sum() / pairs + 0.5 * l2 * x @ x), margin

    x = np.zeros(f)
    current, margin = loss(x)
    for _ in range(BPR_FOLD_IN_ITERATIONS):
        g = expit(-margin)  # -d loss / d margin, per pair
        grad = -(qp.T @ g.sum(axis=1) - qn.T @ g.sum(axis=0)) / pairs + l2 * x
        h = g * (1.0 - g)  # d2 loss / d margin2, per pair
        cross = qp.T @ h @ qn
        hess = (
            (qp.T * h.sum(axis=1)) @ qp + (qn.T * h.sum(axis=0)) @ qn - cross - cross.T
        ) / pairs + l2 * np.eye(f)
        step = np.linalg.solve(hess, grad)
        # Halve a full Newton step that overshoots (far from the optimum).
        for _ in range(20):
            value, candidate_margin = loss(x - step)
            if value <= current:
                break
            step = step / 2
        else:
            break
        converged = current - value < 1e-9 * max(1.0, abs(current))
        x, current, margin = x - step, value, candidate_margin
        if converged:
            break
    return x.astype(np.float32)


# --------------------------------------------------------------------------- item-kNN


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
        _check_int(owner, "k", self.k, 1)
        _check_real(owner, "bm25_k1", self.bm25_k1, positive=True)
        _check_real(owner, "bm25_b", self.bm25_b, positive=False)
        if self.bm25_b > 1:
            raise ConfigError(f"{owner}.bm25_b={self.bm25_b!r}; expected a number in [0, 1]")
        _check_int(owner, "cold_neighbours", self.cold_neighbours, 0)
        _check_bool(owner, "show_progress", self.show_progress)
        _check_int(owner, "num_threads", self.num_threads, 0)

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight, normalize

        user_items = _training_matrix(dataset.interactions)
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
        self.similarity_: sp.csr_matrix = similarity

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
