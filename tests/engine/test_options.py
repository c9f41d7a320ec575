"""MenuOptions (recommend.engine.options): validation naming the option, normalisation,
and the values the rules derive from the options."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from recommend.engine import EXCLUDES, UNKNOWN_POLICIES, MenuOptions
from recommend.errors import ConfigError


def test_defaults() -> None:
    assert MenuOptions().as_dict() == {
        "n": 10,
        "exclude": "seen",
        "channel": None,
        "max_minutes": None,
        "only_published": True,
        "now": None,
        "pin_compulsory": True,
        "max_pins": 2,
        "continue_learning": True,
        "max_continue": 2,
        "diversity": 0.0,
        "with_reasons": True,
        "unknown": "fallback",
        "lang": "zh",
    }
    assert EXCLUDES == ("seen", "completed", "none")
    assert UNKNOWN_POLICIES == ("fallback", "raise")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n": 0}, "n must be a positive integer, got 0"),
        ({"n": -2}, "n must be a positive integer, got -2"),
        ({"n": 2.5}, "n must be a positive integer, got 2.5"),
        ({"n": True}, "n must be a positive integer, got True"),
        ({"exclude": "everything"}, "exclude='everything'; expected 'seen', 'completed' or 'none'"),
        ({"unknown": "ignore"}, "unknown='ignore'; expected 'fallback' or 'raise'"),
        ({"diversity": 1.5}, "diversity must be a number in [0, 1], got 1.5"),
        ({"diversity": -0.1}, "diversity must be a number in [0, 1], got -0.1"),
        ({"diversity": "much"}, "diversity must be a number in [0, 1], got 'much'"),
        ({"max_pins": -1}, "max_pins must be a non-negative integer, got -1"),
        ({"max_pins": 1.5}, "max_pins must be a non-negative integer, got 1.5"),
        ({"max_minutes": -3}, "max_minutes must be a positive number, got -3"),
        ({"max_minutes": 0}, "max_minutes must be a positive number, got 0"),
        ({"max_minutes": float("nan")}, "max_minutes must be a positive number, got nan"),
        ({"channel": 5}, "channel must be a channel name or a list of them, got 5"),
        ({"now": "not a time"}, "now='not a time' is not a time"),
        ({"now": "NaT"}, "now='NaT' is not a time"),
        ({"lang": "fr"}, "lang='fr'; expected one of ['zh', 'en']"),
        ({"lang": "ZH"}, "lang='ZH'; expected one of ['zh', 'en']"),
    ],
)
def test_invalid_values_raise_naming_the_option(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        MenuOptions(**options)


def test_values_are_stored_normalised() -> None:
    options = MenuOptions(
        n=np.int64(4),
        channel="理论学习",
        max_minutes=5,
        now="2024-06-01 10:00+08:00",
        max_pins=np.int32(2),
        diversity=1,
        only_published=0,
        pin_compulsory=1,
        with_reasons="",
    )
    assert options.n == 4 and type(options.n) is int
    assert options.channel == ("理论学习",)
    assert options.max_minutes == 5.0 and type(options.max_minutes) is float
    # Naive UTC: 10:00 in UTC+8 is 02:00 UTC.
    assert options.now == pd.Timestamp("2024-06-01 02:00") and options.now.tzinfo is None
    assert options.max_pins == 2 and type(options.max_pins) is int
    assert options.diversity == 1.0 and type(options.diversity) is float
    assert (options.only_published, options.pin_compulsory, options.with_reasons) == (
        False,
        True,
        False,
    )
    assert MenuOptions(channel=["a", "b"]).channel == ("a", "b")
    assert MenuOptions(channel=("a",)).channel == ("a",)
    assert MenuOptions(now=pd.Timestamp("2024-01-02")).now == pd.Timestamp("2024-01-02")


def test_options_are_frozen() -> None:
    options = MenuOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.n = 3  # type: ignore[misc]


def test_of_refuses_unknown_keywords() -> None:
    assert MenuOptions.of(n=3, exclude="none") == MenuOptions(n=3, exclude="none")
    with pytest.raises(ConfigError, match=r"unknown menu option\(s\) \['colour', 'size'\]"):
        MenuOptions.of(n=3, size=2, colour="red")


def test_with_changes_some_options_and_validates_again() -> None:
    options = MenuOptions(n=5, channel="a")
    changed = options.with_(n=3, diversity=0.5)
    assert (changed.n, changed.diversity, changed.channel) == (3, 0.5, ("a",))
    assert options.n == 5 and options.diversity == 0.0  # the original is unchanged
    with pytest.raises(ConfigError, match="n must be a positive integer"):
        options.with_(n=0)


@pytest.mark.parametrize(
    ("options", "limit"),
    [
        ({"n": 5}, 2),  # two compulsory courses by default: the menu stays the member's
        ({"n": 1}, 1),
        ({"n": 5, "max_pins": None}, 5),
        ({"n": 5, "max_pins": 2}, 2),
        ({"n": 3, "max_pins": 7}, 3),
        ({"n": 5, "max_pins": 0}, 0),
        ({"n": 5, "pin_compulsory": False}, 0),
        ({"n": 5, "max_pins": 2, "pin_compulsory": False}, 0),
    ],
)
def test_pin_limit(options: dict, limit: int) -> None:
    assert MenuOptions(**options).pin_limit == limit


def test_max_seconds_and_published_by() -> None:
    assert MenuOptions().max_seconds is None
    assert MenuOptions(max_minutes=2.5).max_seconds == 150.0
    assert MenuOptions().published_by is None  # the model's data time
    assert MenuOptions(only_published=False, now="2024-01-01").published_by is False
    assert MenuOptions(now="2024-01-01").published_by == pd.Timestamp("2024-01-01")
