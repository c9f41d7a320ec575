"""Routes: how each member of a request is scored.

``personal``
    The member has a history: the model's own scores.
``cold_features``
    No history, the model scores members from their attributes (a hybrid model with
    ``uses_features = True`` and ``cold_member_scores``), attributes are known, and that
    route validated best (``cold_route_``).
``cold_segment``
    No history: course popularity among members sharing the member's segment (age band,
    occupation, district or branch), possibly shrunk towards global popularity.
``cold_global``
    No history, no usable attribute, or global popularity validated best: popularity on
    the whole platform.

Which popularity serves members without history is the model's ``cold_route_``, chosen at
fit time on members held out of the training data (``recommend.models.cold_routes``) and
saved with the model. A :class:`Popularity` model serves its own setting (``segment=None``:
global popularity). A model without a recorded choice (an artifact from an older version)
gets ``Popularity(segment="auto")`` fitted on its training data (branch counts when that
fails).

:func:`route_groups` splits a request into groups of members scored alike, each with a
scorer that returns fresh (members, n_courses) float32 scores, the route of each member
and its constant reason (``None``: explain from history).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.engine.reasons import (
    REASON_BRANCH,
    REASON_FEATURES,
    REASON_GLOBAL,
    REASON_SEGMENT,
    segment_reason,
)
from recommend.engine.request import MemberRequest
from recommend.engine.state import serving_state
from recommend.errors import DataError
from recommend.messages import Message
from recommend.models.cold_routes import COLD_FEATURES, cold_popularity
from recommend.models.popularity import Popularity
from recommend.schema import Columns

if TYPE_CHECKING:
    from recommend.engine.state import ServingState
    from recommend.models.base import Recommender

__all__ = [
    "ROUTES",
    "ROUTE_FEATURES",
    "ROUTE_GLOBAL",
    "ROUTE_PERSONAL",
    "ROUTE_SEGMENT",
    "Chunk",
    "ColdScorer",
    "RouteGroup",
    "RouteScorer",
    "Scored",
    "cold_scorer",
    "cold_scorers",
    "route_codes",
    "route_groups",
    "uses_cold_features",
]

logger = logging.getLogger(__name__)
C = Columns

ROUTE_PERSONAL = "personal"
ROUTE_FEATURES = "cold_features"
ROUTE_SEGMENT = "cold_segment"
ROUTE_GLOBAL = "cold_global"
ROUTES = (ROUTE_PERSONAL, ROUTE_FEATURES, ROUTE_SEGMENT, ROUTE_GLOBAL)

_ROUTE_CODE = {route: code for code, route in enumerate(ROUTES)}


def route_codes(routes: np.ndarray) -> NDArray[np.int8]:
    """Route names (object array) as their index in :data:`ROUTES`, int8."""
    return np.array([_ROUTE_CODE[r] for r in routes.tolist()], dtype=np.int8)


#: Scores of some members for every course and their routes:
#: ``scorer(positions) -> (scores (len, n_courses) float32, fresh; routes (len,) object)``.
RouteScorer = Callable[[NDArray[np.int64]], tuple[np.ndarray, np.ndarray]]


def cold_scorer(model: Recommender) -> ColdScorer:
    """The model's scorer of members without history (segment popularity), fitted once
    per fitted model and kept in its serving cache."""
    return model.cached("cold_scorer", lambda: _build_cold_scorer(model))


def uses_cold_features(model: Recommender) -> bool:
    """Whether members without history are scored by the (hybrid) model's features: the
    model can, and its validated cold route (when it has one) is the features route."""
    if not (
        getattr(model, "uses_features", False)
        and callable(getattr(model, "cold_member_scores", None))
    ):
        return False
    choice = getattr(model, "cold_route_", None)
    return not isinstance(choice, dict) or choice.get("route") == COLD_FEATURES


def _build_cold_scorer(model: Recommender) -> ColdScorer:
    state = serving_state(model)
    if isinstance(model, Popularity):
        # The model's own segment setting is its cold route (None: global popularity).
        return PopularityScorer(model, state.n_courses)
    choice = getattr(model, "cold_route_", None)
    if isinstance(choice, dict) and isinstance(choice.get("popularity"), dict):
        try:
            return PopularityScorer(cold_popularity(choice, model.course_ids_), state.n_courses)
        except Exception as err:  # cold start must survive a damaged choice
            logger.warning("stored cold route failed (%s); using segment popularity", err)
    ds = state.dataset
    if ds is not None:
        try:
            # Segments need member attributes: without a members table, global popularity
            # (and no warning about a segment setting the caller never made).
            segment = "auto" if ds.members is not None else None
            popularity = Popularity(segment=segment).fit(ds)
            return PopularityScorer(popularity, state.n_courses)
        except Exception as err:  # cold start must survive a failing model
            logger.warning("segment popularity failed (%s); using branch counts", err)
    return CountScorer(state.base, state.member_orgs())


@dataclass(frozen=True)
class Scored:
    """Scores of a chunk of members, fresh and writable (members, n_courses) float32,
    with each member's route and constant reason (a ``Message``; ``None``: explain from
    history)."""

    scores: np.ndarray
    routes: np.ndarray
    reasons: np.ndarray


class ColdScorer:
    """Popularity for members without history, from their attributes."""

    def score(self, attributes: pd.DataFrame) -> Scored:
        raise NotImplementedError

    def global_scores(self) -> np.ndarray:
        """What a member with no attributes gets, (n_courses,) float32 (read-only)."""
        raise NotImplementedError

    def score_global(self, m: int) -> Scored:
        return Scored(
            np.tile(self.global_scores(), (m, 1)), *constant(m, ROUTE_GLOBAL, REASON_GLOBAL)
        )


def cold_labels(
    segment: np.ndarray,
    branch: np.ndarray,
    kinds: np.ndarray | None = None,
    values: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Routes and reasons of cold members: the branch, the segment (named by its
    ``kinds`` and the members' ``values`` of their kind, :func:`kind_values`) or the
    platform."""
    routes = np.where(segment, ROUTE_SEGMENT, ROUTE_GLOBAL).astype(object)
    reasons = np.full(segment.size, REASON_GLOBAL, dtype=object)
    reasons[segment] = REASON_SEGMENT
    if kinds is not None and values is not None:
        for i in np.flatnonzero(segment).tolist():
            reasons[i] = segment_reason(kinds[i], values[i])
    reasons[branch] = REASON_BRANCH
    return routes, reasons


