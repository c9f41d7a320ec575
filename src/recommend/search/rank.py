"""Personalised ranking of search results: text relevance blended with the member's taste.

``search(model, member_id, query)`` retrieves the best BM25 matches (``candidates``, 200
by default) among the courses that pass the member menu's filters, then ranks them by a
blend of four features, each in [0, 1]:

- **text**: BM25 score, min-max scaled over the query's candidates;
- **preference**: the model's score of the course for the member (the member menu's
  routes: personal scores for a member with history, cold-start scores otherwise),
  min-max scaled over the candidates;
- **popularity**: log(1 + learners of the course), scaled by the catalogue's maximum;
- **freshness**: ``0.5 ** (age_days / 90)`` from ``published_at`` (0 when unknown).

``rank_candidates`` does the same for candidates from an external engine (e.g.
Elasticsearch) given as ``course_id, text_score``. The weights are ``BlendWeights``: given,
else stored with the index (learned by ``fit_blend``), else the hand-set defaults.

For a member with history only the candidates are scored (one small GEMV for a factor
model), so the cost does not grow with the catalogue; retrieval sums the postings of the
query words. Per-model lookups (popularity, freshness, the index's course alignment) are
built once under a lock and only read afterwards: calls are thread-safe.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import pandas as pd

from recommend.artifact import SavedPart, saved_part
from recommend.checks import is_scalar, positive_int
from recommend.data.ids import normalise_ids
from recommend.engine import (
    ROUTE_PERSONAL,
    ROUTES,
    MemberRequest,
    MenuOptions,
    Rows,
    ServingState,
    exclusion_rows,
    history_rows,
    menu_rows,
    route_groups,
    serving_state,
    studied_reasons,
)
from recommend.errors import ConfigError, DataError
from recommend.messages import DEFAULT_LANG, Lang, Message, render, template
from recommend.models.base import keep_across_catalogues, one_snapshot
from recommend.schema import Columns
from recommend.search import notes as member_notes
from recommend.search.index import Query, SearchIndex, build_index
from recommend.search.weights import FEATURES, BlendWeights

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = [
    "SEARCH_COLUMNS",
    "attach_index",
    "attached_index",
    "minmax",
    "preference_of",
    "rank_candidates",
    "search",
]

logger = logging.getLogger(__name__)
C = Columns

#: Columns of a search result, in order.
SEARCH_COLUMNS = (C.COURSE, C.SCORE, C.RANK, "text_score", "pref_score", C.REASON)
TEXT_SCORE = "text_score"

Exclude = Literal["none", "completed", "seen"]

#: Candidates retrieved by BM25 before the blend re-ranks them.
DEFAULT_CANDIDATES = 200
_FRESH_HALF_LIFE_DAYS = 90.0
_NS_PER_DAY = 86_400 * 10**9
_REASON_TEXT = Message("search.text_match")
_REASON_UNKNOWN = Message("search.unknown_course")


# ============================================================================ the index of a model

#: Name of the part a model artifact keeps its search index in (``save(..., search_index=)``).
SEARCH_INDEX_PART = "search_index"
# Key of the model's index in its serving cache: a SearchIndex, or a SavedPart to read.
_INDEX_KEY = "search:index"
# The index is separate from the catalogue: courses ingestion adds enter it when it is
# rebuilt (``build_index`` / ``attach_index``), not with the batch.
keep_across_catalogues(_INDEX_KEY)


def attach_index(model: Recommender, index: SearchIndex | str | Path, **expect: Any) -> None:
    """Make ``index`` the one ``search`` uses for ``model`` by default.

    ``index`` may be a path to a saved index, read on first use (``expect``: the
    ``sha256``/``bytes`` of its manifest as recorded by the model artifact). The index is
    kept in the model's serving cache: it adds nothing to the model's attributes or
    artifact, and a new ``fit`` forgets it.

    Raises
    ------
    NotFittedError
        The model is not fitted.
    """
    if isinstance(index, SearchIndex):
        model.set_cache_entry(_INDEX_KEY, index)
    else:
        model.set_cache_entry(_INDEX_KEY, SavedPart(SEARCH_INDEX_PART, Path(index), expect))


@overload
def attached_index(model: Recommender, *, build: Literal[True] = ...) -> SearchIndex: ...


@overload
def attached_index(model: Recommender, *, build: bool) -> SearchIndex | None: ...


def attached_index(model: Recommender, *, build: bool = True) -> SearchIndex | None:
    """The index ``search`` uses for ``model``: attached, saved with it, or (``build``)
    built from its courses table on first use.

    An index saved with the model's artifact is read (and checked against the checksum
    ``model.json`` records) on the first call. Returns ``None`` when there is none and
    ``build`` is false (also for a model that is not fitted).
    """
    if not build and not model.is_fitted:
        return None
    found = model.cache_entry(_INDEX_KEY)
    if isinstance(found, SearchIndex):
        return found
    with model.lock:
        found = model.cache_entry(_INDEX_KEY)
        if isinstance(found, SearchIndex):
            return found
        saved = found if isinstance(found, SavedPart) else saved_part(model, SEARCH_INDEX_PART)
        if saved is not None:
            found = SearchIndex.load(saved.path, expect=saved.entry or None)
        elif build:
            courses = getattr(getattr(model, "dataset_", None), "courses", None)
            n = 0 if courses is None else len(courses)
            logger.info("no search index attached to the model: indexing its %d courses", n)
            found = build_index(model)
        else:
            return None
        model.set_cache_entry(_INDEX_KEY, found)
    return found


# ============================================================================ per-model lookups


@dataclass(frozen=True)
class _Alignment:
    """Index documents <-> model courses: ``doc_course`` (-1: unknown to the model),
    ``course_doc`` (-1: not indexed) and ``known`` (None when every doc is known)."""

    doc_course: np.ndarray
    course_doc: np.ndarray
    known: np.ndarray | None


class SearchState:
    """Read-only per-model features; the alignment with each index is built once."""

    def __init__(self, model: Recommender, state: ServingState) -> None:
        self.menu = state
        base = model.history_.base
        learners = np.asarray(base.getnnz(axis=0), dtype=np.float64)
        pop = np.log1p(learners)
        top = pop.max() if pop.size else 0.0
        self.popularity = (pop / top if top > 0 else pop).astype(np.float32)
        fresh = np.zeros(state.n_courses, dtype=np.float32)
        published = state.published
        if published is not None and state.now is not None:
            known = published != np.iinfo(np.int64).min
            age = (state.now.value - published[known]) / _NS_PER_DAY
            fresh[known] = 0.5 ** (np.maximum(age, 0.0) / _FRESH_HALF_LIFE_DAYS)
        self.freshness = fresh
        self._lock = threading.Lock()
        self._aligned: weakref.WeakKeyDictionary[SearchIndex, _Alignment] = (
            weakref.WeakKeyDictionary()
        )
        self._masks: dict[tuple[int, int], tuple[_Alignment, np.ndarray, np.ndarray]] = {}

    def alignment(self, model: Recommender, index: SearchIndex) -> _Alignment:
        found = self._aligned.get(index)
        if found is not None:
            return found
        with self._lock:
            found = self._aligned.get(index)
            if found is None:
                found = self._align(model, index)
                self._aligned[index] = found
        return found

    def _align(self, model: Recommender, index: SearchIndex) -> _Alignment:
        n_courses = self.menu.n_courses
        ext = self.menu.course_ext
        ids = index.course_ids
        if ids.shape == ext.shape and bool(np.array_equal(ids, ext)):
            doc_course = np.arange(n_courses, dtype=np.int64)
        else:
            doc_course = model.course_ids_.to_index(ids, unknown="mask").astype(np.int64)
        course_doc = np.full(n_courses, -1, dtype=np.int64)
        ok = doc_course >= 0
        course_doc[doc_course[ok]] = np.flatnonzero(ok)
        missing = int((~ok).sum())
        if missing:
            logger.warning(
                "%d of %d indexed courses are unknown to the model: they are never returned",
                missing,
                ids.size,
            )
        return _Alignment(doc_course, course_doc, None if ok.all() else ok)

    def doc_mask(self, align: _Alignment, course_mask: np.ndarray | None) -> np.ndarray | None:
        """Documents allowed by a course filter mask (None: all), cached per filter."""
        if course_mask is None:
            return align.known
        key = (id(align), id(course_mask))
        found = self._masks.get(key)
        # Keyed by identity; the stored references keep the ids from being reused.
        if found is not None and found[0] is align and found[1] is course_mask:
            return found[2]
        safe = np.maximum(align.doc_course, 0)
        mask = course_mask[safe]
        if align.known is not None:
            mask &= align.known
        with self._lock:
            if len(self._masks) >= 64:
                self._masks.pop(next(iter(self._masks)))
            self._masks[key] = (align, course_mask, mask)
        return mask


def search_state(model: Recommender) -> SearchState:
    """The model's search lookups, kept in its serving cache (built once per fit)."""
    return model.cached("search_state", lambda: SearchState(model, serving_state(model)))


