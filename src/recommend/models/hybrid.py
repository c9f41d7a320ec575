"""LightFM: a hybrid factorisation model that also scores cold members and courses.

LightFM (the ``lightfm`` module of ``rectools-lightfm``) represents a member as the sum of
the embeddings of their features, and a course likewise. With an identity feature per
member/course next to the attribute features (age band, gender, occupation, district,
mobile, branch, skills; channel, tags, lecturer, source, duration band, title tokens) a
member with history gets a personal vector while a member with none is still placed by
their attributes. That is what routes cold start:

- a member of the training universe with no interactions, a member first seen at serving
  time (``cold_member_scores`` / ``cold_member_factors`` from an attribute table) and a
  course nobody has studied yet (e.g. a new UGC upload) are represented by their attribute
  features only: their identity embedding never received a gradient, so it is dropped
  and the remaining feature weights renormalised;
- a member who studies something new is refreshed by ``update`` (fold-in) without touching
  anyone else (see ``LightFM._fold_in``).

Scoring goes through the learned representations and BLAS (``recommend.topk``), never
through LightFM's pairwise ``predict``. A LightFM score is ``u·q + b_member + b_course``;
the member bias is the same for all of a member's courses and does not change their
ranking, so ``factors()`` leaves it out (``member_bias_`` keeps it for reference).
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Literal, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.special import expit, log_expit

from recommend.data.dataset import (
    Dataset,
    Features,
    course_feature_columns,
    member_feature_columns,
    one_hot,
)
from recommend.data.idmap import IdMap
from recommend.data.validation import validate
from recommend.errors import ConfigError, DataError
from recommend.models.base import Factors, MemberState, Recommender
from recommend.schema import Columns

__all__ = ["LightFM", "course_feature_rows", "member_feature_rows"]

log = logging.getLogger(__name__)
C = Columns

#: L2 pull of a folded-in member vector towards their features-only vector; the pairwise
#: loss is averaged over sampled negatives, so each studied course weighs about one unit.
FOLD_IN_L2 = 0.05
#: Negatives sampled (uniformly among courses not in the history) for fold-in.
FOLD_IN_NEGATIVES = 256
#: Newton iterations of the fold-in solve (it is a small convex problem: few are needed).
FOLD_IN_ITERATIONS = 10


class LightFM(Recommender):
    """LightFM hybrid matrix factorisation with member and course features.

    Parameters
    ----------
    n_factors
        Embedding dimension (``factors`` would shadow ``Recommender.factors()``).
    loss
        ``"warp"`` (optimises the top of the ranking; the usual choice for implicit
        feedback) or ``"bpr"``.
    learning_rate
        Initial Adagrad learning rate.
    item_alpha, user_alpha
        L2 penalties on course / member feature embeddings.
    epochs
        Passes over the interactions.
    use_member_features, use_course_features
        Add the dataset's attribute features (``Dataset.member_features`` /
        ``course_features``) to the member / course representations.
    identity_features
        Add one identity feature per member and per course (personalisation for entities
        with history). Without it every member with the same attributes gets the same menu.
    normalize_features
        Scale every feature row to sum 1 (LightFM's recommendation: keeps representations
        of members/courses with many features on the same scale as those with few).
    max_sampled
        Negatives WARP samples per positive before giving up.
    random_state
        Seed; with ``num_threads=1`` training is deterministic.
    num_threads
        OpenMP threads for training (Hogwild); more than one makes training
        non-deterministic.

    Notes
    -----
    Scores are ``member_factors_ @ course_factors_.T + course_bias_``: LightFM's score less
    the member bias, which shifts all of a member's scores alike and so never changes a
    ranking. Members and courses without training interactions (and everything given by
    attributes) are represented by their attribute features alone, renormalised: their
    identity embedding is untrained noise and would only dilute the features.

    Interactions are passed to LightFM with the dataset's confidence as ``sample_weight``,
    rescaled to mean 1 over the training entries (LightFM multiplies its loss by the weight
    and clips it at 10, so raw confidences of 10+ would mostly hit the clip). On planted
    data where liked courses are completed and noise is only viewed this beat binarised
    interactions (see the tests).

    Attributes
    ----------
    member_factors_ : (n_members, n_factors) float32
        Member embeddings (members folded in later are appended).
    member_bias_ : (n_members_at_fit,) float32
        Member biases (not used for ranking).
    course_factors_ : (n_courses, factors) float32
    course_bias_ : (n_courses,) float32
    member_feature_names_, course_feature_names_ : object arrays of ``"column=value"``
        Names of the attribute features; in LightFM's feature matrices they follow the
        identity block (one column per member / course index at fit time).
    member_feature_embeddings_, course_feature_embeddings_ : (n_features, n_factors) float32
        Learned embeddings of all feature columns (identity block first).
    member_feature_biases_, course_feature_biases_ : (n_features,) float32
    feature_year_ : int
        Year the age bands are computed at (the training data's ``now``).
    weight_scale_ : float
        Confidence that maps to a LightFM sample weight of 1.
    """

    name: ClassVar[str] = "lightfm"

    # Per-member state that fold-in replaces: kept in the model's snapshot, so a reader
    # sees both with the history of the same version (see ``Recommender.update``).
    member_factors_ = MemberState()
    _cold_position = MemberState()
    # Course side per snapshot too: ingested catalogue rows append their feature vectors.
    course_factors_ = MemberState()
    course_bias_ = MemberState()
    uses_features: ClassVar[bool] = True
    takes_new_courses: ClassVar[bool] = True

    def __init__(
        self,
        n_factors: int = 32,
        loss: Literal["warp", "bpr"] = "warp",
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        user_alpha: float = 0.0,
        epochs: int = 20,
        use_member_features: bool = True,
        use_course_features: bool = True,
        identity_features: bool = True,
        normalize_features: bool = True,
        max_sampled: int = 10,
        random_state: int | None = 0,
        num_threads: int = 1,
    ) -> None:
        self.n_factors = n_factors
        self.loss = loss
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.user_alpha = user_alpha
        self.epochs = epochs
        self.use_member_features = use_member_features
        self.use_course_features = use_course_features
        self.identity_features = identity_features
        self.normalize_features = normalize_features
        self.max_sampled = max_sampled
        self.random_state = random_state
        self.num_threads = num_threads

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        checks: list[tuple[str, bool, str]] = [
            ("n_factors", _is_int(self.n_factors) and self.n_factors >= 1, "an integer >= 1"),
            ("loss", self.loss in ("warp", "bpr"), "'warp' or 'bpr'"),
            ("learning_rate", _is_real(self.learning_rate) and self.learning_rate > 0, "> 0"),
            ("item_alpha", _is_real(self.item_alpha) and self.item_alpha >= 0, ">= 0"),
            ("user_alpha", _is_real(self.user_alpha) and self.user_alpha >= 0, ">= 0"),
            ("epochs", _is_int(self.epochs) and self.epochs >= 1, "an integer >= 1"),
            ("max_sampled", _is_int(self.max_sampled) and self.max_sampled >= 1, "an integer >= 1"),
            ("num_threads", _is_int(self.num_threads) and self.num_threads >= 1, "an integer >= 1"),
            (
                "random_state",
                self.random_state is None or _is_int(self.random_state),
                "an integer or None",
            ),
        ]
        for param, ok, expected in checks:
            if not ok:
                raise ConfigError(f"LightFM({param}={getattr(self, param)!r}): expected {expected}")

    def training_inputs(
        self, dataset: Dataset
    ) -> tuple[sp.coo_matrix, sp.coo_matrix, sp.csr_matrix, sp.csr_matrix]:
        """What LightFM is trained on: ``(interactions, sample_weight, member_features,
        course_features)``.

        ``interactions`` and ``sample_weight`` are (n_members, n_courses) COO float32 with
        the same entries (ones, and confidence rescaled to mean 1); the feature matrices
        are (n_members, n_member_columns) and (n_courses, n_course_columns) CSR float32,
        identity block first, rows normalised when ``normalize_features``. Exposed so that
        the training can be reproduced with ``lightfm`` directly.
        """
        self._check_params()
        member_attr = self._attribute_block(dataset.member_features, self.use_member_features)
        course_attr = self._attribute_block(dataset.course_features, self.use_course_features)
        if not self.identity_features and (len(member_attr) == 0 or len(course_attr) == 0):
            which = "member" if len(member_attr) == 0 else "course"
            raise ConfigError(
                f"LightFM(identity_features=False) needs {which} features, but the dataset has "
                f"none (or use_{which}_features=False); give the dataset a {which}s table or "
                "set identity_features=True"
            )
        member_x = self._feature_matrix(member_attr.matrix, dataset.n_members)
        course_x = self._feature_matrix(course_attr.matrix, dataset.n_courses)

        conf = dataset.interactions.tocoo()
        positive = conf.data > 0  # LightFM skips non-positive entries anyway
        rows, cols, data = conf.row[positive], conf.col[positive], conf.data[positive]
        if data.size == 0:
            raise DataError("LightFM: the dataset has no positive interactions to learn from")
        shape = dataset.interactions.shape
        ones = sp.coo_matrix((np.ones_like(data, dtype=np.float32), (rows, cols)), shape=shape)
        scale = float(data.mean())
        weights = sp.coo_matrix(((data / scale).astype(np.float32), (rows, cols)), shape=shape)
        return ones, weights, member_x, course_x

    def _attribute_block(self, features: Features | None, use: bool) -> Features:
        if use and features is not None:
            return features
        if use:
            log.info("lightfm: the dataset has no attribute table for one side; identity only")
        return Features(sp.csr_matrix((0, 0), dtype=np.float32), np.array([], dtype=object))

    def _feature_matrix(self, attributes: sp.csr_matrix, n_rows: int) -> sp.csr_matrix:
        """Identity block (if any) next to the attribute block, rows normalised."""
        blocks = []
        if self.identity_features:
            blocks.append(sp.identity(n_rows, dtype=np.float32, format="csr"))
        if attributes.shape[1]:
            blocks.append(attributes)
        x = sp.hstack(blocks, format="csr", dtype=np.float32)
        return _normalize_rows(x) if self.normalize_features else x

    def _fit(self, dataset: Dataset) -> None:
        import lightfm

        interactions, weights, member_x, course_x = self.training_inputs(dataset)
        conf = dataset.interactions.data
        self.weight_scale_ = float(conf[conf > 0].mean())
        model = lightfm.LightFM(
            no_components=int(self.n_factors),
            loss=self.loss,
            learning_rate=float(self.learning_rate),
            item_alpha=float(self.item_alpha),
            user_alpha=float(self.user_alpha),
            max_sampled=int(self.max_sampled),
            random_state=self.random_state,
        )
        start = time.perf_counter()
        from tqdm.auto import tqdm

        progress = tqdm(
            range(int(self.epochs)),
            desc="lightfm",
            unit="epoch",
            disable=not log.isEnabledFor(logging.INFO),
        )
        previous = self.__dict__.get("_previous")
        if previous is not None:
            # A warm start: initialise (no epoch), then the embeddings the previous model
            # learned for the same features, members and courses replace the random ones.
            model.fit_partial(
                interactions,
                user_features=member_x,
                item_features=course_x,
                sample_weight=weights,
                epochs=0,
            )
            self._warm_embeddings(model, previous, dataset)
        # One epoch at a time (same result as fit(epochs=n)) so progress can be shown.
        for _ in progress:
            model.fit_partial(
                interactions,
                user_features=member_x,
                item_features=course_x,
                sample_weight=weights,
                epochs=1,
                num_threads=int(self.num_threads),
            )
        log.info(
            "lightfm: %d members x %d courses, %d interactions, %d+%d feature columns, "
            "%d epochs in %.2fs",
            dataset.n_members,
            dataset.n_courses,
            interactions.nnz,
            member_x.shape[1],
            course_x.shape[1],
            self.epochs,
            time.perf_counter() - start,
        )

        self.feature_year_ = int(dataset.now.year)
        self.member_feature_embeddings_ = np.ascontiguousarray(model.user_embeddings, np.float32)
        self.member_feature_biases_ = np.ascontiguousarray(model.user_biases, np.float32)
        self.course_feature_embeddings_ = np.ascontiguousarray(model.item_embeddings, np.float32)
        self.course_feature_biases_ = np.ascontiguousarray(model.item_biases, np.float32)
        member_attr = self._attribute_block(dataset.member_features, self.use_member_features)
        course_attr = self._attribute_block(dataset.course_features, self.use_course_features)
        self.member_feature_names_ = np.asarray(member_attr.names, dtype=object)
        self.course_feature_names_ = np.asarray(course_attr.names, dtype=object)
        # Entities without training interactions: features only (their identity embedding
        # is still its random initialisation).
        trained = dataset.interactions > 0
        cold_members = trained.getnnz(axis=1) == 0
        cold_courses = trained.getnnz(axis=0) == 0
        member_rows = self._route_cold(member_x, cold_members)
        course_rows = self._route_cold(course_x, cold_courses)
        member_bias = np.asarray(member_rows @ self.member_feature_biases_, np.float32)
        member_factors = np.ascontiguousarray(
            member_rows @ self.member_feature_embeddings_, np.float32
        )
        # A member without interactions has a vector made of their attributes alone, from
        # which the attributes could be read back: serve it from memory, never store it
        # (saved models hold zeros there and score such members by course bias).
        cold_idx = np.flatnonzero(cold_members)
        self._cold_position = np.full(dataset.n_members, -1, dtype=np.int64)
        self._cold_position[cold_idx] = np.arange(cold_idx.size)
        self._cold_vectors = member_factors[cold_idx].copy()
        member_factors[cold_idx] = 0.0
        member_bias[cold_idx] = 0.0
        self.member_bias_ = member_bias
        self.member_factors_ = member_factors
        self.course_bias_ = np.asarray(course_rows @ self.course_feature_biases_, np.float32)
        self.course_factors_ = np.ascontiguousarray(
            course_rows @ self.course_feature_embeddings_, np.float32
        )
        log.debug(
            "lightfm: %d members and %d courses without interactions scored from features",
            int(cold_members.sum()),
            int(cold_courses.sum()),
        )

    def fit_from(self, previous: Recommender, dataset: Dataset) -> Self:
        """Fit on ``dataset`` starting from ``previous``'s embeddings: a warm-started refit.

        LightFM's feature matrices define the embedding rows (identity block, one row per
        member and course of the training data, then one per attribute feature), so the
        rows are matched by meaning: a member or course ``previous`` was fitted with (by
        external id), an attribute feature of the same name (``"category=理论学习"``). Those
        start from ``previous``'s embeddings and biases; rows new tonight (members, courses
        and feature values ``previous`` did not train) start from LightFM's usual small
        random values; then ``epochs`` epochs run as in a cold fit. ``previous`` is not
        changed.

        Raises
        ------
        ConfigError
            ``previous`` is not a fitted LightFM with the same ``n_factors`` and feature
            settings.
        """
        if type(previous) is not type(self) or not previous.is_fitted:
            raise ConfigError(
                f"LightFM.fit_from: expected a fitted LightFM to start from, got "
                f"{type(previous).__name__}{'' if previous.is_fitted else ' (not fitted)'}"
            )
        same = ("n_factors", "identity_features", "use_member_features", "use_course_features")
        differ = [k for k in same if getattr(previous, k) != getattr(self, k)]
        if differ:
            raise ConfigError(
                f"LightFM.fit_from: the previous model has "
                f"{ {k: getattr(previous, k) for k in differ} }, this one "
                f"{ {k: getattr(self, k) for k in differ} }; expected the same"
            )
        self.__dict__["_previous"] = previous
        try:
            return self.fit(dataset)
        finally:
            self.__dict__.pop("_previous", None)

    def _warm_embeddings(self, model: Any, previous: LightFM, dataset: Dataset) -> None:
        """Copy ``previous``'s embeddings and biases into the initialised LightFM ``model``
        row by row where the row means the same (see :meth:`fit_from`)."""
        with previous.reading():
            sides = (
                (
                    "user",
                    dataset.member_ids,
                    previous.member_ids_,
                    previous._n_member_ids,
                    self._attribute_block(dataset.member_features, self.use_member_features),
                    previous.member_feature_names_,
                    previous.member_feature_embeddings_,
                    previous.member_feature_biases_,
                ),
                (
                    "item",
                    dataset.course_ids,
                    previous.course_ids_,
                    previous._n_course_ids,
                    self._attribute_block(dataset.course_features, self.use_course_features),
                    previous.course_feature_names_,
                    previous.course_feature_embeddings_,
                    previous.course_feature_biases_,
                ),
            )
            for side, ids, old_ids, n_old_ids, attr, old_names, embeddings, biases in sides:
                new_rows, old_rows = _matching_rows(
                    ids, old_ids, n_old_ids if self.identity_features else 0, attr.names, old_names
                )
                getattr(model, f"{side}_embeddings")[new_rows] = embeddings[old_rows]
                getattr(model, f"{side}_biases")[new_rows] = biases[old_rows]
                log.info(
                    "lightfm warm start: %d of %d %s embedding rows from the previous model",
                    new_rows.size,
                    getattr(model, f"{side}_embeddings").shape[0],
                    side,
                )

    def _route_cold(self, x: sp.csr_matrix, cold: np.ndarray) -> sp.csr_matrix:
        """Feature rows with the identity column of ``cold`` rows removed (renormalised)."""
        if not self.identity_features or not cold.any():
            return x
        drop = sp.csr_matrix(
            (np.ones(int(cold.sum()), np.float32), (np.flatnonzero(cold), np.flatnonzero(cold))),
            shape=x.shape,
        )
        # Identity entries of cold rows are their only entries in the first n columns.
        keep = x - x.multiply(drop)
        keep.eliminate_zeros()
        keep = keep.tocsr()
        if self.normalize_features:
            keep = _normalize_rows(keep)
        return keep

    # ------------------------------------------------------------------ scoring
    def factors(self) -> Factors:
        """``Factors(member_factors_, course_factors_, course_bias_)``.

        Rankings equal LightFM's: its score adds the member bias, a per-member constant.
        """
        self.check_fitted()
        members = self.member_vectors(np.arange(self.member_factors_.shape[0]))
        return Factors(members, self.course_factors_, self.course_bias_)

    def cold_member_factors(self, attributes: pd.DataFrame) -> np.ndarray:
        """Member vectors from attributes alone, (n, n_factors) float32.

        ``attributes`` is a members-style table (columns among ``birth_year, gender,
        occupation, district, mobile, org_id, skills``; ``member_id`` optional). Values not
        seen in training contribute nothing; a member with no known value gets a zero
        vector, i.e. is ranked by the course biases (popularity as LightFM learned it).
        """
        self.check_fitted()
        rows = member_feature_rows(attributes, self.member_feature_names_, self.feature_year_)
        return self._from_attributes(rows, self.member_feature_embeddings_, self._n_member_ids)

    def cold_member_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        """Scores for all courses of members given by attributes only, (n, n_courses) float32."""
        vectors = self.cold_member_factors(attributes)
        scores = vectors @ self.course_factors_.T
        scores += self.course_bias_
        return scores

    def cold_course_factors(self, courses: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Vectors and biases of courses outside the training catalogue, from attributes.

        ``courses`` is a courses-style table (``category, tags, lecturer_id, source,
        duration_seconds, title``; ``course_id`` optional). Returns ``(vectors, bias)`` of
        shapes (n, n_factors) and (n,), float32; score a member ``m`` with
        ``member_factors_[m] @ vectors.T + bias``.
        """
        self.check_fitted()
        rows = course_feature_rows(courses, self.course_feature_names_)
        vectors = self._from_attributes(rows, self.course_feature_embeddings_, self._n_course_ids)
        offset = self._n_course_ids
        bias = self._normalized(rows) @ self.course_feature_biases_[offset:]
        return vectors, np.asarray(bias, dtype=np.float32)

    def _add_courses(self, courses: np.ndarray) -> None:
        """Catalogue rows added by ingestion: vectors and biases from their features
        (:meth:`cold_course_factors`; features unknown at fit contribute nothing), as a
        course without interactions gets at fit. They keep them until the next refit."""
        table = self.dataset_.courses
        assert table is not None  # catalogue rows come as a courses table
        vectors, bias = self.cold_course_factors(table.iloc[courses])
        self.course_factors_ = np.ascontiguousarray(
            np.vstack([self.course_factors_, vectors]), np.float32
        )
        self.course_bias_ = np.concatenate([self.course_bias_, bias]).astype(np.float32)

    @property
    def _n_member_ids(self) -> int:
        """Width of the member identity block (0 without identity features)."""
        return self.member_feature_embeddings_.shape[0] - len(self.member_feature_names_)

    @property
    def _n_course_ids(self) -> int:
        return self.course_feature_embeddings_.shape[0] - len(self.course_feature_names_)

    def _normalized(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        return _normalize_rows(rows) if self.normalize_features else rows

    def _from_attributes(
        self, rows: sp.csr_matrix, embeddings: np.ndarray, offset: int
    ) -> np.ndarray:
        """Representation of attribute rows: (normalised rows) @ attribute embeddings."""
        return np.ascontiguousarray(self._normalized(rows) @ embeddings[offset:], np.float32)

    # ------------------------------------------------------------------ fold-in
    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        """Re-solve one member's vector from their history with course vectors fixed.

        The member vector ``u`` minimises a pairwise logistic (BPR) loss of the member's
        courses against ``FOLD_IN_NEGATIVES`` courses sampled outside the history (seeded
        by the member index, so repeatable), each course weighted by its confidence
        (scaled like training), plus ``FOLD_IN_L2 * |u - u0|^2`` where ``u0`` is the
        member's current vector (zero for a member unknown at fit). The problem is
        convex in ``u`` (``n_factors`` unknowns): a few damped Newton steps solve it in about
        a millisecond for usual histories, touching no other member. An empty
        history gives ``u0``. The new vector is published copy-on-write.
        """
        prior = self._member_prior(member_idx)
        csr = row.tocsr()
        positive = csr.data > 0
        courses = csr.indices[positive].astype(np.int64)
        weights = (csr.data[positive] / self.weight_scale_).astype(np.float64)
        vector = prior
        if courses.size:
            seed = [0 if self.random_state is None else int(self.random_state), member_idx]
            negatives = _sample_negatives(
                np.random.default_rng(seed), self.n_courses, courses, FOLD_IN_NEGATIVES
            )
            if negatives.size:
                vector = _pairwise_logistic_solve(
                    self.course_factors_,
                    self.course_bias_,
                    courses,
                    weights,
                    negatives,
                    prior,
                    FOLD_IN_L2,
                )
        old = self.member_factors_
        if member_idx >= old.shape[0]:
            new = np.zeros((member_idx + 1, old.shape[1]), dtype=np.float32)
            new[: old.shape[0]] = old
        else:
            new = old.copy()
        new[member_idx] = vector
        position = getattr(self, "_cold_position", None)
        if position is not None and member_idx < position.size and position[member_idx] >= 0:
            position = position.copy()  # readers may hold the old one
            position[member_idx] = -1
            self._cold_position = position
        self.member_factors_ = new

    def _member_prior(self, member_idx: int) -> np.ndarray:
        """The member's current vector (zeros for a member new since fit): a re-solve
        stays close to what the model knew of them."""
        vectors = self.member_vectors(np.array([member_idx], dtype=np.int64))
        return (
            vectors[0]
            if member_idx < self.member_factors_.shape[0]
            else np.zeros(self.member_factors_.shape[1], dtype=np.float32)
        )

    def member_vectors(self, member_idx: np.ndarray) -> np.ndarray:
        """Rows of ``member_factors_``, with attribute-only vectors filled in for members
        without interactions while the model is in memory (see ``_fit``)."""
        idx = np.asarray(member_idx, dtype=np.int64)
        out = self.member_factors_[np.minimum(idx, self.member_factors_.shape[0] - 1)]
        position = getattr(self, "_cold_position", None)
        if position is not None:
            at = np.where(idx < position.size, position[np.minimum(idx, position.size - 1)], -1)
            filled = at >= 0
            if filled.any():
                out[filled] = self._cold_vectors[at[filled]]
        return out


# --------------------------------------------------------------------------- features


def _matching_rows(
    ids: IdMap, old_ids: IdMap, n_old_ids: int, names: np.ndarray, old_names: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Embedding rows that mean the same in a new and an old LightFM feature matrix:
    identity rows by external id (the old identity block holds its first ``n_old_ids``
    ids; none without identity features), attribute rows by feature name. Returns the new
    and old row indices (int64, aligned)."""
    n_new_ids = len(ids) if n_old_ids else 0
    old_id = old_ids.to_index(ids.external_ids, unknown="mask") if n_old_ids else np.empty(0)
    known = (old_id >= 0) & (old_id < n_old_ids)
    old_feature = pd.Index(np.asarray(old_names, dtype=object)).get_indexer(
        np.asarray(names, dtype=object)
    )
    named = old_feature >= 0
    new_rows = np.concatenate([np.flatnonzero(known), n_new_ids + np.flatnonzero(named)])
    old_rows = np.concatenate([old_id[known], n_old_ids + old_feature[named]])
    return new_rows.astype(np.int64), old_rows.astype(np.int64)


def member_feature_rows(attributes: pd.DataFrame, names: np.ndarray, year: int) -> sp.csr_matrix:
    """One-hot member attribute rows over known feature ``names``, (n, len(names)) CSR float32.

    Uses the same columns and ``"column=value"`` naming as ``Dataset.member_features``
    (age band at ``year``); values whose name is not in ``names`` are left out.
    """
    members = validate("members", _with_placeholder_ids(attributes, C.MEMBER))
    return _onto_names(one_hot(member_feature_columns(members, year), len(members)), names)


def course_feature_rows(courses: pd.DataFrame, names: np.ndarray) -> sp.csr_matrix:
    """One-hot course attribute rows over known feature ``names``, (n, len(names)) CSR float32.

    Same columns and naming as ``Dataset.course_features``; every title token is looked up
    (the catalogue-wide rule "seen in at least two courses" was applied when ``names``
    were built).
    """
    table = validate("courses", _with_placeholder_ids(courses, C.COURSE))
    return _onto_names(one_hot(course_feature_columns(table), len(table)), names)


def _with_placeholder_ids(frame: pd.DataFrame, id_column: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame of attributes, got {type(frame).__name__}")
    if id_column in frame.columns:
        return frame
    # Attributes of members/courses not known yet need no id; validation wants one.
    return frame.assign(**{id_column: np.arange(len(frame), dtype=np.int64)})


def _onto_names(features: Features, names: np.ndarray) -> sp.csr_matrix:
    """Re-express ``features`` over the column order of ``names`` (unknown names dropped)."""
    n_rows = features.matrix.shape[0]
    if len(names) == 0 or len(features) == 0:
        return sp.csr_matrix((n_rows, len(names)), dtype=np.float32)
    position = pd.Index(names).get_indexer(features.names)
    known = position >= 0
    if not known.all():
        log.debug("%d feature value(s) not seen in training ignored", int((~known).sum()))
    coo = features.matrix.tocoo()
    keep = known[coo.col]
    return sp.csr_matrix(
        (coo.data[keep], (coo.row[keep], position[coo.col[keep]])),
        shape=(n_rows, len(names)),
        dtype=np.float32,
    )


def _normalize_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum 1 (empty rows stay empty), CSR float32."""
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    row_of = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    sums = np.bincount(row_of, weights=x.data, minlength=x.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        x.data = (x.data / sums[row_of]).astype(np.float32)
    return x


# --------------------------------------------------------------------------- fold-in


def _sample_negatives(
    rng: np.random.Generator, n_courses: int, positives: np.ndarray, n: int
) -> np.ndarray:
    """Up to ``n`` distinct course indices outside ``positives``, int64."""
    n_free = n_courses - np.unique(positives).size
    if n_free <= n:
        return np.setdiff1d(np.arange(n_courses), positives)
    draws = rng.choice(n_courses, size=min(n_courses, n + positives.size), replace=False)
    return draws[~np.isin(draws, positives)][:n].astype(np.int64)


def _pairwise_logistic_solve(
    course_factors: np.ndarray,
    course_bias: np.ndarray,
    positives: np.ndarray,
    weights: np.ndarray,
    negatives: np.ndarray,
    prior: np.ndarray,
    l2: float,
) -> np.ndarray:
    """Member vector minimising a weighted pairwise logistic loss plus an L2 pull.

    ``L(u) = mean_j sum_i w_i log(1 + exp(-(s_i - s_j))) + l2 |u - prior|^2`` with
    ``s = Q u + b``, ``i`` over ``positives`` (P,), ``j`` over ``negatives`` (N,). Damped
    Newton: the gradient and Hessian need only the (P, N) matrix of pair terms, never the
    (P*N, f) pair differences. Returns (f,) float32.
    """
    qp = course_factors[positives].astype(np.float64)
    qn = course_factors[negatives].astype(np.float64)
    bp = course_bias[positives].astype(np.float64)
    bn = course_bias[negatives].astype(np.float64)
    u0 = prior.astype(np.float64)
    n_neg = float(negatives.size)
    eye = np.eye(qp.shape[1])

    def objective(u: np.ndarray) -> float:
        margin = (qp @ u + bp)[:, None] - (qn @ u + bn)[None, :]
        loss = -(weights[:, None] * log_expit(margin)).sum() / n_neg
        return float(loss + l2 * np.sum((u - u0) ** 2))

    u = u0.copy()
    current = objective(u)
    for _ in range(FOLD_IN_ITERATIONS):
        margin = (qp @ u + bp)[:, None] - (qn @ u + bn)[None, :]
        g = expit(-margin) * weights[:, None]  # -dloss/dmargin per pair
        grad = -(qp.T @ g.sum(axis=1) - qn.T @ g.sum(axis=0)) / n_neg + 2 * l2 * (u - u0)
        h = expit(margin) * g  # d2loss/dmargin2 per pair (weighted)
        cross = qp.T @ h @ qn
        hess = (
            (qp.T * h.sum(axis=1)) @ qp + (qn.T * h.sum(axis=0)) @ qn - cross - cross.T
        ) / n_neg + 2 * l2 * eye
        step = np.linalg.solve(hess, grad)
        # Backtrack if a full Newton step overshoots (far from the optimum).
        for _ in range(20):
            candidate = u - step
            value = objective(candidate)
            if value <= current:
                break
            step = step / 2
        else:
            break
        converged = current - value < 1e-9 * max(1.0, abs(current))
        u, current = candidate, value
        if converged:
            break
    return u.astype(np.float32)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
