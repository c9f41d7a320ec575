"""Seeded simulator of a party-education platform: orgs, members, courses, behaviour, truth.

Real member data is confidential, so everything in the library is tested and demonstrated on
data drawn from this simulator. It plants structure that recommenders can learn and that
evaluations can check against:

* an org tree of party committees, general branches and branches with industries and
  districts; members belong to a branch, and the branch's industry shapes their occupations;
* courses in the four channels (:data:`recommend.schema.CHANNELS`) with Chinese titles, tags
  and descriptions drawn from per-channel topic vocabularies, durations from 3-minute
  micro-lessons to 90-minute lectures, official courses by lecturers and UGC uploaded by
  branches over time;
* a true preference (:class:`Truth`): course quality with a power-law popularity, segment
  tastes (occupation x channel, occupation x topic, duration preference by occupation, age
  and commuting), members' skills, a local appeal of branch uploads, and 16-dimensional
  member and course latent factors (members of a branch share part of theirs);
* behaviour generated from that preference: members choose courses with probability
  proportional to ``exp(utility)`` (times the share of the period the course was available),
  watch a fraction that grows with utility, and emit ``view -> progress -> complete`` funnels
  plus likes, favorites, shares, comments and check-ins; branches assign monthly compulsory
  主题党日 material that most of their members complete; members search, see a ranked list of
  text matches and click with a position bias.

Everything is a pure function of the configuration and the seed: the same seed gives
byte-identical files from :meth:`Platform.write` (with the same library versions on the same
platform). All work is vectorised with numpy, so the ``"city"`` preset (100k members, 10k
courses, about 5M events) runs in well under a minute.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recommend.errors import ConfigError, DataError
from recommend.schema import CHANNELS, EVENT_TYPES, OCCUPATIONS, ORG_KINDS, SOURCES, Columns

__all__ = [
    "PRESETS",
    "TOPICS",
    "Platform",
    "SynthConfig",
    "Truth",
    "read_platform",
    "synthesize",
]

logger = logging.getLogger(__name__)

C = Columns
FloatArray = np.ndarray
IntArray = np.ndarray

_DAY: Final = 86_400
_HOUR: Final = 3_600
_FORMAT_VERSION: Final = 1

# --------------------------------------------------------------------------------------------
# Vocabulary: channel -> topic -> terms. Titles, tags, descriptions, member skills and search
# queries are all composed from these terms, so text features and search carry real signal.
# --------------------------------------------------------------------------------------------

TOPICS: Final[tuple[tuple[str, str, tuple[str, ...]], ...]] = (
    # 党员教育 — party education
    ("党员教育", "组织生活", (
        "三会一课", "主题党日", "组织生活会", "民主评议党员", "支部建设", "党费缴纳",
        "发展党员", "党员积分管理", "谈心谈话", "批评与自我批评", "支部书记", "党务公开",
    )),
    ("党员教育", "党史党性", (
        "党史学习教育", "红色基因", "革命传统", "红船精神", "井冈山精神", "长征精神",
        "延安精神", "入党誓词", "党性修养", "初心使命", "红色故事", "革命英烈",
    )),
    ("党员教育", "纪律作风", (
        "两学一做", "党章党规", "廉洁自律", "中央八项规定", "作风建设", "警示教育",
        "纪律处分条例", "不忘初心牢记使命主题教育", "清廉建设", "家风家教",
    )),
    ("党员教育", "先锋模范", (
        "先锋模范", "志愿服务", "党员示范岗", "流动党员管理", "党员先锋指数", "结对帮扶",
        "最美党员", "支部堡垒", "党员责任区", "双报到",
    )),
    # 理论学习 — theory study
    ("理论学习", "思想理论", (
        "马克思主义", "毛泽东思想", "中国特色社会主义", "新时代思想", "实事求是",
        "群众路线", "共产党宣言", "理想信念", "辩证唯物主义", "历史唯物主义",
    )),
    ("理论学习", "会议精神", (
        "党的二十大精神", "全会精神", "政府工作报告", "全国两会", "重要讲话精神",
        "党的创新理论", "党代会报告", "中央经济工作会议",
    )),
    ("理论学习", "政策解读", (
        "共同富裕", "乡村振兴", "高质量发展", "新发展理念", "中国式现代化", "数字经济",
        "生态文明", "法治中国", "全过程人民民主", "新质生产力", "区域协调发展",
    )),
    ("理论学习", "基层治理", (
        "基层治理", "枫桥经验", "网格化管理", "最多跑一次", "社区服务", "民生实事",
        "矛盾调解", "村规民约", "党建引领",
    )),
    # 技能培训 — skills training
    ("技能培训", "农业技术", (
        "种植技术", "大棚蔬菜", "茶叶种植", "果树修剪", "水产养殖", "生猪养殖",
        "病虫害防治", "农机使用", "高素质农民", "土壤改良", "农药安全使用",
    )),
    ("技能培训", "电商创业", (
        "电商直播", "短视频运营", "农产品电商", "网店运营", "创业指导", "小微企业",
        "直播带货", "品牌营销",
    )),
    ("技能培训", "数字技能", (
        "办公软件", "表格处理", "PPT制作", "人工智能", "数据分析", "智能手机使用",
        "网络安全", "数字化转型", "视频剪辑",
    )),
    ("技能培训", "职业技能", (
        "安全生产", "电工技能", "焊接技术", "职业技能等级", "家政服务", "养老护理",
        "厨师技能", "叉车操作", "物流配送",
    )),
    ("技能培训", "就业发展", (
        "求职面试", "职业规划", "考研备考", "公务员考试", "简历写作", "沟通技巧",
        "时间管理",
    )),
    # 生活百科 — everyday knowledge
    ("生活百科", "健康养生", (
        "健康养生", "慢性病防治", "高血压", "糖尿病", "中医养生", "心理健康",
        "急救知识", "合理膳食", "科学健身", "睡眠健康",
    )),
    ("生活百科", "安全防范", (
        "防诈骗", "电信诈骗", "消防安全", "交通安全", "食品安全", "防溺水", "反邪教",
        "用电安全", "养老诈骗",
    )),
    ("生活百科", "法律常识", (
        "民法典", "劳动合同", "婚姻家庭", "遗产继承", "消费者权益", "法律援助",
        "社保医保", "个人所得税",
    )),
    ("生活百科", "生活服务", (
        "垃圾分类", "家庭教育", "亲子阅读", "节能环保", "旅游出行", "家居收纳",
        "理财常识", "移动支付",
    )),
)  # fmt: skip

# Short forms members type into the search box; each is a substring of its term, so text
# matching finds the same courses.
_ALIASES: Final[dict[str, str]] = {
    "党史学习教育": "党史",
    "电信诈骗": "诈骗",
    "养老诈骗": "诈骗",
    "党的二十大精神": "二十大",
    "中央八项规定": "八项规定",
    "不忘初心牢记使命主题教育": "主题教育",
    "新时代思想": "新时代",
    "电商直播": "直播",
    "直播带货": "直播",
    "农产品电商": "电商",
    "智能手机使用": "智能手机",
    "慢性病防治": "慢性病",
    "民主评议党员": "民主评议",
    "党员积分管理": "党员积分",
    "病虫害防治": "病虫害",
    "职业技能等级": "职业技能",
    "流动党员管理": "流动党员",
    "中国特色社会主义": "特色社会主义",
    "重要讲话精神": "讲话精神",
    "批评与自我批评": "自我批评",
    "网格化管理": "网格",
    "消费者权益": "维权",
}

_QUERY_SUFFIXES: Final[dict[str, tuple[str, ...]]] = {
    "党员教育": ("怎么开", "怎么做", "学习", "心得体会", "微党课"),
    "理论学习": ("解读", "学习", "讲座", "心得体会"),
    "技能培训": ("入门", "教程", "视频", "技巧"),
    "生活百科": ("常识", "怎么办", "知识", "视频"),
}

# Title templates per channel; "{a}" is the course's main term, "{b}" a second term.
_TITLE_TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "党员教育": ("{a}专题：{b}", "读懂{a}", "{a}实务指南", "{a}微党课", "{a}｜{b}",
                 "身边的{a}故事", "{a}专题：怎样做好{b}"),
    "理论学习": ("{a}专题讲座：{b}", "深入学习{a}", "{a}十讲", "{a}与{b}",
                 "学习{a}的几点体会", "{a}理论解读"),
    "技能培训": ("{a}入门", "{a}实操：{b}", "三分钟学会{a}", "{a}技巧精讲", "{a}从零开始",
                 "{a}实用技能课"),
    "生活百科": ("{a}小常识", "{a}，你需要知道的几件事", "警惕！{a}", "{a}指南", "{a}与{b}",
                 "一分钟了解{a}"),
}  # fmt: skip

_DESCRIPTION_SENTENCES: Final[dict[str, tuple[str, ...]]] = {
    "党员教育": ("结合支部工作实际讲解要点和做法", "用身边人身边事讲好党课",
                 "帮助党员规范参加组织生活", "引导党员亮身份、作表率"),
    "理论学习": ("系统阐释核心要义和实践要求", "联系实际谈学习体会",
                 "帮助党员读原著、学原文、悟原理", "讲清楚是什么、为什么、怎么做"),
    "技能培训": ("手把手演示操作步骤", "讲解常见问题和实用技巧", "帮助学员掌握一技之长",
                 "案例教学，学了就能用"),
    "生活百科": ("介绍日常生活中的实用知识", "提醒大家注意常见误区", "用通俗语言讲清道理",
                 "守护群众的钱袋子和健康"),
}  # fmt: skip

# Branches and members are located in these districts.
_DISTRICTS: Final = (
    "上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区",
    "富阳区", "临安区", "桐庐县", "淳安县", "建德市",
)  # fmt: skip

# Org industries and the occupations of their members (rows follow OCCUPATIONS: retired,
# white_collar, blue_collar, rural, student, civil_servant, self_employed).
_INDUSTRIES: Final = ("党政机关", "农村", "城市社区", "国有企业", "两新组织", "教育", "卫生健康")
_INDUSTRY_WEIGHT: Final = np.array([0.12, 0.25, 0.2, 0.13, 0.18, 0.06, 0.06])
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

# Segment tastes (the planted structure), by occupation in OCCUPATIONS order.
# Channel affinity, columns in CHANNELS order (党员教育, 理论学习, 技能培训, 生活百科).
_SEGMENT_CHANNEL: Final = np.array(
    [
        [0.6, 1.0, -0.9, 0.6],  # retired: theory lectures and everyday knowledge
        [-0.3, -0.6, 1.0, 0.3],  # white_collar: skills
        [0.0, -0.7, 0.9, 0.4],  # blue_collar
        [0.2, -0.5, 0.8, 0.4],  # rural
        [0.0, 0.4, 0.6, -0.2],  # student
        [0.8, 0.9, -0.4, -0.3],  # civil_servant: party education and theory
        [-0.3, -0.6, 0.8, 0.6],  # self_employed
    ],
    dtype=np.float32,
)
# Preference for long courses (multiplies the standardised log duration).
_SEGMENT_DURATION: Final = np.array([0.9, -0.6, -0.3, -0.2, -0.2, 0.3, -0.5], dtype=np.float32)
_SEGMENT_TOPIC: Final[dict[str, dict[str, float]]] = {
    "retired": {"健康养生": 1.3, "安全防范": 1.0, "党史党性": 0.7, "思想理论": 0.4},
    "white_collar": {"数字技能": 1.2, "就业发展": 0.6, "法律常识": 0.4},
    "blue_collar": {"职业技能": 1.3, "安全防范": 0.4, "法律常识": 0.4},
    "rural": {"农业技术": 1.8, "电商创业": 0.8, "政策解读": 0.3},
    "student": {"就业发展": 1.4, "党史党性": 0.5, "思想理论": 0.5},
    "civil_servant": {"会议精神": 1.0, "政策解读": 0.9, "基层治理": 0.9, "纪律作风": 0.7},
    "self_employed": {"电商创业": 1.4, "法律常识": 0.7},
}
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

# Course mix by channel and duration bands (minutes: micro 3-8, short 8-20, medium 20-45,
# long 45-90). Theory lectures run long, everyday knowledge short.
_CHANNEL_SHARE: Final = np.array([0.3, 0.25, 0.25, 0.2])
_UGC_CHANNEL_SHARE: Final = np.array([0.45, 0.1, 0.2, 0.25])
_DURATION_BANDS: Final = np.array([[3, 8], [8, 20], [20, 45], [45, 90]], dtype=np.float64)
_CHANNEL_DURATION: Final = np.array(
    [
        [0.25, 0.35, 0.25, 0.15],
        [0.10, 0.20, 0.30, 0.40],
        [0.35, 0.40, 0.20, 0.05],
        [0.50, 0.35, 0.12, 0.03],
    ]
)
_UGC_DURATION: Final = np.array([0.5, 0.35, 0.12, 0.03])
# Standardised log duration z = (ln(minutes) - ln(15)) / 1, about -1.6 (3 min) .. +1.8 (90 min).
_LOG_MINUTES_CENTRE: Final = math.log(15.0)

# Hour-of-day weights of study sessions for three time profiles: commuters study on the way
# to and from work, daytime learners (retired, rural) in the morning and afternoon, everyone
# else in the evening.
_PROFILE_COMMUTER, _PROFILE_DAYTIME, _PROFILE_EVENING = 0, 1, 2
_HOUR_PEAKS: Final = (
    {7: 6, 8: 6, 12: 2, 17: 5, 18: 5, 21: 2},
    {8: 4, 9: 5, 10: 4, 14: 3, 15: 4, 16: 3, 19: 2, 20: 2},
    {12: 3, 13: 2, 19: 4, 20: 6, 21: 6, 22: 3},
)

# Search: a result list shows 10-20 courses; a result at 0-based position k is examined with
# probability 1/log2(k + 2).
_MIN_SHOWN: Final = 10
_MAX_SHOWN: Final = 20
_RETRIEVED: Final = 100  # candidates per query that reach the final ranking
_POPULARITY_WEIGHT: Final = 0.6  # weight of standardised course quality in search ranking
# Utility at which an examined result with no text relevance is clicked half the time.
_CLICK_THRESHOLD: Final = 5.5

_TOPIC_NAMES: Final = tuple(t[1] for t in TOPICS)
_TOPIC_CHANNEL: Final = np.array([CHANNELS.index(t[0]) for t in TOPICS], dtype=np.int64)
_TERMS: Final = tuple(term for t in TOPICS for term in t[2])
_TERM_TOPIC: Final = np.array([i for i, t in enumerate(TOPICS) for _ in t[2]], dtype=np.int64)
_TOPIC_TERM_START: Final = np.concatenate([[0], np.cumsum([len(t[2]) for t in TOPICS])])
_KEYWORDS: Final = _TERMS + tuple(sorted(set(_ALIASES.values()) - set(_TERMS)))
_TERM_ALIAS: Final = np.array(
    [_KEYWORDS.index(_ALIASES[t]) if t in _ALIASES else -1 for t in _TERMS], dtype=np.int64
)


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


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
    rewatch
        Probability that a repeated organic choice of the same course is kept as a rewatch.
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
    rewatch: float = 0.1

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
        for name in ("events_per_member", "searches_per_member", "popularity_exponent"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"SynthConfig.{name} must be a finite number >= 0, got {value!r}")
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
}

# Mean events per study session of each kind, and per search (its clicks and the sessions
# they open); they turn ``events_per_member`` into a rate of organic sessions. Measured on
# the presets.
_EVENTS_PER_ORGANIC: Final = 2.85
_EVENTS_PER_COMPULSORY: Final = 4.3
_EVENTS_PER_SEARCH: Final = 5.4


def _resolve_config(config: SynthConfig | str) -> SynthConfig:
    if isinstance(config, SynthConfig):
        return config
    if config not in PRESETS:
        raise ConfigError(f"unknown preset {config!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[config]


# --------------------------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------------------------


_TRUTH_SCALARS: Final = ("skill_weight", "local_branch_weight", "local_committee_weight")


@dataclass(frozen=True, eq=False)
class Truth:
    """The planted preference of every member for every course.

    ``utility(u, i)`` is on a log scale: in organic study a member picks course ``i`` with
    probability proportional to ``exp(utility(u, i))`` times the share of the period the
    course was available; the fraction watched and the chance of a like also grow with it.
    It adds up

    * ``course_bias[i]`` — quality; popularity follows a power law in it;
    * ``segment_channel[s, channel[i]] + segment_topic[s, topic[i]]`` for the member's
      segment ``s`` (index into :data:`recommend.schema.OCCUPATIONS`);
    * ``member_duration_pref[u] * course_duration_z[i]`` — taste for long or short courses;
    * ``skill_weight`` if the course's topic is the member's skill topic;
    * ``local_branch_weight`` / ``local_committee_weight`` if a UGC course was uploaded by the
      member's own branch / a branch of the same committee;
    * ``member_factors[u] @ course_factors[i]`` — individual latent tastes.

    Compulsory assignments and search clicks are not part of the utility. Members and
    courses are indexed by position in ``member_ids`` and ``course_ids``, which align with
    the rows of :attr:`Platform.members` and :attr:`Platform.courses`.

    Attributes
    ----------
    member_ids, course_ids, org_ids, topic_names : ndarray of str
    member_factors : ndarray, shape (n_members, n_factors), float32
    course_factors : ndarray, shape (n_courses, n_factors), float32
    course_bias, course_duration_z : ndarray, shape (n_courses,), float32
    course_channel, course_topic : ndarray, shape (n_courses,), int64
        Index into :data:`recommend.schema.CHANNELS` and ``topic_names``.
    course_branch : ndarray, shape (n_courses,), int64
        Index into ``org_ids`` of the uploading branch, -1 for official courses.
    member_segment, member_skill_topic, member_branch : ndarray, shape (n_members,), int64
        Occupation index, skill topic index (-1: none), branch index into ``org_ids``.
    member_duration_pref, member_activity : ndarray, shape (n_members,), float32
        ``member_activity`` scales the member's number of study sessions (0: dormant).
    member_commuter : ndarray, shape (n_members,), bool
        Studies mostly while commuting (short courses).
    segment_channel : ndarray, shape (n_segments, n_channels), float32
    segment_topic : ndarray, shape (n_segments, n_topics), float32
    org_committee : ndarray, shape (n_orgs,), int64
        Index of the committee at the top of each org's subtree.
    skill_weight, local_branch_weight, local_committee_weight : float
    """

    member_ids: np.ndarray
    course_ids: np.ndarray
    org_ids: np.ndarray
    topic_names: np.ndarray
    member_factors: np.ndarray
    course_factors: np.ndarray
    course_bias: np.ndarray
    course_duration_z: np.ndarray
    course_channel: np.ndarray
    course_topic: np.ndarray
    course_branch: np.ndarray
    member_segment: np.ndarray
    member_skill_topic: np.ndarray
    member_branch: np.ndarray
    member_duration_pref: np.ndarray
    member_activity: np.ndarray
    member_commuter: np.ndarray
    segment_channel: np.ndarray
    segment_topic: np.ndarray
    org_committee: np.ndarray
    skill_weight: float
    local_branch_weight: float
    local_committee_weight: float

    @property
    def n_members(self) -> int:
        return int(self.member_ids.shape[0])

    @property
    def n_courses(self) -> int:
        return int(self.course_ids.shape[0])

    def member_index(self, member_ids: Any) -> IntArray:
        """Positions of ``member_ids`` (array-like of str) in ``member_ids``; int64.

        Raises :class:`~recommend.errors.DataError` for unknown ids.
        """
        return _lookup(self.member_ids, member_ids, "member_id")

    def course_index(self, course_ids: Any) -> IntArray:
        """Positions of ``course_ids`` (array-like of str) in ``course_ids``; int64."""
        return _lookup(self.course_ids, course_ids, "course_id")

    def member_vectors(self, member_idx: Any) -> FloatArray:
        """Augmented member vectors; ``member_vectors(u) @ course_vectors(i).T`` is the utility
        without the local UGC appeal.

        Returns
        -------
        ndarray, shape (len(member_idx), n_factors + n_channels + n_topics + 2), float32
        """
        m = self._check(member_idx, self.n_members, "member_idx")
        seg = self.member_segment[m]
        topic = self.segment_topic[seg].copy()
        has_skill = self.member_skill_topic[m] >= 0
        topic[np.flatnonzero(has_skill), self.member_skill_topic[m][has_skill]] += self.skill_weight
        return np.concatenate(
            [
                self.member_factors[m],
                self.segment_channel[seg],
                topic,
                self.member_duration_pref[m, None],
                np.ones((m.size, 1), dtype=np.float32),
            ],
            axis=1,
            dtype=np.float32,
        )

    def course_vectors(self, course_idx: Any = None) -> FloatArray:
        """Augmented course vectors matching :meth:`member_vectors`.

        Returns
        -------
        ndarray, shape (len(course_idx) or n_courses, n_factors + n_channels + n_topics + 2),
        float32
        """
        c = self._courses(course_idx)
        n_channels, n_topics = self.segment_channel.shape[1], self.segment_topic.shape[1]
        return np.concatenate(
            [
                self.course_factors[c],
                np.eye(n_channels, dtype=np.float32)[self.course_channel[c]],
                np.eye(n_topics, dtype=np.float32)[self.course_topic[c]],
                self.course_duration_z[c, None],
                self.course_bias[c, None],
            ],
            axis=1,
            dtype=np.float32,
        )

    def utility(self, member_idx: Any, course_idx: Any = None) -> FloatArray:
        """True utility of a block of members for a block of courses.

        Parameters
        ----------
        member_idx : array-like of int, shape (n,)
            Member positions (see :meth:`member_index`).
        course_idx : array-like of int, shape (k,), optional
            Course positions; all courses if omitted. Keep ``n * k`` to what fits in memory
            (e.g. a few thousand members at a time for 10^4 courses).

        Returns
        -------
        ndarray, shape (n, k), float32
        """
        m = self._check(member_idx, self.n_members, "member_idx")
        c = self._courses(course_idx)
        out = self.member_vectors(m) @ self.course_vectors(c).T
        self._add_local(out, m, c)
        return out

    def pair_utility(self, member_idx: Any, course_idx: Any) -> FloatArray:
        """True utility of aligned (member, course) pairs.

        Parameters
        ----------
        member_idx, course_idx : array-like of int, shape (n,)

        Returns
        -------
        ndarray, shape (n,), float32
        """
        m = self._check(member_idx, self.n_members, "member_idx")
        c = self._courses(course_idx)
        if m.shape != c.shape:
            raise DataError(f"member_idx and course_idx differ in shape: {m.shape} vs {c.shape}")
        # The terms of member_vectors @ course_vectors, without building the one-hot parts.
        seg, topic = self.member_segment[m], self.course_topic[c]
        out = np.einsum("ij,ij->i", self.member_factors[m], self.course_factors[c])
        out += self.segment_channel[seg, self.course_channel[c]]
        out += self.segment_topic[seg, topic]
        out += np.float32(self.skill_weight) * (self.member_skill_topic[m] == topic)
        out += self.member_duration_pref[m] * self.course_duration_z[c]
        out += self.course_bias[c]
        out += self._local_pairs(m, c)
        return out.astype(np.float32, copy=False)

    def top_n(self, n: int, member_idx: Any = None, *, block: int = 2048) -> IntArray:
        """Each member's ``n`` courses of highest true utility, best first.

        Parameters
        ----------
        n : int
            Number of courses per member (capped at ``n_courses``).
        member_idx : array-like of int, shape (m,), optional
            Members to rank for; all members if omitted.
        block : int
            Members scored at once (memory ``block * n_courses * 4`` bytes).

        Returns
        -------
        ndarray, shape (m, n), int64
            Course positions.
        """
        m = np.arange(self.n_members) if member_idx is None else np.asarray(member_idx)
        m = self._check(m, self.n_members, "member_idx")
        n = max(0, min(int(n), self.n_courses))
        out = np.empty((m.size, n), dtype=np.int64)
        if n == 0:
            return out
        for lo in range(0, m.size, block):
            scores = self.utility(m[lo : lo + block])
            part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
            order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
            out[lo : lo + block] = np.take_along_axis(part, order, axis=1)
        return out

    def recommendations(self, n: int, member_ids: Any = None) -> pd.DataFrame:
        """The true top-``n`` courses as a recommendation frame.

        Returns
        -------
        DataFrame
            Columns ``member_id``, ``course_id``, ``score`` (true utility, float32) and
            ``rank`` (1 = best), ``n`` rows per member.
        """
        m = np.arange(self.n_members) if member_ids is None else self.member_index(member_ids)
        top = self.top_n(n, m)
        k = top.shape[1]
        rows = np.repeat(m, k)
        return pd.DataFrame(
            {
                C.MEMBER: pd.array(self.member_ids[rows], dtype="str"),
                C.COURSE: pd.array(self.course_ids[top.ravel()], dtype="str"),
                C.SCORE: self.pair_utility(rows, top.ravel()),
                C.RANK: np.tile(np.arange(1, k + 1, dtype=np.int64), m.size),
            }
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """All fields as plain numpy arrays (strings as ``<U``), loadable without pickle."""
        out: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            arr = np.asarray(value)
            out[f.name] = arr.astype(np.str_) if arr.dtype.kind in "OTU" else arr
        return out

    @classmethod
    def from_arrays(cls, arrays: Any) -> Truth:
        """Inverse of :meth:`to_arrays` (accepts a dict or an ``np.load`` result)."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in arrays:
                raise DataError(f"truth arrays lack {f.name!r}")
            arr = np.asarray(arrays[f.name])
            kwargs[f.name] = float(arr.item()) if f.name in _TRUTH_SCALARS else arr
        return cls(**kwargs)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Truth):
            return NotImplemented
        a, b = self.to_arrays(), other.to_arrays()
        return all(np.array_equal(a[k], b[k]) for k in a)

    __hash__ = None  # type: ignore[assignment]

    # ---- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _check(idx: Any, size: int, name: str) -> IntArray:
        arr = np.asarray(idx)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise DataError(f"{name} must be a 1-d integer array, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if arr.size and (arr.min() < 0 or arr.max() >= size):
            raise DataError(f"{name} out of range [0, {size}): min {arr.min()}, max {arr.max()}")
        return arr

    def _courses(self, course_idx: Any) -> IntArray:
        if course_idx is None:
            return np.arange(self.n_courses, dtype=np.int64)
        return self._check(course_idx, self.n_courses, "course_idx")

    def _add_local(self, out: FloatArray, m: IntArray, c: IntArray) -> None:
        """Add the local appeal of UGC courses to a (members x courses) block in place.

        Sparse: a member only gains on UGC uploaded within their committee, a handful of
        courses, so the block is touched at those entries only.
        """
        ugc_cols = np.flatnonzero(self.course_branch[c] >= 0)
        if ugc_cols.size == 0 or m.size == 0:
            return
        upload_branch = self.course_branch[c[ugc_cols]]
        upload_committee = self.org_committee[upload_branch]
        order = np.argsort(upload_committee, kind="stable")
        ugc_cols, upload_branch = ugc_cols[order], upload_branch[order]
        upload_committee = upload_committee[order]
        member_branch = self.member_branch[m]
        member_committee = self.org_committee[member_branch]
        first = np.searchsorted(upload_committee, member_committee, side="left")
        count = np.searchsorted(upload_committee, member_committee, side="right") - first
        rows = np.repeat(np.arange(m.size), count)
        pos = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count) + first[rows]
        same_branch = member_branch[rows] == upload_branch[pos]
        out[rows, ugc_cols[pos]] += np.float32(self.local_committee_weight) + np.float32(
            self.local_branch_weight
        ) * same_branch.astype(np.float32)

    def _local_pairs(self, m: IntArray, c: IntArray) -> FloatArray:
        cb = self.course_branch[c]
        ugc = cb >= 0
        mb = self.member_branch[m]
        cb_safe = np.where(ugc, cb, 0)
        same_branch = ugc & (mb == cb)
        same_committee = ugc & (self.org_committee[mb] == self.org_committee[cb_safe])
        return (
            self.local_branch_weight * same_branch + self.local_committee_weight * same_committee
        ).astype(np.float32)