def kind_values(kinds: np.ndarray, attributes: pd.DataFrame) -> np.ndarray:
    """Each member's value of the segment kind that served them (``None`` where the kind is
    ``None`` or not a column of ``attributes``), (len(attributes),) object."""
    values = np.full(len(kinds), None, dtype=object)
    for i, kind in enumerate(kinds.tolist()):
        if kind is not None and kind in attributes.columns:
            values[i] = attributes[kind].iat[i]
    return values


@dataclass(frozen=True)
class KnownSegments:
    """The segment of every training member as the members table describes them (what a
    request without ``member_attributes`` gets): segment rows, kinds and values of
    :meth:`PopularityScorer.score`, indexed by model member index."""

    rows: NDArray[np.int32]
    kinds: np.ndarray
    values: np.ndarray


class PopularityScorer(ColdScorer):
    """Adapter over ``recommend.models.popularity.Popularity``.

    The model gives a member one segment or, when no segment applies (attribute missing,
    segment too small or unknown), global popularity. Which one it was shows in the scores
    themselves: a row equal to the row of a member without attributes is global. A member
    whose scores equal those from their branch alone was served by their branch.
    """

    def __init__(self, model: Any, n_courses: int) -> None:
        self.model = model
        self.n_courses = n_courses
        self.kinds = tuple(getattr(model, "kinds", ()) or ())
        self._known: tuple[pd.DataFrame, KnownSegments | None] | None = None
        self._lock = threading.Lock()
        self._fallback = self._segment_scores(pd.DataFrame(index=range(1)))[0]
        self._fallback.setflags(write=False)

    def global_scores(self) -> np.ndarray:
        fallback: np.ndarray = self._fallback
        return fallback

    def _segment_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        # A copy: the menu writes exclusions into the scores it gets.
        out = np.array(self.model.segment_scores(attributes), dtype=np.float32)
        if out.shape != (len(attributes), self.n_courses):
            raise DataError(
                f"segment_scores returned shape {out.shape}; expected "
                f"({len(attributes)}, {self.n_courses})"
            )
        return out

    def score(self, attributes: pd.DataFrame) -> Scored:
        with_kinds = getattr(self.model, "segment_scores_with_kinds", None)
        if with_kinds is None:
            return self._score_probing(attributes)
        got, kinds = with_kinds(attributes)
        # A fresh array (no copy needed for the exclusions the menu writes into it).
        scores = np.asarray(got, dtype=np.float32)
        if scores.shape != (len(attributes), self.n_courses):
            raise DataError(
                f"segment_scores returned shape {scores.shape}; expected "
                f"({len(attributes)}, {self.n_courses})"
            )
        kinds = np.asarray(kinds, dtype=object)
        return self._labelled(scores, kinds, kind_values(kinds, attributes))

    def _labelled(self, scores: np.ndarray, kinds: np.ndarray, values: np.ndarray) -> Scored:
        # The same labels as probing: a member not served by a segment has the global
        # scores; a segment's scores may still equal them, which counts as global. The
        # branch is the first kind tried, so whoever its probe (the branch alone) would
        # give the member's own scores was served by the branch.
        segment = np.array([kind is not None for kind in kinds.tolist()], dtype=bool)
        if segment.any():
            at = np.flatnonzero(segment)
            segment[at] = rows_differ(scores, at, self._fallback)
        branch = segment & (kinds == C.ORG)
        return Scored(scores, *cold_labels(segment, branch, kinds, values))

    def known_segments(self, state: ServingState) -> KnownSegments | None:
        """:class:`KnownSegments` of the training members (built on first use, kept), or
        ``None`` when this scorer cannot tell segments apart from scores."""
        if not isinstance(self.model, Popularity) or state.dataset is None:
            return None
        members = state.dataset.members
        if members is None:
            return None
        cached = self._known
        if cached is not None and cached[0] is members:
            return cached[1]
        with self._lock:
            cached = self._known
            if cached is None or cached[0] is not members:
                cached = (members, _known_segments(self.model, state, len(members)))
                self._known = cached
        return cached[1]

    def score_known(self, known: KnownSegments, idx: NDArray[np.int64]) -> Scored:
        """:meth:`score` of training members (model indices ``idx``) described by the
        members table alone, from their :meth:`known_segments`, without attribute frames."""
        assert isinstance(self.model, Popularity)
        scores = self.model.row_scores(known.rows[idx])
        return self._labelled(scores, known.kinds[idx], known.values[idx])

    def _score_probing(self, attributes: pd.DataFrame) -> Scored:
        """Labels from the scores alone, for a model that does not tell the kind."""
        scores = self._segment_scores(attributes)
        segment = rows_differ(scores, np.arange(len(scores)), self._fallback)
        branch = np.zeros(len(attributes), dtype=bool)
        if segment.any() and C.ORG in self.kinds and C.ORG in attributes.columns:
            probe = attributes.loc[segment, [C.ORG]].reset_index(drop=True)
            branch[segment] = (self._segment_scores(probe) == scores[segment]).all(axis=1)
        return Scored(scores, *cold_labels(segment, branch))


