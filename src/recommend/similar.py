"""Similar courses (学了这门课的人还学了): the courses most like one course, for any model.

Each model kind answers from what it learned about courses:

- factor models (ALS, BPR, LightFM: ``Recommender.course_vectors``): cosine similarity of
  course vectors, ranked by the shared factor kernel (``recommend.topk.topk_factors``);
- models with course-course weights (``Recommender.course_similarity``): EASE's
  ``B_[course]`` (its scores for a member whose history is that one course), item-kNN's
  similarity row;
- any other model (popularity, ...): co-occurrence in the training matrix, how many members
  studied both courses (platform popularity breaking ties);
- a course nobody has studied yet: content similarity (cosine of course features: channel,
  tags, lecturer, title words), whatever the model.

Candidates pass the member menu's catalogue filters (``channel``, ``max_minutes``,
published by ``now``; ``recommend.engine`` ``course_filter``), the course itself never.
Each row says, from the message catalogue (Chinese by default), what the courses share:
members who studied both, the lecturer, a topic (tag) or the channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.ids import normalise_id
from recommend.engine import MenuOptions, reason_texts, serving_state
from recommend.errors import DataError
from recommend.messages import DEFAULT_LANG, Lang, Message, value_message
from recommend.schema import Columns
from recommend.topk import topk_factors, topk_scores

if TYPE_CHECKING:
    from recommend.engine import CourseFilter, ServingState
    from recommend.models.base import Recommender

__all__ = [
    "SIMILAR_COLUMNS",
    "similar_courses",
]

C = Columns

#: Columns of :func:`similar_courses`: the course asked about, then each similar course.
SIMILAR_COLUMNS = ("similar_to", C.COURSE, C.SCORE, C.RANK, C.REASON, C.ROUTE)


def similar_courses(
    model: Recommender,
    course_id: Any,
    n: int = 10,
    *,
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    with_reasons: bool = True,
    lang: Lang = DEFAULT_LANG,
) -> pd.DataFrame:
    """The ``n`` courses most like ``course_id`` (see the module docstring), best first.

    Parameters
    ----------
    model
        A fitted model (or one loaded from an artifact).
    course_id
        A course of the model's catalogue.
    n
        Courses to return, >= 1.
    channel, max_minutes, only_published, now, lang
        As in :func:`recommend.member_menu`: only courses of these channels, known to fit
        in ``max_minutes``, published by ``now``; reasons in ``lang``.
    with_reasons
        Explain each row (``reason`` is empty otherwise).

    Returns
    -------
    pandas.DataFrame
        ``similar_to, course_id, score, rank, reason, route`` (rank from 1). ``route``
        says how the list was made: ``similar:factors``, ``similar:<model name>`` (course
        weights, e.g. ``similar:ease``), ``similar:cooccurrence`` or ``similar:content``.
        Fewer than ``n`` rows when the filters leave fewer courses.

    Raises
    ------
    DataError
        ``course_id`` is not a course of the model.
    ConfigError
        An option is out of range, or a channel is unknown.
    """
    options = MenuOptions(
        n=n,
        channel=channel,
        max_minutes=max_minutes,
        only_published=only_published,
        now=now,
        with_reasons=with_reasons,
        lang=lang,
    )
    model.check_fitted()
    state = serving_state(model)
    course = _course_index(model, course_id)
    allowed = state.course_filter(options)
    route, courses, scores = _ranked(model, state, course, allowed, options.n)
    reasons = np.full(courses.size, "", dtype=object)
    if with_reasons and courses.size:
        messages = _reasons(state, course, courses, route)
        reasons = reason_texts(state, courses, messages, options)
    return pd.DataFrame(
        {
            "similar_to": np.full(courses.size, state.course_ext[course], dtype=object),
            C.COURSE: state.course_ext[courses],
            C.SCORE: scores.astype(np.float32),
            C.RANK: np.arange(1, courses.size + 1, dtype=np.int32),
            C.REASON: reasons,
            C.ROUTE: np.full(courses.size, route, dtype=object),
        }
    )


# --------------------------------------------------------------------------------------------
# Ranking
# --------------------------------------------------------------------------------------------


def _course_index(model: Recommender, course_id: Any) -> int:
    value = normalise_id(course_id) if isinstance(course_id, str) else course_id
    ids = model.course_ids_
    idx = int(ids.to_index([value], unknown="mask")[0]) if value is not None else -1
    if idx < 0:
        raise DataError(
            f"course_id {course_id!r} is not a course of this model ({len(ids):,} courses); "
            "expected a course_id of its training data"
        )
    return idx


def _ranked(
    model: Recommender, state: ServingState, course: int, allowed: CourseFilter, n: int
) -> tuple[str, np.ndarray, np.ndarray]:
    """``(route, course indices (int64), scores (float32))`` best first."""
    forbid = np.array([course], dtype=np.int64)
    if allowed.blocked is not None:
        forbid = np.union1d(forbid, allowed.blocked)
    allow = allowed.allow if allowed.selective else None
    k = max(1, min(n, state.n_courses - 1))
    learners = int(_learners(state)[course])
    side = model.course_vectors() if learners else None
    if side is not None:
        unit = model.cached("similar:unit_vectors", lambda: _unit_rows(side[0]))
        top = topk_factors(unit[[course]], unit, k, forbid=forbid, allow=allow, num_threads=1)
        return _kept("similar:factors", top.indices[0], top.scores[0])
    route, row = _score_row(model, state, course, learners > 0)
    top = topk_scores(
        lambda rows: np.broadcast_to(row, (len(rows), row.size)),
        np.zeros(1, dtype=np.int64),
        state.n_courses,
        k,
        forbid=forbid,
        allow=allow,
        num_threads=1,
    )
    return _kept(route, top.indices[0], top.scores[0])


def _kept(route: str, idx: np.ndarray, scores: np.ndarray) -> tuple[str, np.ndarray, np.ndarray]:
    """Drop the kernel's padding (courses it could not fill: index -1 or score -inf)."""
    keep = (idx >= 0) & np.isfinite(scores)
    return route, idx[keep].astype(np.int64), scores[keep].astype(np.float32)


