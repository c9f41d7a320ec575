"""Hyper-parameter search on a validation split carved from the training data only.

The test data is never looked at: ``tune`` splits the *training* dataset again (by time by
default, or with any splitter), scores each candidate on that validation part, and returns
the best parameters. Refit on all training data and report on test afterwards.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recommend.data.dataset import Dataset
from recommend.data.splits import Splitter, TimeSplit
from recommend.errors import ConfigError
from recommend.evaluation import evaluate
from recommend.models import get_model_class

__all__ = ["SEARCH_SPACES", "Choice", "LogUniform", "TuningResult", "Uniform", "tune"]

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
    """Outcome of ``tune``: best parameters and the table of every trial."""

    model: str
    metric: str
    best_params: dict[str, Any]
    best_score: float
    trials: pd.DataFrame = field(repr=False)
    validation: dict[str, Any] = field(default_factory=dict)


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
) -> TuningResult:
    """Random search for ``model``'s hyper-parameters on a validation split of ``train``.

    Parameters
    ----------
    model
        Registered model name (``"als"``, ``"ease"`` ...).
    train
        Training dataset; it is split again into fit and validation parts.
    n_trials
        Candidates tried; the first one is the model's defaults (plus ``fixed``).
    space
        Parameter distributions; ``SEARCH_SPACES[model]`` by default.
    fixed
        Parameters held fixed in every trial.
    metric
        Validation metric to maximise, e.g. ``"ndcg@20"`` or ``"recall@10"``.
    validation
        Splitter carving the validation part; ``TimeSplit(test_fraction=0.2)`` by default.
    on_trial
        Called after each trial with (number, params, metrics), e.g. to log child runs.
    """
    if n_trials < 1:
        raise ConfigError(f"n_trials={n_trials}; expected at least 1")
    name, k = _parse_metric(metric)
    cls = get_model_class(model)
    space = SEARCH_SPACES.get(cls.name, {}) if space is None else space
    unknown = set(space) | set(fixed or {})
    unknown -= set(cls.param_names())
    if unknown:
        raise ConfigError(f"{cls.name} has no parameter(s) {sorted(unknown)}")
    validation = validation or TimeSplit(test_fraction=0.2)
    fit_part, valid_part = train.split(validation)
    rng = np.random.default_rng(seed)
    rows = []
    best: tuple[float, dict[str, Any]] | None = None
    for trial in range(n_trials):
        if trial == 0:  # the model's defaults, recorded explicitly
            params = {p: v for p, v in cls().get_params().items() if p in space}
        else:
            params = {p: dist.sample(rng) for p, dist in space.items()}
        params.update(fixed or {})
        result = evaluate(cls(**params), fit_part, valid_part, ks=(k,), n_boot=0, segments=False)
        score = result.metrics[f"{name}@{k}"]
        rows.append(
            {"trial": trial, **params, metric: score, "fit_seconds": result.metrics["fit_seconds"]}
        )
        if on_trial:
            on_trial(trial, params, result.metrics)
        log.info("%s trial %d %s: %s=%.4f", cls.name, trial, params, metric, score)
        if best is None or score > best[0]:
            best = (score, params)
    assert best is not None
    return TuningResult(
        model=cls.name,
        metric=metric,
        best_params=best[1],
        best_score=best[0],
        trials=pd.DataFrame(rows),
        validation={"splitter": type(validation).__name__, **validation.get_params()},
    )


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
