"""The matching rules of the four kinds of service, in one place, and the texts members
and organisers read (Simplified Chinese)."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from recommend.checks import positive_int
from recommend.errors import ConfigError
from recommend.volunteer.tables import KINDS

__all__ = [
    "KIND_RULES",
    "REASONS",
    "WHY",
    "DispatchOptions",
    "KindRule",
]


@dataclass(frozen=True)
class KindRule:
    """How one kind of request is matched.

    Weights of the score components (each in [0, 1]): ``skill`` (skills held and text
    match), ``near`` (``exp(-km / near_km)``), ``available`` (share of the request's hours
    in the volunteer's weekly windows), ``history`` (accepts and completes such requests:
    the collaborative signal and reliability), ``continuity`` (served the same person
    before), ``fitness`` (fit for physical work), and the fairness penalty ``fair`` on
    recent hours. Hard limits: ``max_km``, ``min_available``, ``skill_required`` (at least one
    needed skill held), ``fitness_required``.
    """

    skill: float
    near: float
    available: float
    history: float
    continuity: float
    fitness: float
    fair: float
    near_km: float
    max_km: float
    min_available: float
    skill_required: bool
    fitness_required: bool = False


KIND_RULES: Final = MappingProxyType(
    {
        # 应急救助: nearest first, many fast, fitness and relevant skills; any hour will do.
        KINDS[0]: KindRule(
            skill=0.8,
            near=2.0,
            available=0.2,
            history=0.6,
            continuity=0.0,
            fitness=0.8,
            fair=0.3,
            near_km=5.0,
            max_km=25.0,
            min_available=0.0,
            skill_required=False,
            fitness_required=True,
        ),
        # 公共服务: a headcount for a shift, so the whole shift must fit.
        KINDS[1]: KindRule(
            skill=0.6,
            near=0.8,
            available=1.0,
            history=1.0,
            continuity=0.0,
            fitness=0.0,
            fair=1.0,
            near_km=8.0,
            max_km=20.0,
            min_available=0.99,
            skill_required=False,
        ),
        # 弱势群体帮扶: the same volunteers again, near the person.
        KINDS[2]: KindRule(
            skill=0.5,
            near=1.2,
            available=0.8,
            history=0.8,
            continuity=2.0,
            fitness=0.0,
            fair=0.8,
            near_km=3.0,
            max_km=10.0,
            min_available=0.5,
            skill_required=False,
        ),
        # 专业技能互助: the skill match dominates; distance matters little.
        KINDS[3]: KindRule(
            skill=3.0,
            near=0.4,
            available=0.6,
            history=0.8,
            continuity=0.3,
            fitness=0.0,
            fair=0.8,
            near_km=15.0,
            max_km=40.0,
            min_available=0.5,
            skill_required=True,
        ),
    }
)


@dataclass(frozen=True)
class DispatchOptions:
    """Options of shortlists and dispatch, validated once.

    Parameters
    ----------
    candidates
        Candidates kept per request before the optimiser: ``candidates + 3 * headcount``.
    time_limit_s
        Seconds the optimiser may spend (the matchings, not the candidate search, which is
        bounded by the pruning); conflict groups left when it is used up are filled
        greedily (best score first) and the result says so.
    recent_days
        Window of the fairness penalty (hours served in the last ``recent_days``).
    fair_hours
        Recent hours at which the fairness penalty reaches half its weight.
    rules
        The kind rules (defaults: :data:`KIND_RULES`).
    """

    candidates: int = 20
    time_limit_s: float = 8.0
    recent_days: int = 28
    fair_hours: float = 8.0
    rules: MappingProxyType[str, KindRule] = field(default_factory=lambda: KIND_RULES)

    def __post_init__(self) -> None:
        positive_int(self.candidates, "candidates")
        positive_int(self.recent_days, "recent_days")
        if not self.time_limit_s > 0:
            raise ConfigError(f"time_limit_s must be > 0 seconds, got {self.time_limit_s!r}")
        if not self.fair_hours > 0:
            raise ConfigError(f"fair_hours must be > 0, got {self.fair_hours!r}")
        missing = [k for k in KINDS if k not in self.rules]
        if missing:
            raise ConfigError(f"rules: no rule for kinds {missing}")


#: Reasons shown with a shortlisted volunteer or a member's 我能帮上忙的 list.
REASONS: Final = MappingProxyType(
    {
        "skill": "具备所需技能：{skills}",
        "text": "服务内容与您登记的专长相符",
        "near": "距离约{km:.1f}公里",
        "same_district": "同在{district}",
        "available": "该时段有空",
        "history": "多次参与同类服务，按时到岗",
        "continuity": "曾服务过这位群众，熟悉情况",
        "fitness": "身体条件适合应急救助",
        "fair": "近期服务时长较少，优先派单",
        "default": "综合匹配度较高",
    }
)

#: Why a request could not be (fully) filled, by code.
WHY: Final = MappingProxyType(
    {
        "not_approved": "需求尚未通过组织审核，暂不派单",
        "unknown_skill": "没有志愿者登记技能「{skills}」",
        "too_far": "{km:.0f}公里内没有具备所需技能或条件的志愿者",
        "unavailable": "附近合适的志愿者在该时段都没有空",
        "at_cap": "合适的志愿者本周服务时长均已达到上限",
        "short_supply": "需要{needed}人，符合条件的志愿者只有{supply}人",
        "taken": "合适的志愿者已派往同一时段的其他需求",
    }
)
