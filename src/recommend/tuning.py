"""Hyper-parameter search on a validation split carved from the training data only.

The test data is never looked at: ``tune`` splits the *training* dataset again (by time by
default, or with any splitter), scores each candidate on that validation part, and returns
the best parameters. Refit on all training data and report on test afterwards.

Two samplers: ``"tpe"`` (Optuna's tree-structured Parzen estimator, the default), which
proposes parameters where good trials were, and ``"random"`` (independent draws). With TPE
weak trials are pruned: a trial's validation members are scored in a fixed seeded order, a
quarter at a time, and a trial whose running score (after half of them or more) falls in
the worst quarter of earlier trials at the same point stops there (scoring is skipped for
the rest). ``minutes`` bounds the
time per model: no new trial starts once it has passed (the first trial always runs).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommend.data.dataset import Dataset
from recommend.data.splits import Splitter, TimeSplit
from recommend.errors import ConfigError, DataError
from recommend.evaluation import ranked_lists
from recommend.metrics import per_member_metrics
from recommend.models import Recommender, get_model_class

__all__ = [
    "FUSION_PARTS",
    "SAMPLERS",
    "SEARCH_SPACES",
    "Choice",
    "LogUniform",
    "TuningResult",
    "Uniform",
    "tune",
    "tune_fusion",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Choice:
    """One of a few values."""

    values: tuple[Any, ...]

    def sample(self, rng: np.random.Generator) -> Any:
        value = self.values[int(rng.integers(len(self.values)))]
        return value.item() if isinstance(value, np.generic) else value


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]; ``integer`` rounds."""

    low: float
    high: float
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> Any:
        value = float(rng.uniform(self.low, self.high))
        return round(value) if self.integer else value


@dataclass(frozen=True)
class LogUniform:
    """Log-uniform on [low, high] (for regularisation strengths and learning rates)."""

    low: float
    high: float
    integer: bool = False

    def sample(self, rng: np.random.Generator) -> Any:
        value = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return round(value) if self.integer else value


Space = Mapping[str, Choice | Uniform | LogUniform]

#: Default search spaces per model name.
SEARCH_SPACES: dict[str, Space] = {
    "popularity": {"half_life_days": Choice((None, 7.0, 30.0, 90.0))},
    "als": {
        # Small catalogues and sparse histories often want few factors.
        "n_factors": Choice((8, 16, 32, 64, 128)),
        "regularization": LogUniform(1e-3, 1.0),
        "alpha": LogUniform(0.5, 20.0),
        "iterations": Choice((10, 15, 20)),
    },
    "bpr": {
        "n_factors": Choice((32, 64, 128)),
        "learning_rate": LogUniform(0.005, 0.1),
        "regularization": LogUniform(1e-4, 0.1),
        "iterations": Choice((50, 100, 200)),
    },
    "item_knn": {
        "similarity": Choice(("cosine", "bm25")),
        "k": LogUniform(20, 500, integer=True),
    },
    "ease": {"l2": LogUniform(10.0, 5000.0)},
    "rp3beta": {
        "alpha": Uniform(0.3, 1.5),
        "beta": Uniform(0.0, 1.0),
        "neighbours": Choice((0, 50, 100, 200, 500)),
    },
    "edlae": {
        "l2": LogUniform(10.0, 5000.0),
        "dropout": Uniform(0.0, 0.95),
        "variant": Choice(("edlae", "dlae")),
        "popularity_power": Uniform(0.0, 0.4),
    },
    "gfcf": {
        "n_factors": Choice((16, 32, 64, 128, 256)),
        "ideal_weight": LogUniform(0.01, 3.0),
    },
    "fusion": {
        "ease_l2": LogUniform(10.0, 5000.0),
        "rp3_alpha": Uniform(0.3, 1.5),
        "rp3_beta": Uniform(0.0, 1.0),
        "edlae_l2": LogUniform(10.0, 5000.0),
        "edlae_dropout": Uniform(0.0, 0.95),
        "edlae_variant": Choice(("edlae", "dlae")),
        "edlae_popularity_power": Uniform(0.0, 0.4),
        "gfcf_factors": Choice((16, 32, 64, 128, 256)),
        "gfcf_ideal_weight": LogUniform(0.01, 3.0),
    },
    "lightfm": {
        "n_factors": Choice((16, 32, 64)),
        "learning_rate": LogUniform(0.01, 0.1),
        "epochs": Choice((10, 20, 40)),
        "loss": Choice(("warp", "bpr")),
        "item_alpha": LogUniform(1e-7, 1e-4),
    },
}


