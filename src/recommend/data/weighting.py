"""Turning learning events into a confidence matrix.

Each event contributes ``weight(event) * value * watch_factor * decay`` to its
(member, course) cell, where

- ``weight(event)`` comes from ``event_weights`` (a completed course says more than a view);
- ``value`` is the optional ``value`` column (e.g. a rating), 1 where absent;
- ``watch_factor = 1 + watch_weight * min(watch_seconds / duration_seconds, watch_cap)``
  where both are known, else 1 — watching most of a lecture is a stronger signal than
  opening it;
- ``decay = max(0.5 ** (age_days / half_life_days), decay_floor)`` with age measured back
  from ``now`` (a given one, else the data's robust now: see ``recommend.data.timeline``),
  so old interests fade. An event after ``now`` has age 0: its decay is exactly 1, never
  more. The floor (``1e-3`` by default) keeps very old events in the matrix, so no date
  can decay a member's history to nothing.

Each event's confidence is at most ``max_pair_confidence``. With ``duplicates="collapse"``
exact duplicate event rows (equal in every column of the events schema) count once; with
``"keep"`` (default) each counts. Cells are summed and capped at ``max_pair_confidence``
(``1000`` by default, about 300 times the median cell of the shipped sample and above its
largest), so a million copies of one event weigh no more than a very engaged member. Then
cells are optionally scaled: ``"log"`` gives ``log_alpha * log1p(c)`` (tames heavy
learners), ``"bm25"`` applies BM25 weighting (down-weights very popular courses and
very long histories). The defaults work on the shipped sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.timeline import reference_time
from recommend.data.validation import DEFAULT_EVENT_WEIGHTS, duplicate_rows
from recommend.errors import ConfigError
from recommend.schema import Columns

__all__ = ["Weighting"]

C = Columns
SECONDS_PER_DAY = 86_400.0
#: The largest ``max_pair_confidence`` allowed: sums of capped cells stay far from float32's
#: limit (about 3.4e38) and within its exact range.
MAX_PAIR_CONFIDENCE = 1e6


@dataclass(frozen=True)
class Weighting:
    """How events become confidence; every field is a documented hyper-parameter."""

    event_weights: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType(dict(DEFAULT_EVENT_WEIGHTS))
    )
    watch_weight: float = 1.0
    watch_cap: float = 1.0
    half_life_days: float | None = 90.0
    scaling: Literal["none", "log", "bm25"] = "none"
    log_alpha: float = 1.0
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    decay_floor: float = 1e-3
    max_pair_confidence: float = 1000.0
    duplicates: Literal["keep", "collapse"] = "keep"

    def __post_init__(self) -> None:
        weights = dict(self.event_weights)
        bad = {k: v for k, v in weights.items() if not (np.isfinite(v) and v >= 0)}
        if bad:
            raise ConfigError(f"event_weights {bad}: expected finite weights >= 0")
        object.__setattr__(self, "event_weights", MappingProxyType(weights))
        checks: list[tuple[str, bool, str]] = [
            ("watch_weight", self.watch_weight >= 0, ">= 0"),
            ("watch_cap", self.watch_cap > 0, "> 0"),
            (
                "half_life_days",
                self.half_life_days is None or self.half_life_days > 0,
                "> 0, or None for no decay",
            ),
            ("scaling", self.scaling in ("none", "log", "bm25"), "'none', 'log' or 'bm25'"),
            ("log_alpha", self.log_alpha > 0, "> 0"),
            ("bm25_k1", self.bm25_k1 > 0, "> 0"),
            ("bm25_b", 0 <= self.bm25_b <= 1, "between 0 and 1"),
            ("decay_floor", 0 < self.decay_floor <= 1, "> 0 and <= 1"),
            (
                "max_pair_confidence",
                0 < self.max_pair_confidence <= MAX_PAIR_CONFIDENCE,
                f"> 0 and <= {MAX_PAIR_CONFIDENCE:g}",
            ),
            ("duplicates", self.duplicates in ("keep", "collapse"), "'keep' or 'collapse'"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"Weighting.{name}={getattr(self, name)!r}; expected {expected}")

    def get_params(self) -> dict[str, Any]:
        """Flat parameter dict (what tracking logs)."""
        params: dict[str, Any] = {
            f"event_weight.{k}": float(v) for k, v in sorted(self.event_weights.items())
        }
        params.update(
            watch_weight=self.watch_weight,
            watch_cap=self.watch_cap,
            half_life_days=self.half_life_days,
            scaling=self.scaling,
            log_alpha=self.log_alpha,
            bm25_k1=self.bm25_k1,
            bm25_b=self.bm25_b,
            decay_floor=self.decay_floor,
            max_pair_confidence=self.max_pair_confidence,
            duplicates=self.duplicates,
        )
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Weighting:
        """Inverse of ``get_params``."""
        weights = {
            k.split(".", 1)[1]: float(v) for k, v in params.items() if k.startswith("event_weight.")
        }
        rest = {k: v for k, v in params.items() if not k.startswith("event_weight.")}
        unknown = set(rest) - {f for f in cls.__dataclass_fields__ if f != "event_weights"}
        if unknown:
            raise ConfigError(f"unknown weighting parameter(s) {sorted(unknown)}")
        return cls(event_weights=weights or DEFAULT_EVENT_WEIGHTS, **rest)

    def event_confidence(
        self,
        events: pd.DataFrame,
        durations: np.ndarray | None = None,
        now: pd.Timestamp | None = None,
    ) -> np.ndarray:
        """Confidence of each event row, shape ``(len(events),)``, ``float32``.

        ``events`` is a validated events frame; ``durations`` the course duration in seconds
        for each row (``nan`` where unknown); ``now`` the reference time for decay (the
        data's robust now when ``None``, see ``recommend.data.timeline``). Each value is
        capped at ``max_pair_confidence``.
        """
        value = events[C.VALUE].to_numpy(dtype=np.float64) if C.VALUE in events.columns else None
        watch = None
        if C.WATCH_SECONDS in events.columns:
            watch = events[C.WATCH_SECONDS].to_numpy(dtype=np.float64)
        duplicate = None
        if self.duplicates == "collapse" and len(events):
            duplicate = duplicate_rows(events, keep="first")
        return self.confidence(
            events[C.EVENT].to_numpy(dtype=object),
            events[C.TIMESTAMP].to_numpy(dtype="datetime64[ns]"),
            value=value,
            watch_seconds=watch,
            durations=durations,
            duplicate=duplicate,
            now=now,
        )

    def confidence(
        self,
        kinds: np.ndarray,
        timestamps: np.ndarray,
        *,
        value: np.ndarray | None = None,
        watch_seconds: np.ndarray | None = None,
        durations: np.ndarray | None = None,
        duplicate: np.ndarray | None = None,
        now: pd.Timestamp | None = None,
    ) -> np.ndarray:
        """:meth:`event_confidence` on arrays (n,): event names, ``datetime64[ns]`` times,
        optional ``value``, ``watch_seconds``, course ``durations`` (float64, NaN unknown)
        and a ``duplicate`` mask (rows that count 0 when ``duplicates="collapse"``).
        Returns (n,) float32."""
        names, codes = np.unique(np.asarray(kinds, dtype=object), return_inverse=True)
        table = np.array([self.event_weights.get(k, np.nan) for k in names.tolist()], np.float64)
        if np.isnan(table).any():
            missing = sorted(str(k) for k in names[np.isnan(table)])
            raise ConfigError(
                f"event types {missing[:5]} have no weight; add them to event_weights"
            )
        conf = table[codes.reshape(-1)]
        if value is not None:
            conf = conf * np.where(np.isnan(value), 1.0, value)
        if durations is not None and watch_seconds is not None and self.watch_weight:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = watch_seconds / durations
            ok = np.isfinite(ratio)
            factor = 1.0 + self.watch_weight * np.minimum(np.where(ok, ratio, 0.0), self.watch_cap)
            conf = conf * np.where(ok, factor, 1.0)
        if self.half_life_days is not None and conf.size:
            ts = np.asarray(timestamps, dtype="datetime64[ns]")
            ref = np.datetime64(reference_time(ts, now).to_datetime64(), "ns")
            age_days = np.asarray(ref - ts).astype(np.float64) / 1e9 / SECONDS_PER_DAY
            # Events after `now` have age 0 (weight 1: never boosted); the floor keeps
            # every event in the matrix however old it is.
            decay = np.exp2(-np.maximum(age_days, 0.0) / self.half_life_days)
            conf = conf * np.maximum(decay, self.decay_floor)
        if self.duplicates == "collapse" and duplicate is not None:
            conf = np.where(duplicate, 0.0, conf)
        cap = self.max_pair_confidence
        return np.clip(conf, -cap, cap).astype(np.float32)

    def matrix(
        self,
        member_idx: np.ndarray,
        course_idx: np.ndarray,
        confidence: np.ndarray,
        shape: tuple[int, int],
    ) -> sp.csr_matrix:
        """Sum per-event confidence into a ``(members, courses)`` CSR ``float32`` matrix."""
        mat = sp.csr_matrix(
            (confidence.astype(np.float32), (member_idx, course_idx)), shape=shape, dtype=np.float32
        )
        mat.sum_duplicates()
        cap = self.max_pair_confidence
        np.clip(mat.data, -cap, cap, out=mat.data)
        mat.eliminate_zeros()
        if self.scaling == "log":
            mat.data = (self.log_alpha * np.log1p(mat.data)).astype(np.float32)
        elif self.scaling == "bm25":
            mat = _bm25(mat, self.bm25_k1, self.bm25_b)
        mat.sort_indices()
        return mat


def _bm25(mat: sp.csr_matrix, k1: float, b: float) -> sp.csr_matrix:
    """BM25 weighting of a members x courses matrix (courses play the role of terms)."""
    from implicit.nearest_neighbours import bm25_weight

    weighted = bm25_weight(mat, K1=k1, B=b).tocsr().astype(np.float32)
    return weighted
