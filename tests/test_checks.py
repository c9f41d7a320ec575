"""Shared argument checks (recommend.checks): each raises ConfigError naming the argument."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from recommend.checks import is_scalar, minutes_in_seconds, non_negative_int, positive_int, share
from recommend.errors import ConfigError


def test_positive_int() -> None:
    assert positive_int(3, "n") == 3
    got = positive_int(np.int64(4), "n")
    assert got == 4 and type(got) is int
    for bad in (0, -1, True, 1.0, "3", None):
        with pytest.raises(
            ConfigError, match=re.escape(f"top must be a positive integer, got {bad!r}")
        ):
            positive_int(bad, "top")


def test_non_negative_int() -> None:
    assert non_negative_int(0, "max_pins") == 0
    got = non_negative_int(np.uint8(7), "max_pins")
    assert got == 7 and type(got) is int
    for bad in (-1, False, 0.0, "0"):
        with pytest.raises(
            ConfigError, match=re.escape(f"max_pins must be a non-negative integer, got {bad!r}")
        ):
            non_negative_int(bad, "max_pins")


def test_share() -> None:
    assert share(0, "w") == 0.0 and share(1, "w") == 1.0
    assert share(0.25, "w") == 0.25 and type(share(1, "w")) is float
    assert share("0.5", "w") == 0.5  # read as a number, as from a command line
    for bad in (-0.1, 1.01, float("nan"), None, "half"):
        with pytest.raises(
            ConfigError, match=re.escape(f"w must be a number in [0, 1], got {bad!r}")
        ):
            share(bad, "w")
    assert share(1, "w", low_open=True) == 1.0
    with pytest.raises(ConfigError, match=re.escape("w must be a number in (0, 1], got 0")):
        share(0, "w", low_open=True)


def test_minutes_in_seconds() -> None:
    assert minutes_in_seconds(2, "budget") == 120.0
    assert minutes_in_seconds("1.5", "budget") == 90.0
    for bad in (0, -1, float("nan"), "abc", None):
        with pytest.raises(
            ConfigError, match=re.escape(f"budget must be a positive number, got {bad!r}")
        ):
            minutes_in_seconds(bad, "budget")


@pytest.mark.parametrize(
    ("value", "scalar"),
    [
        ("m1", True),
        (b"m1", True),
        (7, True),
        (np.int64(7), True),
        (np.str_("m1"), True),
        (np.array(5), True),
        (["m1"], False),
        (("m1", "m2"), False),
        (np.array(["m1"]), False),
        (pd.Series(["m1"]), False),
        (pd.Index([1, 2]), False),
    ],
)
def test_is_scalar(value: object, scalar: bool) -> None:
    assert is_scalar(value) is scalar