@dataclass(frozen=True)
class TuningResult:
    """Outcome of ``tune``: best parameters and the table of every trial.

    ``trials`` has one row per trial: its parameters, the validation score (for a pruned
    trial, the running score where it stopped), ``state`` (``"complete"`` or
    ``"pruned"``), ``members_scored`` and ``fit_seconds``. Only complete trials compete.
    """

    model: str
    metric: str
    best_params: dict[str, Any]
    best_score: float
    trials: pd.DataFrame = field(repr=False)
    validation: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"

    @property
    def n_pruned(self) -> int:
        return int((self.trials["state"] == "pruned").sum()) if len(self.trials) else 0


SAMPLERS = ("tpe", "random")
#: Validation members are scored in this many parts; pruning may stop after each but the last.
PRUNE_STEPS = 4
#: A trial is pruned when its running score falls below this percentile of earlier trials.
PRUNE_PERCENTILE = 25.0


def tune(
    model: str,
    train: Dataset,
    *,
    n_trials: int = 20,
    space: Space | None = None,
    fixed: Mapping[str, Any] | None = None,
    metric: str = "ndcg@20",
    validation: Splitter | None = None,
    seed: int = 0,
    on_trial: Callable[[int, dict[str, Any], dict[str, float]], None] | None = None,
    sampler: str = "tpe",
    prune: bool = True,
    minutes: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TuningResult:
    """Search ``model``'s hyper-parameters on a validation split of ``train``.

    Parameters
    ----------
    model
        Registered model name (``"als"``, ``"ease"`` ...).
    train
        Training dataset; it is split again into fit and validation parts.
    n_trials
        Candidates tried at most; the first one is the model's defaults (plus ``fixed``).
    space
        Parameter distributions; ``SEARCH_SPACES[model]`` by default.
    fixed
        Parameters held fixed in every trial.
    metric
        Validation metric to maximise, e.g. ``"ndcg@20"`` or ``"recall@10"``.
    validation
        Splitter carving the validation part; ``TimeSplit(test_fraction=0.2)`` by default.
    seed
        Seeds the sampler (and the order members are scored in): same seed, same trials.
    on_trial
        Called after each trial with (number, params, metrics), e.g. to log child runs; a
        pruned trial's metrics hold ``pruned=1`` and its running score as ``partial_<metric>``.
    sampler
        ``"tpe"`` (Optuna TPE) or ``"random"`` (independent draws).
    prune
        Stop weak trials early (TPE only; worst-quarter rule, after five trials).
    minutes
        Time budget: no trial starts after it has passed (``None``: no budget).
    clock
        Seconds, monotonic (for tests).
    """
    if n_trials < 1:
        raise ConfigError(f"n_trials={n_trials}; expected at least 1")
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler={sampler!r}; expected one of {', '.join(SAMPLERS)}")
    if minutes is not None and not (isinstance(minutes, int | float) and minutes > 0):
        raise ConfigError(f"minutes={minutes!r}; expected a number of minutes > 0")
    name, k = _parse_metric(metric)
    cls = get_model_class(model)
    space = SEARCH_SPACES.get(cls.name, {}) if space is None else space
    unknown = set(space) | set(fixed or {})
    unknown -= set(cls.param_names())
    if unknown:
        raise ConfigError(f"{cls.name} has no parameter(s) {sorted(unknown)}")
    validation = validation or TimeSplit(test_fraction=0.2)
    started = clock()
    fit_part, valid_part = train.split(validation)
    scorer = _Scorer(fit_part, valid_part, name, k, seed)
    rng = np.random.default_rng(seed)
    study = _study(sampler, seed, prune) if sampler == "tpe" else None
    dists = _optuna_space(space) if study is not None else {}
    rows = []
    best: tuple[float, dict[str, Any]] | None = None
    for trial in range(n_trials):
        if minutes is not None and trial > 0 and clock() - started >= 60.0 * minutes:
            log.info("%s: time budget of %g min spent after %d trials", cls.name, minutes, trial)
            break
        asked = None
        if trial == 0:  # the model's defaults, recorded explicitly
            params = {p: v for p, v in cls().get_params().items() if p in space}
        elif study is not None:
            asked = study.ask(dists)
            params = dict(asked.params)
        else:
            params = {p: dist.sample(rng) for p, dist in space.items()}
        params.update(fixed or {})
        fit_start = time.perf_counter()
        fitted = cls(**params).fit(fit_part)
        fit_seconds = time.perf_counter() - fit_start
        score, scored, pruned = scorer.score(fitted, asked if prune else None)
        state = "pruned" if pruned else "complete"
        if study is not None:
            _tell(study, asked, trial, params, space, dists, score, pruned)
        rows.append(
            {
                "trial": trial,
                **params,
                metric: score,
                "state": state,
                "members_scored": scored,
                "fit_seconds": fit_seconds,
            }
        )
        if on_trial:
            values = {"fit_seconds": fit_seconds, "members_scored": float(scored)}
            if pruned:
                values.update({"pruned": 1.0, f"partial_{metric}": score})
            else:
                values.update({metric: score, "pruned": 0.0})
            on_trial(trial, params, values)
        log.info("%s trial %d %s: %s=%.4f (%s)", cls.name, trial, params, metric, score, state)
        if not pruned and (best is None or score > best[0]):
            best = (score, params)
    assert best is not None  # trial 0 is never pruned
    return TuningResult(
        model=cls.name,
        metric=metric,
        best_params=best[1],
        best_score=best[0],
        trials=pd.DataFrame(rows),
        validation={"splitter": type(validation).__name__, **validation.get_params()},
        sampler=sampler,
    )


class _Scorer:
    """Scores a fitted model on the validation members (those with fit history and
    validation courses, as ``evaluate`` picks them), in ``PRUNE_STEPS`` seeded parts."""

    def __init__(self, fit_part: Dataset, valid_part: Dataset, name: str, k: int, seed: int):
        relevant = valid_part.interactions
        has = (relevant.getnnz(axis=1) > 0) & (fit_part.interactions.getnnz(axis=1) > 0)
        members = np.flatnonzero(has)
        if members.size == 0:
            raise DataError(
                "tuning: no member has both fit and validation courses; the training data is "
                "too small to carve a validation split from"
            )
        members = np.random.default_rng(seed).permutation(members)
        self.parts = [p for p in np.array_split(members, PRUNE_STEPS) if p.size]
        self.relevant = relevant
        self.column = f"{name}@{k}"
        self.k = k

    def score(self, model: Recommender, trial: Any | None) -> tuple[float, int, bool]:
        """(mean metric over the members scored, members scored, pruned?)."""
        total, count = 0.0, 0
        for step, part in enumerate(self.parts):
            ranked = ranked_lists(model, part, self.k)
            table = per_member_metrics(ranked, self.relevant[part], (self.k,))
            if self.column not in table.columns:
                raise ConfigError(
                    f"metric {self.column!r} is not a ranking metric; expected one of "
                    f"{sorted(c.split('@')[0] for c in table.columns)}"
                )
            total += float(table[self.column].sum())
            count += len(table)
            if trial is not None and step < len(self.parts) - 1:
                trial.report(total / count, step)
                if trial.should_prune():
                    return total / count, count, True
        return total / count, count, False


def _study(sampler: str, seed: int, prune: bool) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5),
        # Stop a trial whose running score (half of its members or more scored) is in the
        # worst quarter of earlier trials at the same point; partial scores are noisy, so
        # only clearly weak trials go.
        pruner=optuna.pruners.PercentilePruner(
            PRUNE_PERCENTILE, n_startup_trials=5, n_warmup_steps=1
        ),
    )