# ============================================================================ the blend


@dataclass
class Candidates:
    """Courses ranked for one (member, query): model course indices, raw scores, features.

    ``features`` is (k, 4) float64 in ``FEATURES`` order, each column in [0, 1].
    """

    courses: np.ndarray  # int64 model course index (-1: unknown to the model)
    text: np.ndarray  # float64 raw text score
    pref: np.ndarray  # float64 raw preference score (NaN: unknown course)
    features: np.ndarray
    route: str
    reason: Message | None  # constant preference reason, None: explain from history
    seen: Rows

    def order(self, weights: BlendWeights) -> tuple[np.ndarray, np.ndarray]:
        """Positions best first under ``weights`` and the blended scores (float64)."""
        score = self.features @ weights.vector()
        # Ties: higher text score, then lower course index (the kernel's rule).
        order = np.lexsort((self.courses, -self.text, -score))
        return order, score


def minmax(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] over the finite values; NaN (unknown) and constant rows give 0.5."""
    out = np.full(values.size, 0.5)
    ok = np.isfinite(values)
    if ok.any():
        lo, hi = values[ok].min(), values[ok].max()
        if hi > lo:
            out[ok] = (values[ok] - lo) / (hi - lo)
    return out


def _preferences(
    model: Recommender, sstate: SearchState, req: MemberRequest, courses: np.ndarray, seen: Rows
) -> tuple[np.ndarray, str, Message | None]:
    """Raw scores of ``courses`` (model indices, -1 unknown -> NaN) for the one member of
    ``req``, their route and constant reason."""
    out = np.full(courses.size, np.nan)
    known = courses >= 0
    picked = courses[known]
    if seen.counts[0] > 0:
        side = model.course_vectors()
        if side is not None:
            vec = np.asarray(model.member_vectors(req.idx), dtype=np.float32)
            values = (vec @ np.asarray(side[0][picked], dtype=np.float32).T)[0]
            if side[1] is not None:
                values = values + side[1][picked]
        else:
            values = np.asarray(model.score_block(req.idx), dtype=np.float32)[0, picked]
        out[known] = values
        return out, ROUTE_PERSONAL, None
    group = route_groups(model, sstate.menu, req, seen.counts)[0]
    scored = group.scorer(group.take(slice(0, 1)))
    out[known] = scored.scores[0, picked]
    return out, str(scored.routes[0]), scored.reasons[0]


def preference_of(
    model: Recommender, sstate: SearchState, req: MemberRequest, courses: np.ndarray, seen: Rows
) -> np.ndarray:
    """Raw preference scores of ``courses`` (model indices, -1 unknown -> NaN) for the one
    member of ``req`` (float64), through the member's route."""
    return _preferences(model, sstate, req, courses, seen)[0]


def score_candidates(
    model: Recommender,
    sstate: SearchState,
    req: MemberRequest,
    seen: Rows,
    courses: np.ndarray,
    text: np.ndarray,
) -> Candidates:
    """The blend's features of ``courses`` (model indices, -1 unknown) with their raw
    ``text`` scores, for the member of ``req``."""
    pref, route, reason = _preferences(model, sstate, req, courses, seen)
    known = courses >= 0
    safe = np.maximum(courses, 0)
    features = np.empty((courses.size, len(FEATURES)))
    features[:, 0] = minmax(text)
    features[:, 1] = minmax(pref)
    features[:, 2] = np.where(known, sstate.popularity[safe], 0.0)
    features[:, 3] = np.where(known, sstate.freshness[safe], 0.0)
    return Candidates(courses, text, pref, features, route, reason, seen)


def _resolve_weights(weights: BlendWeights | None, index: SearchIndex | None) -> BlendWeights:
    if weights is None:
        weights = index.weights if index is not None else None
    if weights is None:
        return BlendWeights()
    if not isinstance(weights, BlendWeights):
        raise ConfigError(f"weights must be BlendWeights, got {type(weights).__name__}")
    return weights


def _options(
    n: int | None,
    exclude: str,
    channel: str | Sequence[str] | None,
    max_minutes: float | None,
    only_published: bool,
    now: pd.Timestamp | str | None,
    with_reasons: bool,
    unknown: str,
    lang: str,
) -> MenuOptions:
    """The member menu's options that search takes (no pins, no diversity)."""
    return MenuOptions(
        n=10 if n is None else n,
        exclude=exclude,  # type: ignore[arg-type]
        channel=channel,
        max_minutes=max_minutes,
        only_published=only_published,
        now=now,
        pin_compulsory=False,
        continue_learning=False,
        with_reasons=with_reasons,
        unknown=unknown,  # type: ignore[arg-type]
        lang=lang,  # type: ignore[arg-type]
    )


