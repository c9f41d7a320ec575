"""Learning the blend weights from search logs, and evaluating search rankings on them.

A ``searches`` table (``member_id, query, timestamp, shown, clicked``) says which courses a
member was shown for a query, in order, and which they clicked. Clicks are biased by
position: a course shown lower is examined less often, so a click there says more. The
weights are fitted by **pairwise logistic regression with inverse-propensity weights**:
every clicked course is paired with every shown course not clicked, the pair's feature
difference (the four ``FEATURES``, computed as ``search`` computes them: over the query's
BM25 candidates plus the shown courses) should score positive, and the pair counts
``1 / P(examined | position)``. The examination model is ``1 / log2(position + 2)``
(0-based positions), the usual DCG-shaped position bias; ``position_bias`` takes another.

Use a model fitted on events *before* the searches (its history must not contain the
clicks it is asked to predict), fit on one window of searches and evaluate on a later one;
``evaluate_search`` ranks each search's BM25 candidates as ``search`` serves them and
reports MRR, NDCG@k and hit rate of the clicked courses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import minimize
from tqdm.auto import tqdm

from recommend.errors import ConfigError, DataError
from recommend.metrics import hit_rate_at_k, ndcg_at_k, reciprocal_rank_at_k
from recommend.schema import Columns
from recommend.search.index import SearchIndex
from recommend.search.rank import (
    DEFAULT_CANDIDATES,
    Candidates,
    attached_index,
    score_candidates,
    search_request,
    search_state,
)
from recommend.search.weights import FEATURES, PREFERENCE_ONLY, TEXT_ONLY, BlendWeights

__all__ = [
    "BlendFit",
    "evaluate_search",
    "fit_blend",
    "log2_examination",
    "standard_methods",
]

logger = logging.getLogger(__name__)
C = Columns


def log2_examination(position: np.ndarray) -> np.ndarray:
    """P(examined) of 0-based ``position``: ``1 / log2(position + 2)``, float64."""
    return 1.0 / np.log2(np.asarray(position, dtype=np.float64) + 2.0)


@dataclass(frozen=True)
class BlendFit:
    """Outcome of ``fit_blend``: the weights and how they were learned."""

    weights: BlendWeights
    searches: int  # searches with a click and a non-clicked shown course
    pairs: int
    loss: float  # weighted mean pairwise logistic loss at the optimum
    pair_accuracy: float  # weighted share of pairs ordered right
    skipped: dict[str, int] = field(default_factory=dict)
    run_id: str | None = None


@dataclass
class _Logged:
    cand: Candidates
    shown: np.ndarray  # positions in cand of shown courses, in shown order (-1: absent)
    clicked: np.ndarray  # bool per shown course
    targets: np.ndarray  # model indices of the clicked courses


def _as_list(value: Any) -> list[Any]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [v for v in value.split("|") if v]
    return list(value)


def _check_searches(searches: Any) -> pd.DataFrame:
    if not isinstance(searches, pd.DataFrame):
        raise DataError(f"searches must be a DataFrame, got {type(searches).__name__}")
    missing = [c for c in (C.MEMBER, C.QUERY, C.SHOWN, C.CLICKED) if c not in searches.columns]
    if missing:
        raise DataError(
            f"searches has no column(s) {missing}; expected {C.MEMBER}, {C.QUERY}, {C.SHOWN} "
            f"(course ids in shown order) and {C.CLICKED}"
        )
    return searches


def _collect(
    model: Any,
    searches: pd.DataFrame,
    index: SearchIndex,
    candidates: int,
    *,
    with_shown: bool,
    progress: bool,
) -> tuple[list[_Logged], dict[str, int]]:
    """Features of each logged search's candidates (BM25 top ``candidates``, plus the shown
    courses when ``with_shown``)."""
    sstate = search_state(model)
    align = sstate.alignment(model, index)
    course_index = model.course_ids_
    skipped = {"no_click": 0, "empty_query": 0, "unknown_courses": 0}
    out: list[_Logged] = []
    members = searches[C.MEMBER].tolist()
    queries = searches[C.QUERY].tolist()
    shown_lists = searches[C.SHOWN].tolist()
    clicked_lists = searches[C.CLICKED].tolist()
    rows = range(len(searches))
    for i in tqdm(rows, desc="search logs", unit="search", disable=not progress):
        shown_ids = _as_list(shown_lists[i])
        clicked_ids = set(_as_list(clicked_lists[i]))
        if not clicked_ids:
            skipped["no_click"] += 1
            continue
        try:
            parsed = index.parse(queries[i])
        except DataError:
            skipped["empty_query"] += 1
            continue
        shown = course_index.to_index(shown_ids, unknown="mask").astype(np.int64)
        clicked = np.array([s in clicked_ids for s in shown_ids], dtype=bool)
        if (shown < 0).any():
            skipped["unknown_courses"] += int((shown < 0).sum())
            clicked, shown = clicked[shown >= 0], shown[shown >= 0]
        targets = course_index.to_index(list(clicked_ids), unknown="mask").astype(np.int64)
        targets = targets[targets >= 0]
        docs, _ = index.top(parsed, candidates, allow=align.known)
        courses = align.doc_course[docs]
        if with_shown:
            # Scaled over the candidates plus the shown courses the BM25 cut missed.
            courses = np.concatenate([courses, shown[~np.isin(shown, courses)]])
        docs_all = align.course_doc[courses]
        raw = index.scores(parsed)
        text = np.where(docs_all >= 0, raw[np.maximum(docs_all, 0)], 0.0).astype(np.float64)
        sst, req, seen = search_request(model, members[i])
        cand = score_candidates(model, sst, req, seen, courses, text)
        pos = {int(c): j for j, c in enumerate(courses.tolist())}
        where = np.array([pos.get(int(c), -1) for c in shown.tolist()], dtype=np.int64)
        out.append(_Logged(cand, where, clicked, targets))
    return out, skipped


def _pairs(
    logged: list[_Logged], examination: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Feature differences (clicked - not clicked) and their IPS weights."""
    diffs: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    used = 0
    for item in logged:
        position = np.arange(item.shown.size)
        ok = item.shown >= 0
        pos_c = position[item.clicked & ok]
        pos_n = position[~item.clicked & ok]
        if pos_c.size == 0 or pos_n.size == 0:
            continue
        used += 1
        feats = item.cand.features[item.shown]
        d = feats[pos_c][:, None, :] - feats[pos_n][None, :, :]
        prop = np.clip(examination(pos_c), 1e-3, 1.0)
        w = np.repeat(1.0 / prop, pos_n.size)
        diffs.append(d.reshape(-1, len(FEATURES)))
        weights.append(w)
    if not diffs:
        return np.empty((0, len(FEATURES))), np.empty(0), 0
    return np.concatenate(diffs), np.concatenate(weights), used