def _optuna_space(space: Space) -> dict[str, Any]:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for param, dist in space.items():
        if isinstance(dist, Choice):
            out[param] = CategoricalDistribution(dist.values)
        elif dist.integer:
            low, high = math.ceil(dist.low), math.floor(dist.high)
            out[param] = IntDistribution(low, high, log=isinstance(dist, LogUniform))
        else:
            out[param] = FloatDistribution(dist.low, dist.high, log=isinstance(dist, LogUniform))
    return out


def _tell(
    study: Any,
    asked: Any | None,
    trial: int,
    params: dict[str, Any],
    space: Space,
    dists: dict[str, Any],
    score: float,
    pruned: bool,
) -> None:
    """Record a trial's outcome in the study (trial 0, the defaults, is added when its
    values lie inside the search space, so TPE learns from it too)."""
    import optuna

    if asked is not None:
        state = optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE
        study.tell(asked, None if pruned else score, state=state)
        return
    try:
        study.add_trial(
            optuna.trial.create_trial(
                params={p: params[p] for p in space},
                distributions=dists,
                value=score,
            )
        )
    except ValueError:
        log.debug("trial %d's defaults lie outside the search space: not given to TPE", trial)


def tune_fusion(
    results: Sequence[TuningResult],
    train: Dataset,
    *,
    metric: str = "ndcg@20",
    validation: Splitter | None = None,
    seed: int = 0,
    on_trial: Callable[[int, dict[str, Any], dict[str, float]], None] | None = None,
) -> TuningResult:
    """The fusion of EASE, RP3beta, EDLAE and GF-CF built from their tuned parameters (from
    ``results``; defaults for a part not among them), scored on the same validation split
    as one trial; its weights are learned inside the fit, on a split of the fit part."""
    by_model = {r.model: r.best_params for r in results}
    fixed: dict[str, Any] = {}
    for part, mapping in _FUSION_PARAMS.items():
        for source, target in mapping.items():
            if source in by_model.get(part, {}):
                fixed[target] = by_model[part][source]
    _, k = _parse_metric(metric)
    fixed["k"] = k
    return tune(
        "fusion",
        train,
        n_trials=1,
        space={},
        fixed=fixed,
        metric=metric,
        validation=validation,
        seed=seed,
        on_trial=on_trial,
        sampler="random",
    )


#: How a tuned part's parameters map onto the fusion's.
_FUSION_PARAMS: dict[str, dict[str, str]] = {
    "ease": {"l2": "ease_l2"},
    "rp3beta": {"alpha": "rp3_alpha", "beta": "rp3_beta", "neighbours": "rp3_neighbours"},
    "edlae": {
        "l2": "edlae_l2",
        "dropout": "edlae_dropout",
        "variant": "edlae_variant",
        "popularity_power": "edlae_popularity_power",
    },
    "gfcf": {"n_factors": "gfcf_factors", "ideal_weight": "gfcf_ideal_weight"},
}
#: The models ``tune_fusion`` combines.
FUSION_PARTS = tuple(_FUSION_PARAMS)


def _parse_metric(metric: str) -> tuple[str, int]:
    try:
        name, k = metric.split("@")
        return name, int(k)
    except ValueError:
        raise ConfigError(f"metric={metric!r}; expected NAME@K such as 'ndcg@20'") from None


def best_params_table(results: Sequence[TuningResult]) -> pd.DataFrame:
    """One row per tuned model: validation score and best parameters."""
    return pd.DataFrame(
        [{"model": r.model, r.metric: r.best_score, "params": r.best_params} for r in results]
    ).set_index("model")
