"""Course x course models that score ``history @ B``, beside EASE: RP3beta, EDLAE and a
fusion of them whose weights are learned on validation data.

- ``RP3beta`` (Paudel, Christoffel, Neumann, Bernstein, "Updatable, accurate, diverse, and
  scalable recommendations for interactive applications", TiiS 2016): a three-step random
  walk member -> course -> member -> course on the bipartite graph, with the transition
  probabilities raised to ``alpha`` and the arrival course's weight divided by its
  popularity to the power ``beta`` (which lifts the long tail).
- ``EDLAE`` (Steck, "Autoencoders that don't overfit towards the identity", NeurIPS 2020):
  the full-rank linear autoencoder trained with dropout of probability ``p``, closed form.
  Dropout acts as the per-course L2 penalty ``Λ = p/(1-p) · diag(XᵀX) + λI`` (popular
  courses are penalised more). The emphasised variant (``variant="edlae"``) weighs the
  dropped-out entries only, which removes the identity: its solution is EASE's formula with
  that ``Λ`` (zero diagonal). ``variant="dlae"`` is the plain denoising solution
  ``B = (XᵀX + Λ)⁻¹ XᵀX = I - (XᵀX + Λ)⁻¹ Λ``, whose diagonal the scoring ignores (a member's
  own courses are excluded from menus anyway).
  ``popularity_power`` divides each arrival course's column by its popularity to that
  power (as RP3beta's ``beta`` does), which lifts the long tail.
- ``GFCF`` (Shen et al., "How powerful is graph convolution for recommendation?", CIKM
  2021): a graph filter on the degree-normalised course x course matrix
  ``P̃ = R̃ᵀR̃`` (``R̃ = D_U^{-1/2} X D_I^{-1/2}``) plus an ideal low-pass filter built
  from ``P̃``'s top eigenvectors; no training beyond one Gram matrix and a partial
  eigendecomposition.
- ``Fusion``: a weighted sum of EASE, RP3beta, EDLAE and GF-CF scores, each scaled to unit
  root mean square, with the weights chosen on a validation split carved from the training
  data (a grid over the simplex, so each single model is a candidate too). All of them
  score ``history @ B``, so the fused model is one course x course matrix: it serves, folds
  in and saves exactly like EASE.

Like EASE, all of them keep no member state: a member's new events change their scores at
once (``update`` needs no solve), and artifacts store ``B_`` as an array.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import numbers
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.data.splits import RandomHoldout, TimeSplit
from recommend.errors import ConfigError
from recommend.metrics import ndcg_at_k
from recommend.models.base import Recommender
from recommend.models.content import COLD_NEIGHBOURS, place_cold_columns
from recommend.models.ease import EASE, CourseCourse, as_input, ease_weights, gram_matrix
from recommend.topk import topk_scores

__all__ = ["EDLAE", "GFCF", "Fusion", "RP3beta"]

log = logging.getLogger(__name__)


def _number(name: str, value: object, *, low: float, low_open: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    number = float(value) if ok else float("nan")  # type: ignore[arg-type]
    if not ok or not np.isfinite(number) or number < low or (low_open and number == low):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ConfigError(f"{name}={value!r}; expected a number {bound}")


def _count(name: str, value: object, *, low: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ConfigError(f"{name}={value!r}; expected an integer >= {low}")


class RP3beta(CourseCourse):
    """Random walk with popularity re-weighting (RP3beta, Paudel et al. 2016).

    ``W = (P_ci)^α (P_ic)^α`` course -> member -> course transition probabilities (rows of
    the member-course matrix normalised to sum 1, element-wise power ``alpha``), each column
    divided by the arrival course's popularity to the power ``beta``, diagonal zero; only
    the ``neighbours`` largest weights of each row are kept (0 keeps all).

    Parameters
    ----------
    alpha
        Power of the transition probabilities (1 is the plain random walk).
    beta
        Popularity penalty of the arrival course (0 is P3alpha).
    neighbours
        Kept weights per course (0: all).
    binary
        Walk on 0/1 interactions (default) instead of confidence values.
    """

    name: ClassVar[str] = "rp3beta"
    dense_copies: ClassVar[int] = 2

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 0.5,
        neighbours: int = 0,
        binary: bool = True,
        max_courses: int = 30_000,
        cold_neighbours: int = COLD_NEIGHBOURS,
    ) -> None:
        self.alpha = alpha
        self.beta = beta
        self.neighbours = neighbours
        self.binary = binary
        self.max_courses = max_courses
        self.cold_neighbours = cold_neighbours
        self._check_params()

    def _check_params(self) -> None:
        _number("alpha", self.alpha, low=0.0, low_open=True)
        _number("beta", self.beta, low=0.0)
        _count("neighbours", self.neighbours)
        super()._check_params()

    def _weights(self, x: sp.csr_matrix) -> np.ndarray:
        return rp3beta_weights(x, self.alpha, self.beta, self.neighbours)


def rp3beta_weights(x: sp.csr_matrix, alpha: float, beta: float, neighbours: int) -> np.ndarray:
    """RP3beta's course x course matrix from a member x course matrix ``x``."""
    x = sp.csr_matrix(x, dtype=np.float64)
    member_out = _row_stochastic(x, alpha)  # member -> course
    course_out = _row_stochastic(x.T.tocsr(), alpha)  # course -> member
    weights = np.asarray((course_out @ member_out).toarray(), dtype=np.float32)
    popularity = np.asarray(x.getnnz(axis=0), dtype=np.float64)
    penalty = np.zeros_like(popularity)
    seen = popularity > 0
    penalty[seen] = popularity[seen] ** -float(beta)
    weights *= penalty.astype(np.float32)[None, :]
    np.fill_diagonal(weights, 0.0)
    n = weights.shape[1]
    if 0 < neighbours < n:
        # Keep each row's largest weights: everything below the row's k-th value goes.
        cut = np.partition(weights, n - neighbours, axis=1)[:, n - neighbours]
        weights[weights < cut[:, None]] = 0.0
    return weights


