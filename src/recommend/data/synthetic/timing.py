"""When things happen: the simulated period, month starts and times of day of study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

IntArray = np.ndarray

DAY: Final = 86_400
HOUR: Final = 3_600

# Hour-of-day weights of study sessions for three time profiles: commuters study on the way
# to and from work, daytime learners (retired, rural) in the morning and afternoon, everyone
# else in the evening.
PROFILE_COMMUTER, PROFILE_DAYTIME, PROFILE_EVENING = 0, 1, 2
_HOUR_PEAKS: Final = (
    {7: 6, 8: 6, 12: 2, 17: 5, 18: 5, 21: 2},
    {8: 4, 9: 5, 10: 4, 14: 3, 15: 4, 16: 3, 19: 2, 20: 2},
    {12: 3, 13: 2, 19: 4, 20: 6, 21: 6, 22: 3},
)


@dataclass(frozen=True)
class Period:
    """The simulated period, ``[start, end)`` in seconds since the epoch."""

    start: int  # seconds since the epoch
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


def month_starts(period: Period) -> IntArray:
    """First days of months in the period that leave two weeks to study (seconds)."""
    first = np.datetime64(period.start, "s").astype("datetime64[M]")
    last = np.datetime64(period.end, "s").astype("datetime64[M]")
    months = np.arange(first, last + 1).astype("datetime64[s]").astype(np.int64)
    return months[(months >= period.start) & (months <= period.end - 14 * DAY)]


def place_in_window(
    rng: np.random.Generator, lo: IntArray, hi: IntArray, profile: IntArray, period: Period
) -> IntArray:
    """A uniform day in ``[lo, hi]`` at an hour typical of the member's time profile."""
    t = lo + (rng.random(lo.size) * (hi - lo)).astype(np.int64)
    day = (t - period.start) // DAY
    seconds = np.empty(lo.size, dtype=np.int64)
    u = rng.random(lo.size)
    jitter = rng.integers(0, HOUR, lo.size)
    for p, peaks in enumerate(_HOUR_PEAKS):
        weight = np.full(24, 0.15)
        weight[[*peaks]] += list(peaks.values())
        weight[:6] = 0.02  # few people study at night
        cdf = np.cumsum(weight) / weight.sum()
        sel = profile == p
        hour = np.minimum(np.searchsorted(cdf, u[sel], side="right"), 23)
        seconds[sel] = hour * HOUR + jitter[sel]
    start: IntArray = np.clip(period.start + day * DAY + seconds, lo, hi)
    return start