def search_request(
    model: Recommender,
    member_id: Any,
    member_attributes: pd.DataFrame | None = None,
    options: MenuOptions | None = None,
) -> tuple[SearchState, MemberRequest, Rows]:
    """One member's search request resolved: the model's search lookups, the member
    (cold-start fallback unless ``options.unknown == "raise"``) and their history rows."""
    model.check_fitted()
    if options is None:
        options = MenuOptions(exclude="none", pin_compulsory=False, continue_learning=False)
    if not is_scalar(member_id):
        raise ConfigError("search ranks for one member id; call it once per member")
    sstate = search_state(model)
    req = MemberRequest.make(model, sstate.menu, member_id, member_attributes, options.unknown)
    seen = history_rows(model.history_, req.idx)
    return sstate, req, seen


def _excluded(
    model: Recommender, sstate: SearchState, seen: Rows, req: MemberRequest, exclude: str
) -> np.ndarray:
    rows = exclusion_rows(sstate.menu, model.history_, seen, req.idx, exclude)
    if rows is None:
        return np.empty(0, dtype=np.int64)
    return np.asarray(rows.row(0)[0], dtype=np.int64)


def _reasons(
    model: Recommender,
    sstate: SearchState,
    cand: Candidates,
    picks: np.ndarray,
    matched: list[list[str]] | None,
    lang: str,
) -> np.ndarray:
    """One line per picked candidate in ``lang``: the words it matches, then why the member
    may like it."""
    courses = cand.courses[picks]
    prefs = np.full(picks.size, None, dtype=object)
    known = courses >= 0
    if cand.reason is not None:
        prefs[known] = cand.reason
    elif known.any():
        side = model.course_vectors()
        history, confidence = cand.seen.row(0)
        prefs[known] = studied_reasons(
            sstate.menu, None if side is None else side[0], courses[known], history, confidence
        )
    prefs[~known] = _REASON_UNKNOWN
    out = np.empty(picks.size, dtype=object)
    separator = template("search.word_separator", lang)
    matches, reason = template("search.matches", lang), template("search.reason", lang)
    # What ``Message("search.reason", match=..., why=...).text(lang)`` renders, built
    # from the rendered parts: each distinct line once per call (rows repeat the same
    # words and the same studied course), without a message object per row.
    whys = prefs.tolist()
    if matched is None:  # re-ranked candidates: one head, a line per distinct reason
        text_match = _REASON_TEXT.text(lang)
        # By identity: the messages live in ``prefs`` until the call ends.
        ids = np.fromiter(map(id, whys), dtype=np.uint64, count=len(whys))
        _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
        distinct = np.empty(first.size, dtype=object)
        for j, i in enumerate(first.tolist()):
            why_text = whys[i].text(lang)
            distinct[j] = _filled("search.reason", reason, lang, match=text_match, why=why_text)
        return np.asarray(distinct[inverse])
    heads: dict[tuple[str, ...], str] = {}
    lines: dict[tuple[tuple[str, ...], int], str] = {}
    for i, why in enumerate(whys):
        words = tuple(matched[i])
        key = (words, id(why))  # the messages live in ``prefs`` until the call ends
        text = lines.get(key)
        if text is None:
            head = heads.get(words)
            if head is None:
                head = heads[words] = (
                    _filled("search.matches", matches, lang, words=separator.join(words))
                    if words
                    else _REASON_TEXT.text(lang)
                )
            why_text = why.text(lang)
            text = lines[key] = _filled("search.reason", reason, lang, match=head, why=why_text)
        out[i] = text
    return out