def _row_stochastic(x: sp.csr_matrix, power: float) -> sp.csr_matrix:
    """Rows scaled to sum 1 (empty rows stay empty), then raised element-wise to ``power``."""
    sums = np.asarray(x.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    out = sp.csr_matrix(sp.diags(scale) @ x)
    out.data = out.data ** float(power)
    return out


class EDLAE(CourseCourse):
    """Denoising linear autoencoder with emphasis (EDLAE / DLAE, Steck 2020), closed form.

    Parameters
    ----------
    l2
        The L2 penalty λ added to every course.
    dropout
        Dropout probability ``p`` in [0, 1): adds ``p/(1-p) · (XᵀX)_jj`` to course ``j``'s
        penalty (0 makes EDLAE equal to EASE).
    variant
        ``"edlae"`` (emphasised: zero diagonal, the identity cannot be learned) or
        ``"dlae"`` (plain denoising).
    popularity_power
        Column ``j`` of ``B`` is divided by ``(1 + members_j) ** popularity_power``: a
        popularity penalty on the scored course (0: none).
    """

    name: ClassVar[str] = "edlae"
    dense_copies: ClassVar[int] = 2

    def __init__(
        self,
        l2: float = 100.0,
        dropout: float = 0.25,
        variant: str = "edlae",
        popularity_power: float = 0.0,
        binary: bool = False,
        max_courses: int = 30_000,
        cold_neighbours: int = COLD_NEIGHBOURS,
    ) -> None:
        self.l2 = l2
        self.dropout = dropout
        self.variant = variant
        self.popularity_power = popularity_power
        self.binary = binary
        self.max_courses = max_courses
        self.cold_neighbours = cold_neighbours
        self._check_params()

    def _check_params(self) -> None:
        _number("l2", self.l2, low=0.0, low_open=True)
        _number("dropout", self.dropout, low=0.0)
        if self.dropout >= 1:
            raise ConfigError(f"dropout={self.dropout!r}; expected a probability in [0, 1)")
        if self.variant not in ("edlae", "dlae"):
            raise ConfigError(f"variant={self.variant!r}; expected 'edlae' or 'dlae'")
        _number("popularity_power", self.popularity_power, low=0.0)
        super()._check_params()

    def _weights(self, x: sp.csr_matrix) -> np.ndarray:
        weights = self._denoising_weights(x)
        if self.popularity_power:
            members = np.asarray(x.getnnz(axis=0), dtype=np.float64)
            penalty = (1.0 + members) ** -float(self.popularity_power)
            weights *= penalty.astype(np.float32)[None, :]
        return weights

    def _denoising_weights(self, x: sp.csr_matrix) -> np.ndarray:
        gram = gram_matrix(x)
        p = float(self.dropout)
        penalty = (p / (1.0 - p)) * np.diagonal(gram).astype(np.float64) + float(self.l2)
        if self.variant == "edlae":
            gram[np.diag_indices_from(gram)] += penalty.astype(np.float32)
            return ease_weights(gram)
        # DLAE: B = I - P Λ with P = (G + Λ)⁻¹ (float64: the subtraction needs it).
        g = gram.astype(np.float64)
        del gram
        g[np.diag_indices_from(g)] += penalty
        inverse = scipy.linalg.inv(g, overwrite_a=True, check_finite=False)
        weights = -(inverse * penalty[None, :])
        weights[np.diag_indices_from(weights)] += 1.0
        return weights.astype(np.float32)


class GFCF(CourseCourse):
    """Graph filter collaborative filtering (GF-CF, Shen et al. 2021), closed form.

    With ``R̃ = D_U^{-1/2} X D_I^{-1/2}`` (member and course degrees) and ``P̃ = R̃ᵀR̃``,
    a member's scores are ``r̃ (P̃ + a · D_I^{-1/2} V Vᵀ D_I^{1/2})``: a linear filter
    plus an ideal low-pass filter from the top ``n_factors`` eigenvectors ``V`` of ``P̃``.
    Dropping the member's own constant ``D_U^{-1/2}`` factor (it does not reorder a menu)
    leaves ``history @ B`` with ``B = D_I^{-1/2} (P̃ + a · D_I^{-1/2} V Vᵀ D_I^{1/2})``
    (diagonal set to zero: a member's own courses are never recommended).

    Parameters
    ----------
    n_factors
        Eigenvectors of the ideal low-pass filter.
    ideal_weight
        Weight ``a`` of the ideal low-pass filter (0: the linear filter alone).
    binary
        Use 0/1 interactions (default, as in the paper) instead of confidence values.
    """

    name: ClassVar[str] = "gfcf"
    dense_copies: ClassVar[int] = 2

    def __init__(
        self,
        n_factors: int = 64,
        ideal_weight: float = 0.1,
        binary: bool = True,
        max_courses: int = 30_000,
        cold_neighbours: int = COLD_NEIGHBOURS,
    ) -> None:
        self.n_factors = n_factors
        self.ideal_weight = ideal_weight
        self.binary = binary
        self.max_courses = max_courses
        self.cold_neighbours = cold_neighbours
        self._check_params()

    def _check_params(self) -> None:
        _count("n_factors", self.n_factors)
        _number("ideal_weight", self.ideal_weight, low=0.0)
        super()._check_params()

    def _weights(self, x: sp.csr_matrix) -> np.ndarray:
        return gfcf_weights(x, self.n_factors, self.ideal_weight)


def gfcf_weights(x: sp.csr_matrix, n_factors: int, ideal_weight: float) -> np.ndarray:
    """GF-CF's course x course matrix from a member x course matrix ``x``."""
    x = sp.csr_matrix(x, dtype=np.float32)
    n = x.shape[1]
    inv_root_member = _inverse_root(np.asarray(x.sum(axis=1), dtype=np.float64).ravel())
    inv_root_course = _inverse_root(np.asarray(x.sum(axis=0), dtype=np.float64).ravel())
    normalised = sp.csr_matrix(
        sp.diags(inv_root_member.astype(np.float32))
        @ x
        @ sp.diags(inv_root_course.astype(np.float32))
    )
    weights = gram_matrix(normalised)  # P̃ = R̃ᵀR̃, float32
    k = min(int(n_factors), n)
    if ideal_weight > 0 and k > 0:
        vectors = _top_eigenvectors(normalised, weights, k)
        root_course = np.divide(
            1.0, inv_root_course, out=np.zeros_like(inv_root_course), where=inv_root_course > 0
        )
        left = (vectors * inv_root_course[:, None]).astype(np.float32)
        right = (vectors.T * root_course[None, :]).astype(np.float32)
        weights += np.float32(ideal_weight) * (left @ right)
    weights *= inv_root_course.astype(np.float32)[:, None]
    np.fill_diagonal(weights, 0.0)
    return weights


def _top_eigenvectors(r: sp.csr_matrix, gram: np.ndarray, k: int) -> np.ndarray:
    """The top ``k`` eigenvectors of ``gram = rᵀr`` (n x k, ascending eigenvalues).

    Exact (LAPACK ``syevr`` on the requested eigenvalues only). The last result is kept,
    keyed by a digest of ``r``: tuning fits GF-CF many times on one split with different
    ``n_factors`` and ``ideal_weight``, and the top ``k`` eigenvectors are the last ``k``
    columns of any larger set.
    """
    n = gram.shape[0]
    digest = hashlib.blake2b(digest_size=16)
    for part in (np.asarray(r.shape), r.indptr, r.indices, r.data):
        digest.update(np.ascontiguousarray(part).tobytes())
    key = digest.hexdigest()
    with _EIGEN_LOCK:
        cached = _EIGEN_CACHE.get(key)
    if cached is not None and cached.shape[1] >= k:
        return cached[:, cached.shape[1] - k :]
    _, vectors = scipy.linalg.eigh(
        gram, subset_by_index=(n - k, n - 1), driver="evr", check_finite=False
    )
    vectors = np.asarray(vectors)
    with _EIGEN_LOCK:
        _EIGEN_CACHE.clear()  # one data set at a time: memory stays n x k
        _EIGEN_CACHE[key] = vectors
    return vectors


_EIGEN_CACHE: dict[str, np.ndarray] = {}
_EIGEN_LOCK = threading.Lock()


def _inverse_root(degree: np.ndarray) -> np.ndarray:
    """``degree ** -0.5`` where positive, 0 elsewhere."""
    return np.divide(
        1.0, np.sqrt(degree), out=np.zeros_like(degree, dtype=np.float64), where=degree > 0
    )


#: The fused models, in the order of ``Fusion.weights_``.
FUSED = ("ease", "rp3beta", "edlae", "gfcf")


class Fusion(CourseCourse):
    """EASE + RP3beta + EDLAE + GF-CF scores fused with weights learned on validation data.

    ``fit`` carves a validation split from its training data (``split``:
    a per-member random ``validation_fraction``, or the latest events by time), fits the
    four models on the rest, scales each model's scores to unit root mean square and
    picks the weights on a grid over the simplex (step ``grid``) that maximise NDCG@``k``
    on validation; then it refits the models with a positive weight on all its training data
    and keeps ``B_ = Σ wᵢ Bᵢ / sᵢ``. Weight vectors with zeros are candidates, so the fusion
    validates at least as well as its best single model.

    Parameters
    ----------
    ease_l2, rp3_alpha, rp3_beta, rp3_neighbours, edlae_l2, edlae_dropout, edlae_variant, \
edlae_popularity_power, gfcf_factors, gfcf_ideal_weight
        The parts' hyper-parameters (tune each part alone and pass its best values).
    weights
        Fixed weights (ease, rp3beta, edlae, gfcf) instead of learning them: no validation
        fit. Three numbers (ease, rp3beta, edlae) give GF-CF weight 0.
    split, validation_fraction, seed
        The validation split weights are learned on.
    k
        Cut-off of the validation NDCG.
    grid
        Step of the weight grid, searched coarse to fine: every point at twice the step
        (0.2: 56 points for four parts), then one-step moves from the best (0.1).
    max_validation_members
        Members scored on validation at most (a seeded sample): bounds time and memory.

    Attributes
    ----------
    weights_ : ndarray (4,)
        Weights of (ease, rp3beta, edlae, gfcf) on unit-scaled scores.
    validation_ndcg_ : ndarray (4,)
        Each part's validation NDCG@k alone, beside ``validation_fused_``, the fusion's.
    """

    name: ClassVar[str] = "fusion"
    dense_copies: ClassVar[int] = 3

    def __init__(
        self,
        ease_l2: float = 500.0,
        rp3_alpha: float = 1.0,
        rp3_beta: float = 0.5,
        rp3_neighbours: int = 0,
        edlae_l2: float = 100.0,
        edlae_dropout: float = 0.25,
        edlae_variant: str = "edlae",
        edlae_popularity_power: float = 0.0,
        gfcf_factors: int = 64,
        gfcf_ideal_weight: float = 0.1,
        weights: list[float] | None = None,
        split: str = "random",
        validation_fraction: float = 0.2,
        seed: int = 0,
        k: int = 20,
        grid: float = 0.1,
        max_validation_members: int = 5000,
        max_courses: int = 30_000,
        cold_neighbours: int = COLD_NEIGHBOURS,
    ) -> None:
        self.ease_l2 = ease_l2
        self.rp3_alpha = rp3_alpha
        self.rp3_beta = rp3_beta
        self.rp3_neighbours = rp3_neighbours
        self.edlae_l2 = edlae_l2
        self.edlae_dropout = edlae_dropout
        self.edlae_variant = edlae_variant
        self.edlae_popularity_power = edlae_popularity_power
        self.gfcf_factors = gfcf_factors
        self.gfcf_ideal_weight = gfcf_ideal_weight
        self.weights = weights
        self.split = split
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.k = k
        self.grid = grid
        self.max_validation_members = max_validation_members
        self.max_courses = max_courses
        self.cold_neighbours = cold_neighbours
        self.binary = False
        self._check_params()

    def _check_params(self) -> None:
        self._parts()  # each part checks its own parameters
        if self.weights is not None:
            w = self.weights
            if (
                not isinstance(w, list | tuple)
                or len(w) not in (len(FUSED) - 1, len(FUSED))
                or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in w)
                or min(w) < 0
                or sum(w) <= 0
            ):
                raise ConfigError(
                    f"weights={w!r}; expected {len(FUSED)} numbers >= 0 for {FUSED} (or the "
                    "first three), not all 0"
                )
        if self.split not in ("random", "time"):
            raise ConfigError(f"split={self.split!r}; expected 'random' or 'time'")
        _number("validation_fraction", self.validation_fraction, low=0.0, low_open=True)
        if self.validation_fraction >= 1:
            raise ConfigError(
                f"validation_fraction={self.validation_fraction!r}; expected a share in (0, 1)"
            )
        _count("seed", self.seed)
        _count("k", self.k, low=1)
        _number("grid", self.grid, low=0.0, low_open=True)
        if self.grid > 1:
            raise ConfigError(f"grid={self.grid!r}; expected a step in (0, 1]")
        _count("max_validation_members", self.max_validation_members, low=1)
        super()._check_params()

    def _parts(self) -> list[Recommender]:
        return [
            EASE(l2=self.ease_l2, max_courses=self.max_courses, cold_neighbours=0),
            RP3beta(
                alpha=self.rp3_alpha,
                beta=self.rp3_beta,
                neighbours=self.rp3_neighbours,
                max_courses=self.max_courses,
                cold_neighbours=0,
            ),
            EDLAE(
                l2=self.edlae_l2,
                dropout=self.edlae_dropout,
                variant=self.edlae_variant,
                popularity_power=self.edlae_popularity_power,
                max_courses=self.max_courses,
                cold_neighbours=0,
            ),
            GFCF(
                n_factors=self.gfcf_factors,
                ideal_weight=self.gfcf_ideal_weight,
                max_courses=self.max_courses,
                cold_neighbours=0,
            ),
        ]

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        if self.weights is None:
            weights, part_scores, fused = self._learn_weights(dataset)
        else:
            given = [float(v) for v in self.weights]
            given += [0.0] * (len(FUSED) - len(given))
            weights = np.array(given) / sum(given)
            part_scores, fused = np.full(len(FUSED), np.nan), np.nan
        sample = _sample_members(dataset.interactions, self.max_validation_members, self.seed)
        x = as_input(dataset.interactions, self.binary)[sample]
        n = dataset.n_courses
        combined = np.zeros((n, n), dtype=np.float32)
        for w, part in zip(weights, self._parts(), strict=True):
            if w > 0:  # parts at weight 0 are not refitted
                b = _matrix_of(part.fit(dataset))
                combined += np.float32(w / _rms(x @ b)) * b
        if self.cold_neighbours:
            combined, placed = place_cold_columns(combined, dataset, self.cold_neighbours)
            log.info("fusion: %d cold course(s) placed by content", placed)
        self.B_ = np.asarray(combined, dtype=np.float32)
        self.weights_: np.ndarray = np.asarray(weights, dtype=np.float64)
        self.validation_ndcg_: np.ndarray = np.asarray(part_scores, dtype=np.float64)
        self.validation_fused_: float = float(fused)
        log.info(
            "fusion: weights %s (validation ndcg@%d parts %s, fused %.4f)",
            dict(zip(FUSED, np.round(weights, 3), strict=True)),
            self.k,
            np.round(part_scores, 4),
            fused,
        )

    def _weights(self, x: sp.csr_matrix) -> np.ndarray:
        # Not used: the fused matrix needs the dataset (its validation split), so ``_fit``
        # builds ``B_`` itself.
        raise NotImplementedError("Fusion builds its matrix in _fit")

    def _learn_weights(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, float]:
        """Weights maximising validation NDCG@k, each part's score alone, the fused score."""
        splitter = (
            RandomHoldout(test_fraction=self.validation_fraction, seed=self.seed)
            if self.split == "random"
            else TimeSplit(test_fraction=self.validation_fraction)
        )
        fit_part, valid_part = dataset.split(splitter)
        relevant = valid_part.interactions
        has = (relevant.getnnz(axis=1) > 0) & (fit_part.interactions.getnnz(axis=1) > 0)
        members = np.flatnonzero(has)
        if members.size == 0:
            log.warning(
                "fusion: the validation split holds no member with both fit and validation "
                "courses; the parts get equal weights"
            )
            equal = np.full(len(FUSED), 1.0 / len(FUSED))
            return equal, np.full(len(FUSED), np.nan), float("nan")
        if members.size > self.max_validation_members:
            rng = np.random.default_rng(self.seed)
            members = np.sort(rng.choice(members, self.max_validation_members, replace=False))
        x = as_input(fit_part.interactions, self.binary)[members]
        truth = relevant[members]
        scores = []
        for part in self._parts():
            s = np.asarray(x @ _matrix_of(part.fit(fit_part)), dtype=np.float32)
            s /= np.float32(_rms(s))
            scores.append(s)
        k = min(self.k, dataset.n_courses)

        def ndcg(w: tuple[float, ...]) -> float:
            fused = sum(np.float32(v) * s for v, s in zip(w, scores, strict=True) if v > 0)
            assert isinstance(fused, np.ndarray)
            top = topk_scores(
                lambda rows: fused[rows],
                np.arange(len(members)),
                fused.shape[1],
                k,
                exclude=x,
                num_threads=1,
            )
            return float(np.mean(ndcg_at_k(top.indices, truth, k)))

        results = _simplex_search(ndcg, len(FUSED), round(1 / self.grid))
        best = max(results, key=lambda w: (results[w], -sum(v > 0 for v in w)))
        alone = np.array(
            [results[tuple(float(i == j) for j in range(len(FUSED)))] for i in range(len(FUSED))]
        )
        return np.array(best), alone, results[best]


