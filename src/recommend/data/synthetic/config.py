"""Configuration of a simulated platform: ``SynthConfig`` and the named ``PRESETS``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from recommend.errors import ConfigError


@dataclass(frozen=True)
class SynthConfig:
    """Size and behaviour knobs of a simulated platform.

    Parameters
    ----------
    n_members, n_courses
        Catalogue and membership size. ``n_courses`` includes the monthly compulsory
        主题党日 courses.
    days
        Length of the simulated period; events fall in ``[start, start + days)``.
    start
        ISO date of the first day of the period (timestamps are tz-naive UTC).
    events_per_member
        Approximate mean number of events per member (about +-15 %; dormant members have
        none, heavy learners many).
    members_per_branch, branches_per_general, generals_per_committee
        Shape of the org tree; the number of orgs follows from ``n_members``.
    direct_branch_share
        Share of branches that sit directly under a committee (no general branch).
    ugc_share
        Share of non-compulsory courses uploaded by branches (``source == "ugc"``).
    mobile_share
        Share of mobile members (流动党员, working away from their branch's district).
    dormant_share
        Share of "pocket" members (口袋党员) with no learning activity at all.
    searches_per_member
        Mean number of searches per member (scaled by activity).
    n_factors
        Dimension of the true member and course latent factors.
    popularity_exponent
        Course quality falls as ``-popularity_exponent * ln(rank)``; larger means a heavier
        head of popular courses.
    popularity_spread
        Standard deviation of a log-normal part of course quality (normal quantiles over
        the same random order of courses as the power law); ``0`` (the default) leaves the
        pure power law. A log-normal curve falls faster below the head, like real
        enrolments (rank-frequency slope about -2 over the middle ranks).
    rewatch
        Probability that a repeated organic choice of the same course is kept as a rewatch.
    taste_scale
        Scale of the members' individual latent tastes (``member_factors``); ``1.0`` gives
        ``member_factors @ course_factors`` a standard deviation of about 1.2. Smaller
        values let course quality shape choices more, so popularity concentrates more.
    segment_strength
        Scale of every planted effect tied to a member segment: the occupation tastes for
        channels, topics and course length, the age effect on course length, the share of
        latent taste members of a branch have in common, and the appeal of uploads from the
        member's own branch and committee. ``1.0`` (the ``small``, ``sample`` and ``city``
        presets) plants strong segment structure that segment popularity exploits (1.4x to
        2.3x global popularity on the sample); the ``calibrated`` preset uses a weak
        strength, so segments add a few percent, as on real enrolment data.
    compulsory_share
        Approximate share of study sessions that are compulsory assignments. ``None`` (the
        default) keeps every assignment a member completes (about a fifth of the sample's
        (member, course) pairs); a number in ``[0, 1)`` thins the completed assignments at
        random to that share of the study sessions (the organic sessions fill the event
        budget), which is also about their share of (member, course) pairs.
    plant_queries
        Add known query behaviour to the search log (a trending query, queries with no
        result; ``recommend.data.synthetic.searches.plant_queries``) to check search
        analytics against. Off by default: the other tables are the same either way.
    plant_series
        Group official theory lectures into numbered series and let members go on to the
        next lecture after completing one (``recommend.data.synthetic.series``): courses
        get ``series_id`` and ``series_order``, events the follow-ups. Off by default.
    """

    n_members: int = 3_000
    n_courses: int = 800
    days: int = 180
    start: str = "2025-01-01"
    events_per_member: float = 70.0
    members_per_branch: int = 30
    branches_per_general: int = 5
    generals_per_committee: int = 4
    direct_branch_share: float = 0.25
    ugc_share: float = 0.2
    mobile_share: float = 0.08
    dormant_share: float = 0.12
    searches_per_member: float = 2.0
    n_factors: int = 16
    popularity_exponent: float = 0.7
    popularity_spread: float = 0.0
    rewatch: float = 0.1
    taste_scale: float = 1.0
    segment_strength: float = 1.0
    compulsory_share: float | None = None
    plant_queries: bool = False
    plant_series: bool = False

    def __post_init__(self) -> None:
        positive_ints = {
            "n_members": 1,
            "n_courses": 20,
            "days": 30,
            "members_per_branch": 1,
            "branches_per_general": 1,
            "generals_per_committee": 1,
            "n_factors": 1,
        }
        for name, low in positive_ints.items():
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value < low:
                raise ConfigError(f"SynthConfig.{name} must be an integer >= {low}, got {value!r}")
        shares = ("direct_branch_share", "ugc_share", "mobile_share", "dormant_share", "rewatch")
        for name in shares:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"SynthConfig.{name} must be in [0, 1], got {value!r}")
        for name in (
            "events_per_member",
            "searches_per_member",
            "popularity_exponent",
            "popularity_spread",
            "taste_scale",
            "segment_strength",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"SynthConfig.{name} must be a finite number >= 0, got {value!r}")
        share = self.compulsory_share
        if share is not None and (
            isinstance(share, bool)
            or not isinstance(share, int | float | np.floating)
            or not 0.0 <= share < 1.0
        ):
            raise ConfigError(
                f"SynthConfig.compulsory_share must be None or a number in [0, 1), got {share!r}"
            )
        try:
            np.datetime64(self.start, "D")
        except ValueError as exc:
            raise ConfigError(f"SynthConfig.start must be an ISO date, got {self.start!r}") from exc


PRESETS: Final[dict[str, SynthConfig]] = {
    # Unit tests: a few hundred members, runs in a fraction of a second.
    "small": SynthConfig(
        n_members=300,
        n_courses=120,
        events_per_member=40.0,
        members_per_branch=20,
        branches_per_general=3,
        generals_per_committee=2,
    ),
    # The shipped sample in data/sample (a few MB of Parquet).
    "sample": SynthConfig(n_members=3_000, n_courses=800, events_per_member=70.0),
    # A city platform: 100k members, 10k courses, about 5M events.
    "city": SynthConfig(n_members=100_000, n_courses=10_000, events_per_member=50.0),
    # Calibrated against real enrolments (docs/simulator.md): a log-normal popularity curve,
    # weak segments (a few percent over global popularity) and few compulsory assignments.
    # The presets above plant strong segment structure for tests that need it.
    "calibrated": SynthConfig(
        n_members=8_000,
        n_courses=800,
        events_per_member=120.0,
        popularity_exponent=0.0,
        popularity_spread=2.4,
        taste_scale=1.5,
        segment_strength=0.2,
        compulsory_share=0.05,
    ),
}


def resolve_config(config: SynthConfig | str) -> SynthConfig:
    """The configuration a ``synthesize`` argument names (a preset) or is."""
    if isinstance(config, SynthConfig):
        return config
    if config not in PRESETS:
        raise ConfigError(f"unknown preset {config!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[config]
