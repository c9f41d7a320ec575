"""The words and places the simulator composes its platform from.

Channel -> topic -> terms: titles, tags, descriptions, member skills and search queries are
all composed from these terms, so text features and search carry real signal. Terms are
numbered in ``TOPICS`` order (``TERMS``); the other arrays index them.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from recommend.schema import CHANNELS

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

QUERY_SUFFIXES: Final[dict[str, tuple[str, ...]]] = {
    "党员教育": ("怎么开", "怎么做", "学习", "心得体会", "微党课"),
    "理论学习": ("解读", "学习", "讲座", "心得体会"),
    "技能培训": ("入门", "教程", "视频", "技巧"),
    "生活百科": ("常识", "怎么办", "知识", "视频"),
}

# Title templates per channel; "{a}" is the course's main term, "{b}" a second term.
TITLE_TEMPLATES: Final[dict[str, tuple[str, ...]]] = {
    "党员教育": ("{a}专题：{b}", "读懂{a}", "{a}实务指南", "{a}微党课", "{a}｜{b}",
                 "身边的{a}故事", "{a}专题：怎样做好{b}"),
    "理论学习": ("{a}专题讲座：{b}", "深入学习{a}", "{a}十讲", "{a}与{b}",
                 "学习{a}的几点体会", "{a}理论解读"),
    "技能培训": ("{a}入门", "{a}实操：{b}", "三分钟学会{a}", "{a}技巧精讲", "{a}从零开始",
                 "{a}实用技能课"),
    "生活百科": ("{a}小常识", "{a}，你需要知道的几件事", "警惕！{a}", "{a}指南", "{a}与{b}",
                 "一分钟了解{a}"),
}  # fmt: skip

DESCRIPTION_SENTENCES: Final[dict[str, tuple[str, ...]]] = {
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
DISTRICTS: Final = (
    "上城区", "拱墅区", "西湖区", "滨江区", "萧山区", "余杭区", "临平区", "钱塘区",
    "富阳区", "临安区", "桐庐县", "淳安县", "建德市",
)  # fmt: skip

# Org industries (the occupations of their members follow from them, see members.py).
INDUSTRIES: Final = ("党政机关", "农村", "城市社区", "国有企业", "两新组织", "教育", "卫生健康")
INDUSTRY_WEIGHT: Final = np.array([0.12, 0.25, 0.2, 0.13, 0.18, 0.06, 0.06])

# Derived lookups: topic names, each topic's channel, all terms in order, the topic of each
# term, where each topic's terms start, the words queries use (terms, then short forms not
# already terms) and the short form of each term (index into KEYWORDS, -1: none).
TOPIC_NAMES: Final = tuple(t[1] for t in TOPICS)
TOPIC_CHANNEL: Final = np.array([CHANNELS.index(t[0]) for t in TOPICS], dtype=np.int64)
TERMS: Final = tuple(term for t in TOPICS for term in t[2])
TERM_TOPIC: Final = np.array([i for i, t in enumerate(TOPICS) for _ in t[2]], dtype=np.int64)
TOPIC_TERM_START: Final = np.concatenate([[0], np.cumsum([len(t[2]) for t in TOPICS])])
KEYWORDS: Final = TERMS + tuple(sorted(set(_ALIASES.values()) - set(TERMS)))
TERM_ALIAS: Final = np.array(
    [KEYWORDS.index(_ALIASES[t]) if t in _ALIASES else -1 for t in TERMS], dtype=np.int64
)