def _lookup(ids: np.ndarray, wanted: Any, column: str) -> IntArray:
    wanted_arr = np.asarray(wanted, dtype=object).ravel()
    idx = pd.Index(ids).get_indexer(wanted_arr)
    missing = np.flatnonzero(idx < 0)
    if missing.size:
        raise DataError(
            f"unknown {column}: {missing.size} value(s), e.g. {list(wanted_arr[missing[:3]])}"
        )
    return idx.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Platform
# --------------------------------------------------------------------------------------------

_LIST = pa.list_(pa.string())
_TS = pa.timestamp("ns")
_ARROW_SCHEMAS: Final[dict[str, pa.Schema]] = {
    "events": pa.schema(
        [
            (C.MEMBER, pa.string()),
            (C.COURSE, pa.string()),
            (C.EVENT, pa.string()),
            (C.TIMESTAMP, _TS),
            (C.WATCH_SECONDS, pa.float64()),
        ]
    ),
    "courses": pa.schema(
        [
            (C.COURSE, pa.string()),
            (C.TITLE, pa.string()),
            (C.CATEGORY, pa.string()),
            (C.TAGS, _LIST),
            (C.DURATION, pa.float64()),
            (C.LECTURER, pa.string()),
            (C.SOURCE, pa.string()),
            (C.PUBLISHED_AT, _TS),
            (C.ORG, pa.string()),
            (C.DESCRIPTION, pa.string()),
            (C.COMPULSORY_FOR, _LIST),
        ]
    ),
    "members": pa.schema(
        [
            (C.MEMBER, pa.string()),
            (C.ORG, pa.string()),
            (C.GENDER, pa.string()),
            (C.BIRTH_YEAR, pa.int64()),
            (C.OCCUPATION, pa.string()),
            (C.SKILLS, _LIST),
            (C.DISTRICT, pa.string()),
            (C.JOINED_AT, _TS),
            (C.MOBILE, pa.bool_()),
        ]
    ),
    "orgs": pa.schema(
        [
            (C.ORG, pa.string()),
            (C.PARENT, pa.string()),
            (C.ORG_KIND, pa.string()),
            (C.INDUSTRY, pa.string()),
            (C.DISTRICT, pa.string()),
        ]
    ),
    "searches": pa.schema(
        [
            (C.MEMBER, pa.string()),
            (C.QUERY, pa.string()),
            (C.TIMESTAMP, _TS),
            (C.SHOWN, _LIST),
            (C.CLICKED, _LIST),
        ]
    ),
    "lecturers": pa.schema([(C.LECTURER, pa.string()), (C.CATEGORY, pa.string()), (C.TAGS, _LIST)]),
}
_TABLE_NAMES: Final = tuple(_ARROW_SCHEMAS)
_LIST_COLUMNS: Final = {
    name: [f.name for f in schema if pa.types.is_list(f.type)]
    for name, schema in _ARROW_SCHEMAS.items()
}


