"""The one model protocol every recommender follows.

scikit-learn style: hyper-parameters only in ``__init__``; ``fit(dataset)`` learns and
returns ``self``; learned state lives in attributes ending in ``_``; ``get_params()`` is a
flat dict. Scoring goes through one kernel (``recommend.topk``): a factorised model exposes
``factors()``, any other model scores a block of members with ``score_block``.

Fold-in: ``update(member_id, events)`` replaces one member's history (and, for factor
models, re-solves their vector) without refitting, so a backend reacts to what a member
just studied. Updates are published copy-on-write under a lock, so readers in other
threads always see a consistent state.
"""

from __future__ import annotations

import inspect
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self, TypeVar, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.data.validation import validate
from recommend.errors import ConfigError, DataError, NotFittedError
from recommend.schema import Columns
from recommend.topk import TopK, topk_factors, topk_scores

__all__ = ["Factors", "History", "Recommender", "install_menu"]

T = TypeVar("T")

#: The function ``Recommender.recommend`` answers with. The member menu is built on the
#: models (it sits above them), so it installs itself here when imported
#: (``recommend.menu`` calls :func:`install_menu`; importing ``recommend`` imports it).
_MENU_PROVIDER: tuple[Callable[..., pd.DataFrame]] | None = None


def install_menu(function: Callable[..., pd.DataFrame]) -> None:
    """Make ``function(model, member_ids, n=..., **options)`` answer
    ``Recommender.recommend``."""
    global _MENU_PROVIDER
    _MENU_PROVIDER = (function,)


_SETUP_LOCK = threading.Lock()

C = Columns


@dataclass(frozen=True)
class Factors:
    """Latent factors of a factorised model: score = members @ courses.T + course_bias.

    ``members`` (n_members, f) float32, ``courses`` (n_courses, f) float32, ``course_bias``
    (n_courses,) float32 or ``None``.
    """

    members: np.ndarray
    courses: np.ndarray
    course_bias: np.ndarray | None = None


@dataclass(frozen=True)
class History:
    """Members' interaction histories: the training matrix plus folded-in members.

    ``base`` is the (n_members, n_courses) CSR training matrix; ``extra`` maps a member index
    (possibly >= n_members for members first seen through ``update``) to its replacement row,
    a (1, n_courses) CSR matrix.
    """

    base: sp.csr_matrix
    extra: dict[int, sp.csr_matrix] = field(default_factory=dict)

    def rows(self, member_idx: np.ndarray) -> sp.csr_matrix:
        """History rows of ``member_idx`` (all >= 0), shape (len, n_courses), CSR float32."""
        idx = np.asarray(member_idx, dtype=np.int64)
        n_base, n_courses = self.base.shape
        if (idx < n_base).all() and not (self.extra and np.isin(idx, list(self.extra)).any()):
            return self.base[idx]
        # Folded-in members are few: assemble their rows one by one.
        empty = sp.csr_matrix((1, n_courses), dtype=np.float32)
        parts = [self.extra.get(int(i), self.base[int(i)] if i < n_base else empty) for i in idx]
        return sp.vstack(parts, format="csr", dtype=np.float32)

    def counts(self, member_idx: np.ndarray) -> np.ndarray:
        """Number of courses in each member's history, shape (len,), int64."""
        return np.asarray(self.rows(member_idx).getnnz(axis=1), dtype=np.int64)