def fit_blend(
    model: Any,
    searches: pd.DataFrame,
    *,
    index: SearchIndex | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    position_bias: Callable[[np.ndarray], np.ndarray] = log2_examination,
    l2: float = 1e-3,
    experiment: str | None = None,
    uri: str | None = None,
    progress: bool = False,
) -> BlendFit:
    """Learn ``BlendWeights`` from search logs, correcting clicks for position bias.

    Parameters
    ----------
    model
        A fitted ``Recommender``, trained on events before these searches.
    searches
        ``member_id``, ``query``, ``shown`` (course ids in shown order), ``clicked``.
        Searches without a click, or whose query has no word at all, teach nothing and are
        skipped (counted in ``skipped``); shown courses unknown to the model are left out
        (counted).
    index
        The search index (default: the model's, see ``search``).
    candidates
        BM25 candidates over which text and preference are scaled, as when serving.
    position_bias
        Examination probability of 0-based positions; a clicked course's pairs weigh
        ``1 / position_bias(position)``.
    l2
        L2 penalty on the weights.
    experiment
        When given, log the fit to this MLflow experiment (weights, pair counts, loss).
    uri
        MLflow tracking URI (see ``recommend.tracking.tracking_uri``).
    progress
        Show a progress bar over the searches.

    Returns
    -------
    BlendFit
        The weights plus the numbers of searches and pairs used, the loss and the share of
        pairs the weights order right, and the MLflow run id when logged.

    Raises
    ------
    DataError
        ``searches`` lacks a column, or no search has both a clicked and a non-clicked
        shown course.
    """
    if not (isinstance(l2, int | float) and l2 >= 0):
        raise ConfigError(f"l2 must be a number >= 0, got {l2!r}")
    searches = _check_searches(searches)
    index = index if index is not None else attached_index(model)
    start = time.perf_counter()
    logged, skipped = _collect(
        model, searches, index, candidates, with_shown=True, progress=progress
    )
    diff, weight, used = _pairs(logged, position_bias)
    if used == 0:
        raise DataError(
            f"no search among {len(searches)} has both a clicked and a non-clicked shown "
            f"course known to the model (skipped: {skipped}); nothing to learn from"
        )
    weight = weight / weight.mean()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        margin = diff @ theta
        # log(1 + exp(-m)) and its derivative, stable for large |m|.
        value = np.logaddexp(0.0, -margin)
        grad_m = -weight * 0.5 * (1.0 - np.tanh(margin / 2.0))
        total = float((weight * value).mean() + l2 * theta @ theta)
        grad = diff.T @ grad_m / margin.size + 2.0 * l2 * theta
        return total, grad

    theta0 = BlendWeights().vector()
    result = minimize(loss, theta0, jac=True, method="L-BFGS-B")
    theta = result.x
    margin = diff @ theta
    accuracy = float((weight * (margin > 0)).sum() / weight.sum())
    weights = BlendWeights.from_vector(theta)
    fit = BlendFit(weights, used, int(diff.shape[0]), float(result.fun), accuracy, skipped)
    logger.info(
        "blend fitted on %d searches (%d pairs) in %.1f s: %s",
        used,
        diff.shape[0],
        time.perf_counter() - start,
        weights.to_dict(),
    )
    if experiment is not None:
        fit = _log_fit(fit, model, searches, experiment, uri, candidates, l2)
    return fit