@dataclass(frozen=True, eq=False)
class Platform:
    """A simulated platform: the public tables plus the truth that generated them.

    Attributes
    ----------
    events : DataFrame
        ``member_id``, ``course_id``, ``event`` (str, in :data:`recommend.schema.EVENT_TYPES`),
        ``timestamp`` (datetime64[ns], tz-naive UTC), ``watch_seconds`` (float64: seconds
        watched in the session up to the event; 0 for ``view`` and ``search_click``).
        Sorted by member, timestamp, event (in ``EVENT_TYPES`` order), course.
    courses : DataFrame
        ``course_id``, ``title``, ``category`` (a channel), ``tags`` (list of str),
        ``duration_seconds`` (float64), ``lecturer_id`` (null for UGC), ``source``
        (``official``/``ugc``), ``published_at``, ``org_id`` (uploading branch, null for
        official), ``description``, ``compulsory_for`` (list of branch org ids). Course ids
        follow publication order.
    members : DataFrame
        ``member_id``, ``org_id`` (branch), ``gender`` (``male``/``female``), ``birth_year``
        (int64), ``occupation``, ``skills`` (list of str), ``district``, ``joined_at``,
        ``mobile`` (bool).
    orgs : DataFrame
        ``org_id``, ``parent_id`` (null for committees), ``kind`` (committee /
        general_branch / branch), ``industry``, ``district``.
    searches : DataFrame
        ``member_id``, ``query``, ``timestamp``, ``shown`` (course ids in shown order),
        ``clicked`` (clicked course ids, in shown order).
    lecturers : DataFrame
        ``lecturer_id``, ``category`` (home channel), ``tags`` (expertise topic).
    truth : Truth
    config : SynthConfig
    seed : int
    """

    events: pd.DataFrame
    courses: pd.DataFrame
    members: pd.DataFrame
    orgs: pd.DataFrame
    searches: pd.DataFrame
    lecturers: pd.DataFrame
    truth: Truth
    config: SynthConfig
    seed: int

    @property
    def period(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """Start (inclusive) and end (exclusive) of the simulated period."""
        start = pd.Timestamp(self.config.start)
        return start, start + pd.Timedelta(days=self.config.days)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The frames by table name (``events``, ``courses``, ...)."""
        return {name: getattr(self, name) for name in _TABLE_NAMES}

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the platform to a directory, deterministically.

        Writes ``events.parquet``, ``courses.parquet``, ``members.parquet``,
        ``orgs.parquet``, ``searches.parquet``, ``lecturers.parquet``, ``truth.npz`` and
        ``meta.json`` (config, seed, row counts, SHA-256 of every file). The same platform
        always gives the same bytes. A new directory appears atomically (written next to it,
        then renamed); in an existing directory each file is replaced atomically and
        ``meta.json`` last, other files (e.g. a README) are left alone.

        Returns
        -------
        Path
            The directory written.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary directory
        try:
            checksums: dict[str, str] = {}
            for name, frame in self.tables().items():
                file = tmp / f"{name}.parquet"
                _write_parquet(_to_arrow(name, frame), file)
                checksums[file.name] = _sha256(file)
            npz = tmp / "truth.npz"
            _write_npz(npz, self.truth.to_arrays())
            checksums[npz.name] = _sha256(npz)
            meta = {
                "format_version": _FORMAT_VERSION,
                "generator": "recommend.data.synthetic",
                "seed": int(self.seed),
                "config": asdict(self.config),
                "counts": {name: len(frame) for name, frame in self.tables().items()},
                "files": checksums,
            }
            (tmp / "meta.json").write_text(
                json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                encoding="utf-8",
            )
            if not target.exists():
                os.replace(tmp, target)
            else:
                for file in sorted(tmp.iterdir(), key=lambda p: p.name == "meta.json"):
                    os.replace(file, target / file.name)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        logger.info("wrote simulated platform to %s", target)
        return target


def read_platform(path: str | os.PathLike[str], *, verify: bool = True) -> Platform:
    """Read a platform written by :meth:`Platform.write`.

    Parameters
    ----------
    path
        The directory.
    verify
        Check every file against the SHA-256 recorded in ``meta.json``.

    Raises
    ------
    DataError
        A file is missing, does not match its checksum, or has a newer format.
    """
    root = Path(path)
    meta_file = root / "meta.json"
    if not meta_file.is_file():
        raise DataError(f"{root} holds no meta.json; is it a directory from Platform.write?")
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    if meta.get("format_version", 0) > _FORMAT_VERSION:
        raise DataError(
            f"{root} has format {meta['format_version']}, newer than {_FORMAT_VERSION}; "
            "upgrade recommend"
        )
    for name, digest in meta["files"].items():
        file = root / name
        if not file.is_file():
            raise DataError(f"{file} is missing")
        if verify and _sha256(file) != digest:
            raise DataError(f"{file} does not match the checksum in meta.json (partial write?)")
    frames = {
        name: _to_pandas(name, pq.read_table(root / f"{name}.parquet")) for name in _TABLE_NAMES
    }
    with np.load(root / "truth.npz", allow_pickle=False) as npz:
        truth = Truth.from_arrays(npz)
    return Platform(
        **frames, truth=truth, config=SynthConfig(**meta["config"]), seed=int(meta["seed"])
    )


def _to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    schema = _ARROW_SCHEMAS[name]
    table = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    # Pandas metadata would record library versions and index details; the fixed schema is
    # all a reader needs.
    return table.replace_schema_metadata(None)


def _to_pandas(name: str, table: pa.Table) -> pd.DataFrame:
    table = table.replace_schema_metadata(None)
    frame = table.to_pandas()
    for column in _LIST_COLUMNS[name]:
        frame[column] = pd.Series(table.column(column).to_pylist(), dtype=object)
    return frame


def _write_parquet(table: pa.Table, file: Path) -> None:
    pq.write_table(
        table,
        file,
        compression="zstd",
        compression_level=9,
        version="2.6",
        row_group_size=1 << 20,
        write_statistics=True,
    )


def _write_npz(file: Path, arrays: dict[str, np.ndarray]) -> None:
    # np.savez stamps zip entries with the current time; a fixed date keeps the bytes stable.
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            buf = io.BytesIO()
            # np.asarray keeps 0-d scalars 0-d (np.ascontiguousarray would make them 1-d).
            np.lib.format.write_array(buf, np.asarray(arrays[name], order="C"), allow_pickle=False)
            zf.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue()
            )


def _sha256(file: Path) -> str:
    with open(file, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


# --------------------------------------------------------------------------------------------
# Simulation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Period:
    start: int  # seconds since the epoch
    end: int

    @property
    def seconds(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class _Orgs:
    kind: IntArray  # (n_orgs,) index into ORG_KINDS
    parent: IntArray  # (n_orgs,) -1 for committees
    industry: IntArray
    district: IntArray
    committee: IntArray  # committee at the top of each org's subtree
    branches: IntArray  # org indices of the branches


@dataclass(frozen=True)
class _Members:
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


@dataclass(frozen=True)
class _Courses:
    channel: IntArray
    topic: IntArray
    term_a: IntArray
    term_b: IntArray
    duration: FloatArray  # seconds, integral
    ugc: np.ndarray
    published: IntArray  # seconds
    branch: IntArray  # uploading branch org index, -1 official
    lecturer: IntArray  # -1 for UGC
    quality: FloatArray
    title: np.ndarray  # <U
    description: np.ndarray
    compulsory_ptr: IntArray  # CSR course -> branch org indices
    compulsory_branches: IntArray
    standing: np.ndarray  # compulsory for a whole committee from the start of the period


@dataclass(frozen=True)
class _Sessions:
    member: IntArray
    course: IntArray
    start: IntArray  # seconds
    kind: IntArray  # 0 organic, 1 compulsory, 2 from a search click


_ORGANIC, _COMPULSORY, _SEARCH = 0, 1, 2
_STAGES: Final = (
    "orgs",
    "members",
    "lecturers",
    "courses",
    "truth",
    "compulsory",
    "choices",
    "searches",
    "funnel",
)


def synthesize(config: SynthConfig | str = "sample", *, seed: int = 0) -> Platform:
    """Simulate a platform.

    Parameters
    ----------
    config
        A :class:`SynthConfig` or the name of a preset in :data:`PRESETS`
        (``"small"``, ``"sample"``, ``"city"``).
    seed
        Seed of the random streams; the same seed gives the same platform.

    Returns
    -------
    Platform
    """
    cfg = _resolve_config(config)
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    # One independent stream per stage, so a change in one stage leaves the others alone.
    streams = dict(zip(_STAGES, np.random.SeedSequence(int(seed)).spawn(len(_STAGES)), strict=True))
    rngs = {name: np.random.Generator(np.random.PCG64(s)) for name, s in streams.items()}

    start = int(np.datetime64(cfg.start, "D").astype("datetime64[s]").astype(np.int64))
    period = _Period(start, start + cfg.days * _DAY)

    orgs = _simulate_orgs(cfg, rngs["orgs"])
    members = _simulate_members(cfg, rngs["members"], orgs, period)
    lecturer_channel, lecturer_topic, lecturer_quality = _simulate_lecturers(cfg, rngs["lecturers"])
    courses = _simulate_courses(
        cfg, rngs["courses"], orgs, period, lecturer_topic, lecturer_quality
    )
    truth = _make_truth(cfg, rngs["truth"], orgs, members, courses)

    compulsory = _simulate_compulsory(rngs["compulsory"], members, courses, period)
    rate = _session_rate(cfg, truth.member_activity, compulsory.member.size)
    organic, targets = _simulate_choices(
        cfg, rngs["choices"], truth, members, courses, period, rate
    )
    searches, clicked = _simulate_searches(
        rngs["searches"], truth, members, courses, period, targets
    )
    sessions = _concat_sessions([organic, compulsory, clicked])
    events = _simulate_funnel(rngs["funnel"], truth, members, courses, sessions, period)

    ids = _Ids.make(cfg, len(orgs.kind), len(lecturer_channel))
    tables = {
        "events": _events_table(ids, events),
        "courses": _courses_table(ids, courses),
        "members": _members_table(ids, members),
        "orgs": _orgs_table(ids, orgs),
        "searches": _searches_table(ids, searches),
        "lecturers": _lecturers_table(ids, lecturer_channel, lecturer_topic),
    }
    frames = {name: _to_pandas(name, table) for name, table in tables.items()}
    logger.info(
        "simulated %d members, %d courses, %d events, %d searches (seed %d)",
        cfg.n_members,
        cfg.n_courses,
        len(frames["events"]),
        len(frames["searches"]),
        seed,
    )
    return Platform(**frames, truth=truth, config=cfg, seed=int(seed))


# ---- org tree -------------------------------------------------------------------------------


def _simulate_orgs(cfg: SynthConfig, rng: np.random.Generator) -> _Orgs:
    n_branches = max(1, math.ceil(cfg.n_members / cfg.members_per_branch))
    direct = rng.random(n_branches) < cfg.direct_branch_share
    n_under_general = int((~direct).sum())
    n_generals = math.ceil(n_under_general / cfg.branches_per_general)
    # Committees hold general branches and, directly, some branches.
    n_committees = max(1, math.ceil((n_generals + direct.sum() / 2) / cfg.generals_per_committee))

    committees = np.arange(n_committees)
    generals = n_committees + np.arange(n_generals)
    branches = n_committees + n_generals + np.arange(n_branches)
    n_orgs = n_committees + n_generals + n_branches

    parent = np.full(n_orgs, -1, dtype=np.int64)
    # Balanced assignment: every committee gets a general branch and every general branch
    # a branch wherever there are enough of them.
    parent[generals] = rng.permutation(np.arange(n_generals) % n_committees)
    if n_generals:
        parent[branches[~direct]] = generals[
            rng.permutation(np.arange(n_under_general) % n_generals)
        ]
    parent[branches[direct]] = rng.integers(0, n_committees, int(direct.sum()))

    kind = np.repeat(np.arange(3, dtype=np.int64), [n_committees, n_generals, n_branches])
    # Parents always precede children, so one pass in id order resolves the top committee
    # and inherited attributes level by level.
    committee = np.arange(n_orgs, dtype=np.int64)
    committee[generals] = parent[generals]
    committee[branches] = committee[parent[branches]]

    industry = np.empty(n_orgs, dtype=np.int64)
    industry[committees] = rng.choice(len(_INDUSTRIES), n_committees, p=_INDUSTRY_WEIGHT)
    for level in (generals, branches):
        inherit = rng.random(level.size) < 0.8
        own = rng.choice(len(_INDUSTRIES), level.size, p=_INDUSTRY_WEIGHT)
        industry[level] = np.where(inherit, industry[parent[level]], own)

    district = np.empty(n_orgs, dtype=np.int64)
    district[committees] = rng.integers(0, len(_DISTRICTS), n_committees)
    for level, keep in ((generals, 1.0), (branches, 0.85)):
        inherit = rng.random(level.size) < keep
        own = rng.integers(0, len(_DISTRICTS), level.size)
        district[level] = np.where(inherit, district[parent[level]], own)
    return _Orgs(kind, parent, industry, district, committee, branches)


# ---- members --------------------------------------------------------------------------------


def _simulate_members(
    cfg: SynthConfig, rng: np.random.Generator, orgs: _Orgs, period: _Period
) -> _Members:
    n = cfg.n_members
    size = rng.lognormal(0.0, 0.5, orgs.branches.size)
    branch = orgs.branches[rng.choice(orgs.branches.size, n, p=size / size.sum())]

    # Occupations follow the branch's industry, blended with the overall mix (a factory
    # branch still has retirees and a village branch the odd white-collar worker).
    by_industry = _INDUSTRY_OCCUPATION / _INDUSTRY_OCCUPATION.sum(axis=1, keepdims=True)
    mix = 0.8 * by_industry + 0.2 * (_INDUSTRY_WEIGHT @ by_industry)
    occupation = _categorical(rng, mix[orgs.industry[branch]])
    female = rng.random(n) < _FEMALE_SHARE[occupation]

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
    joined_at = np.minimum(joined_days * _DAY, period.start - 30 * _DAY)

    mobile = rng.random(n) < cfg.mobile_share
    home = orgs.district[branch]
    away = (home + 1 + rng.integers(0, len(_DISTRICTS) - 1, n)) % len(_DISTRICTS)
    district = np.where(mobile, away, home)

    skill_topic = np.full(n, -1, dtype=np.int64)
    for occ_idx, occ in enumerate(OCCUPATIONS):
        sel = np.flatnonzero(occupation == occ_idx)
        options = _SKILL_TOPICS.get(occ, {})
        topics = [_TOPIC_NAMES.index(t) for t in options] + [-1]
        probs = np.array([*options.values(), max(0.0, 1.0 - sum(options.values()))])
        skill_topic[sel] = np.asarray(topics)[
            rng.choice(len(topics), sel.size, p=probs / probs.sum())
        ]
    n_skills = np.where(skill_topic >= 0, rng.integers(1, 3, n), 0)
    skill_ptr = np.concatenate([[0], np.cumsum(n_skills)]).astype(np.int64)
    owner = np.repeat(np.arange(n), n_skills)
    topic_size = np.diff(_TOPIC_TERM_START)[np.maximum(skill_topic, 0)]
    # A member's second skill is a different term of the same topic: offset from the first.
    first = rng.integers(0, topic_size)
    offset = 1 + rng.integers(0, np.maximum(topic_size - 1, 1))
    within = np.arange(owner.size) - skill_ptr[owner]
    pick = (first[owner] + np.where(within == 0, 0, offset[owner])) % topic_size[owner]
    skill_terms = _TOPIC_TERM_START[skill_topic[owner]] + pick

    # Activity: lognormal spread (heavy learners in the tail), "pocket" members with none.
    activity = rng.lognormal(-0.5, 1.0, n) * _SEGMENT_ACTIVITY[occupation]
    activity *= np.where(mobile, 0.7, 1.0)
    activity = np.minimum(activity / activity.mean(), 15.0)
    pocket = rng.random(n) < cfg.dormant_share
    activity[pocket] = 0.0
    occasional = ~pocket & (rng.random(n) < 0.1)
    activity[occasional] *= 0.05

    commuter = rng.random(n) < np.minimum(_COMMUTER_SHARE[occupation] + 0.25 * mobile, 0.9)
    daytime = np.isin(occupation, [OCCUPATIONS.index("retired"), OCCUPATIONS.index("rural")])
    profile = np.where(
        commuter, _PROFILE_COMMUTER, np.where(daytime, _PROFILE_DAYTIME, _PROFILE_EVENING)
    )
    checkin = rng.beta(1.2, 2.5, n)
    return _Members(
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
        profile=profile.astype(np.int64),
        checkin=checkin,
    )


# ---- lecturers and courses ------------------------------------------------------------------


def _simulate_lecturers(
    cfg: SynthConfig, rng: np.random.Generator
) -> tuple[IntArray, IntArray, FloatArray]:
    n = max(4, cfg.n_courses // 25)
    channel = rng.choice(len(CHANNELS), n, p=_CHANNEL_SHARE)
    # Each channel has at least one lecturer, so every official course can get one.
    channel[: len(CHANNELS)] = np.arange(len(CHANNELS))
    topics_of = [np.flatnonzero(ch == _TOPIC_CHANNEL) for ch in range(len(CHANNELS))]
    topic = np.zeros(n, dtype=np.int64)
    for ch, options in enumerate(topics_of):
        sel = np.flatnonzero(channel == ch)
        topic[sel] = options[rng.integers(0, options.size, sel.size)]
    quality = rng.normal(0.0, 0.4, n)
    return channel.astype(np.int64), topic, quality


def _simulate_courses(
    cfg: SynthConfig,
    rng: np.random.Generator,
    orgs: _Orgs,
    period: _Period,
    lecturer_topic: IntArray,
    lecturer_quality: FloatArray,
) -> _Courses:
    months = _month_starts(period)
    n_branches = orgs.branches.size
    per_month = int(np.clip(round(n_branches / 12), 2, 40))
    per_month = max(1, min(per_month, cfg.n_courses // (4 * max(1, months.size))))
    n_pool = per_month * months.size
    n_regular = cfg.n_courses - n_pool
    n_ugc = round(cfg.ugc_share * n_regular)
    ugc = np.zeros(cfg.n_courses, dtype=bool)
    ugc[n_pool : n_pool + n_ugc] = True
    pool = np.arange(cfg.n_courses) < n_pool

    channel = np.where(
        ugc,
        rng.choice(len(CHANNELS), cfg.n_courses, p=_UGC_CHANNEL_SHARE),
        rng.choice(len(CHANNELS), cfg.n_courses, p=_CHANNEL_SHARE),
    )
    channel[pool] = CHANNELS.index("党员教育")
    # Topic within the channel, with uneven topic sizes.
    topic = np.empty(cfg.n_courses, dtype=np.int64)
    for ch in range(len(CHANNELS)):
        options = np.flatnonzero(ch == _TOPIC_CHANNEL)
        sel = np.flatnonzero(channel == ch)
        topic[sel] = options[
            rng.choice(options.size, sel.size, p=rng.dirichlet(np.full(options.size, 4.0)))
        ]
    # Every topic has at least one official course, even in a small catalogue.
    official = np.flatnonzero(~ugc & ~pool)
    if official.size >= len(_TOPIC_NAMES):
        first = official[: len(_TOPIC_NAMES)]
        topic[first] = np.arange(len(_TOPIC_NAMES))
        channel[first] = _TOPIC_CHANNEL
    # Terms: Zipf-like within a topic, so some terms (and queries) are much more common.
    size = np.diff(_TOPIC_TERM_START)[topic]
    rank_a = np.minimum(np.floor(size * rng.random(cfg.n_courses) ** 1.6), size - 1).astype(
        np.int64
    )
    term_a = _TOPIC_TERM_START[topic] + rank_a
    rank_b = (rank_a + 1 + rng.integers(0, np.maximum(size - 1, 1))) % size
    term_b = _TOPIC_TERM_START[topic] + rank_b
    theme_day = _TERMS.index("主题党日")
    term_b[pool] = theme_day
    term_a[pool & (term_a == theme_day)] = _TERMS.index("三会一课")

    band = np.where(ugc[:, None], _UGC_DURATION[None, :], _CHANNEL_DURATION[channel])
    band = _categorical(rng, band)
    band[pool] = 2  # themed-day material is a 20-45 minute lesson
    lo, hi = np.log(_DURATION_BANDS[band, 0]), np.log(_DURATION_BANDS[band, 1])
    duration = np.round(np.exp(lo + rng.random(cfg.n_courses) * (hi - lo)) * 60.0)

    # Publication: most official courses are a back catalogue, most UGC arrives during the
    # period (so it is cold); nothing is published in the last day.
    last = period.end - _DAY
    backlog = np.where(ugc, rng.random(cfg.n_courses) < 0.25, rng.random(cfg.n_courses) < 0.75)
    span_before = np.where(ugc, 365, 3 * 365) * _DAY
    published = np.where(
        backlog,
        period.start - 1 - (rng.random(cfg.n_courses) * span_before).astype(np.int64),
        period.start + (rng.random(cfg.n_courses) * (last - period.start)).astype(np.int64),
    )
    month_of_pool = np.repeat(np.arange(months.size), per_month)
    published[pool] = months[month_of_pool] + 8 * _HOUR

    branch = np.where(ugc, orgs.branches[rng.integers(0, n_branches, cfg.n_courses)], -1)
    lecturer = _assign_lecturers(rng, topic, channel, lecturer_topic)
    lecturer[ugc] = -1

    # Quality: power-law popularity over a random order of courses, shifted by lecturer
    # quality; branch uploads are rougher on average.
    rank = rng.permutation(cfg.n_courses) + 1
    quality = -cfg.popularity_exponent * np.log(rank)
    quality = quality - quality.mean()
    quality = quality + np.where(lecturer >= 0, lecturer_quality[np.maximum(lecturer, 0)], 0.0)
    quality = quality - 0.3 * ugc + 0.3 * pool

    # Compulsory assignments: each branch picks one themed-day course per month, and each
    # committee makes one party-education course from the back catalogue compulsory for all
    # its branches from the start of the period.
    pairs_course = [
        np.flatnonzero(pool)[month * per_month + rng.integers(0, per_month, n_branches)]
        for month in range(months.size)
    ]
    pairs_branch = [orgs.branches for _ in range(months.size)]
    standing = np.zeros(cfg.n_courses, dtype=bool)
    candidates = np.flatnonzero(
        (channel == CHANNELS.index("党员教育")) & ~ugc & ~pool & (published < period.start)
    )
    if candidates.size:
        committees = np.flatnonzero(orgs.kind == 0)
        chosen = candidates[rng.integers(0, candidates.size, committees.size)]
        standing[chosen] = True
        committee_course = np.full(orgs.kind.size, -1, dtype=np.int64)
        committee_course[committees] = chosen
        pairs_course.append(committee_course[orgs.committee[orgs.branches]])
        pairs_branch.append(orgs.branches)
    comp_course = np.concatenate(pairs_course).astype(np.int64)
    comp_branch = np.concatenate(pairs_branch).astype(np.int64)

    # Ids follow publication order, as an auto-increment id would.
    order = np.argsort(published, kind="stable")
    new_pos = np.empty_like(order)
    new_pos[order] = np.arange(order.size)
    comp_course = new_pos[comp_course]
    key = np.unique(comp_course * (orgs.kind.size + 1) + comp_branch)
    comp_course, comp_branch = key // (orgs.kind.size + 1), key % (orgs.kind.size + 1)
    compulsory_ptr = np.concatenate(
        [[0], np.cumsum(np.bincount(comp_course, minlength=cfg.n_courses))]
    ).astype(np.int64)

    def p(a: np.ndarray) -> np.ndarray:
        return a[order]

    title, description = _compose_text(
        rng, p(channel), p(term_a), p(term_b), p(duration), p(ugc), p(pool), p(published)
    )
    return _Courses(
        channel=p(channel).astype(np.int64),
        topic=p(topic),
        term_a=p(term_a),
        term_b=p(term_b),
        duration=p(duration),
        ugc=p(ugc),
        published=p(published).astype(np.int64),
        branch=p(branch).astype(np.int64),
        lecturer=p(lecturer),
        quality=p(quality),
        title=title,
        description=description,
        compulsory_ptr=compulsory_ptr,
        compulsory_branches=comp_branch.astype(np.int64),
        standing=p(standing),
    )


def _assign_lecturers(
    rng: np.random.Generator, topic: IntArray, channel: IntArray, lecturer_topic: IntArray
) -> IntArray:
    """A lecturer for each course: an expert in its topic where there is one (85 %), else
    any lecturer of its channel (every channel has one)."""
    out = np.full(topic.size, -1, dtype=np.int64)
    use_expert = rng.random(topic.size) < 0.85
    for t in range(len(_TOPIC_NAMES)):
        experts = np.flatnonzero(lecturer_topic == t)
        sel = np.flatnonzero((topic == t) & use_expert)
        if experts.size:
            out[sel] = experts[rng.integers(0, experts.size, sel.size)]
    lecturer_channel = _TOPIC_CHANNEL[lecturer_topic]
    for ch in range(len(CHANNELS)):
        pool = np.flatnonzero(lecturer_channel == ch)
        sel = np.flatnonzero((out < 0) & (channel == ch))
        out[sel] = pool[rng.integers(0, pool.size, sel.size)]
    return out


def _month_starts(period: _Period) -> IntArray:
    """First days of months in the period that leave two weeks to study (seconds)."""
    first = np.datetime64(period.start, "s").astype("datetime64[M]")
    last = np.datetime64(period.end, "s").astype("datetime64[M]")
    months = np.arange(first, last + 1).astype("datetime64[s]").astype(np.int64)
    return months[(months >= period.start) & (months <= period.end - 14 * _DAY)]


def _compose_text(
    rng: np.random.Generator,
    channel: IntArray,
    term_a: IntArray,
    term_b: IntArray,
    duration: FloatArray,
    ugc: np.ndarray,
    pool: np.ndarray,
    published: IntArray,
) -> tuple[np.ndarray, np.ndarray]:
    """Chinese titles and descriptions, vectorised over courses (loops over templates only)."""
    terms = np.array(_TERMS)
    a, b = terms[term_a], terms[term_b]
    n = channel.size
    title = np.empty(n, dtype=object)
    for ch, name in enumerate(CHANNELS):
        templates = _TITLE_TEMPLATES[name]
        sel = np.flatnonzero(channel == ch)
        pick = rng.integers(0, len(templates), sel.size)
        for k, template in enumerate(templates):
            rows = sel[pick == k]
            pre, rest = template.split("{a}")
            mid, suf = rest.split("{b}") if "{b}" in rest else (rest, None)
            text = np.strings.add(np.strings.add(pre, a[rows]), mid)
            if suf is not None:
                text = np.strings.add(np.strings.add(text, b[rows]), suf)
            title[rows] = text
    # Theory lectures come in numbered series.
    series = (channel == CHANNELS.index("理论学习")) & (rng.random(n) < 0.25)
    lecture_no = rng.integers(1, 13, n).astype(str)
    title[series] = np.strings.add(
        np.strings.add(title[series].astype(str), "（第"),
        np.strings.add(lecture_no[series], "讲）"),
    )
    month = np.datetime64("1970-01-01") + (published // _DAY).astype("timedelta64[D]")
    year_month = month.astype("datetime64[M]")
    year = (year_month.astype(np.int64) // 12 + 1970).astype(str)
    mon = (year_month.astype(np.int64) % 12 + 1).astype(str)
    title[pool] = np.strings.add(
        np.strings.add(np.strings.add(year[pool], "年"), np.strings.add(mon[pool], "月主题党日：")),
        a[pool],
    )
    branch_upload = ugc & (rng.random(n) < 0.5)
    title[branch_upload] = np.strings.add("【支部微课】", title[branch_upload].astype(str))
    title = title.astype(str)

    description = np.empty(n, dtype=object)
    for ch, name in enumerate(CHANNELS):
        sentences = np.array(_DESCRIPTION_SENTENCES[name])
        sel = np.flatnonzero(channel == ch)
        description[sel] = sentences[rng.integers(0, sentences.size, sel.size)]
    minutes = np.maximum(1, np.round(duration / 60.0)).astype(np.int64).astype(str)
    description = np.strings.add(
        np.strings.add(
            np.strings.add("本课程围绕“", a), np.strings.add("”展开，", description.astype(str))
        ),
        np.strings.add(np.strings.add("，时长约", minutes), "分钟。"),
    )
    return title, description.astype(str)


# ---- truth ----------------------------------------------------------------------------------


def _make_truth(
    cfg: SynthConfig,
    rng: np.random.Generator,
    orgs: _Orgs,
    members: _Members,
    courses: _Courses,
) -> Truth:
    d = cfg.n_factors
    n_orgs = orgs.kind.size
    # Members of a branch share part of their latent taste (branch culture). The scales give
    # member_factors @ course_factors a standard deviation of about 1.2, on a par with the
    # segment effects, so both individual and segment structure shape behaviour.
    branch_taste = rng.normal(0.0, 1.0 / math.sqrt(d), (n_orgs, d))
    own = rng.normal(0.0, 1.0 / math.sqrt(d), (cfg.n_members, d))
    member_factors = (0.55 * branch_taste[members.branch] + 0.85 * own) * 1.1
    course_factors = rng.normal(0.0, 1.0, (cfg.n_courses, d)) * 1.1

    segment_topic = rng.normal(0.0, 0.2, (len(OCCUPATIONS), len(_TOPIC_NAMES)))
    for occ, effects in _SEGMENT_TOPIC.items():
        for topic, effect in effects.items():
            segment_topic[OCCUPATIONS.index(occ), _TOPIC_NAMES.index(topic)] += effect

    age = (int(np.datetime64(cfg.start, "Y").astype(np.int64)) + 1970 - members.birth_year).astype(
        np.float64
    )
    duration_pref = (
        _SEGMENT_DURATION[members.occupation]
        + 0.015 * (age - 45.0)
        - 1.3 * members.commuter
        + rng.normal(0.0, 0.3, cfg.n_members)
    )
    duration_z = np.log(courses.duration / 60.0) - _LOG_MINUTES_CENTRE

    return Truth(
        member_ids=_format_ids("m", cfg.n_members, 6),
        course_ids=_format_ids("c", cfg.n_courses, 5),
        org_ids=_format_ids("o", n_orgs, 4),
        topic_names=np.array(_TOPIC_NAMES),
        member_factors=member_factors.astype(np.float32),
        course_factors=course_factors.astype(np.float32),
        course_bias=courses.quality.astype(np.float32),
        course_duration_z=duration_z.astype(np.float32),
        course_channel=courses.channel,
        course_topic=courses.topic,
        course_branch=courses.branch,
        member_segment=members.occupation.astype(np.int64),
        member_skill_topic=members.skill_topic,
        member_branch=members.branch,
        member_duration_pref=duration_pref.astype(np.float32),
        member_activity=members.activity,
        member_commuter=members.commuter,
        segment_channel=_SEGMENT_CHANNEL.copy(),
        segment_topic=segment_topic.astype(np.float32),
        org_committee=orgs.committee,
        skill_weight=1.0,
        local_branch_weight=1.5,
        local_committee_weight=0.7,
    )


# ---- behaviour ------------------------------------------------------------------------------


def _simulate_choices(
    cfg: SynthConfig,
    rng: np.random.Generator,
    truth: Truth,
    members: _Members,
    courses: _Courses,
    period: _Period,
    session_rate: float,
) -> tuple[_Sessions, tuple[IntArray, IntArray]]:
    """Organic study sessions and search intents, both drawn from each member's choice
    distribution ``p(i | u) ~ exp(utility(u, i)) * availability(i)``.

    A member has ``Poisson(activity * session_rate)`` sessions on distinct courses: a repeated
    draw is kept as a rewatch with probability ``cfg.rewatch`` and otherwise drawn again.

    Returns the organic sessions and the (member, target course) pairs of searches.
    """
    n_courses = cfg.n_courses
    n_sessions = rng.poisson(truth.member_activity * session_rate)
    n_sessions = np.minimum(n_sessions, n_courses // 3)
    n_searches = rng.poisson(truth.member_activity * cfg.searches_per_member)

    lo, hi = _session_window(courses, period)
    availability = (hi - lo) / period.seconds
    course_vec = truth.course_vectors()
    course_vec[:, -1] += np.log(availability).astype(np.float32)  # bias column

    active = np.flatnonzero(n_sessions + n_searches > 0)
    block = max(1, 4_000_000 // n_courses)
    group = 32  # columns per group of the two-level sampler
    sessions: list[tuple[IntArray, IntArray]] = []
    intents: list[tuple[IntArray, IntArray]] = []
    for start in range(0, active.size, block):
        m = active[start : start + block]
        weight = truth.member_vectors(m) @ course_vec.T
        truth._add_local(weight, m, np.arange(n_courses))
        weight -= weight.max(axis=1, keepdims=True)
        np.exp(weight, out=weight)
        group_cdf = np.add.reduceat(weight, np.arange(0, n_courses, group), axis=1)
        np.cumsum(group_cdf, axis=1, out=group_cdf)

        rows = np.repeat(np.arange(m.size), n_searches[m])
        intents.append((m[rows], _draw_rows(rng, weight, group_cdf, group, rows)))

        kept_rows = np.empty(0, dtype=np.int64)
        kept_courses = np.empty(0, dtype=np.int64)
        want = n_sessions[m]
        for _ in range(4):  # redraw repeats; a few rounds leave almost no shortfall
            rows = np.repeat(np.arange(m.size), want)
            if rows.size == 0:
                break
            drawn = _draw_rows(rng, weight, group_cdf, group, rows)
            key = np.concatenate([kept_rows, rows]) * n_courses + np.concatenate(
                [kept_courses, drawn]
            )
            order = np.argsort(key, kind="stable")
            repeat = np.zeros(key.size, dtype=bool)
            repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
            accept = ~repeat[kept_rows.size :] | (rng.random(rows.size) < cfg.rewatch)
            kept_rows = np.concatenate([kept_rows, rows[accept]])
            kept_courses = np.concatenate([kept_courses, drawn[accept]])
            want = np.bincount(rows[~accept], minlength=m.size)
        sessions.append((m[kept_rows], kept_courses))

    s_member, s_course = _concat_pairs(sessions)
    start_time = _place_in_window(
        rng, lo[s_course], hi[s_course], members.profile[s_member], period
    )
    organic = _Sessions(s_member, s_course, start_time, np.full(s_member.size, _ORGANIC))
    return organic, _concat_pairs(intents)


def _concat_pairs(pairs: list[tuple[IntArray, IntArray]]) -> tuple[IntArray, IntArray]:
    if not pairs:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    return (
        np.concatenate([p[0] for p in pairs]).astype(np.int64),
        np.concatenate([p[1] for p in pairs]).astype(np.int64),
    )


def _draw_rows(
    rng: np.random.Generator,
    weight: FloatArray,
    group_cdf: FloatArray,
    group: int,
    rows: IntArray,
) -> IntArray:
    """One column per entry of ``rows``, drawn with probability proportional to its weight.

    Two-level inverse-CDF sampling: a group of ``group`` adjacent columns from the per-row
    cumulative group sums, then a column within the group. This avoids a cumulative sum over
    the whole (members x courses) block, which would dominate the run time.

    Parameters
    ----------
    weight : ndarray, shape (b, n), float32
        Non-negative weights.
    group_cdf : ndarray, shape (b, ceil(n / group)), float32
        Row-wise cumulative sums of ``weight`` over consecutive groups of columns.
    rows : ndarray, shape (k,), int64

    Returns
    -------
    ndarray, shape (k,), int64
    """
    n = weight.shape[1]
    x = rng.random(rows.size) * group_cdf[rows, -1].astype(np.float64)
    grp = _row_searchsorted(group_cdf, rows, x)
    before = np.where(grp > 0, group_cdf[rows, np.maximum(grp - 1, 0)], 0.0).astype(np.float64)
    mass = group_cdf[rows, grp].astype(np.float64) - before
    share = np.clip((x - before) / np.maximum(mass, np.finfo(np.float64).tiny), 0.0, 1.0)
    cols = grp[:, None] * group + np.arange(group)
    seg = np.where(cols < n, weight[rows[:, None], np.minimum(cols, n - 1)], 0.0)
    seg_cdf = np.cumsum(seg, axis=1)
    within = (seg_cdf <= (share * seg_cdf[:, -1])[:, None]).sum(axis=1)
    last = np.minimum(group, n - grp * group) - 1
    return grp * group + np.minimum(within, last)


def _session_rate(cfg: SynthConfig, activity: FloatArray, n_compulsory: int) -> float:
    """Organic sessions per unit of activity that bring the mean number of events per member
    to about ``cfg.events_per_member``, given the compulsory sessions and the searches."""
    total_activity = float(activity.sum())
    if total_activity <= 0:
        return 0.0
    target = cfg.events_per_member * cfg.n_members
    search_events = total_activity * cfg.searches_per_member * _EVENTS_PER_SEARCH
    remaining = target - n_compulsory * _EVENTS_PER_COMPULSORY - search_events
    return max(0.0, remaining) / (_EVENTS_PER_ORGANIC * total_activity)


def _row_searchsorted(cdf: FloatArray, rows: IntArray, x: FloatArray) -> IntArray:
    """First column ``j`` with ``cdf[rows, j] > x``, for many rows at once.

    A vectorised binary search: one gather per halving step instead of a flattened copy of
    the whole (block x courses) matrix.
    """
    lo = np.zeros(rows.size, dtype=np.int64)
    hi = np.full(rows.size, cdf.shape[1] - 1, dtype=np.int64)
    while True:
        open_ = lo < hi
        if not open_.any():
            return lo
        mid = (lo + hi) // 2
        right = cdf[rows, mid] <= x
        lo = np.where(open_ & right, mid + 1, lo)
        hi = np.where(open_ & ~right, mid, hi)


def _session_window(courses: _Courses, period: _Period) -> tuple[IntArray, IntArray]:
    """Earliest and latest start of a study session per course (seconds): after publication,
    and early enough to finish (plus reactions) before the period ends."""
    lo = np.maximum(period.start, courses.published + 60)
    hi = period.end - courses.duration.astype(np.int64) - 2 * _HOUR
    return lo, np.maximum(hi, lo + 60)


def _place_in_window(
    rng: np.random.Generator, lo: IntArray, hi: IntArray, profile: IntArray, period: _Period
) -> IntArray:
    """A uniform day in ``[lo, hi]`` at an hour typical of the member's time profile."""
    t = lo + (rng.random(lo.size) * (hi - lo)).astype(np.int64)
    day = (t - period.start) // _DAY
    seconds = np.empty(lo.size, dtype=np.int64)
    u = rng.random(lo.size)
    jitter = rng.integers(0, _HOUR, lo.size)
    for p, peaks in enumerate(_HOUR_PEAKS):
        weight = np.full(24, 0.15)
        weight[[*peaks]] += list(peaks.values())
        weight[:6] = 0.02  # few people study at night
        cdf = np.cumsum(weight) / weight.sum()
        sel = profile == p
        hour = np.minimum(np.searchsorted(cdf, u[sel], side="right"), 23)
        seconds[sel] = hour * _HOUR + jitter[sel]
    return np.clip(period.start + day * _DAY + seconds, lo, hi)


def _simulate_compulsory(
    rng: np.random.Generator, members: _Members, courses: _Courses, period: _Period
) -> _Sessions:
    """Members study their branch's compulsory courses within a month of assignment; active
    members almost always, pocket members rarely, mobile members less."""
    n_orgs = int(max(members.branch.max(initial=0), courses.compulsory_branches.max(initial=0))) + 1
    course_of_pair = np.repeat(np.arange(courses.duration.size), np.diff(courses.compulsory_ptr))
    branch_of_pair = courses.compulsory_branches
    order = np.argsort(branch_of_pair, kind="stable")
    by_branch = course_of_pair[order]
    ptr = np.concatenate([[0], np.cumsum(np.bincount(branch_of_pair, minlength=n_orgs))])

    count = np.diff(ptr)[members.branch]
    member = np.repeat(np.arange(members.branch.size), count)
    within = np.arange(member.size) - np.repeat(np.cumsum(count) - count, count)
    course = by_branch[ptr[members.branch[member]] + within]

    activity = members.activity[member].astype(np.float64)
    p_do = 0.03 + 0.9 * (1.0 - np.exp(-3.0 * activity))
    p_do *= np.where(members.mobile[member], 0.7, 1.0)
    done = rng.random(member.size) < p_do
    member, course = member[done], course[done]

    lo, hi = _session_window(courses, period)
    lo, hi = lo[course], hi[course]
    deadline = np.where(courses.standing[course], 60, 30) * _DAY
    hi = np.minimum(hi, lo + deadline)
    start = _place_in_window(rng, lo, hi, members.profile[member], period)
    return _Sessions(member, course, start, np.full(member.size, _COMPULSORY))


@dataclass(frozen=True)
class _Searches:
    member: IntArray
    time: IntArray
    query: np.ndarray  # <U
    shown_ptr: IntArray
    shown: IntArray
    clicked_ptr: IntArray
    clicked: IntArray


def _simulate_searches(
    rng: np.random.Generator,
    truth: Truth,
    members: _Members,
    courses: _Courses,
    period: _Period,
    targets: tuple[IntArray, IntArray],
) -> tuple[_Searches, _Sessions]:
    """Searches for courses a member wants, ranked text matches, and position-biased clicks.

    A search starts from a target course drawn from the member's choice distribution; the
    query is one of its terms (or a short form), sometimes with a suffix such as "怎么开". The
    platform shows up to 20 published courses that match the query text, ranked by text
    relevance, popularity and noise. A shown course at 0-based position ``k`` is clicked with
    probability ``1 / log2(k + 2) * sigmoid(utility - 5.5 + 0.5 * relevance)``.
    """
    t_member, t_course = targets
    n = t_member.size
    lo = np.maximum(period.start, courses.published[t_course] + 60)
    hi = np.maximum(lo + 60, period.end - 3 * _HOUR)
    time = _place_in_window(rng, lo, hi, members.profile[t_member], period)
    order = np.lexsort((time, t_member))
    t_member, t_course, time = t_member[order], t_course[order], time[order]

    # Query keyword: the target's main term, its second term, or a short form of the main term.
    u = rng.random(n)
    keyword = np.where(u < 0.75, courses.term_a[t_course], courses.term_b[t_course])
    alias = _TERM_ALIAS[courses.term_a[t_course]]
    keyword = np.where((u < 0.2) & (alias >= 0), alias, keyword)
    keywords = np.array(_KEYWORDS)
    query = keywords[keyword].astype(object)
    with_suffix = rng.random(n) < 0.3
    channel = courses.channel[t_course]
    for ch, name in enumerate(CHANNELS):
        sel = np.flatnonzero(with_suffix & (channel == ch))
        suffixes = np.array([" " + s for s in _QUERY_SUFFIXES[name]])
        query[sel] = np.strings.add(
            keywords[keyword[sel]], suffixes[rng.integers(0, suffixes.size, sel.size)]
        )
    query = query.astype(str)

    popularity = (courses.quality - courses.quality.mean()) / (courses.quality.std() + 1e-9)
    relevance = _keyword_relevance(courses, np.unique(keyword), popularity)
    n_show = rng.integers(_MIN_SHOWN, _MAX_SHOWN + 1, n)
    shown = np.full((n, _MAX_SHOWN), -1, dtype=np.int64)
    shown_rel = np.zeros((n, _MAX_SHOWN))
    for kw in np.unique(keyword):
        rows_all = np.flatnonzero(keyword == kw)
        cand, rel = relevance[int(kw)]
        if cand.size == 0:
            continue
        step = max(1, 2_000_000 // max(cand.size, 1))
        for s in range(0, rows_all.size, step):
            rows = rows_all[s : s + step]
            score = (
                rel[None, :]
                + _POPULARITY_WEIGHT * popularity[cand][None, :]
                + rng.gumbel(0.0, 0.7, (rows.size, cand.size))
            )
            score[courses.published[cand][None, :] > time[rows, None]] = -np.inf
            k = min(_MAX_SHOWN, cand.size)
            top = (
                np.argpartition(-score, k - 1, axis=1)[:, :k]
                if cand.size > k
                else (np.broadcast_to(np.arange(cand.size), (rows.size, cand.size)).copy())
            )
            top_score = np.take_along_axis(score, top, axis=1)
            rank = np.argsort(-top_score, axis=1, kind="stable")
            top = np.take_along_axis(top, rank, axis=1)
            top_score = np.take_along_axis(top_score, rank, axis=1)
            valid = np.isfinite(top_score) & (np.arange(k)[None, :] < n_show[rows, None])
            shown[rows, :k] = np.where(valid, cand[top], -1)
            shown_rel[rows, :k] = np.where(valid, rel[top], 0.0)

    s_idx, pos = np.nonzero(shown >= 0)  # row-major: by search, then position
    s_course = shown[s_idx, pos]
    utility = truth.pair_utility(t_member[s_idx], s_course)
    examine = 1.0 / np.log2(pos + 2.0)
    attract = _sigmoid(utility - _CLICK_THRESHOLD + 0.5 * shown_rel[s_idx, pos])
    click = rng.random(s_idx.size) < examine * attract

    shown_ptr = np.concatenate([[0], np.cumsum(np.bincount(s_idx, minlength=n))]).astype(np.int64)
    clicked_ptr = np.concatenate([[0], np.cumsum(np.bincount(s_idx[click], minlength=n))]).astype(
        np.int64
    )
    searches = _Searches(t_member, time, query, shown_ptr, s_course, clicked_ptr, s_course[click])

    # A click opens the course a few seconds later; later positions are reached later.
    c_search, c_pos = s_idx[click], pos[click]
    c_member, c_course = t_member[c_search], s_course[click]
    c_start = time[c_search] + 10 + 20 * c_pos
    return searches, _Sessions(c_member, c_course, c_start, np.full(c_member.size, _SEARCH))


def _keyword_relevance(
    courses: _Courses, keywords: IntArray, popularity: FloatArray
) -> dict[int, tuple[IntArray, FloatArray]]:
    """Courses a keyword retrieves, with their text relevance.

    Relevance is 2 for a tag hit, 1 for a title hit and 0.5 for a course on the keyword's
    topic (as a search engine that segments words and expands synonyms would return). Like
    a search engine's first stage, only the ``_RETRIEVED`` best matches by relevance plus
    popularity go on to the (noisy) final ranking.

    Returns ``{keyword: (course indices, relevance)}``.
    """
    terms = np.array(_TERMS)
    topics = np.array(_TOPIC_NAMES)
    out: dict[int, tuple[IntArray, FloatArray]] = {}
    for kw in keywords.tolist():
        word = _KEYWORDS[kw]
        in_term = np.strings.find(terms, word) >= 0
        in_topic = np.strings.find(topics, word) >= 0
        tag_hit = in_term[courses.term_a] | in_term[courses.term_b] | in_topic[courses.topic]
        title_hit = np.strings.find(courses.title, word) >= 0
        same_topic = np.isin(courses.topic, _TERM_TOPIC[in_term])
        rel = 2.0 * tag_hit + 1.0 * title_hit + 0.5 * same_topic
        cand = np.flatnonzero(rel > 0)
        static = rel[cand] + _POPULARITY_WEIGHT * popularity[cand]
        cand = cand[np.argsort(-static, kind="stable")[:_RETRIEVED]]
        out[kw] = (cand, rel[cand])
    return out


def _concat_sessions(parts: list[_Sessions]) -> _Sessions:
    return _Sessions(
        *(
            np.concatenate([getattr(p, f.name) for p in parts]).astype(np.int64)
            for f in fields(_Sessions)
        )
    )


@dataclass(frozen=True)
class _Events:
    member: IntArray
    course: IntArray
    event: IntArray  # index into EVENT_TYPES
    time: IntArray  # seconds
    watch: FloatArray


def _simulate_funnel(
    rng: np.random.Generator,
    truth: Truth,
    members: _Members,
    courses: _Courses,
    sessions: _Sessions,
    period: _Period,
) -> _Events:
    """Turn study sessions into events.

    Every session starts with ``view``; the fraction watched grows with utility (compulsory
    study is mostly finished regardless); ``progress`` is logged after a minute of watching,
    ``complete`` when the course is finished; likes, favorites, shares and comments follow
    good sessions; members with the habit check in (学习打卡) after completing, and nearly
    always after compulsory study; a session opened from search is preceded by ``search_click``.
    """
    m, c, t0, kind = sessions.member, sessions.course, sessions.start, sessions.kind
    n = m.size
    utility = truth.pair_utility(m, c).astype(np.float64)
    centre = float(np.median(utility[kind != _COMPULSORY])) if (kind != _COMPULSORY).any() else 0.0
    gap = utility - centre
    duration = courses.duration[c]

    fraction = _sigmoid(1.6 * gap + rng.normal(0.0, 0.9, n))
    compulsory = kind == _COMPULSORY
    fraction = np.where(
        compulsory, np.where(rng.random(n) < 0.85, 1.0, 0.2 + 0.7 * rng.random(n)), fraction
    )
    complete = fraction >= 0.85
    watched = np.where(complete, duration, np.clip(np.round(fraction * duration), 10.0, duration))

    ev = EVENT_TYPES.index
    parts: list[tuple[np.ndarray, int, IntArray, FloatArray]] = []

    def emit(
        mask: np.ndarray, event: str, offset: IntArray | int, watch: FloatArray | float
    ) -> None:
        idx = np.flatnonzero(mask)
        off = offset[idx] if isinstance(offset, np.ndarray) else np.full(idx.size, offset)
        w = watch[idx] if isinstance(watch, np.ndarray) else np.full(idx.size, watch)
        parts.append((idx, ev(event), t0[idx] + off.astype(np.int64), w.astype(np.float64)))

    everyone = np.ones(n, dtype=bool)
    emit(kind == _SEARCH, "search_click", -5, 0.0)
    emit(everyone, "view", 0, 0.0)
    half = np.floor(duration / 2.0)
    progress_watch = np.where(complete, half, watched)
    emit(complete | (watched >= 60.0), "progress", progress_watch.astype(np.int64), progress_watch)
    emit(complete, "complete", duration.astype(np.int64), duration)
    end_of_session = watched.astype(np.int64)
    engaged = fraction >= 0.5
    for event, shift, delay in (
        ("like", 2.0, 5),
        ("favorite", 3.0, 10),
        ("share", 3.6, 15),
        ("comment", 4.2, 25),
    ):
        p = _sigmoid(1.5 * gap - shift)
        emit(engaged & (rng.random(n) < p), event, end_of_session + delay, watched)
    checkin_p = np.where(compulsory, 0.8, members.checkin[m])
    emit(complete & (rng.random(n) < checkin_p), "checkin", end_of_session + 30, watched)

    idx = np.concatenate([p[0] for p in parts])
    event = np.concatenate([np.full(p[0].size, p[1], dtype=np.int64) for p in parts])
    time = np.concatenate([p[2] for p in parts])
    watch = np.concatenate([p[3] for p in parts])
    time = np.clip(time, period.start, period.end - 1)
    member, course = m[idx], c[idx]
    order = _event_order(member, time - period.start, event, course)
    return _Events(member[order], course[order], event[order], time[order], watch[order])


def _event_order(member: IntArray, time: IntArray, event: IntArray, course: IntArray) -> IntArray:
    """Stable order by member, time, event, course (all non-negative ints).

    Packs the keys into one int64 when they fit (one sort instead of four passes of a
    lexsort, a few times faster at millions of events).
    """
    keys = (member, time, event, course)
    bits = [int(k.max(initial=0)).bit_length() for k in keys]
    if sum(bits) > 63:
        return np.lexsort(keys[::-1])
    packed = np.zeros(member.size, dtype=np.int64)
    for key, width in zip(keys, bits, strict=True):
        packed = (packed << width) | key.astype(np.int64)
    return np.argsort(packed, kind="stable")


def _sigmoid(x: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-x))


def _categorical(rng: np.random.Generator, probs: FloatArray) -> IntArray:
    """One draw per row of a (n, k) matrix of probabilities; int64 of shape (n,)."""
    cdf = np.cumsum(probs, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(probs.shape[0])
    return np.minimum((cdf < u[:, None]).sum(axis=1), probs.shape[1] - 1).astype(np.int64)


# ---- tables ---------------------------------------------------------------------------------


def _format_ids(prefix: str, n: int, width: int) -> np.ndarray:
    """``prefix`` + zero-padded numbers; the width grows with ``n`` so ids sort numerically."""
    width = max(width, len(str(max(n - 1, 0))))
    return np.strings.add(prefix, np.strings.zfill(np.arange(n).astype(str), width))


@dataclass(frozen=True)
class _Ids:
    member: pa.Array
    course: pa.Array
    org: pa.Array
    lecturer: pa.Array

    @classmethod
    def make(cls, cfg: SynthConfig, n_orgs: int, n_lecturers: int) -> _Ids:
        return cls(
            pa.array(_format_ids("m", cfg.n_members, 6)),
            pa.array(_format_ids("c", cfg.n_courses, 5)),
            pa.array(_format_ids("o", n_orgs, 4)),
            pa.array(_format_ids("l", n_lecturers, 4)),
        )


def _take(ids: pa.Array, idx: IntArray) -> pa.Array:
    """Ids at ``idx`` (int), null where ``idx`` is -1."""
    idx = np.asarray(idx, dtype=np.int64)
    return pc.take(ids, pa.array(idx, mask=idx < 0))


def _list_array(ptr: IntArray, values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(ptr.astype(np.int32)), values)


def _seconds_to_ts(seconds: IntArray) -> pa.Array:
    return pa.array(seconds.astype(np.int64) * 1_000_000_000, type=_TS)


def _events_table(ids: _Ids, ev: _Events) -> pa.Table:
    names = pa.array(list(EVENT_TYPES))
    return pa.table(
        [
            _take(ids.member, ev.member),
            _take(ids.course, ev.course),
            pc.take(names, pa.array(ev.event)),
            _seconds_to_ts(ev.time),
            pa.array(ev.watch, type=pa.float64()),
        ],
        schema=_ARROW_SCHEMAS["events"],
    )


def _courses_table(ids: _Ids, courses: _Courses) -> pa.Table:
    n = courses.duration.size
    terms = pa.array(list(_TERMS))
    topics = pa.array(list(_TOPIC_NAMES))
    # Tags: [topic, main term, second term]
    tag_values = pa.concat_arrays(
        [
            pc.take(topics, pa.array(courses.topic)),
            pc.take(terms, pa.array(courses.term_a)),
            pc.take(terms, pa.array(courses.term_b)),
        ]
    )
    interleave = np.arange(3 * n).reshape(3, n).T.ravel()
    tags = _list_array(np.arange(0, 3 * n + 1, 3), pc.take(tag_values, pa.array(interleave)))
    return pa.table(
        [
            ids.course,
            pa.array(courses.title),
            pc.take(pa.array(list(CHANNELS)), pa.array(courses.channel)),
            tags,
            pa.array(courses.duration, type=pa.float64()),
            _take(ids.lecturer, courses.lecturer),
            pc.take(pa.array(list(SOURCES)), pa.array(courses.ugc.astype(np.int64))),
            _seconds_to_ts(courses.published),
            _take(ids.org, courses.branch),
            pa.array(courses.description),
            _list_array(courses.compulsory_ptr, _take(ids.org, courses.compulsory_branches)),
        ],
        schema=_ARROW_SCHEMAS["courses"],
    )


def _members_table(ids: _Ids, members: _Members) -> pa.Table:
    return pa.table(
        [
            ids.member,
            _take(ids.org, members.branch),
            pc.take(pa.array(["male", "female"]), pa.array(members.female.astype(np.int64))),
            pa.array(members.birth_year, type=pa.int64()),
            pc.take(pa.array(list(OCCUPATIONS)), pa.array(members.occupation)),
            _list_array(
                members.skill_ptr, pc.take(pa.array(list(_TERMS)), pa.array(members.skill_terms))
            ),
            pc.take(pa.array(list(_DISTRICTS)), pa.array(members.district)),
            _seconds_to_ts(members.joined_at),
            pa.array(members.mobile),
        ],
        schema=_ARROW_SCHEMAS["members"],
    )


def _orgs_table(ids: _Ids, orgs: _Orgs) -> pa.Table:
    return pa.table(
        [
            ids.org,
            _take(ids.org, orgs.parent),
            pc.take(pa.array(list(ORG_KINDS)), pa.array(orgs.kind)),
            pc.take(pa.array(list(_INDUSTRIES)), pa.array(orgs.industry)),
            pc.take(pa.array(list(_DISTRICTS)), pa.array(orgs.district)),
        ],
        schema=_ARROW_SCHEMAS["orgs"],
    )


def _searches_table(ids: _Ids, s: _Searches) -> pa.Table:
    return pa.table(
        [
            _take(ids.member, s.member),
            pa.array(s.query),
            _seconds_to_ts(s.time),
            _list_array(s.shown_ptr, _take(ids.course, s.shown)),
            _list_array(s.clicked_ptr, _take(ids.course, s.clicked)),
        ],
        schema=_ARROW_SCHEMAS["searches"],
    )


def _lecturers_table(ids: _Ids, channel: IntArray, topic: IntArray) -> pa.Table:
    n = channel.size
    return pa.table(
        [
            ids.lecturer,
            pc.take(pa.array(list(CHANNELS)), pa.array(channel)),
            _list_array(np.arange(n + 1), pc.take(pa.array(list(_TOPIC_NAMES)), pa.array(topic))),
        ],
        schema=_ARROW_SCHEMAS["lecturers"],
    )
