"""Argument checks shared by every layer: each raises ``ConfigError`` naming the argument.

A leaf module: it imports nothing of the library but its errors, so any module may use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recommend.errors import ConfigError

__all__ = [
    "is_scalar",
    "minutes_in_seconds",
    "non_negative_int",
    "positive_int",
    "share",
]


def positive_int(value: object, name: str) -> int:
    """``value`` as an ``int`` when it is an integer >= 1 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def non_negative_int(value: object, name: str) -> int:
    """``value`` as an ``int`` when it is an integer >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def share(value: object, name: str, *, low_open: bool = False) -> float:
    """``value`` as a ``float`` in [0, 1] (in (0, 1] with ``low_open``)."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    ok = (0.0 < number <= 1.0) if low_open else (0.0 <= number <= 1.0)
    if not ok:
        interval = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}")
    return number


def minutes_in_seconds(minutes: object, name: str) -> float:
    """``minutes`` (a positive number of minutes) in seconds; a ``ConfigError`` naming
    ``name`` for anything else (zero, negative, NaN, text)."""
    try:
        seconds = float(minutes) * 60.0  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0:
        raise ConfigError(f"{name} must be a positive number, got {minutes!r}")
    return seconds


def is_scalar(value: Any) -> bool:
    """True for one id (text, bytes, an integer, a 0-d array) rather than a sequence."""
    return isinstance(value, str | bytes | int | np.integer | np.str_) or np.ndim(value) == 0
