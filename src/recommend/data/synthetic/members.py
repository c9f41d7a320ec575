"""Members: who they are (occupation, age, district, skills) and how much they study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from recommend.data.synthetic.config import SynthConfig
from recommend.data.synthetic.orgs import Orgs
from recommend.data.synthetic.sampling import categorical
from recommend.data.synthetic.timing import (
    DAY,
    PROFILE_COMMUTER,
    PROFILE_DAYTIME,
    PROFILE_EVENING,
    Period,
)
from recommend.data.synthetic.vocabulary import (
    DISTRICTS,
    INDUSTRY_WEIGHT,
    TOPIC_NAMES,
    TOPIC_TERM_START,
)
from recommend.schema import OCCUPATIONS

FloatArray = np.ndarray
IntArray = np.ndarray

# The occupations of members by their branch's industry (rows follow INDUSTRIES, columns
# OCCUPATIONS: retired, white_collar, blue_collar, rural, student, civil_servant,
# self_employed).
_INDUSTRY_OCCUPATION: Final = np.array(
    [
        [0.15, 0.05, 0.00, 0.00, 0.00, 0.80, 0.00],
        [0.30, 0.02, 0.08, 0.50, 0.02, 0.03, 0.05],
        [0.55, 0.10, 0.10, 0.00, 0.02, 0.03, 0.20],
        [0.15, 0.45, 0.35, 0.00, 0.00, 0.05, 0.00],
        [0.02, 0.60, 0.20, 0.00, 0.00, 0.00, 0.18],
        [0.15, 0.35, 0.00, 0.00, 0.45, 0.05, 0.00],
        [0.15, 0.75, 0.05, 0.00, 0.00, 0.05, 0.00],
    ]
)

# Which skills-training topic a member's listed skills come from, by occupation.
_SKILL_TOPICS: Final[dict[str, dict[str, float]]] = {
    "retired": {"数字技能": 0.15},
    "white_collar": {"数字技能": 0.45, "就业发展": 0.15},
    "blue_collar": {"职业技能": 0.6},
    "rural": {"农业技术": 0.6, "电商创业": 0.15},
    "student": {"就业发展": 0.4, "数字技能": 0.3},
    "civil_servant": {"数字技能": 0.3},
    "self_employed": {"电商创业": 0.55, "职业技能": 0.15},
}
_FEMALE_SHARE: Final = np.array([0.35, 0.42, 0.2, 0.25, 0.5, 0.35, 0.3])
# Age at the start of the period: (low, high) by occupation.
_AGE_RANGE: Final = np.array([[60, 88], [24, 55], [22, 60], [25, 75], [18, 24], [24, 60], [25, 60]])
_COMMUTER_SHARE: Final = np.array([0.02, 0.5, 0.35, 0.05, 0.25, 0.35, 0.15])
# Relative activity: retired members study most, students least.
_SEGMENT_ACTIVITY: Final = np.array([1.4, 0.9, 0.8, 0.8, 0.7, 1.1, 0.8])


@dataclass(frozen=True)
class Members:
    """The simulated members, indexed by member position."""

    branch: IntArray  # org index
    occupation: IntArray
    birth_year: IntArray
    female: np.ndarray
    district: IntArray
    joined_at: IntArray  # seconds
    mobile: np.ndarray
    skill_topic: IntArray  # -1: none
    skill_ptr: IntArray  # CSR over skill term ids
    skill_terms: IntArray
    activity: FloatArray
    commuter: np.ndarray
    profile: IntArray  # time-of-day profile
    checkin: FloatArray  # probability of a 学习打卡 after completing a course


def simulate_members(
    cfg: SynthConfig, rng: np.random.Generator, orgs: Orgs, period: Period
) -> Members:
    """Members of the branches: who they are and how much and when they study."""
    n = cfg.n_members
    size = rng.lognormal(0.0, 0.5, orgs.branches.size)
    branch = orgs.branches[rng.choice(orgs.branches.size, n, p=size / size.sum())]
    occupation = _occupations(rng, orgs.industry[branch])
    female = rng.random(n) < _FEMALE_SHARE[occupation]
    birth_year, joined_at = _birth_and_joining(rng, occupation, period)
    mobile = rng.random(n) < cfg.mobile_share
    district = _districts(rng, orgs.district[branch], mobile)
    skill_topic, skill_ptr, skill_terms = _skills(rng, occupation)
    activity = _activity(cfg, rng, occupation, mobile)
    commuter = rng.random(n) < np.minimum(_COMMUTER_SHARE[occupation] + 0.25 * mobile, 0.9)
    checkin = rng.beta(1.2, 2.5, n)
    return Members(
        branch=branch.astype(np.int64),
        occupation=occupation,
        birth_year=birth_year,
        female=female,
        district=district.astype(np.int64),
        joined_at=joined_at,
        mobile=mobile,
        skill_topic=skill_topic,
        skill_ptr=skill_ptr,
        skill_terms=skill_terms.astype(np.int64),
        activity=activity.astype(np.float32),
        commuter=commuter,
        profile=_profiles(occupation, commuter).astype(np.int64),
        checkin=checkin,
    )


def _occupations(rng: np.random.Generator, industry: IntArray) -> IntArray:
    """Occupations (index into OCCUPATIONS) of members whose branches are in ``industry``.

    They follow the industry, blended with the overall mix (a factory branch still has
    retirees and a village branch the odd white-collar worker).
    """
    by_industry = _INDUSTRY_OCCUPATION / _INDUSTRY_OCCUPATION.sum(axis=1, keepdims=True)
    mix = 0.8 * by_industry + 0.2 * (INDUSTRY_WEIGHT @ by_industry)
    return categorical(rng, mix[industry])


def _birth_and_joining(
    rng: np.random.Generator, occupation: IntArray, period: Period
) -> tuple[IntArray, IntArray]:
    """Birth years (int64) and times of joining the party (seconds), by occupation."""
    n = occupation.size
    start_year = int(np.datetime64(period.start, "s").astype("datetime64[Y]").astype(int)) + 1970
    low, high = _AGE_RANGE[occupation, 0], _AGE_RANGE[occupation, 1]
    age = low + np.floor(rng.beta(1.6, 1.8, n) * (high - low + 1)).astype(np.int64)
    birth_year = (start_year - age).astype(np.int64)

    # Joined the party at 18-22 for students, later and spread out for everyone else.
    join_age = np.where(
        occupation == OCCUPATIONS.index("student"),
        18 + rng.random(n) * 4,
        18 + rng.gamma(2.0, 5.0, n),
    )
    # Nobody joined before 18 or after the start: redraw those uniformly over their adult life.
    too_late = join_age > age - 0.2
    join_age = np.where(too_late, 18.0 + (age - 18.2) * rng.random(n), join_age)
    joined_days = ((birth_year - 1970 + join_age) * 365.25).astype(np.int64)
    joined_at = np.minimum(joined_days * DAY, period.start - 30 * DAY)
    return birth_year, joined_at


def _districts(rng: np.random.Generator, home: IntArray, mobile: np.ndarray) -> IntArray:
    """Where members live: their branch's district, another one for mobile members."""
    away = (home + 1 + rng.integers(0, len(DISTRICTS) - 1, home.size)) % len(DISTRICTS)
    return np.where(mobile, away, home)