def _score_row(
    model: Recommender, state: ServingState, course: int, has_learners: bool
) -> tuple[str, np.ndarray]:
    """The non-factor similarity row of ``course``, (n_courses,) float32."""
    if has_learners:
        own = model.course_similarity(course)
        if own is not None:
            return f"similar:{model.name}", np.asarray(own, dtype=np.float32)
        return "similar:cooccurrence", _cooccurrence(state, course)
    return "similar:content", _content_row(model, state, course)


def _learners(state: ServingState) -> np.ndarray:
    """Members who studied each course in the training data, (n_courses,) int64."""
    return state.lazy(
        "similar:learners", lambda: np.bincount(state.base.indices, minlength=state.n_courses)
    )


def _binary_columns(state: ServingState) -> sp.csc_matrix:
    """The training matrix as 0/1, column-major (members of a course in one slice)."""

    def build() -> sp.csc_matrix:
        x = sp.csc_matrix(state.base, dtype=np.float32, copy=True)
        x.data[:] = 1.0
        return x

    return state.lazy("similar:binary_columns", build)


def _cooccurrence(state: ServingState, course: int) -> np.ndarray:
    """Members who studied both ``course`` and each course, with platform popularity as a
    tie-break below one member, (n_courses,) float32."""
    x = _binary_columns(state)
    members = x.indices[x.indptr[course] : x.indptr[course + 1]]
    rows = sp.csr_matrix(state.base[members], dtype=np.float32)
    rows.data[:] = 1.0
    both = np.asarray(rows.sum(axis=0), dtype=np.float64).ravel()
    popularity = _learners(state).astype(np.float64)
    return (both + popularity / (popularity.max(initial=0.0) + 1.0)).astype(np.float32)


def _content_row(model: Recommender, state: ServingState, course: int) -> np.ndarray:
    """Cosine similarity of course features to ``course`` (platform popularity, scaled
    below any similarity, breaking ties), (n_courses,) float32."""
    popularity = _learners(state).astype(np.float64)
    tiebreak = popularity / (popularity.max(initial=0.0) + 1.0) * 1e-3
    features = model.cached("similar:content_rows", lambda: _content_features(state))
    if features is None:
        return tiebreak.astype(np.float32)
    sims = np.asarray((features @ features[course].T).toarray(), dtype=np.float64).ravel()
    return (sims + tiebreak).astype(np.float32)


def _content_features(state: ServingState) -> sp.csr_matrix | None:
    ds = state.dataset
    feats = ds.course_features if ds is not None else None
    if feats is None or feats.matrix.nnz == 0:
        return None
    return _unit_sparse_rows(sp.csr_matrix(feats.matrix, dtype=np.float32))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), C-contiguous float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12), dtype=np.float32)


def _unit_sparse_rows(x: sp.csr_matrix) -> sp.csr_matrix:
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    scale = sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32)
    return sp.csr_matrix(scale @ x, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# Reasons
# --------------------------------------------------------------------------------------------


def _reasons(state: ServingState, course: int, courses: np.ndarray, route: str) -> np.ndarray:
    """What each of ``courses`` shares with ``course``, as catalogue messages."""
    out = np.empty(courses.size, dtype=object)
    both = np.zeros(courses.size)
    if route != "similar:content":
        x = _binary_columns(state)
        members = x.indices[x.indptr[course] : x.indptr[course + 1]]
        rows = state.base[members][:, courses]
        both = np.asarray(rows.getnnz(axis=0)).ravel()
    title = state.titles[course]
    for i, other in enumerate(courses.tolist()):
        shared = _shared(state, course, int(other))
        if both[i] > 0:
            learners = Message.of("similar.learners", title=title)
            out[i] = (
                learners
                if shared is None
                else Message.of("similar.both", learners=learners, shared=shared)
            )
        else:
            out[i] = shared if shared is not None else Message("similar.content")
    return out


def _shared(state: ServingState, a: int, b: int) -> Message | None:
    """The lecturer, a topic (tag) or the channel courses ``a`` and ``b`` share."""
    courses = state.courses
    if courses is not None and C.LECTURER in courses.columns:
        la, lb = courses[C.LECTURER].iat[a], courses[C.LECTURER].iat[b]
        if _known(la) and la == lb:
            return Message("similar.lecturer")
    if courses is not None and C.TAGS in courses.columns:
        ta, tb = courses[C.TAGS].iat[a], courses[C.TAGS].iat[b]
        if isinstance(ta, list | np.ndarray) and isinstance(tb, list | np.ndarray):
            common = [t for t in list(ta) if t in set(tb)]
            if common:
                return Message.of("similar.topic", topic=str(common[0]))
    ca, cb = state.channel_codes[a], state.channel_codes[b]
    if ca >= 0 and ca == cb:
        name = state.channel_names[ca]
        return Message.of("similar.channel", channel=value_message(C.CATEGORY, name))
    return None


def _known(value: object) -> bool:
    return value is not None and not (pd.api.types.is_scalar(value) and bool(pd.isna(value)))
