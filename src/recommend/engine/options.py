"""What a menu request asks for, as one validated, immutable object.

Every product that serves menus (member menu, lecturer menu, batch job, Spark batch job,
search) takes these options as keyword arguments and hands them on as one
:class:`MenuOptions`, validated once where the request enters the library.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

import pandas as pd

from recommend.checks import minutes_in_seconds, non_negative_int, positive_int, share
from recommend.errors import ConfigError
from recommend.messages import DEFAULT_LANG, Lang, check_lang

__all__ = [
    "DEFAULT_MAX_CONTINUE",
    "DEFAULT_MAX_PINS",
    "EXCLUDES",
    "UNKNOWN_POLICIES",
    "Exclude",
    "MenuOptions",
    "Unknown",
]

Exclude = Literal["seen", "completed", "none"]
Unknown = Literal["fallback", "raise"]

#: Accepted values of ``exclude``.
EXCLUDES: tuple[str, ...] = ("seen", "completed", "none")
#: Accepted values of ``unknown``.
UNKNOWN_POLICIES: tuple[str, ...] = ("fallback", "raise")
#: Compulsory courses a member's menu pins by default: an order-by-menu is what the member
#: would choose, so the branch's compulsory list does not fill it; the rest of that list
#: is its own list (:func:`recommend.menu.compulsory_courses`, 本支部必学).
DEFAULT_MAX_PINS = 2
#: Continue-learning and next-lecture entries a member's menu holds by default (see
#: :mod:`recommend.engine.continuing`): enough to bring a member back to what they were
#: doing, few enough to leave the menu to new courses.
DEFAULT_MAX_CONTINUE = 2


@dataclass(frozen=True)
class MenuOptions:
    """The options of a menu request (see :func:`recommend.member_menu` for each).

    Construct with keywords; every value is checked on construction (``ConfigError``
    naming the option otherwise) and stored normalised (``channel`` as a tuple, ``now`` as
    a naive UTC ``Timestamp``). Options that depend on the catalogue (whether a channel
    exists, whether durations are known) are checked when the course filter is built.

    Attributes
    ----------
    n : int
        Courses per member, >= 1.
    exclude : {"seen", "completed", "none"}
        Which of the member's courses are left out.
    channel : tuple of str or None
        Keep only courses of these channels (course ``category``); one name is stored as
        a 1-tuple.
    max_minutes : float, "auto" or None
        Keep only courses known to last at most this long; ``"auto"``: as long as the
        member's usual session at the request's hour and kind of day
        (:mod:`recommend.engine.fragments`).
    only_published : bool
        Keep only courses published at or before ``now``.
    now : Timestamp or None
        Reference time of ``only_published`` (the model's data time when ``None``).
    pin_compulsory : bool
        Put the member's branch's compulsory courses first.
    max_pins : int or None
        At most this many pinned courses (default :data:`DEFAULT_MAX_PINS`; ``None``: up
        to ``n``).
    continue_learning : bool
        After the compulsory pins, courses the member started and has not finished
        (继续学习) and the next lectures of series they follow (下一讲), see
        :mod:`recommend.engine.continuing`.
    max_continue : int
        At most this many of those (default :data:`DEFAULT_MAX_CONTINUE`).
    diversity : float
        MMR weight in [0, 1] across channels.
    with_reasons : bool
        Explain every row.
    lang : {"zh", "en"}
        The language of the reasons (Simplified Chinese by default).
    unknown : {"fallback", "raise"}
        What members unknown to the model get.
    """

    n: int = 10
    exclude: Exclude = "seen"
    channel: str | Sequence[str] | None = None
    max_minutes: float | Literal["auto"] | None = None
    only_published: bool = True
    now: pd.Timestamp | str | None = None
    pin_compulsory: bool = True
    max_pins: int | None = DEFAULT_MAX_PINS
    continue_learning: bool = True
    max_continue: int = DEFAULT_MAX_CONTINUE
    diversity: float = 0.0
    with_reasons: bool = True
    unknown: Unknown = "fallback"
    lang: Lang = DEFAULT_LANG

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "n", positive_int(self.n, "n"))
        if self.exclude not in EXCLUDES:
            raise ConfigError(f"exclude={self.exclude!r}; expected 'seen', 'completed' or 'none'")
        if self.unknown not in UNKNOWN_POLICIES:
            raise ConfigError(f"unknown={self.unknown!r}; expected 'fallback' or 'raise'")
        set_(self, "lang", check_lang(self.lang))
        set_(self, "diversity", share(self.diversity, "diversity"))
        if self.max_pins is not None:
            set_(self, "max_pins", non_negative_int(self.max_pins, "max_pins"))
        set_(self, "max_continue", non_negative_int(self.max_continue, "max_continue"))
        if self.max_minutes is not None and not self.auto_minutes:
            minutes_in_seconds(self.max_minutes, "max_minutes")
            set_(self, "max_minutes", float(self.max_minutes))
        set_(self, "channel", _channels(self.channel))
        set_(self, "now", _timestamp(self.now))
        for name in ("only_published", "pin_compulsory", "continue_learning", "with_reasons"):
            set_(self, name, bool(getattr(self, name)))

    @classmethod
    def of(cls, **options: Any) -> MenuOptions:
        """Options from keyword arguments; an unknown keyword raises ``ConfigError``."""
        known = {f.name for f in fields(cls)}
        strange = sorted(set(options) - known)
        if strange:
            raise ConfigError(f"unknown menu option(s) {strange}; expected some of {sorted(known)}")
        return cls(**options)

    def with_(self, **changes: Any) -> MenuOptions:
        """A copy with some options changed (validated again)."""
        return replace(self, **changes)

    @property
    def pin_limit(self) -> int:
        """Most pinned courses a member's menu may hold (0: no pins)."""
        if not self.pin_compulsory:
            return 0
        return self.n if self.max_pins is None else min(self.n, self.max_pins)

    @property
    def continue_limit(self) -> int:
        """Most continue-learning and next-lecture entries a menu may hold (0: none)."""
        return min(self.n, self.max_continue) if self.continue_learning else 0

    @property
    def auto_minutes(self) -> bool:
        """``max_minutes="auto"``: each member's usual session length limits the menu."""
        return isinstance(self.max_minutes, str) and self.max_minutes == "auto"

    @property
    def fixed_minutes(self) -> float | None:
        """``max_minutes`` when it is one number for every member."""
        return None if self.max_minutes is None or self.auto_minutes else float(self.max_minutes)

    @property
    def max_seconds(self) -> float | None:
        """``max_minutes`` in seconds (``None`` for ``"auto"``: per member)."""
        minutes = self.fixed_minutes
        return None if minutes is None else minutes * 60.0

    @property
    def published_by(self) -> pd.Timestamp | Literal[False] | None:
        """What the course filter checks publication against: ``False`` (no check),
        ``None`` (the model's data time) or a time."""
        return self.now if self.only_published else False

    def as_dict(self) -> dict[str, Any]:
        """The options as plain values (what a batch manifest records)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _channels(channel: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if channel is None:
        return None
    if isinstance(channel, str):
        return (channel,)
    try:
        return tuple(channel)
    except TypeError as exc:
        raise ConfigError(
            f"channel must be a channel name or a list of them, got {channel!r}"
        ) from exc


def _timestamp(value: object) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"now={value!r} is not a time: {exc}") from exc
    if ts is pd.NaT:
        raise ConfigError(f"now={value!r} is not a time")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts
