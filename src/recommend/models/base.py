"""The one model protocol every recommender follows.

scikit-learn style: hyper-parameters only in ``__init__``; ``fit(dataset)`` learns and
returns ``self``; learned state lives in attributes ending in ``_``; ``get_params()`` is a
flat dict. Scoring goes through one kernel (``recommend.topk``): a factorised model exposes
``factors()``, any other model scores a block of members with ``score_block``.

Fold-in: ``update(member_id, events)`` replaces one member's history (and, for factor
models, re-solves their vector) without refitting, so a backend reacts to what a member
just studied; ``fold_in_batch`` (under ``recommend.ingest``) folds a batch of members in
at once, appends new catalogue rows placed by content, and re-places the new courses they
study from their learners.

Consistent reads. Everything ``update`` and ingestion change (the member id map, the
histories, the members' completions, per-member learned state such as factor rows, the
course side new courses' learners move, and the catalogue: course ids, training data and
the serving cache built from them) lives in one immutable :class:`Snapshot`.
The writer builds the next snapshot copy-on-write, per member,
under the model's lock and publishes it with one reference assignment; readers take no
lock. A request reads inside ``with model.reading():``, which pins the snapshot current at
its start for the calling thread, so every read the request makes (ids, history, scores,
completions) comes from that one version, whatever ``update`` publishes meanwhile: its
answer is the answer before an update or the answer after it, never a mix.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, ClassVar, Concatenate, ParamSpec, Self, TypeVar, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.data.ids import normalise_id
from recommend.data.validation import validate
from recommend.errors import ConfigError, DataError, NotFittedError
from recommend.models import catalogue as catalogue_rows
from recommend.models import fold
from recommend.models.fold import CourseLearners
from recommend.models.history import Catalogue, History
from recommend.schema import Columns
from recommend.topk import TopK, topk_factors, topk_scores

__all__ = [
    "Catalogue",
    "CourseLearners",
    "Factors",
    "History",
    "MemberState",
    "Reading",
    "Recommender",
    "Snapshot",
    "install_cold_route_chooser",
    "install_menu",
    "keep_across_catalogues",
    "one_snapshot",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")
M = TypeVar("M", bound="Recommender")

#: The function ``Recommender.recommend`` answers with. The member menu is built on the
#: models (it sits above them), so it installs itself here when imported
#: (``recommend.menu`` calls :func:`install_menu`; importing ``recommend`` imports it).
_MENU_PROVIDER: tuple[Callable[..., pd.DataFrame]] | None = None


def install_menu(function: Callable[..., pd.DataFrame]) -> None:
    """Make ``function(model, member_ids, n=..., **options)`` answer
    ``Recommender.recommend``."""
    global _MENU_PROVIDER
    _MENU_PROVIDER = (function,)


#: Chooses a fitted model's route for members without history (``cold_route_``); installed
#: by ``recommend.models`` (``recommend.models.cold_routes``), which sits above this module.
_COLD_ROUTE_CHOOSER: tuple[Callable[[Recommender, Dataset], dict[str, Any] | None]] | None = None


def install_cold_route_chooser(
    function: Callable[[Recommender, Dataset], dict[str, Any] | None],
) -> None:
    """Make ``fit`` set ``cold_route_ = function(model, dataset)`` (unless ``None``)."""
    global _COLD_ROUTE_CHOOSER
    _COLD_ROUTE_CHOOSER = (function,)


_SETUP_LOCK = threading.Lock()
#: Model classes whose fold-in was checked for per-member state outside the snapshot.
_CHECKED: set[type] = set()

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
class Snapshot:
    """One published version of what ``update`` changes; never modified once published.

    Attributes
    ----------
    version : int
        0 for the state a fit or restore sets up, one more for each change published since.
    member_ids : IdMap
        The members known to the model (``update`` appends new ones).
    history : History
        Member histories and folded-in completions.
    parts : Mapping[str, Any]
        The model's per-member learned state (:class:`MemberState` attributes, e.g. factor
        rows), by attribute name.
    """

    version: int
    member_ids: IdMap
    history: History
    parts: Mapping[str, Any] = field(default_factory=dict)
    catalogue: Catalogue | None = None

    def with_part(self, name: str, value: Any, version: int | None = None) -> Snapshot:
        """A new snapshot with part ``name`` set to ``value`` (and ``version``, when given)."""
        return replace(
            self,
            version=self.version if version is None else version,
            parts={**self.parts, name: value},
        )


#: Serving-cache key prefixes whose entries do not depend on the catalogue (an attached
#: search index, parts of the artifact a model was loaded from): kept by new catalogues.
_KEPT_ACROSS_CATALOGUES: set[str] = set()


def keep_across_catalogues(prefix: str) -> None:
    """Keep serving-cache entries whose key starts with ``prefix`` when ingestion adds
    courses (entries that are not derived from the catalogue)."""
    _KEPT_ACROSS_CATALOGUES.add(prefix)


#: Snapshot part: course index -> :class:`CourseLearners`, for new courses with learners.
NEW_COURSE_LEARNERS = "new_course_learners"


class _Views(threading.local):
    """Per thread: the snapshot each model is pinned to (``id(model)`` -> snapshot) and the
    models this thread is updating."""

    def __init__(self) -> None:
        self.pinned: dict[int, Snapshot] = {}
        self.writing: set[int] = set()


_VIEWS = _Views()


class Reading:
    """``with model.reading() as snapshot:`` pins ``model``'s current snapshot (or the
    one given) for the calling thread until the block ends (nested blocks keep the outer
    pin)."""

    __slots__ = ("_key", "_model", "_outer", "_snapshot")

    def __init__(self, model: Recommender, snapshot: Snapshot | None = None) -> None:
        self._model = model
        self._key = id(model)
        self._outer: Snapshot | None = None
        self._snapshot = snapshot

    def __enter__(self) -> Snapshot:
        pinned = _VIEWS.pinned
        outer = pinned.get(self._key)
        if outer is not None:
            self._outer = outer
            return outer
        snapshot = self._snapshot if self._snapshot is not None else self._model._latest()
        pinned[self._key] = snapshot
        return snapshot

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._outer is None:
            _VIEWS.pinned.pop(self._key, None)


def one_snapshot(function: Callable[Concatenate[M, P], T]) -> Callable[Concatenate[M, P], T]:
    """Decorator for a product's request function ``function(model, ...)``: the whole call
    reads ``model`` inside ``with model.reading():`` (one snapshot; see
    :meth:`Recommender.reading`). An unfitted model goes through unchanged, so the
    function's own ``check_fitted`` speaks."""

    @functools.wraps(function)
    def pinned(model: M, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if not model.is_fitted:
            return function(model, *args, **kwargs)
        with model.reading():
            return function(model, *args, **kwargs)

    return pinned


class MemberState(property):
    """A learned attribute that ``update`` changes member by member (e.g. factor rows).

    Declared on the class (``member_factors_ = MemberState()``); its value lives in the
    model's :class:`Snapshot`, so readers see it together with the history of the same
    version. Assigning it during ``_fold_in`` stages the new value for the snapshot that
    ``update`` publishes; assigning it anywhere else publishes it at once. A model whose
    ``_fold_in`` rebinds a plain attribute instead gives readers no such guarantee (a
    warning says so).
    """

    def __init__(self, doc: str | None = None) -> None:
        super().__init__(self._get, self._set, None, doc)
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _get(self, model: Recommender) -> Any:
        try:
            return model._view().parts[self.name]
        except KeyError:
            raise AttributeError(
                f"{type(model).__name__} has no learned {self.name} (not fitted?)"
            ) from None

    def _set(self, model: Recommender, value: Any) -> None:
        model._publish_part(self.name, value)


class Recommender(ABC):
    """Base class of all models. Subclasses implement ``_fit`` and ``score_block`` (or
    ``factors``) and may override ``_fold_in``."""

    #: Short name used in tables, artifacts and the CLI.
    name: ClassVar[str] = "recommender"
    #: True when the model can score members and courses from their features alone.
    uses_features: ClassVar[bool] = False
    #: Whether ingestion may add catalogue rows (the model implements ``_add_courses``).
    takes_new_courses: ClassVar[bool] = False

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
            self.__dict__.pop("_published", None)
            raise
        self._choose_cold_route(dataset)
        return self

    def _choose_cold_route(self, dataset: Dataset) -> None:
        """Set ``cold_route_``: how members without history are served, chosen on members
        held out of ``dataset`` (see ``recommend.models.cold_routes``)."""
        self.__dict__.pop("cold_route_", None)
        chooser = _COLD_ROUTE_CHOOSER
        if chooser is None:
            return
        try:
            choice = chooser[0](self, dataset)
        except Exception as err:  # serving falls back to its default cold route
            log.warning("choosing the cold-member route failed (%s); using the default", err)
            return
        if choice is not None:
            self.cold_route_ = choice

    @abstractmethod
    def _fit(self, dataset: Dataset) -> None:
        """Model-specific learning; set attributes ending in ``_``."""

    @property
    def is_fitted(self) -> bool:
        """True once the model was fitted (or restored from an artifact)."""
        return "_published" in self.__dict__

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
        self._cache_lock = threading.RLock()
        self._published = Snapshot(0, member_ids, history, catalogue=Catalogue(course_ids, dataset))
        for name, value in (state or {}).items():
            setattr(self, name, value)
        return self

    # ------------------------------------------------------------------ snapshots
    def snapshot(self) -> Snapshot:
        """The snapshot this thread reads: the one pinned by an enclosing
        :meth:`reading` block, else the latest published."""
        self.check_fitted()
        return self._view()

    def reading(self, snapshot: Snapshot | None = None) -> Reading:
        """``with model.reading():`` -- every read of the model in the block (ids,
        histories, completions, per-member state, hence scores) comes from the snapshot
        current when the block starts, whatever ``update`` publishes meanwhile. No lock is
        taken; blocks nest.

        ``snapshot`` (one a ``reading`` block of this model returned) pins that version
        instead: how a request hands its version to the helper threads it starts."""
        self.check_fitted()
        return Reading(self, snapshot)

    def _view(self) -> Snapshot:
        pinned = _VIEWS.pinned
        if pinned:
            found = pinned.get(id(self))
            if found is not None:
                return found
        try:
            return cast("Snapshot", self.__dict__["_published"])
        except KeyError:
            raise AttributeError(f"{type(self).__name__} is not fitted") from None

    def _publish_part(self, name: str, value: Any) -> None:
        """Set a :class:`MemberState` attribute: staged while this thread runs
        ``update``'s fold-in, published at once otherwise."""
        key = id(self)
        if key in _VIEWS.writing:
            _VIEWS.pinned[key] = _VIEWS.pinned[key].with_part(name, value)
            return
        self._latest()  # not fitted: say so (before any lock exists)
        with self._lock:
            current = self._latest()
            self._published = current.with_part(name, value, current.version + 1)

    def _latest(self) -> Snapshot:
        try:
            return cast("Snapshot", self.__dict__["_published"])
        except KeyError:
            raise AttributeError(f"{type(self).__name__} is not fitted") from None

    def _republish(self, **changes: Any) -> None:
        """Publish the latest snapshot with ``changes`` as the next version."""
        self._latest()  # not fitted: say so (before any lock exists)
        with self._lock:
            current = self._latest()
            self._published = replace(current, version=current.version + 1, **changes)

    @property
    def member_ids_(self) -> IdMap:
        """The members known to the model (training members, then members added by
        ``update``), from this thread's snapshot."""
        return self._view().member_ids

    @member_ids_.setter
    def member_ids_(self, value: IdMap) -> None:
        self._republish(member_ids=value)

    @property
    def course_ids_(self) -> IdMap:
        """The courses known to the model (training catalogue, then catalogue rows added by
        ingestion), from this thread's snapshot."""
        return self._catalogue().course_ids

    @course_ids_.setter
    def course_ids_(self, value: IdMap) -> None:
        self._republish(catalogue=Catalogue(value, self._catalogue().dataset))

    @property
    def dataset_(self) -> Dataset:
        """The training data (grown by ingested catalogue rows), from this thread's
        snapshot; ``AttributeError`` for a model rebuilt without it."""
        dataset = self._catalogue().dataset
        if dataset is None:
            raise AttributeError(f"{type(self).__name__} has no training dataset_")
        return dataset

    @dataset_.setter
    def dataset_(self, value: Dataset) -> None:
        self._republish(catalogue=Catalogue(self._catalogue().course_ids, value))

    def _catalogue(self) -> Catalogue:
        catalogue = self._view().catalogue
        if catalogue is None:
            raise AttributeError(f"{type(self).__name__} is not fitted")
        return catalogue

    @property
    def history_(self) -> History:
        """Member histories (training matrix plus folded-in members), from this thread's
        snapshot."""
        return self._view().history

    @history_.setter
    def history_(self, value: History) -> None:
        self._republish(history=value)

    @property
    def lock(self) -> threading.RLock:
        """The lock that fold-in publishes new state under (``with model.lock:`` reads a
        consistent set of learned attributes)."""
        self._setup_locks()
        return self._lock

    def cached(self, key: str, build: Callable[[], T]) -> T:
        """Derived read-only state kept with the fitted model: ``build()`` on first use.

        Serving layers keep their lookups here (built once, read by many threads); a new
        ``fit`` or ``restore`` starts an empty cache, so nothing outlives the state it was
        derived from. ``build`` runs under the model's lock, once per key. ``update`` does
        not empty the cache: what is kept here must derive from the training data and the
        catalogue alone (course tables, the training matrix); whatever ``update`` changes
        is read from the request's :class:`Snapshot`. The cache belongs to the snapshot's
        :class:`Catalogue`: catalogue rows ingested later start a new one (but for the
        entries :func:`keep_across_catalogues` names), requests on the old catalogue keep
        reading theirs.
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
        # The cache of this thread's catalogue: a request keeps the cache of the catalogue
        # it started on while ingestion publishes a longer one.
        self._setup_locks()
        return self._catalogue().cache

    def _setup_locks(self) -> None:
        # A model made fitted by setting its attributes (not through ``fit``/``restore``)
        # gets its locks on first use.
        if "_cache_lock" not in self.__dict__:
            with _SETUP_LOCK:
                if "_cache_lock" not in self.__dict__:  # another thread may have set it up
                    if "_lock" not in self.__dict__:
                        self._lock = threading.RLock()
                    self._cache_lock = threading.RLock()

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

    def course_similarity(self, course_idx: int) -> np.ndarray | None:
        """How much each course is like course ``course_idx`` by the model's own
        course-course weights, (n_courses,) float32 (a new array), or ``None`` for a model
        without such weights (``recommend.similar_courses`` then uses the course vectors or
        co-occurrence)."""
        return None

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
        training is added. Factor models re-solve the member's vector (``_fold_in``). The
        courses these events complete become the member's completed courses (in place of
        those of the training data): menus no longer pin them as compulsory, and
        ``exclude="completed"`` leaves them out.

        Everything changes in one new :class:`Snapshot`, published at once: a request that
        started before sees none of it, one that starts after sees all of it.
        """
        self.check_fitted()
        ds = self.dataset_
        if isinstance(member_id, str):
            member_id = normalise_id(member_id)  # as validation does for the events' ids
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
        times = ev[C.TIMESTAMP].to_numpy(dtype="datetime64[ns]")
        row, completed = fold.event_rows(
            ds.weighting,
            np.zeros(len(ev), dtype=np.int64),
            course_idx.astype(np.int64),
            ev[C.EVENT].to_numpy(dtype=object),
            times,
            shape=(1, self.n_courses),
            # Live events move the reference time forward (never beyond any clock).
            now=fold.batch_now(ds.now, times, f"update({member_id!r})"),
            durations=self.course_durations(),
            watch_seconds=fold.float_column(ev, C.WATCH_SECONDS),
            value=fold.float_column(ev, C.VALUE),
        )
        # One member's history: courses keep their vectors (``recommend.ingest`` re-places
        # new courses from their learners), so a member's menu depends on their own history.
        self.fold_in_batch([member_id], row, completed, replace=True, courses=False)

    def fold_in_batch(
        self,
        member_ids: Sequence[object] | np.ndarray,
        rows: sp.csr_matrix,
        completed: list[np.ndarray],
        *,
        replace: bool = False,
        courses: bool = True,
        catalogue: Catalogue | None = None,
    ) -> Snapshot:
        """Fold several members in at once and publish them in one new :class:`Snapshot`.

        The step under ``update`` and ``recommend.ingest``: new catalogue rows (a
        ``catalogue`` from :meth:`extended_catalogue`) are placed by content
        (``_add_courses``), the members' history rows and completions change, their
        learned state is re-solved (``_fold_in_members``), new members are appended, and
        courses without training learners that these members study are re-placed from
        their learners (``_fold_in_courses``). A reader sees the whole batch or none of it.

        Parameters
        ----------
        member_ids
            External member ids (normalised, unique), length B.
        rows : csr_matrix, shape (B, n_courses), float32
            The members' confidences: added to their current history rows, or in place of
            them with ``replace``. With a ``catalogue``, ``n_courses`` is its length.
        completed
            Per member, the course indices (int64) their events complete: added to what
            they completed, or in place of it with ``replace``.
        courses
            Re-place the new courses these members study (``False``: their learners are
            recorded, their vectors wait for the next batch that touches them).
        catalogue
            The longer catalogue to publish with the batch (built from the latest
            snapshot's; ``DataError`` when another writer changed it meanwhile).

        Returns
        -------
        The published snapshot.
        """
        self.check_fitted()
        batch = sp.csr_matrix(rows, dtype=np.float32)
        with self._lock:
            current = self._latest()
            if catalogue is not None:
                current = self._with_catalogue(current, catalogue)
            n_courses = len(cast("Catalogue", current.catalogue).course_ids)
            if batch.shape != (len(member_ids), n_courses) or len(completed) != len(member_ids):
                raise DataError(
                    f"fold_in_batch: {len(member_ids)} member(s), rows of shape {batch.shape} "
                    f"and {len(completed)} completion list(s); expected rows "
                    f"({len(member_ids)}, {n_courses}) and one completion list per member"
                )
            new_course, training_done = self._course_side(current)
            ids = current.member_ids.add(member_ids)
            idx = ids.to_index(member_ids).astype(np.int64)
            if np.unique(idx).size != idx.size:
                raise DataError("fold_in_batch: member ids repeat; expected each member once")
            # Members new to the model (indices past the history) get empty rows.
            old = sp.csr_matrix(current.history.rows(idx), dtype=np.float32)
            merged = fold.merged_rows(old, batch, replace=replace)
            done = fold.merged_completions(
                idx, completed, current.history.completed, training_done, replace=replace
            )
            history = current.history.with_members(
                dict(zip(idx.tolist(), fold.split_rows(merged), strict=True)), done
            )
            learners, touched = fold.updated_learners(
                self._learners(current, new_course), new_course, idx, merged, CourseLearners, old
            )
            reach = fold.reach_change(old, merged)
            staged = Snapshot(
                current.version + 1,
                ids,
                history,
                {**current.parts, NEW_COURSE_LEARNERS: learners},
                current.catalogue,
            )
            parts = self._staged(
                staged,
                lambda: self._fold_in_all(idx, merged, touched if courses else None, reach),
            )
            # One reference assignment publishes everything at once: a reader holds either
            # the old snapshot or this one.
            self._published = Snapshot(staged.version, ids, history, parts, current.catalogue)
            return self._published

    def extended_catalogue(self, courses: pd.DataFrame) -> Catalogue:
        """The model's catalogue (latest snapshot) with the courses of ``courses`` (a courses
        table, validated here as at load) appended, for :meth:`fold_in_batch`.

        Raises
        ------
        DataError
            A row the courses validation refuses, or a course the model knows already.
        ConfigError
            The model cannot take courses before a refit (see :meth:`_add_courses`).
        """
        self.check_fitted()
        if not self.takes_new_courses:
            raise ConfigError(
                f"{type(self).__name__} cannot take new catalogue rows before a refit; "
                "expected a model that places courses by content (ALS, BPR, ItemKNN, EASE, "
                "LightFM): refit with the courses in the catalogue"
            )
        current = self._latest().catalogue
        assert current is not None  # fitted
        rows = catalogue_rows.new_course_rows(courses, current.course_ids)
        course_ids = current.course_ids.add(rows[C.COURSE].to_numpy())
        dataset = current.dataset
        if dataset is None:
            raise ConfigError(
                f"{type(self).__name__} has no training data to place new courses by; expected "
                "a model fitted on (or loaded with) its dataset"
            )
        kept = {
            key: value
            for key, value in current.cache.items()
            if any(key.startswith(prefix) for prefix in _KEPT_ACROSS_CATALOGUES)
        }
        return Catalogue(course_ids, dataset.with_new_courses(course_ids, rows), kept)

    def _with_catalogue(self, current: Snapshot, catalogue: Catalogue) -> Snapshot:
        """``current`` with ``catalogue`` (which must extend its catalogue): histories
        widened, the new courses placed by the model (``_add_courses``), staged."""
        before = cast("Catalogue", current.catalogue)
        n_before, n_after = len(before.course_ids), len(catalogue.course_ids)
        if not np.array_equal(
            catalogue.course_ids.external_ids[:n_before], before.course_ids.external_ids
        ):
            raise DataError(
                "fold_in_batch: the catalogue changed since the new courses' catalogue was "
                "built; expected one built from the model's latest snapshot (build it again)"
            )
        old = current.history
        history = History(
            catalogue_rows.widened(old.base, n_after)
            if catalogue.dataset is None
            else catalogue.dataset.interactions,
            catalogue_rows.widened_rows(old.extra, n_after),
            old.completed,
        )
        learners = current.parts.get(NEW_COURSE_LEARNERS)
        staged = Snapshot(current.version, current.member_ids, history, current.parts, catalogue)
        new = np.arange(n_before, n_after, dtype=np.int64)
        parts = self._staged(staged, lambda: self._add_courses(new))
        if learners is not None:
            parts = {**parts, NEW_COURSE_LEARNERS: learners}
        return Snapshot(current.version, current.member_ids, history, parts, catalogue)

    def _course_side(self, snapshot: Snapshot) -> tuple[np.ndarray, sp.csr_matrix]:
        """The new-course mask and training completions of ``snapshot``'s catalogue."""
        with self._pinned(snapshot, writing=False):
            return self.new_course_mask(), self.training_completions()

    def course_durations(self) -> np.ndarray | None:
        """(n_courses,) float64 course durations in seconds (NaN: unknown), or ``None``
        without a duration column (built once per catalogue, kept in the serving cache)."""
        return self.cached("course_durations", lambda: fold.course_durations(self.dataset_))

    def training_completions(self) -> sp.csr_matrix:
        """(n_training_members, n_courses) CSR float32, non-zero where the training data
        has a ``complete`` event (built once, kept in the serving cache)."""
        return self.cached(
            "training_completions",
            lambda: fold.training_completions(self._catalogue().dataset, self.history_.base.shape),
        )

    def _learners(self, snapshot: Snapshot, new_course: np.ndarray) -> Mapping[int, CourseLearners]:
        found = snapshot.parts.get(NEW_COURSE_LEARNERS)
        if found is None:  # e.g. a model loaded from an artifact: rebuilt from the history
            found = fold.learners_from_history(snapshot.history.extra, new_course, CourseLearners)
        return cast("Mapping[int, CourseLearners]", found)

    def new_course_learners(self) -> Mapping[int, CourseLearners]:
        """Course index -> learners folded in since the fit, for courses without learners
        in the training data (from this thread's snapshot)."""
        self.check_fitted()
        return self._learners(self._view(), self.new_course_mask())

    def new_course_mask(self) -> np.ndarray:
        """(n_courses,) bool: courses without learners in the training data (built once)."""
        return self.cached("new_course_mask", lambda: self.history_.base.getnnz(axis=0) == 0)

    @contextmanager
    def _pinned(self, snapshot: Snapshot, *, writing: bool) -> Iterator[None]:
        """This thread reads ``snapshot`` in the block (whatever it had pinned before),
        and, ``writing``, stages what is assigned to :class:`MemberState` attributes."""
        key = id(self)
        views = _VIEWS
        outer = views.pinned.get(key)
        views.pinned[key] = snapshot
        if writing:
            views.writing.add(key)
        try:
            yield
        finally:
            if writing:
                views.writing.discard(key)
            if outer is None:
                views.pinned.pop(key, None)
            else:
                views.pinned[key] = outer

    def _staged(self, staged: Snapshot, step: Callable[[], None]) -> Mapping[str, Any]:
        """Run ``step`` (model hooks) with this thread reading ``staged`` and staging what
        they assign to :class:`MemberState` attributes; the staged parts."""
        # Whether the hooks keep per-member state outside the snapshot: looked at on a
        # class's first update only (the check copies the instance's attributes).
        before = None if type(self) in _CHECKED else dict(vars(self))
        with self._pinned(staged, writing=True):
            step()
            parts = _VIEWS.pinned[id(self)].parts
        if before is not None:
            _CHECKED.add(type(self))
            self._warn_plain_rebinds(before)
        return parts

    def _fold_in_all(
        self,
        idx: np.ndarray,
        rows: sp.csr_matrix,
        courses: Mapping[int, CourseLearners] | None,
        reach: np.ndarray,
    ) -> None:
        if idx.size:  # a batch may bring catalogue rows alone
            self._fold_in_members(idx, rows)
        if courses is not None:
            self._fold_in_courses(courses, reach)

    def _warn_plain_rebinds(self, before: Mapping[str, Any]) -> None:
        """Warn when ``_fold_in`` rebound learned attributes that are not
        :class:`MemberState`: readers may see them before the matching history."""
        cls = type(self)
        changed = sorted(
            name
            for name, value in vars(self).items()
            if name.endswith("_") and not name.startswith("_") and before.get(name) is not value
        )
        if changed:
            log.warning(
                "%s._fold_in replaced %s outside the model's snapshot: concurrent readers may "
                "see it before the matching history; declare it as a MemberState attribute",
                cls.__name__,
                changed,
            )

    def _fold_in(self, member_idx: int, row: sp.csr_matrix) -> None:
        """Refresh model state for one member from their new history row (1, n_courses).

        History-based models (EASE, item-kNN, popularity) need nothing: they score straight
        from history. Factor models override this to re-solve the member's vector.
        """
        return None

    def _fold_in_members(self, member_idx: np.ndarray, rows: sp.csr_matrix) -> None:
        """Refresh model state for a batch of members (``member_idx`` (B,) int64, their
        history rows (B, n_courses)); the default runs ``_fold_in`` member by member."""
        for member, row in zip(member_idx.tolist(), fold.split_rows(rows), strict=True):
            self._fold_in(int(member), row)

    def _fold_in_courses(self, learners: Mapping[int, CourseLearners], reach: np.ndarray) -> None:
        """Refresh course-side state after a batch: ``learners`` holds every learner of each
        new course (no training learners) the batch touched; ``reach`` (n_courses,) int64
        how many more members have each course in their history. Nothing by default
        (models that score straight from history need nothing)."""
        return None

    def _add_courses(self, courses: np.ndarray) -> None:
        """Place new catalogue rows by content: ``courses`` (k,) int64 are the indices
        appended to the catalogue this thread reads (``n_courses`` and ``dataset_``
        include them; course-side learned state does not yet). Models that set
        ``takes_new_courses`` grow their course-side state here with the placement they
        give courses without training learners at fit."""
        raise NotImplementedError(f"{type(self).__name__} cannot take new courses")
