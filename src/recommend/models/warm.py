"""Warm-started refits: the nightly refit of a served model starts from its factors."""

from __future__ import annotations

from recommend.data.dataset import Dataset
from recommend.models.base import Recommender

__all__ = ["warm_refit"]


def warm_refit(
    previous: Recommender, dataset: Dataset, *, iterations: int | None = None
) -> Recommender:
    """A new model of ``previous``'s class and hyper-parameters fitted on ``dataset``,
    starting from ``previous``'s factors (the course side; ALS members too) where the
    model supports it (``ALS``, ``BPR``, ``LightFM``: ``fit_from``; LightFM matches its
    embedding rows by member, course and feature name), with ``iterations`` sweeps or
    epochs when given (fewer than a cold fit needs). Models without an iterative fit
    (EASE, item-kNN, popularity) are fitted as usual.
    ``previous`` is not changed: it serves until the new model replaces it.
    """
    model = previous.clone()
    if iterations is not None:
        # ALS/BPR count sweeps or epochs in ``iterations``, LightFM in ``epochs``.
        name = "iterations" if "iterations" in model.param_names() else "epochs"
        model.set_params(**{name: iterations})
    fit_from = getattr(model, "fit_from", None)
    if fit_from is None:
        return model.fit(dataset)
    fitted: Recommender = fit_from(previous, dataset)
    return fitted