def _known_segments(model: Popularity, state: ServingState, n: int) -> KnownSegments | None:
    """Segments of training members ``0..n-1`` from their attribute rows (the rows
    :meth:`MemberRequest.attribute_rows` gives a request without attributes), or ``None``
    where a member's segment could depend on the other members asked with it: a float
    column of non-integral values (``segment_rows`` writes a float column's whole values
    without ".0" only when all of the request's values are whole)."""
    idx = np.arange(n, dtype=np.int64)
    attrs = MemberRequest(idx, idx, None).attribute_rows(state, idx)
    for column in attrs.columns:
        values = attrs[column]
        if column != C.MEMBER and pd.api.types.is_float_dtype(values.dtype):
            finite = values.dropna()
            if not (finite == np.round(finite)).all():
                return None
    rows, kinds = model.segment_rows(attrs)
    kinds = np.asarray(kinds, dtype=object)
    return KnownSegments(np.asarray(rows, dtype=np.int32), kinds, kind_values(kinds, attrs))


def rows_differ(scores: np.ndarray, rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Whether each of ``scores[rows]`` ((m, n) scores, int row numbers) differs from
    ``reference`` (n,) anywhere.

    Rows that differ usually do so in their first columns already (segment scores are the
    global counts scaled down plus the segment's own), so a first look at a few columns
    settles most of them; only the rest are compared in full.
    """
    head = min(DIFFER_HEAD, scores.shape[1])
    differ = (scores[rows, :head] != reference[:head]).any(axis=1)
    open_ = np.flatnonzero(~differ)
    if open_.size and head < scores.shape[1]:
        differ[open_] = (scores[rows[open_], head:] != reference[head:]).any(axis=1)
    out: np.ndarray = differ
    return out


DIFFER_HEAD = 256


class CountScorer(ColdScorer):
    """Fallback when no popularity model is available: how many members studied each
    course, in the member's branch (platform counts breaking ties) or on the platform."""

    def __init__(self, base: sp.csr_matrix, member_orgs: np.ndarray) -> None:
        seen = base.copy()
        seen.data = np.ones_like(seen.data)
        counts = np.asarray(seen.sum(axis=0), dtype=np.float64).reshape(-1)
        self._global = counts.astype(np.float32)
        self._tiebreak = (counts / (counts.max() + 1.0) if counts.size else counts).astype(
            np.float32
        )
        self._orgs: dict[str, int] = {}
        self._by_org = sp.csr_matrix((0, base.shape[1]), dtype=np.float32)
        n = min(len(member_orgs), base.shape[0])
        if n:
            known = np.array([o is not None for o in member_orgs[:n]], dtype=bool)
            codes, uniques = pd.factorize(member_orgs[:n][known])
            self._orgs = {str(o): i for i, o in enumerate(uniques)}
            assign = sp.csr_matrix(
                (np.ones(codes.size, np.float32), (codes, np.flatnonzero(known))),
                shape=(len(uniques), base.shape[0]),
            )
            self._by_org = (assign @ seen).tocsr()

    def score(self, attributes: pd.DataFrame) -> Scored:
        m = len(attributes)
        scores = np.tile(self._global, (m, 1))
        branch = np.zeros(m, dtype=bool)
        orgs = attributes[C.ORG].tolist() if C.ORG in attributes.columns else [None] * m
        for i, org in enumerate(orgs):
            row = None if org is None or pd.isna(org) else self._orgs.get(str(org))
            if row is not None:
                lo, hi = self._by_org.indptr[row], self._by_org.indptr[row + 1]
                scores[i] = self._tiebreak
                scores[i, self._by_org.indices[lo:hi]] += self._by_org.data[lo:hi]
                branch[i] = True
        return Scored(scores, *cold_labels(branch, branch))

    def global_scores(self) -> np.ndarray:
        return self._global


@dataclass
class Chunk:
    """Up to ``_CHUNK`` members of one group: request positions, model indices, and
    attribute rows where the group uses them."""

    pos: NDArray[np.int64]
    idx: NDArray[np.int64]
    attributes: pd.DataFrame | None


@dataclass
class RouteGroup:
    """Members served alike, and how to score a chunk of them."""

    pos: NDArray[np.int64]
    idx: NDArray[np.int64]
    scorer: Callable[[Chunk], Scored]
    attributes: pd.DataFrame | None = None

    def take(self, part: slice) -> Chunk:
        attrs = None
        if self.attributes is not None:
            attrs = self.attributes.iloc[part].reset_index(drop=True)
        return Chunk(self.pos[part], self.idx[part], attrs)


def constant(m: int, route: str, reason: Message | None) -> tuple[np.ndarray, np.ndarray]:
    return np.full(m, route, dtype=object), np.full(m, reason, dtype=object)


def route_groups(
    model: Recommender, state: ServingState, req: MemberRequest, history_counts: NDArray[np.int64]
) -> list[RouteGroup]:
    """Split the request into groups by how members are scored (see the module routes)."""
    personal = history_counts > 0
    groups: list[RouteGroup] = []
    if personal.any():
        rows = np.flatnonzero(personal)

        def personal_scores(chunk: Chunk) -> Scored:
            # score_block returns a new array (protocol), which the menu may overwrite.
            scores = np.asarray(model.score_block(chunk.idx), dtype=np.float32)
            return Scored(scores, *constant(len(chunk.pos), ROUTE_PERSONAL, None))

        groups.append(RouteGroup(rows, req.idx[rows], personal_scores))
    if personal.all():
        return groups

    cold = np.flatnonzero(~personal)
    hybrid = uses_cold_features(model)
    if hybrid:
        # A hybrid model already places the members it was trained with by their
        # attributes (their identity part learned nothing without history): score their
        # vectors as they are. This also keeps menus identical after an artifact round
        # trip, which stores no personal attributes.
        known = req.idx[cold] >= 0
        if known.any():
            rows = cold[known]

            def trained_rows(chunk: Chunk) -> Scored:
                scores = np.asarray(model.score_block(chunk.idx), dtype=np.float32)
                return Scored(scores, *constant(len(chunk.pos), ROUTE_FEATURES, REASON_FEATURES))

            groups.append(RouteGroup(rows, req.idx[rows], trained_rows))
            cold = cold[~known]
            if not cold.size:
                return groups

    members = state.dataset.members if state.dataset is not None else None
    if req.attributes is None and (members is None or (req.idx[cold] < 0).all()):
        # Unknown members and nothing said about them: platform popularity, without
        # assembling attribute frames (the common cold request of a backend).
        scorer = cold_scorer(model)
        groups.append(RouteGroup(cold, req.idx[cold], lambda c: scorer.score_global(len(c.pos))))
        return groups
    if req.attributes is None and not hybrid and members is not None:
        from_table = _known_route(model, state, req.idx[cold], len(members))
        if from_table is not None:
            groups.append(RouteGroup(cold, req.idx[cold], from_table))
            return groups
    attrs = req.attribute_rows(state, cold)
    described = attrs.drop(columns=[C.MEMBER]).notna().any(axis=1).to_numpy(dtype=bool)
    popular = np.ones(len(cold), dtype=bool)

    cold_fn = getattr(model, "cold_member_scores", None)
    if hybrid and callable(cold_fn) and described.any():
        sub = attrs[described].reset_index(drop=True)
        try:
            feature_scores = np.asarray(cold_fn(sub), dtype=np.float32)
            if feature_scores.shape != (len(sub), state.n_courses):
                raise DataError(
                    f"cold_member_scores returned shape {feature_scores.shape}; expected "
                    f"({len(sub)}, {state.n_courses})"
                )
        except Exception as err:  # a failing hybrid model falls back to popularity
            logger.warning("cold_member_scores failed (%s); using segment popularity", err)
        else:
            rows = cold[described]
            offset = {int(p): i for i, p in enumerate(rows.tolist())}

            def feature_rows(chunk: Chunk, s: np.ndarray = feature_scores) -> Scored:
                picked = s[[offset[int(p)] for p in chunk.pos]]  # fancy indexing copies
                return Scored(picked, *constant(len(chunk.pos), ROUTE_FEATURES, REASON_FEATURES))

            groups.append(RouteGroup(rows, req.idx[rows], feature_rows))
            popular &= ~described

    if popular.any():
        scorer = cold_scorer(model)
        rows = cold[popular]

        def popularity_rows(chunk: Chunk) -> Scored:
            assert chunk.attributes is not None
            return scorer.score(chunk.attributes)

        groups.append(
            RouteGroup(rows, req.idx[rows], popularity_rows, attrs[popular].reset_index(drop=True))
        )
    return groups


def _known_route(
    model: Recommender, state: ServingState, idx: NDArray[np.int64], n_members: int
) -> Callable[[Chunk], Scored] | None:
    """The popularity route of training members without history asked without
    ``member_attributes`` (the common cold request), from segments looked up once
    (:meth:`PopularityScorer.known_segments`); ``None`` where it does not apply."""
    if not ((idx >= 0) & (idx < n_members)).all():
        return None
    scorer = cold_scorer(model)
    if not isinstance(scorer, PopularityScorer):
        return None
    known = scorer.known_segments(state)
    if known is None:
        return None
    return lambda chunk: scorer.score_known(known, chunk.idx)


def cold_scorers(
    model: Recommender, state: ServingState, idx: NDArray[np.int64]
) -> list[tuple[NDArray[np.int64], RouteScorer]]:
    """How the member menu scores members without a history, as plain arrays.

    Parameters
    ----------
    model, state
        The model and its :func:`menu_state`.
    idx : ndarray of int64, shape (m,)
        Model indices of members without history (-1 for members unknown to the model).

    Returns
    -------
    list of (positions, scorer)
        ``positions`` (int64) into ``idx`` of the members served by one cold-start route
        (hybrid features, segment or global popularity), and their ``scorer``, which takes
        any subset of those positions. Scorers are not documented as thread-safe: call
        them from one thread.
    """
    idx = np.asarray(idx, dtype=np.int64)
    req = MemberRequest(idx, idx, None)
    out: list[tuple[NDArray[np.int64], RouteScorer]] = []
    for group in route_groups(model, state, req, np.zeros(idx.size, dtype=np.int64)):
        offset = np.full(idx.size, -1, dtype=np.int64)
        offset[group.pos] = np.arange(group.pos.size)

        def scorer(
            positions: NDArray[np.int64], group: RouteGroup = group, offset: np.ndarray = offset
        ) -> tuple[np.ndarray, np.ndarray]:
            local = offset[positions]
            attrs = None
            if group.attributes is not None:
                attrs = group.attributes.iloc[local].reset_index(drop=True)
            scored = group.scorer(Chunk(group.pos[local], group.idx[local], attrs))
            return scored.scores, scored.routes

        out.append((group.pos, scorer))
    return out