def _log_fit(
    fit: BlendFit,
    model: Any,
    searches: pd.DataFrame,
    experiment: str,
    uri: str | None,
    candidates: int,
    l2: float,
) -> BlendFit:
    from recommend.tracking import (
        ensure_experiment,
        flatten_params,
        log_batch,
        mlflow_client,
        tracked_run,
    )

    client = mlflow_client(uri)
    exp = ensure_experiment(client, experiment)
    params = {
        "model": getattr(model, "name", type(model).__name__),
        "candidates": str(candidates),
        "l2": str(l2),
        "position_bias": "log2",
        "data.fingerprint": model.dataset_.fingerprint()
        if hasattr(model.dataset_, "fingerprint")
        else "",
    }
    params.update(flatten_params("model.", model.get_params()))
    metrics = {f"weight.{k}": v for k, v in fit.weights.to_dict().items()}
    metrics.update(
        {
            "searches": float(fit.searches),
            "searches_logged": float(len(searches)),
            "pairs": float(fit.pairs),
            "loss": fit.loss,
            "pair_accuracy": fit.pair_accuracy,
        }
    )
    metrics.update({f"skipped.{k}": float(v) for k, v in fit.skipped.items()})
    with tracked_run(client, exp, run_name="search-blend") as run_id:
        log_batch(client, run_id, params, metrics)
        client.log_dict(run_id, fit.weights.to_dict(), "blend_weights.json")
    return BlendFit(
        fit.weights, fit.searches, fit.pairs, fit.loss, fit.pair_accuracy, fit.skipped, run_id
    )


def standard_methods(learned: BlendWeights | None = None) -> dict[str, BlendWeights]:
    """The rankings compared on search logs: text only, preference only, the hand-set
    blend and (when given) the learned one."""
    methods = {
        "text_only": TEXT_ONLY,
        "preference_only": PREFERENCE_ONLY,
        "hand_set": BlendWeights(),
    }
    if learned is not None:
        methods["learned"] = learned
    return methods


def evaluate_search(
    model: Any,
    searches: pd.DataFrame,
    methods: Mapping[str, BlendWeights],
    *,
    index: SearchIndex | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    k: int = 10,
    progress: bool = False,
) -> pd.DataFrame:
    """MRR, NDCG@k and hit rate@k of clicked courses when each search is ranked by each
    method.

    Every search with a click is served as ``search`` serves it (BM25 top ``candidates``,
    re-ranked by the blend); a clicked course outside the candidates counts as a miss.

    Returns
    -------
    pandas.DataFrame
        One row per method (index), columns ``mrr``, ``ndcg@k``, ``hit@k`` and
        ``searches`` (how many searches were evaluated).
    """
    searches = _check_searches(searches)
    if not methods:
        raise ConfigError("methods is empty; give at least one name -> BlendWeights")
    index = index if index is not None else attached_index(model)
    logged, _ = _collect(model, searches, index, candidates, with_shown=False, progress=progress)
    n = len(logged)
    width = max([item.cand.courses.size for item in logged] + [1])
    n_courses = model.n_courses
    # Relevant: the clicked courses of each search (model indices).
    rel_rows = np.concatenate(
        [np.full(t.targets.size, i, np.int64) for i, t in enumerate(logged)]
        or [np.empty(0, np.int64)]
    )
    rel_cols = np.concatenate([t.targets for t in logged] or [np.empty(0, np.int64)])
    relevant = sp.csr_matrix(
        (np.ones(rel_rows.size, np.float32), (rel_rows, rel_cols)), shape=(n, n_courses)
    )
    table = {}
    for name, weights in methods.items():
        ranked = np.full((n, width), -1, dtype=np.int64)
        for i, item in enumerate(logged):
            order, _ = item.cand.order(weights)
            ranked[i, : order.size] = item.cand.courses[order]
        table[name] = {
            "mrr": float(reciprocal_rank_at_k(ranked, relevant, width).mean()) if n else np.nan,
            f"ndcg@{k}": float(ndcg_at_k(ranked, relevant, min(k, width)).mean()) if n else np.nan,
            f"hit@{k}": float(hit_rate_at_k(ranked, relevant, min(k, width)).mean())
            if n
            else np.nan,
            "searches": n,
        }
    return pd.DataFrame.from_dict(table, orient="index")
