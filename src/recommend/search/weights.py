"""Blend weights of the search ranking: how text, preference, popularity and freshness mix."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from recommend.errors import ConfigError

__all__ = ["FEATURES", "BlendWeights"]

#: The features of a search candidate, in the order of ``BlendWeights.vector()``.
FEATURES = ("text", "preference", "popularity", "freshness")


@dataclass(frozen=True)
class BlendWeights:
    """Weights of the per-query normalised features of a candidate.

    ``score = text * t + preference * p + popularity * q + freshness * f`` where ``t`` is
    the BM25 (or external engine) score and ``p`` the model's score, both min-max scaled to
    [0, 1] over the query's candidates, ``q`` the course's popularity (log of its learners,
    scaled to [0, 1] over the catalogue) and ``f`` its freshness (``0.5 ** (age_days /
    90)``, 0 when unknown). The defaults are a hand-set blend; ``fit_blend`` learns them
    from search logs. Only ratios matter for the ranking. The preference weight 0.75 was
    chosen by ``experiments/benchmarks/defaults_check.py``: it ranks the sought course at
    least as well as 0.5 on the calibrated simulator, the strong-segment preset and real
    MOOC learners (MRR 0.3430 against 0.2960 there; docs/experiments.md).
    """

    text: float = 1.0
    preference: float = 0.75
    popularity: float = 0.1
    freshness: float = 0.05

    def __post_init__(self) -> None:
        for name in FEATURES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
                raise ConfigError(f"BlendWeights.{name} must be a number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ConfigError(f"BlendWeights.{name} must be finite, got {value!r}")
            object.__setattr__(self, name, float(value))

    def vector(self) -> np.ndarray:
        """The weights as a (4,) float64 array in ``FEATURES`` order."""
        return np.array([getattr(self, name) for name in FEATURES], dtype=np.float64)

    @classmethod
    def from_vector(cls, values: Any) -> BlendWeights:
        """Weights from a length-4 sequence in ``FEATURES`` order."""
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.size != len(FEATURES):
            raise ConfigError(f"expected {len(FEATURES)} weights {FEATURES}, got {arr.size}")
        return cls(*(float(v) for v in arr))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> BlendWeights:
        """Weights from a mapping with some of the ``FEATURES`` keys (others default)."""
        unknown = set(values) - set(FEATURES)
        if unknown:
            raise ConfigError(
                f"unknown blend weight(s) {sorted(unknown)}; expected some of {FEATURES}"
            )
        return cls(**{k: float(v) for k, v in values.items()})

    def to_dict(self) -> dict[str, float]:
        """The weights as a plain dict (JSON- and MLflow-friendly)."""
        return asdict(self)


#: Text relevance alone (BM25 order).
TEXT_ONLY = BlendWeights(1.0, 0.0, 0.0, 0.0)
#: The member's predicted preference alone, among the text candidates.
PREFERENCE_ONLY = BlendWeights(0.0, 1.0, 0.0, 0.0)