def _filled(key: str, form: str, lang: str, **params: str) -> str:
    """``render(key, lang, **params)`` from its template ``form`` (looked up once per
    call): the template filled with rendered texts."""
    try:
        return form.format(**params)
    except (KeyError, IndexError, ValueError):
        return render(key, lang, **params)  # raises render's ConfigError


def _frame(
    ids: np.ndarray,
    score: np.ndarray,
    cand: Candidates,
    picks: np.ndarray,
    reasons: np.ndarray | None,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.COURSE: ids,
            C.SCORE: score[picks].astype(np.float32),
            C.RANK: np.arange(1, picks.size + 1, dtype=np.int32),
            TEXT_SCORE: cand.features[picks, 0].astype(np.float32),
            "pref_score": cand.features[picks, 1].astype(np.float32),
            C.REASON: reasons if reasons is not None else np.full(picks.size, "", dtype=object),
        }
    )


# ============================================================================ public API


@one_snapshot  # ids, history and scores of one version (see Recommender.reading)
def search(
    model: Recommender,
    member_id: Any,
    query: str,
    n: int = 10,
    *,
    index: SearchIndex | None = None,
    weights: BlendWeights | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    exclude: Exclude = "none",
    with_reasons: bool = True,
    member_attributes: pd.DataFrame | None = None,
    unknown: Literal["fallback", "raise"] = "fallback",
    lang: Lang = DEFAULT_LANG,
) -> pd.DataFrame:
    """The courses matching ``query``, ranked for one member.

    Parameters
    ----------
    model
        A fitted (or loaded) ``Recommender``.
    member_id
        One external member id. Members unknown to the model (or without history) are
        ranked through the member menu's cold-start route (``attrs["route"]``).
    query
        The text typed, e.g. ``"三会一课 怎么开"``; cut to ``MAX_QUERY_CHARS``
        characters (a note says so).
    n
        Courses to return (fewer when fewer match).
    index
        The ``SearchIndex``; by default the one attached to the model (saved with its
        artifact, ``attach_index``), else one built from the model's courses on first use.
    weights
        Blend weights; by default the index's (learned), else ``BlendWeights()``.
    candidates
        BM25 matches re-ranked by the blend.
    channel, max_minutes, only_published, now
        The member menu's filters (see ``member_menu``).
    exclude
        ``"none"`` (default: a member may look for a course again), ``"completed"`` or
        ``"seen"``.
    with_reasons
        Fill ``reason``: the query words the course matches and why the member may like
        it (含“三会一课”；因为你学过《...》).
    member_attributes, unknown
        As in ``member_menu``.
    lang
        Language of the reasons and notes: ``"zh"`` (default) or ``"en"``.

    Returns
    -------
    pandas.DataFrame
        ``course_id``, ``score`` (float32 blend), ``rank`` (int32, 1..), ``text_score``
        and ``pref_score`` (float32 in [0, 1], scaled over the candidates), ``reason``.
        ``attrs``: ``query`` (as searched), ``words`` (index words used), ``route`` and
        ``notes`` (query truncated, words not found, only stop words..., as text in
        ``lang``). Empty (with a note) when no course matches.

    Raises
    ------
    DataError
        ``query`` is empty or whitespace or not a string; ``unknown="raise"`` and the
        member is unknown.
    ConfigError
        An option is out of range or names an unknown channel.
    """
    options = _options(
        n, exclude, channel, max_minutes, only_published, now, with_reasons, unknown, lang
    )
    k = positive_int(candidates, "candidates")
    sstate, req, seen = search_request(model, member_id, member_attributes, options)
    index = index if index is not None else attached_index(model)
    if not isinstance(index, SearchIndex):
        raise ConfigError(f"index must be a SearchIndex, got {type(index).__name__}")
    w = _resolve_weights(weights, index)
    parsed = index.parse(query)
    filt = sstate.menu.course_filter(options)
    align = sstate.alignment(model, index)
    allow = sstate.doc_mask(align, filt.mask)
    excluded = _excluded(model, sstate, seen, req, options.exclude)

    docs, text = index.top(parsed, k + excluded.size, allow=allow)
    # Words no course has, nor any related word: the member's own menu (a query of only
    # stop words or punctuation stays an empty result with its note).
    if docs.size == 0 and parsed.empty and parsed.words and index.aids is not None:
        return _menu_fallback(model, sstate, req, index, parsed, options)
    courses = align.doc_course[docs]
    if excluded.size:
        keep = ~np.isin(courses, excluded)
        docs, courses, text = docs[keep], courses[keep], text[keep]
    docs, courses, text = docs[:k], courses[:k], text[:k]
    notes = list(parsed.notes)
    if docs.size == 0 and not parsed.empty:
        notes.append(member_notes.filtered_out())
    cand = score_candidates(model, sstate, req, seen, courses, text.astype(np.float64))
    order, score = cand.order(w)
    picks = order[: options.n]
    reasons = None
    if options.with_reasons:
        matched = index.matched_words(parsed, docs[picks])
        reasons = _reasons(model, sstate, cand, picks, matched, options.lang)
    out = _frame(sstate.menu.course_ext[courses[picks]], score, cand, picks, reasons)
    out.attrs = {
        "query": parsed.text,
        "typed": parsed.typed,
        "searched_as": parsed.searched_as,
        "words": list(parsed.tokens),
        "route": cand.route,
        "notes": [note.text(options.lang) for note in notes],
    }
    return out


