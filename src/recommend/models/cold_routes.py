"""Choosing how a model serves members known only by their attributes, on held-out members.

A member without history (a new member) can be served by global popularity, by popularity
within one segment kind (branch, occupation, age band, district, gender, or the ``"auto"`` order
of :class:`~recommend.models.popularity.Popularity`), by a shrinkage blend of a segment's
and global popularity (``Popularity(prior_members=a)``: an empirical-Bayes weight
``n / (n + a)`` on a segment of ``n`` active members), or, for a hybrid model, by its own
scores from member features. Which one is best depends on the data: on real platforms
demographic segments add a few percent at most, and a fixed order can lose to plain
global popularity.

:func:`choose_cold_route` decides on evidence carved from the training data: it holds out
whole members (a seeded random share of those with history), refits every candidate on
the rest, gives each held-out member their attributes only and scores NDCG@k against the
courses they actually took. Global popularity is always a candidate; another route is
chosen only when it is ahead of global popularity by more than one standard error of the
paired per-member difference (:func:`beats_global`), the best such route by mean NDCG, so
the chosen route never validates below global popularity and noise does not displace it.
The winner is refitted on all the training data.

The result, :class:`ColdRoute` as a plain dict (``Recommender.cold_route_``), holds the
choice, every candidate's validation score and the chosen popularity's aggregated counts
(course counts per segment value: no member-level data), so it is saved in artifacts and
serves after loading exactly as before. ``recommend.engine.routes`` serves it.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset
from recommend.data.idmap import IdMap
from recommend.metrics import ndcg_at_k
from recommend.models.base import History, Recommender
from recommend.models.popularity import SEGMENT_KINDS, Popularity
from recommend.topk import topk_scores

__all__ = [
    "COLD_FEATURES",
    "COLD_GLOBAL",
    "HOLDOUT_SHARE",
    "MAX_HOLDOUT_MEMBERS",
    "MIN_HOLDOUT_MEMBERS",
    "PRIOR_SCALES",
    "beats_global",
    "choose_cold_route",
    "cold_popularity",
    "fitting_candidates",
]

log = logging.getLogger(__name__)

COLD_GLOBAL = "global"
COLD_FEATURES = "features"
#: Share of the members with history held out to validate the routes.
HOLDOUT_SHARE = 0.2
#: At most this many held-out members are scored (enough for stable NDCG means).
MAX_HOLDOUT_MEMBERS = 3000
#: Below this many held-out members nothing is validated: global popularity is served.
MIN_HOLDOUT_MEMBERS = 30
#: Shrinkage candidates: ``prior_members`` as multiples of the median active segment size.
PRIOR_SCALES = (0.25, 1.0, 4.0)
K = 10

_LOCAL = threading.local()
# Popularity candidates depend on the data only: a tuning run fits many models on one
# training set and validates the routes once (keyed by dataset identity, kept while alive).
# Each entry: the dataset, the settings key, and the choice with global popularity's
# per-member NDCG (which a hybrid model's features route is compared with).
_Validated = tuple[dict[str, Any], np.ndarray] | None
_CACHE: dict[int, tuple[weakref.ReferenceType[Dataset], int, _Validated]] = {}
_CACHE_LOCK = threading.Lock()


@contextmanager
def fitting_candidates() -> Iterator[None]:
    """Inside this block, fits (of candidate models on reduced data) choose no route."""
    outer = getattr(_LOCAL, "active", False)
    _LOCAL.active = True
    try:
        yield
    finally:
        _LOCAL.active = outer


def choosing() -> bool:
    """True while this thread fits candidate models for a choice."""
    return bool(getattr(_LOCAL, "active", False))


def choose_cold_route(
    model: Recommender, dataset: Dataset, *, k: int = K, seed: int = 0
) -> dict[str, Any] | None:
    """The cold-member route of ``model`` fitted on ``dataset``, chosen on held-out members.

    Returns ``None`` for a :class:`Popularity` model (its own ``segment`` setting is its
    cold route), while candidate models are being fitted, and when there is no evidence
    (no members table, or fewer than :data:`MIN_HOLDOUT_MEMBERS` members to hold out):
    serving then keeps its default (see ``recommend.engine.routes``). Otherwise a dict with

    - ``route``: the winner, ``"global"``, ``"segment:<kind>"`` (``kind`` one of
      ``org_id``, ``occupation``, ``age_band``, ``district``, ``gender``, ``auto``),
      ``"blend:<kind>:<a>"`` (shrinkage with ``prior_members=a``) or ``"features"``;
    - ``segment``, ``prior_members``: the popularity settings of the winner (``None``
      segment: global or features);
    - ``scores``: NDCG@k of every candidate on the held-out members; ``k``, ``members``
      (held-out members scored), ``seed``;
    - ``popularity``: the winner's learned counts (see :func:`cold_popularity`).
    """
    if isinstance(model, Popularity) or choosing():
        return None
    hybrid = bool(getattr(model, "uses_features", False)) and callable(
        getattr(model, "cold_member_scores", None)
    )
    validated = _popularity_choice(dataset, k=k, seed=seed)
    if validated is None:
        return None
    base, per_global = validated
    choice = dict(base)
    if hybrid:
        per = _features_score(model, dataset, k=k, seed=seed)
        if per is not None:
            score = round(float(per.mean()), 6)
            choice["scores"] = {**choice["scores"], COLD_FEATURES: score}
            ahead = beats_global(per, per_global)
            if ahead and score > choice["scores"][choice["route"]]:
                choice.update(route=COLD_FEATURES, segment=None, prior_members=1.0)
    log.info(
        "cold route of %s: %s (NDCG@%d on %d held-out members: %s)",
        type(model).__name__,
        choice["route"],
        k,
        choice["members"],
        ", ".join(f"{name} {value:.4f}" for name, value in choice["scores"].items()) or "none",
    )
    return choice


def cold_popularity(choice: dict[str, Any], course_ids: IdMap) -> Popularity:
    """The fitted :class:`Popularity` a choice serves, rebuilt from its stored counts."""
    state = dict(choice["popularity"])
    params = state.pop("params")
    model = Popularity(**params)
    n_courses = len(course_ids)
    # Catalogue rows ingested since the fit: nobody in the counts has studied them.
    extra = n_courses - int(np.shape(state["global_"])[0])
    if extra > 0:
        for name in ("global_", "prior_"):
            state[name] = np.concatenate([state[name], np.zeros(extra, np.float32)])
        table = sp.csr_matrix(state["table_"])
        state["table_"] = sp.csr_matrix(
            (table.data, table.indices, table.indptr), shape=(table.shape[0], n_courses)
        )
    return model.restore(
        member_ids=IdMap([]),
        course_ids=course_ids,
        dataset=None,
        history=History(sp.csr_matrix((0, n_courses), dtype=np.float32)),
        state=state,
    )


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _popularity_choice(dataset: Dataset, *, k: int, seed: int) -> _Validated:
    key = id(dataset)
    with _CACHE_LOCK:
        got = _CACHE.get(key)
        if got is not None and got[0]() is dataset and got[1] == k * 1_000_003 + seed:
            return got[2]
    validated = _validate_popularity(dataset, k=k, seed=seed)
    with _CACHE_LOCK:
        for stale in [n for n, (ref, _, _) in _CACHE.items() if ref() is None]:
            del _CACHE[stale]
        _CACHE[key] = (weakref.ref(dataset), k * 1_000_003 + seed, validated)
    return validated


def _holdout(dataset: Dataset, seed: int) -> np.ndarray | None:
    """Held-out member indices (sorted int64), or ``None`` when too few to validate."""
    if dataset.members is None:
        return None
    active = np.flatnonzero(np.diff(dataset.interactions.indptr) > 0)
    n = min(round(active.size * HOLDOUT_SHARE), MAX_HOLDOUT_MEMBERS)
    if n < MIN_HOLDOUT_MEMBERS:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(active, size=n, replace=False)).astype(np.int64)


def _without(dataset: Dataset, held: np.ndarray) -> Dataset:
    """``dataset`` without the events of members ``held`` (same id maps and tables)."""
    keep = ~np.isin(dataset.events[MEMBER_IDX].to_numpy(), held)
    events = dataset.events.loc[keep].drop(columns=[MEMBER_IDX, COURSE_IDX])
    return Dataset.from_frames(
        events,
        courses=dataset.courses,
        members=dataset.members,
        orgs=dataset.orgs,
        weighting=dataset.weighting,
        member_ids=dataset.member_ids,
        course_ids=dataset.course_ids,
        now=dataset.now,
        on_future="keep",
    )


def _ndcg(scores: np.ndarray, truth: sp.csr_matrix, k: int) -> np.ndarray:
    """Per-member NDCG@k of dense ``scores`` (members, n_courses) against ``truth`` rows,
    (members,) float64."""
    n_courses = scores.shape[1]
    k = min(k, n_courses)
    top = topk_scores(lambda rows: scores[rows], np.arange(len(scores)), n_courses, k)
    return np.asarray(ndcg_at_k(top.indices, truth, k), dtype=np.float64)


def beats_global(per_member: np.ndarray, per_member_global: np.ndarray) -> bool:
    """Whether a route's per-member NDCG is ahead of global popularity's on the same members
    by more than one standard error of the paired difference (so noise, e.g. segments that
    carry no taste, does not displace global popularity)."""
    diff = np.asarray(per_member, np.float64) - np.asarray(per_member_global, np.float64)
    if diff.size < 2:
        return False
    se = float(diff.std(ddof=1)) / np.sqrt(diff.size)
    return bool(diff.mean() > se)


def _candidates(train: Dataset) -> list[tuple[str, str, float]]:
    """``(name, segment, prior_members)`` of the popularity candidates other than global."""
    out: list[tuple[str, str, float]] = []
    for kind in (*SEGMENT_KINDS, "auto"):
        probe = Popularity(segment=kind).fit(train)
        used = probe.segments_.loc[probe.segments_["used"], "active_members"]
        if used.empty:
            continue
        out.append((f"segment:{kind}", kind, 1.0))
        median = float(np.median(used.to_numpy(dtype=np.float64)))
        for scale in PRIOR_SCALES:
            a = float(f"{max(1.0, scale * median):.3g}")
            out.append((f"blend:{kind}:{a:g}", kind, a))
    return out


def _validate_popularity(dataset: Dataset, *, k: int, seed: int) -> _Validated:
    held = _holdout(dataset, seed)
    members = dataset.members
    if held is None or members is None:
        return None
    train = _without(dataset, held)
    truth = dataset.interactions[held]
    attributes = members.iloc[held].reset_index(drop=True)
    global_pop = Popularity().fit(train)
    per = {COLD_GLOBAL: _ndcg(np.tile(global_pop.global_, (held.size, 1)), truth, k)}
    settings: dict[str, tuple[str | None, float]] = {COLD_GLOBAL: (None, 1.0)}
    for name, kind, a in _candidates(train):
        fitted = Popularity(segment=kind, prior_members=a).fit(train)
        per[name] = _ndcg(fitted.segment_scores(attributes), truth, k)
        settings[name] = (kind, a)
    scores = {name: float(values.mean()) for name, values in per.items()}
    # The best of the routes clearly ahead of global popularity; global popularity else.
    ahead = [n for n in per if n != COLD_GLOBAL and beats_global(per[n], per[COLD_GLOBAL])]
    best = max(ahead, key=lambda name: scores[name]) if ahead else COLD_GLOBAL
    choice: dict[str, Any] = {
        "route": best,
        "segment": settings[best][0],
        "prior_members": settings[best][1],
        "k": k,
        "seed": seed,
        "members": int(held.size),
        "scores": {name: round(value, 6) for name, value in scores.items()},
    }
    chosen = Popularity(segment=choice["segment"], prior_members=choice["prior_members"])
    choice["popularity"] = _learned_counts(chosen.fit(dataset))
    return choice, per[COLD_GLOBAL]


def _learned_counts(model: Popularity) -> dict[str, Any]:
    """What serving a :class:`Popularity` to cold members needs: course counts per used
    segment value and globally (aggregates only), and its parameters."""
    return {
        "params": model.get_params(),
        "global_": model.global_,
        "prior_": model.prior_,
        "reference_year_": model.reference_year_,
        # Only segments large enough to be used: smaller ones are served global popularity
        # anyway, and their values are not kept.
        "segment_values_": {
            kind: np.asarray(
                [str(v) for v in values[model.segment_rows_[kind] >= 0].tolist()], dtype=object
            )
            for kind, values in model.segment_values_.items()
        },
        "segment_rows_": {kind: rows[rows >= 0] for kind, rows in model.segment_rows_.items()},
        "table_": model.table_,
    }


def _features_score(
    model: Recommender, dataset: Dataset, *, k: int, seed: int
) -> np.ndarray | None:
    """Per-member NDCG@k of a hybrid model's own cold scores: a copy fitted without the
    held-out members scores them from their attributes."""
    held = _holdout(dataset, seed)
    if held is None or dataset.members is None:
        return None
    train = _without(dataset, held)
    try:
        with fitting_candidates():
            candidate = model.clone().fit(train)
        attributes = dataset.members.iloc[held].reset_index(drop=True)
        scores = np.asarray(candidate.cold_member_scores(attributes), dtype=np.float32)  # type: ignore[attr-defined]
    except Exception as err:  # the route choice must not fail the fit
        log.warning("cold route: features candidate failed (%s); not a candidate", err)
        return None
    return _ndcg(scores, dataset.interactions[held], k)