def _skills(rng: np.random.Generator, occupation: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Listed skills: a skills-training topic by occupation (-1: none) and one or two
    terms of it, as CSR pointers (n + 1,) and term ids."""
    n = occupation.size
    skill_topic = np.full(n, -1, dtype=np.int64)
    for occ_idx, occ in enumerate(OCCUPATIONS):
        sel = np.flatnonzero(occupation == occ_idx)
        options = _SKILL_TOPICS.get(occ, {})
        topics = [TOPIC_NAMES.index(t) for t in options] + [-1]
        probs = np.array([*options.values(), max(0.0, 1.0 - sum(options.values()))])
        skill_topic[sel] = np.asarray(topics)[
            rng.choice(len(topics), sel.size, p=probs / probs.sum())
        ]
    n_skills = np.where(skill_topic >= 0, rng.integers(1, 3, n), 0)
    skill_ptr = np.concatenate([[0], np.cumsum(n_skills)]).astype(np.int64)
    owner = np.repeat(np.arange(n), n_skills)
    topic_size = np.diff(TOPIC_TERM_START)[np.maximum(skill_topic, 0)]
    # A member's second skill is a different term of the same topic: offset from the first.
    first = rng.integers(0, topic_size)
    offset = 1 + rng.integers(0, np.maximum(topic_size - 1, 1))
    within = np.arange(owner.size) - skill_ptr[owner]
    pick = (first[owner] + np.where(within == 0, 0, offset[owner])) % topic_size[owner]
    skill_terms = TOPIC_TERM_START[skill_topic[owner]] + pick
    return skill_topic, skill_ptr, skill_terms


def _activity(
    cfg: SynthConfig, rng: np.random.Generator, occupation: IntArray, mobile: np.ndarray
) -> FloatArray:
    """How much each member studies, mean 1: a lognormal spread (heavy learners in the
    tail), "pocket" members with none and occasional learners with little."""
    n = occupation.size
    activity = rng.lognormal(-0.5, 1.0, n) * _SEGMENT_ACTIVITY[occupation]
    activity *= np.where(mobile, 0.7, 1.0)
    activity = np.minimum(activity / activity.mean(), 15.0)
    pocket = rng.random(n) < cfg.dormant_share
    activity[pocket] = 0.0
    occasional = ~pocket & (rng.random(n) < 0.1)
    activity[occasional] *= 0.05
    out: FloatArray = activity
    return out


def _profiles(occupation: IntArray, commuter: np.ndarray) -> IntArray:
    """Time-of-day profile: commuters, daytime learners (retired, rural), evening learners."""
    daytime = np.isin(occupation, [OCCUPATIONS.index("retired"), OCCUPATIONS.index("rural")])
    return np.where(commuter, PROFILE_COMMUTER, np.where(daytime, PROFILE_DAYTIME, PROFILE_EVENING))