def _menu_fallback(
    model: Recommender,
    sstate: SearchState,
    req: MemberRequest,
    index: SearchIndex,
    parsed: Query,
    options: MenuOptions,
) -> pd.DataFrame:
    """No course matches the query, nor its related words: the member's own menu (the
    engine's ``menu_rows``: courses not studied yet, best for the member first) within the
    channel the query points to, or the channel asked for, or the whole catalogue."""
    channel = None if index.aids is None else index.aids.related.channel(parsed.text, parsed.words)
    known = {str(c) for c in sstate.menu.channel_names.tolist()}
    if options.channel is not None or channel not in known:
        channel = None
    menu = options.with_(exclude="seen", channel=options.channel if channel is None else channel)
    rows = menu_rows(model, sstate.menu, req, menu, sstate.menu.course_filter(menu))
    score = rows.score.astype(np.float32)
    pref = minmax(score.astype(np.float64)).astype(np.float32)
    out = pd.DataFrame(
        {
            C.COURSE: sstate.menu.course_ext[rows.course],
            C.SCORE: score,
            C.RANK: rows.rank,
            TEXT_SCORE: np.zeros(score.size, np.float32),
            "pref_score": pref,
            C.REASON: rows.reason if rows.reason is not None else np.full(score.size, "", object),
        }
    )
    out.attrs = {
        "query": parsed.text,
        "typed": parsed.typed,
        "searched_as": None,
        "words": [],
        "route": str(ROUTES[int(rows.route[0])]) if rows.route.size else None,
        "notes": [
            note.text(options.lang)
            for note in (*parsed.notes, member_notes.menu_instead(parsed.typed, channel))
        ],
        "fallback": "menu",
        "channel": channel,
    }
    return out


