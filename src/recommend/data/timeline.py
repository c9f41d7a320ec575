"""The reference time of a set of events, and the events dated after it or far before it.

Time decay weighs every event by its age back from a reference time ``now``. Taking the
last event as ``now`` lets one mistyped date (``2100-01-01``) decay every other event to
nothing, so the library uses one rule everywhere (validation, ``Dataset``, weighting):

- **reference time**: a ``now`` given by the caller; otherwise the data's *robust now*, the
  latest event no later than ``q99.9 + max(FUTURE_TOLERANCE, q99.9 - q0.1)``, where
  ``q99.9`` and ``q0.1`` are the 99.9th and 0.1th percentiles of event times (the lower
  ones, so that with fewer than 1,000 events a single outlier is never its own yardstick)
  and ``FUTURE_TOLERANCE`` is 365 days. A platform's last events are never cut off (the
  data's bulk spans the tolerance it gets), while a date decades away from the rest, such
  as ``2100-01-01``, is;
- **future-dated events**: events after the reference time. ``Dataset.from_frames`` refuses
  them by default (``on_future="raise"``, the rows named), or drops and counts them
  (``"drop"``), or keeps them (``"keep"``, e.g. a test set after its training set's
  ``now``) with a decay weight of exactly 1, never more;
- **far-past events**: events more than ``FAR_PAST_GAP`` (10 years) before the 0.1th
  percentile of event times (e.g. an epoch-zero ``1970-01-01``). They are kept (decay
  weighs them at its floor) and reported as a note.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recommend.errors import ConfigError, DataError, Problem
from recommend.schema import Columns

__all__ = [
    "FAR_PAST_GAP",
    "FUTURE_TOLERANCE",
    "TimeReport",
    "check_times",
    "far_past_mask",
    "reference_time",
    "time_findings",
]

C = Columns

#: How far after the 99.9th percentile of event times the data's own ``now`` may lie at
#: least (more when the bulk of the events spans more).
FUTURE_TOLERANCE = pd.Timedelta(days=365)
#: How far before the 0.1th percentile of event times an event is reported as far-past.
FAR_PAST_GAP = pd.Timedelta(days=3650)
_QUANTILE = 0.999

OnFuture = Literal["raise", "drop", "keep"]


def _nanoseconds(timestamps: pd.Series | np.ndarray) -> np.ndarray:
    arr = np.asarray(timestamps, dtype="datetime64[ns]")
    return arr[~np.isnat(arr)].astype(np.int64)


def reference_time(
    timestamps: pd.Series | np.ndarray, now: pd.Timestamp | str | None = None
) -> pd.Timestamp:
    """``now`` when given, else the robust now of ``timestamps`` (see the module doc).

    ``timestamps`` is a ``datetime64[ns]`` array or series of shape ``(n,)``, ``n >= 1``.
    """
    if now is not None:
        try:
            ref = pd.Timestamp(now)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"now={now!r} is not a timestamp ({exc})") from None
        if ref is pd.NaT:
            raise ConfigError("now=NaT; expected a timestamp or None")
        return ref.tz_convert("UTC").tz_localize(None) if ref.tzinfo is not None else ref
    ns = _nanoseconds(timestamps)
    if not ns.size:
        raise DataError("events: no timestamps to take a reference time from")
    high = int(np.quantile(ns, _QUANTILE, method="lower"))
    low = int(np.quantile(ns, 1 - _QUANTILE, method="lower"))
    limit = high + max(FUTURE_TOLERANCE.value, high - low)
    return pd.Timestamp(int(ns[ns <= limit].max()))


def far_past_mask(timestamps: pd.Series | np.ndarray) -> np.ndarray:
    """Rows more than ``FAR_PAST_GAP`` before the 0.1th percentile of ``timestamps``."""
    arr = np.asarray(timestamps, dtype="datetime64[ns]")
    ns = _nanoseconds(arr)
    out = np.zeros(len(arr), dtype=bool)
    if not ns.size:
        return out
    q = np.quantile(ns, 1 - _QUANTILE, method="higher")
    present = ~np.isnat(arr)
    out[present] = arr[present].astype(np.int64) < q - FAR_PAST_GAP.value
    return out


def time_findings(
    events: pd.DataFrame, now: pd.Timestamp | str | None = None
) -> tuple[pd.Timestamp, np.ndarray, Problem | None, Problem | None]:
    """The reference time, the future mask, and the future-dated and far-past findings.

    ``events`` is a validated events frame. Returns ``(ref, future, future_problem,
    far_past_note)``; a finding is ``None`` when no row has it.
    """
    ts = events[C.TIMESTAMP].to_numpy(dtype="datetime64[ns]")
    ref = reference_time(ts, now)
    future = ts > np.datetime64(ref.to_datetime64(), "ns")
    given = "the given now" if now is not None else "the data's own now"
    future_problem = None
    if future.any():
        future_problem = Problem.at(
            "events",
            C.TIMESTAMP,
            f"events dated after {given} ({ref})",
            "no event after the reference time: fix the dates, pass on_future='drop' to "
            "drop (and count) them, or give a later now",
            future,
        )
    past = far_past_mask(ts)
    past_note = None
    if past.any():
        past_note = Problem.at(
            "events",
            C.TIMESTAMP,
            f"events dated more than {FAR_PAST_GAP.days} days before the 0.1th percentile "
            "of event times (kept; decay gives them its floor weight)",
            "",
            past,
        )
    return ref, future, future_problem, past_note


@dataclass(frozen=True)
class TimeReport:
    """What ``check_times`` found: the reference time and the future-dated rows dropped."""

    now: pd.Timestamp
    future_dropped: int = 0
    far_past: int = 0


def check_times(
    events: pd.DataFrame,
    *,
    now: pd.Timestamp | str | None = None,
    on_future: OnFuture = "raise",
) -> tuple[pd.DataFrame, TimeReport]:
    """Apply the future-dated policy to validated ``events`` (see the module doc).

    Returns the events (without the future-dated rows with ``on_future="drop"``) and a
    report. Raises ``DataError`` naming the future-dated rows with ``on_future="raise"``.
    """
    if on_future not in ("raise", "drop", "keep"):
        raise ConfigError(f"on_future={on_future!r}; expected 'raise', 'drop' or 'keep'")
    ref, future, problem, past = time_findings(events, now)
    n_past = past.count if past is not None else 0
    if problem is None or on_future == "keep":
        return events, TimeReport(ref, 0, n_past)
    if on_future == "raise":
        raise DataError([problem])
    kept = events.loc[~future].reset_index(drop=True)
    return kept, TimeReport(ref, int(future.sum()), n_past)
