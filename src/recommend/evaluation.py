"""One-call offline evaluation and model comparison.

``evaluate(model, train, test)`` fits (optionally), ranks every evaluated member's courses
through the shared top-k kernel (training history masked), and reports accuracy metrics at
each k, beyond-accuracy metrics, a breakdown by member segment and bootstrap confidence
intervals. ``compare`` does it for several models and returns one table.

Evaluated members are those with at least one held-out course. By default only members
with training history are ranked by the model (``members="warm"``); cold members are the
business of the cold-start routes and are evaluated with ``members="all"``, where they are
ranked by the model like everyone else.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from recommend import metrics as M
from recommend.data.dataset import Dataset, age_band
from recommend.errors import ConfigError, DataError
from recommend.models.base import Recommender
from recommend.schema import Columns

__all__ = ["EvaluationResult", "compare", "evaluate", "ranked_lists", "truth_agreement"]

log = logging.getLogger(__name__)
C = Columns

SEGMENT_COLUMNS = ("age_band", C.OCCUPATION, C.MOBILE, "activity")


@dataclass(frozen=True)
class EvaluationResult:
    """What ``evaluate`` measured for one model (aggregates only, no member ids).

    ``metrics`` maps ``"ndcg@10"``-style keys to floats (accuracy, ``coverage@k``,
    ``novelty@k``, ``diversity@k``, ``popularity@k``, ``gini@k``, plus ``n_evaluated``,
    ``n_test_members`` (members with held-out courses), ``n_left_out`` (those not
    evaluated: without training history when ``members="warm"``), ``fit_seconds``,
    ``score_seconds``); ``per_member`` has one row per evaluated member
    (index: member index); ``segments`` maps a segment name to its breakdown table;
    ``intervals`` holds bootstrap means and bounds per accuracy metric. ``params`` holds
    the model's hyper-parameters (``"als.n_factors"``) and the protocol
    (``"evaluation.members"``, ``"evaluation.exclude_seen"``, ``"evaluation.candidates"``),
    so that runs measured differently never look alike.
    """

    model: str
    params: dict[str, Any]
    metrics: dict[str, float]
    per_member: pd.DataFrame = field(repr=False)
    segments: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    intervals: pd.DataFrame | None = field(default=None, repr=False)

    def table(self) -> pd.DataFrame:
        """The metrics as a one-row frame indexed by model name."""
        return pd.DataFrame([self.metrics], index=pd.Index([self.model], name="model"))


def _check_aligned(train: Dataset, test: Dataset) -> None:
    if train.member_ids != test.member_ids or train.course_ids != test.course_ids:
        raise DataError(
            "train and test datasets do not share id maps; build them with "
            "Dataset.split(...) or pass member_ids=/course_ids= to Dataset.from_frames"
        )


def ranked_lists(
    model: Recommender,
    member_idx: np.ndarray,
    k: int,
    *,
    exclude_seen: bool = True,
    allow: np.ndarray | None = None,
) -> np.ndarray:
    """Top-``k`` course indices, (len(member_idx), k) int32 (-1 pads), via the kernel.

    ``allow`` (course indices) restricts the ranking to those courses.
    """
    exclude = model.history_.rows(member_idx) if exclude_seen else None
    return model.topk(member_idx, k, exclude=exclude, allow=allow).indices


def _cutoffs(ks: int | Sequence[int]) -> tuple[int, ...]:
    """Sorted distinct cut-offs from one number or a sequence of them."""
    values = [ks] if isinstance(ks, int | np.integer) else ks
    try:
        return tuple(sorted({int(k) for k in values}))
    except (TypeError, ValueError):
        raise ConfigError(f"ks={ks!r}; expected positive cut-offs such as (10, 20) or 10") from None


def evaluate(
    model: Recommender,
    train: Dataset,
    test: Dataset,
    *,
    ks: int | Sequence[int] = (10, 20),
    fit: bool = True,
    members: Literal["warm", "all"] = "warm",
    exclude_seen: bool = True,
    segments: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    name: str | None = None,
    truth: Any | None = None,
    candidates: Literal["all", "test"] | np.ndarray = "all",
) -> EvaluationResult:
    """Fit ``model`` on ``train`` (unless ``fit=False``) and evaluate it on ``test``.

    Parameters
    ----------
    model
        Any ``Recommender``; with ``fit=True`` it is fitted on ``train`` in place.
    train, test
        Datasets sharing id maps (``Dataset.split`` makes such a pair); ``test``'s matrix
        holds the held-out interactions (any stored value = relevant).
    ks
        Cut-offs (one number or several); lists of ``max(ks)`` courses are ranked once
        and cut.
    fit
        Fit ``model`` on ``train`` first; with ``False`` the model must be fitted
        (``NotFittedError`` otherwise).
    members
        ``"warm"``: evaluated members with training history; ``"all"``: every member with a
        held-out course.
    exclude_seen
        Mask courses already in the member's training history.
    segments
        Add breakdowns by age band, occupation, mobile flag and activity level.
    n_boot
        Bootstrap resamples for the confidence intervals (0 to skip).
    truth
        The simulator's ground truth (``Platform.truth``); adds ``truth_overlap@k`` (share
        of the list among the member's true top-k unseen courses) and ``truth_regret@k``
        (1 - mean true utility of the list / that of the true top-k, on exp scale).
    candidates
        Courses the lists are ranked from: ``"all"``; ``"test"``, the courses with a
        held-out interaction (the protocol for a cold-course split, where the question is
        how well a model orders new courses it never saw interactions for); or an array of
        course indices or a boolean mask. Coverage and Gini are then relative to the
        candidates; the truth metrics still compare with the member's true top-k of the
        whole catalogue.
    """
    _check_aligned(train, test)
    ks = _cutoffs(ks)
    if not fit:
        model.check_fitted()  # NotFittedError, not an AttributeError deep inside scoring
    if not ks or ks[0] < 1:
        raise ConfigError(f"ks={ks}; expected positive cut-offs such as (10, 20)")
    if members not in ("warm", "all"):
        raise ConfigError(f"members={members!r}; expected 'warm' or 'all'")
    label: str = name or str(getattr(model, "name", type(model).__name__))

    start = time.perf_counter()
    if fit:
        model.fit(train)
    fit_seconds = time.perf_counter() - start

    relevant = test.interactions
    has_test = relevant.getnnz(axis=1) > 0
    has_train = train.interactions.getnnz(axis=1) > 0
    chosen = has_test & has_train if members == "warm" else has_test
    member_idx = np.flatnonzero(chosen)
    if member_idx.size == 0:
        raise DataError(
            f"no member to evaluate: {int(has_test.sum())} members have held-out courses, "
            f"{int((has_test & has_train).sum())} of them with training history"
        )
    allow = _candidates(candidates, test)
    n_candidates = train.n_courses if allow is None else int(allow.size)
    start = time.perf_counter()
    recommended = ranked_lists(model, member_idx, max(ks), exclude_seen=exclude_seen, allow=allow)
    score_seconds = time.perf_counter() - start
    # positions within the candidate set, for the catalogue-level metrics
    positions = recommended
    if allow is not None:
        positions = np.where(recommended >= 0, np.searchsorted(allow, recommended), -1)

    popularity = M.popularity_counts(train.interactions)
    categories = _category_codes(train)
    per_member = M.per_member_metrics(
        recommended,
        relevant[member_idx],
        ks,
        item_popularity=popularity,
        n_members=train.n_members,
        course_category=categories,
    )
    per_member.index = member_idx[per_member.index.to_numpy()]
    per_member.index.name = "member_idx"

    values: dict[str, float] = {
        col: float(per_member[col].mean())
        for col in per_member.columns
        if not col.startswith(("novelty@", "popularity@", "diversity@"))
    }
    for k in ks:
        values[f"coverage@{k}"] = M.catalogue_coverage(positions, n_candidates, k)
        values[f"novelty@{k}"] = M.novelty(recommended, popularity, train.n_members, k)
        values[f"popularity@{k}"] = M.average_popularity(recommended, popularity, k)
        values[f"gini@{k}"] = M.gini_index(positions, n_candidates, k)
        if categories is not None:
            values[f"diversity@{k}"] = M.intra_list_diversity(recommended, categories, k)
    if truth is not None:
        values.update(truth_agreement(train, member_idx, recommended, truth, ks))
    values.update(
        n_evaluated=float(len(per_member)),
        # Members with held-out courses, and those of them not evaluated (no training
        # history with members="warm"): an evaluation says whom it left out.
        n_test_members=float(has_test.sum()),
        n_left_out=float(has_test.sum() - len(per_member)),
        fit_seconds=fit_seconds,
        score_seconds=score_seconds,
    )

    accuracy_cols = [c for c in per_member.columns if c.split("@")[0] in M.ACCURACY_METRICS]
    intervals = (
        M.bootstrap_cis(per_member[accuracy_cols], n_boot=n_boot, seed=seed) if n_boot else None
    )
    tables = _segment_tables(train, per_member[accuracy_cols]) if segments else {}
    log.info(
        "evaluated %s on %d of %d members with held-out courses (%d without training "
        "history left out): %s",
        label,
        len(per_member),
        int(has_test.sum()),
        int(has_test.sum()) - len(per_member),
        _headline(values, ks),
    )
    protocol = {
        "evaluation.members": members,
        "evaluation.exclude_seen": exclude_seen,
        "evaluation.candidates": (
            candidates if isinstance(candidates, str) else f"{n_candidates} courses"
        ),
    }
    return EvaluationResult(
        model=label,
        params={**_flat_params(model), **protocol},
        metrics=values,
        per_member=per_member,
        segments=tables,
        intervals=intervals,
    )


def _candidates(
    candidates: Literal["all", "test"] | np.ndarray, test: Dataset
) -> np.ndarray | None:
    """Sorted course indices to rank from, ``None`` for all courses."""
    if isinstance(candidates, str):
        if candidates == "all":
            return None
        if candidates == "test":
            return np.flatnonzero(test.interactions.getnnz(axis=0) > 0).astype(np.int64)
        raise ConfigError(f"candidates={candidates!r}; expected 'all', 'test' or course indices")
    given = np.asarray(candidates)
    if given.dtype == bool:
        if given.shape != (test.n_courses,):
            raise ConfigError(
                f"candidates: a boolean mask needs one value per course ({test.n_courses}), "
                f"got shape {given.shape}"
            )
        given = np.flatnonzero(given)
    if given.dtype.kind not in "iu":
        raise ConfigError(
            f"candidates: expected 'all', 'test', course indices or a boolean mask over "
            f"courses, got an array of {given.dtype}"
        )
    allow = np.unique(given.astype(np.int64))
    if allow.size == 0 or allow[0] < 0 or allow[-1] >= test.n_courses:
        raise ConfigError(
            f"candidates: expected course indices in [0, {test.n_courses}), "
            f"got {allow.size} values from {allow[:1]} to {allow[-1:]}"
        )
    return allow


def truth_agreement(
    train: Dataset,
    member_idx: np.ndarray,
    recommended: np.ndarray,
    truth: Any,
    ks: Sequence[int],
    *,
    block: int = 2048,
) -> dict[str, float]:
    """Agreement of ranked lists with the simulator's true preferences.

    ``recommended`` is (len(member_idx), K) course indices of ``train``. For each member the
    true utility of every course is computed, courses in the training history are set
    aside, and the list is compared with the true top-k of what remains.
    """
    t_members = truth.member_index(train.member_ids.external_ids[member_idx])
    t_courses = truth.course_index(train.course_ids.external_ids)
    overlap = {k: np.zeros(len(member_idx)) for k in ks}
    regret = {k: np.zeros(len(member_idx)) for k in ks}
    for lo in range(0, len(member_idx), block):
        rows = slice(lo, lo + block)
        util = truth.utility(t_members[rows], t_courses).astype(np.float64)
        seen = train.interactions[member_idx[rows]].tocoo()
        util[seen.row, seen.col] = -np.inf
        order = np.argsort(-util, axis=1, kind="stable")
        rec = recommended[rows].astype(np.int64)
        gain = np.exp(util - np.max(util, axis=1, keepdims=True))
        for k in ks:
            best = order[:, :k]
            top = rec[:, :k]
            valid = top >= 0
            hit = (top[:, :, None] == best[:, None, :]).any(axis=2) & valid
            overlap[k][rows] = hit.sum(axis=1) / k
            got = np.where(valid, np.take_along_axis(gain, np.maximum(top, 0), axis=1), 0.0)
            ideal = np.take_along_axis(gain, best, axis=1).sum(axis=1)
            regret[k][rows] = 1.0 - got.sum(axis=1) / ideal
    out: dict[str, float] = {}
    for k in ks:
        out[f"truth_overlap@{k}"] = float(overlap[k].mean())
        out[f"truth_regret@{k}"] = float(regret[k].mean())
    return out


def compare(
    models: Mapping[str, Recommender] | Sequence[Recommender],
    train: Dataset,
    test: Dataset,
    *,
    ks: Sequence[int] = (10, 20),
    progress: Callable[[str], None] | None = None,
    on_fitted: Callable[[str, Recommender], None] | None = None,
    **options: Any,
) -> tuple[pd.DataFrame, dict[str, EvaluationResult]]:
    """Evaluate several models on the same split; returns (table, results by name).

    The table has one row per model and one column per metric, best NDCG first. Each model
    is cloned (same hyper-parameters, unfitted) before fitting, so the caller's objects stay
    untouched. ``progress(label)`` is called before each fit and ``on_fitted(label, model)``
    with each fitted clone after its evaluation (to keep, save or log it).
    """
    named = dict(models) if isinstance(models, Mapping) else {m.name: m for m in models}
    results: dict[str, EvaluationResult] = {}
    for label, model in named.items():
        if progress:
            progress(label)
        fresh = model.clone()
        results[label] = evaluate(fresh, train, test, ks=ks, name=label, **options)
        if on_fitted:
            on_fitted(label, fresh)
    table = pd.concat([r.table() for r in results.values()])
    key = f"ndcg@{max(ks)}"
    if key in table.columns:
        table = table.sort_values(key, ascending=False)
    return table, results


def _flat_params(model: Recommender) -> dict[str, Any]:
    return {f"{model.name}.{k}": v for k, v in model.get_params().items()}


def _headline(values: Mapping[str, float], ks: Sequence[int]) -> str:
    k = max(ks)
    return ", ".join(
        f"{m}@{k}={values[f'{m}@{k}']:.4f}" for m in ("ndcg", "recall") if f"{m}@{k}" in values
    )


def _category_codes(ds: Dataset) -> np.ndarray | None:
    if ds.courses is None or C.CATEGORY not in ds.courses.columns:
        return None
    codes, _ = pd.factorize(ds.courses[C.CATEGORY], use_na_sentinel=True)
    return codes.astype(np.int64)


def _segment_labels(ds: Dataset, member_idx: np.ndarray) -> dict[str, np.ndarray]:
    labels: dict[str, np.ndarray] = {}
    counts = ds.interactions.getnnz(axis=1)[member_idx]
    labels["activity"] = np.asarray(M.activity_level(counts), dtype=object)
    if ds.members is None:
        return labels
    m = ds.members.iloc[member_idx]
    if C.BIRTH_YEAR in m.columns:
        labels["age_band"] = age_band(m[C.BIRTH_YEAR], ds.now.year)
    for col in (C.OCCUPATION, C.MOBILE):
        if col in m.columns:
            labels[col] = m[col].astype(object).where(m[col].notna(), "unknown").to_numpy()
    return labels


def _segment_tables(ds: Dataset, per_member: pd.DataFrame) -> dict[str, pd.DataFrame]:
    idx = per_member.index.to_numpy()
    return {
        name: M.by_segment(per_member.reset_index(drop=True), pd.Series(values))
        for name, values in _segment_labels(ds, idx).items()
    }