@one_snapshot
def rank_candidates(
    model: Recommender,
    member_id: Any,
    candidates: pd.DataFrame,
    n: int | None = None,
    *,
    weights: BlendWeights | None = None,
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    exclude: Exclude = "none",
    with_reasons: bool = True,
    member_attributes: pd.DataFrame | None = None,
    unknown: Literal["fallback", "raise"] = "fallback",
    lang: Lang = DEFAULT_LANG,
) -> pd.DataFrame:
    """Re-rank candidates from an external search engine for one member.

    Parameters
    ----------
    model, member_id
        As in :func:`search`.
    candidates
        ``course_id`` (unique) and ``text_score`` (finite numbers, higher is better, any
        scale: scaled to [0, 1] over the candidates).
    n
        Courses to return; all candidates that pass the filters by default.
    weights
        Blend weights; ``BlendWeights()`` by default (or those of the model's attached
        index, when one is attached).
    channel, max_minutes, only_published, now, exclude, with_reasons, member_attributes, unknown
    lang
        As in :func:`search`. Courses unknown to the model keep a neutral preference (0.5)
        and no popularity or freshness; they are dropped, and counted in
        ``attrs["notes"]``, when ``channel``, ``max_minutes`` or an exclusion is asked for
        (it cannot be checked for them).

    Returns
    -------
    pandas.DataFrame
        As :func:`search` returns.

    Raises
    ------
    DataError
        ``candidates`` is not a DataFrame with those columns, has duplicate course ids or
        a text score that is not a finite number (the message names the rows).
    """
    options = _options(
        n, exclude, channel, max_minutes, only_published, now, with_reasons, unknown, lang
    )
    top_n = None if n is None else options.n
    ids, text = _check_candidates(candidates)
    sstate, req, seen = search_request(model, member_id, member_attributes, options)
    w = _resolve_weights(weights, attached_index(model, build=False))
    courses = model.course_ids_.to_index(ids, unknown="mask").astype(np.int64)
    filt = sstate.menu.course_filter(options)
    keep = np.ones(courses.size, dtype=bool)
    notes: list[Message] = []
    unknown_courses = courses < 0
    # Publication cannot be checked for courses the model does not know either, but an
    # engine returning them has published them; the member's own filters must hold.
    strict = channel is not None or max_minutes is not None or exclude != "none"
    if unknown_courses.any():
        if strict:
            keep &= ~unknown_courses
            notes.append(Message.of("note.search_unchecked", count=int(unknown_courses.sum())))
        else:
            notes.append(
                Message.of("note.search_unknown_courses", count=int(unknown_courses.sum()))
            )
    if filt.mask is not None:
        keep &= filt.mask[np.maximum(courses, 0)] | unknown_courses
    excluded = _excluded(model, sstate, seen, req, exclude)
    if excluded.size:
        keep &= ~np.isin(courses, excluded)
    if not keep.all():
        ids, text, courses = ids[keep], text[keep], courses[keep]
    cand = score_candidates(model, sstate, req, seen, courses, text)
    order, score = cand.order(w)
    picks = order if top_n is None else order[:top_n]
    reasons = _reasons(model, sstate, cand, picks, None, options.lang) if with_reasons else None
    out = _frame(ids[picks], score, cand, picks, reasons)
    out.attrs = {"route": cand.route, "notes": [note.text(options.lang) for note in notes]}
    return out


def _check_candidates(candidates: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(candidates, pd.DataFrame):
        raise DataError(
            f"candidates must be a DataFrame with columns {C.COURSE}, {TEXT_SCORE}; got "
            f"{type(candidates).__name__}"
        )
    missing = [c for c in (C.COURSE, TEXT_SCORE) if c not in candidates.columns]
    if missing:
        raise DataError(
            f"candidates has no column(s) {missing}; expected {C.COURSE}, {TEXT_SCORE} "
            f"(got {list(candidates.columns)})"
        )
    ids = candidates[C.COURSE].to_numpy()
    if ids.dtype == object:
        ids = np.asarray(normalise_ids(ids)[0], dtype=object)  # as validation does at load
    # A set is the cheapest duplicate check for a few hundred ids; rows only on failure.
    if len(set(ids.tolist())) != ids.size:
        rows = np.flatnonzero(candidates[C.COURSE].duplicated(keep=False).to_numpy())
        raise DataError(
            f"candidates.{C.COURSE}: duplicate ids in {rows.size} rows (rows "
            f"{rows[:5].tolist()}); values {ids[rows[:5]].tolist()}; expected each course once"
        )
    column = candidates[TEXT_SCORE]
    if column.dtype.kind in "iuf":
        raw = column.to_numpy(dtype=np.float64)
    else:
        raw = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(raw)
    if bad.any():
        rows = np.flatnonzero(bad)
        values = candidates[TEXT_SCORE].to_numpy()[rows[:5]].tolist()
        raise DataError(
            f"candidates.{TEXT_SCORE}: not a finite number in {rows.size} rows (rows "
            f"{rows[:5].tolist()}); values {values}; expected finite numbers"
        )
    return ids, raw