def _simplex_search(
    score: Callable[[tuple[float, ...]], float], parts: int, steps: int
) -> dict[tuple[float, ...], float]:
    """Scores of weight vectors on the simplex grid of step ``1/steps``, searched coarse to
    fine: every point of the grid of twice the step (the single parts included), then
    moves of one step between two parts from the best point while they improve it.
    Returns every point scored."""
    coarse = 2 if steps % 2 == 0 and steps >= 4 else 1
    units: dict[tuple[int, ...], float] = {}

    def visit(combo: tuple[int, ...]) -> None:
        if combo not in units:
            units[combo] = score(tuple(c / steps for c in combo))

    for combo in itertools.product(range(0, steps + 1, coarse), repeat=parts):
        if sum(combo) == steps:
            visit(combo)
    best = max(units, key=lambda c: (units[c], -sum(v > 0 for v in c)))
    while True:
        for i, j in itertools.permutations(range(parts), 2):
            if best[i] > 0:
                moved = list(best)
                moved[i] -= 1
                moved[j] += 1
                visit(tuple(moved))
        top = max(units, key=lambda c: (units[c], -sum(v > 0 for v in c)))
        if units[top] <= units[best]:
            break
        best = top
    return {tuple(c / steps for c in combo): value for combo, value in units.items()}


def _matrix_of(model: Recommender) -> np.ndarray:
    matrix: np.ndarray = model.B_  # type: ignore[attr-defined]
    return matrix


def _rms(scores: Any) -> float:
    values = np.asarray(scores, dtype=np.float64)
    rms = float(np.sqrt(np.mean(values * values))) if values.size else 0.0
    return rms if rms > 0 else 1.0


def _sample_members(x: sp.csr_matrix, n: int, seed: int) -> np.ndarray:
    members = np.flatnonzero(x.getnnz(axis=1) > 0)
    if members.size > n:
        members = np.sort(np.random.default_rng(seed).choice(members, n, replace=False))
    return members