class Recommender(ABC):
    """Base class of all models. Subclasses implement ``_fit`` and ``score_block`` (or
    ``factors``) and may override ``_fold_in``."""

    #: Short name used in tables, artifacts and the CLI.
    name: ClassVar[str] = "recommender"
    #: True when the model can score members and courses from their features alone.
    uses_features: ClassVar[bool] = False

    # ------------------------------------------------------------------ parameters
    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the hyper-parameters (the arguments of ``__init__``), in order."""
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters as a flat dict (what tracking logs and artifacts store)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set hyper-parameters; unknown names raise ``ConfigError``."""
        unknown = set(params) - set(self.param_names())
        if unknown:
            raise ConfigError(
                f"{type(self).__name__} has no parameter(s) {sorted(unknown)}; "
                f"expected some of {self.param_names()}"
            )
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def clone(self) -> Self:
        """A new, unfitted model with the same hyper-parameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset) -> Self:
        """Learn from ``dataset`` (never modified) and return ``self``."""
        if not isinstance(dataset, Dataset):
            raise DataError(f"fit expects a recommend.Dataset, got {type(dataset).__name__}")
        self.restore(
            member_ids=dataset.member_ids,
            course_ids=dataset.course_ids,
            dataset=dataset,
            history=History(dataset.interactions),
        )
        try:
            self._fit(dataset)
        except BaseException:
            # A failed fit must not leave a model that claims to be fitted.
            for attr in ("member_ids_", "course_ids_", "dataset_", "history_"):
                self.__dict__.pop(attr, None)
            raise
        return self

    @abstractmethod
    def _fit(self, dataset: Dataset) -> None:
        """Model-specific learning; set attributes ending in ``_``."""

    @property
    def is_fitted(self) -> bool:
        """True once the model was fitted (or restored from an artifact)."""
        return hasattr(self, "history_")

    def check_fitted(self) -> None:
        """Raise ``NotFittedError`` unless the model is fitted (or restored)."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit(dataset) first")

    def restore(
        self,
        *,
        member_ids: IdMap,
        course_ids: IdMap,
        dataset: Dataset | None,
        history: History,
        state: Mapping[str, Any] | None = None,
    ) -> Self:
        """Put the model in a fitted state from saved parts, without learning.

        What ``fit`` sets before the model learns, plus the learned attributes ``state``
        (names ending in ``_``), for code that rebuilds a model from stored parts (an
        artifact, factors trained elsewhere). The serving cache starts empty.

        Parameters
        ----------
        member_ids, course_ids
            The id maps the model's indices refer to.
        dataset
            The training data (``None`` for a model rebuilt without it).
        history
            Member histories, rows aligned with ``member_ids``.
        state
            Learned attributes to set, e.g. ``{"member_factors_": ...}``.
        """
        for name in state or {}:
            if not name.endswith("_") or name.startswith("_"):
                raise ValueError(f"restore: {name!r} is not a learned attribute (name_)")
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}
        self._cache_lock = threading.RLock()
        self.member_ids_ = member_ids
        self.course_ids_ = course_ids
        if dataset is not None:
            self.dataset_ = dataset
        self.history_ = history
        for name, value in (state or {}).items():
            setattr(self, name, value)
        return self

    @property
    def lock(self) -> threading.RLock:
        """The lock that fold-in publishes new state under (``with model.lock:`` reads a
        consistent set of learned attributes)."""
        self._serving_cache()
        return self._lock

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """Derived read-only state kept with the fitted model: ``build()`` on first use.

        Serving layers keep their lookups here (built once, read by many threads); a new
        ``fit`` or ``restore`` starts an empty cache, so nothing outlives the state it was
        derived from. ``build`` runs under the model's lock, once per key.
        """
        self.check_fitted()
        cache = self._serving_cache()
        try:
            return cast("T", cache[key])
        except KeyError:
            pass
        with self._cache_lock:
            if key not in cache:
                cache[key] = build()
            return cast("T", cache[key])

    def cache_entry(self, key: str) -> Any:
        """What :meth:`cached` keeps under ``key``, or ``None``."""
        self.check_fitted()
        return self._serving_cache().get(key)

    def set_cache_entry(self, key: str, value: Any) -> None:
        """Keep ``value`` under ``key`` in the serving cache (replacing what was there)."""
        self.check_fitted()
        cache = self._serving_cache()
        with self._cache_lock:
            cache[key] = value

    def _serving_cache(self) -> dict[str, Any]:
        # A model made fitted by setting its attributes (not through ``fit``/``restore``)
        # gets its lock and cache on first use.
        if "_cache" not in self.__dict__:
            with _SETUP_LOCK:
                if "_cache" not in self.__dict__:  # another thread may have set it up
                    if "_lock" not in self.__dict__:
                        self._lock = threading.RLock()
                    self._cache_lock = threading.RLock()
                    self._cache = {}
        return self._cache

    @property
    def n_courses(self) -> int:
        self.check_fitted()
        return len(self.course_ids_)

    # ------------------------------------------------------------------ scoring
    def factors(self) -> Factors | None:
        """Latent factors (members including folded-in ones) or ``None`` if not factorised."""
        return None

    def member_vectors(self, member_idx: np.ndarray) -> np.ndarray:
        """Factor rows of members ``member_idx``, (len, f) float32 (factor models only).

        The default slices ``factors().members``; models that keep member vectors in a
        structure of their own override it to gather just the rows asked for.
        """
        f = self.factors()
        if f is None:
            raise NotImplementedError(f"{type(self).__name__} is not a factor model")
        return f.members[np.asarray(member_idx, dtype=np.int64)]

    def course_vectors(self) -> tuple[np.ndarray, np.ndarray | None] | None:
        """Course factors (n_courses, f) and bias (n_courses,) or ``None``; ``None`` for a
        model that is not factorised."""
        f = self.factors()
        return None if f is None else (f.courses, f.course_bias)

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        """Scores of members ``member_idx`` for all courses, (len, n_courses) float32.

        The default implementation uses the factors; non-factorised models override it.
        Must not mutate shared state (it runs in several threads at once).
        """
        side = self.course_vectors()
        if side is None:
            raise NotImplementedError(f"{type(self).__name__} must implement score_block")
        courses, bias = side
        out = self.member_vectors(member_idx) @ courses.T
        if bias is not None:
            out += bias
        return out.astype(np.float32, copy=False)

    def score(self, member_idx: np.ndarray, course_idx: np.ndarray | None = None) -> np.ndarray:
        """Scores of members (indices) for courses (indices, all when ``None``).

        Returns an array of shape (len(member_idx), len(course_idx) or n_courses), float32.
        """
        self.check_fitted()
        scores = self.score_block(np.asarray(member_idx, dtype=np.int64))
        return scores if course_idx is None else scores[:, np.asarray(course_idx)]

    def topk(
        self,
        member_idx: np.ndarray,
        k: int,
        *,
        exclude: sp.csr_matrix | None = None,
        forbid: np.ndarray | None = None,
        allow: np.ndarray | None = None,
    ) -> TopK:
        """Best ``k`` course indices per member through the shared kernel."""
        self.check_fitted()
        idx = np.asarray(member_idx, dtype=np.int64)
        side = self.course_vectors()
        if side is not None:
            return topk_factors(
                self.member_vectors(idx),
                side[0],
                k,
                course_bias=side[1],
                exclude=exclude,
                forbid=forbid,
                allow=allow,
            )
        return topk_scores(
            self.score_block, idx, self.n_courses, k, exclude=exclude, forbid=forbid, allow=allow
        )

    # ------------------------------------------------------------------ serving
    def recommend(self, member_ids: Any, n: int = 10, **options: Any) -> pd.DataFrame:
        """Member menus: ``member_id, course_id, score, rank, reason, route``.

        The same as ``recommend.member_menu(model, member_ids, n=n, **options)``; see it
        for the options (filters, pins, diversity).
        """
        if _MENU_PROVIDER is None:
            raise NotImplementedError(
                "no member menu is installed: import recommend (or recommend.menu) first"
            )
        return _MENU_PROVIDER[0](self, member_ids, n=n, **options)

    # ------------------------------------------------------------------ fold-in
    def update(self, member_id: object, events: pd.DataFrame) -> None:
        """Replace one member's history with ``events`` (all of theirs) without refitting.

        ``events`` is an events frame for this member (validated here). A member not seen in
        training is added. Factor models re-solve the member's vector (``_fold_in``).
        """
        self.check_fitted()
        ds = self.dataset_
        ev = validate("events", events, event_weights=ds.weighting.event_weights)
        n_other = int((ev[C.MEMBER].to_numpy() != member_id).sum())
        if n_other:
            raise DataError(
                f"update({member_id!r}): {n_other} event(s) belong to other members; "
                "expected only this member's events"
            )
        course_idx = self.course_ids_.to_index(ev[C.COURSE], unknown="mask")
        if (course_idx < 0).any():
            unknown = pd.unique(ev.loc[course_idx < 0, C.COURSE])[:5].tolist()
            raise DataError(f"update({member_id!r}): unknown courses {unknown}")
        durations = None
        if ds.courses is not None and C.DURATION in ds.courses.columns:
            durations = ds.courses[C.DURATION].to_numpy(dtype=np.float64)[course_idx]
        now = max(ds.now, pd.Timestamp(ev[C.TIMESTAMP].max())) if len(ev) else ds.now
        conf = ds.weighting.event_confidence(ev, durations, now)
        row = ds.weighting.matrix(
            np.zeros(len(ev), dtype=np.int64), course_idx, conf, (1, self.n_courses)
        )
        with self._lock:
            known = member_id in self.member_ids_
            ids = self.member_ids_ if known else self.member_ids_.add([member_id])
            idx = int(ids.to_index([member_id])[0])
            self._fold_in(idx, row)
            extra = dict(self.history_.extra)
            extra[idx] = row
            self.history_ = History(self.history_.base, extra)
            self.member_ids_ = ids

    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        """Refresh model state for one member from their new history row (1, n_courses).

        History-based models (EASE, item-kNN, popularity) need nothing: they score straight
        from history. Factor models override this to re-solve the member's vector.
        """
        return None
