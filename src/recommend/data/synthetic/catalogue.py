"""Lecturers and courses: channels, topics, durations, publication, quality, compulsory
assignments, and Chinese titles and descriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from scipy.special import ndtri

from recommend.data.synthetic.config import SynthConfig
from recommend.data.synthetic.orgs import Orgs
from recommend.data.synthetic.sampling import categorical
from recommend.data.synthetic.timing import DAY, HOUR, Period, month_starts
from recommend.data.synthetic.vocabulary import (
    DESCRIPTION_SENTENCES,
    TERMS,
    TITLE_TEMPLATES,
    TOPIC_CHANNEL,
    TOPIC_NAMES,
    TOPIC_TERM_START,
)
from recommend.schema import CHANNELS

FloatArray = np.ndarray
IntArray = np.ndarray

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


@dataclass(frozen=True)
class Courses:
    """The simulated courses, indexed by course position (ids follow publication order)."""

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
class Lecturers:
    """The simulated lecturers, indexed by lecturer position.

    ``channel`` and ``topic`` (int64) are their home channel and expertise topic,
    ``quality`` (float64) shifts the quality of their courses.
    """

    channel: IntArray
    topic: IntArray
    quality: FloatArray


def simulate_lecturers(cfg: SynthConfig, rng: np.random.Generator) -> Lecturers:
    """Lecturers: home channel, expertise topic and quality, each channel with at least
    one lecturer."""
    n = max(4, cfg.n_courses // 25)
    channel = rng.choice(len(CHANNELS), n, p=_CHANNEL_SHARE)
    # Each channel has at least one lecturer, so every official course can get one.
    channel[: len(CHANNELS)] = np.arange(len(CHANNELS))
    topics_of = [np.flatnonzero(ch == TOPIC_CHANNEL) for ch in range(len(CHANNELS))]
    topic = np.zeros(n, dtype=np.int64)
    for ch, options in enumerate(topics_of):
        sel = np.flatnonzero(channel == ch)
        topic[sel] = options[rng.integers(0, options.size, sel.size)]
    quality = rng.normal(0.0, 0.4, n)
    return Lecturers(channel.astype(np.int64), topic, quality)


@dataclass(frozen=True)
class _Layout:
    """What each course position holds before courses are put in publication order: the
    monthly themed-day material (``pool``) first, then branch uploads (``ugc``), then
    official courses."""

    n: int
    months: IntArray  # first days of the months that get themed-day material (seconds)
    per_month: int  # themed-day courses per month
    pool: np.ndarray
    ugc: np.ndarray


def simulate_courses(
    cfg: SynthConfig,
    rng: np.random.Generator,
    orgs: Orgs,
    period: Period,
    lecturers: Lecturers,
) -> Courses:
    """The course catalogue: official courses, branch uploads (UGC) and the monthly
    compulsory 主题党日 material, with their texts and compulsory assignments."""
    layout = _layout(cfg, orgs, period)
    channel, topic = _channels_and_topics(rng, layout)
    term_a, term_b = _terms(rng, topic, layout)
    duration = _durations(rng, channel, layout)
    published = _publication(rng, period, layout)
    branch = np.where(layout.ugc, orgs.branches[rng.integers(0, orgs.branches.size, layout.n)], -1)
    lecturer = _assign_lecturers(rng, topic, channel, lecturers.topic)
    lecturer[layout.ugc] = -1
    quality = _quality(cfg, rng, lecturer, lecturers.quality, layout)
    comp_course, comp_branch, standing = _compulsory(rng, orgs, period, layout, channel, published)

    # Ids follow publication order, as an auto-increment id would.
    order = np.argsort(published, kind="stable")
    compulsory_ptr, comp_branch = _compulsory_lists(order, comp_course, comp_branch, orgs)

    def p(a: np.ndarray) -> np.ndarray:
        return a[order]

    title, description = _compose_text(
        rng, p(channel), p(term_a), p(term_b), p(duration), p(layout.ugc), p(layout.pool),
        p(published),
    )  # fmt: skip
    return Courses(
        channel=p(channel).astype(np.int64),
        topic=p(topic),
        term_a=p(term_a),
        term_b=p(term_b),
        duration=p(duration),
        ugc=p(layout.ugc),
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


def _layout(cfg: SynthConfig, orgs: Orgs, period: Period) -> _Layout:
    """How many themed-day courses each month gets and which positions are UGC."""
    months = month_starts(period)
    per_month = int(np.clip(round(orgs.branches.size / 12), 2, 40))
    per_month = max(1, min(per_month, cfg.n_courses // (4 * max(1, months.size))))
    n_pool = per_month * months.size
    n_regular = cfg.n_courses - n_pool
    n_ugc = round(cfg.ugc_share * n_regular)
    ugc = np.zeros(cfg.n_courses, dtype=bool)
    ugc[n_pool : n_pool + n_ugc] = True
    pool = np.arange(cfg.n_courses) < n_pool
    return _Layout(cfg.n_courses, months, per_month, pool, ugc)


def _channels_and_topics(rng: np.random.Generator, layout: _Layout) -> tuple[IntArray, IntArray]:
    """Channel and topic of every course; every topic has an official course when the
    catalogue is large enough."""
    n, ugc, pool = layout.n, layout.ugc, layout.pool
    channel = np.where(
        ugc,
        rng.choice(len(CHANNELS), n, p=_UGC_CHANNEL_SHARE),
        rng.choice(len(CHANNELS), n, p=_CHANNEL_SHARE),
    )
    channel[pool] = CHANNELS.index("党员教育")
    # Topic within the channel, with uneven topic sizes.
    topic = np.empty(n, dtype=np.int64)
    for ch in range(len(CHANNELS)):
        options = np.flatnonzero(ch == TOPIC_CHANNEL)
        sel = np.flatnonzero(channel == ch)
        topic[sel] = options[
            rng.choice(options.size, sel.size, p=rng.dirichlet(np.full(options.size, 4.0)))
        ]
    # Every topic has at least one official course, even in a small catalogue.
    official = np.flatnonzero(~ugc & ~pool)
    if official.size >= len(TOPIC_NAMES):
        first = official[: len(TOPIC_NAMES)]
        topic[first] = np.arange(len(TOPIC_NAMES))
        channel[first] = TOPIC_CHANNEL
    return channel, topic


def _terms(rng: np.random.Generator, topic: IntArray, layout: _Layout) -> tuple[IntArray, IntArray]:
    """Main and second term of every course, from its topic; themed-day material is about
    主题党日."""
    # Zipf-like within a topic, so some terms (and queries) are much more common.
    size = np.diff(TOPIC_TERM_START)[topic]
    rank_a = np.minimum(np.floor(size * rng.random(layout.n) ** 1.6), size - 1).astype(np.int64)
    term_a = TOPIC_TERM_START[topic] + rank_a
    rank_b = (rank_a + 1 + rng.integers(0, np.maximum(size - 1, 1))) % size
    term_b = TOPIC_TERM_START[topic] + rank_b
    theme_day = TERMS.index("主题党日")
    term_b[layout.pool] = theme_day
    term_a[layout.pool & (term_a == theme_day)] = TERMS.index("三会一课")
    return term_a, term_b


def _durations(rng: np.random.Generator, channel: IntArray, layout: _Layout) -> FloatArray:
    """Durations in whole seconds, from the duration band mix of each channel (UGC: its
    own mix, mostly short)."""
    band = np.where(layout.ugc[:, None], _UGC_DURATION[None, :], _CHANNEL_DURATION[channel])
    band = categorical(rng, band)
    band[layout.pool] = 2  # themed-day material is a 20-45 minute lesson
    lo, hi = np.log(_DURATION_BANDS[band, 0]), np.log(_DURATION_BANDS[band, 1])
    seconds: FloatArray = np.round(np.exp(lo + rng.random(layout.n) * (hi - lo)) * 60.0)
    return seconds


def _publication(rng: np.random.Generator, period: Period, layout: _Layout) -> IntArray:
    """Publication times (seconds): most official courses are a back catalogue, most UGC
    arrives during the period (so it is cold); nothing is published in the last day;
    themed-day material on the first day of its month."""
    n, ugc = layout.n, layout.ugc
    last = period.end - DAY
    backlog = np.where(ugc, rng.random(n) < 0.25, rng.random(n) < 0.75)
    span_before = np.where(ugc, 365, 3 * 365) * DAY
    published = np.where(
        backlog,
        period.start - 1 - (rng.random(n) * span_before).astype(np.int64),
        period.start + (rng.random(n) * (last - period.start)).astype(np.int64),
    )
    month_of_pool = np.repeat(np.arange(layout.months.size), layout.per_month)
    published[layout.pool] = layout.months[month_of_pool] + 8 * HOUR
    return published


def _quality(
    cfg: SynthConfig,
    rng: np.random.Generator,
    lecturer: IntArray,
    lecturer_quality: FloatArray,
    layout: _Layout,
) -> FloatArray:
    """Power-law (``popularity_exponent``) and log-normal (``popularity_spread``) popularity
    over a random order of courses, shifted by lecturer quality;
    branch uploads are rougher on average, themed-day material better."""
    rank = rng.permutation(layout.n) + 1
    quality = -cfg.popularity_exponent * np.log(rank)
    if cfg.popularity_spread > 0:
        # Normal quantiles over the same order: a log-normal popularity curve, which falls
        # faster below the head than a power law (as real enrolments do).
        quality = quality + cfg.popularity_spread * ndtri(1.0 - (rank - 0.5) / layout.n)
    quality = quality - quality.mean()
    quality = quality + np.where(lecturer >= 0, lecturer_quality[np.maximum(lecturer, 0)], 0.0)
    out: FloatArray = quality - 0.3 * layout.ugc + 0.3 * layout.pool
    return out


def _compulsory(
    rng: np.random.Generator,
    orgs: Orgs,
    period: Period,
    layout: _Layout,
    channel: IntArray,
    published: IntArray,
) -> tuple[IntArray, IntArray, np.ndarray]:
    """Compulsory (course, branch) pairs and the courses compulsory from the start.

    Each branch picks one themed-day course per month, and each committee makes one
    party-education course from the back catalogue compulsory for all its branches from
    the start of the period.
    """
    n_branches, per_month = orgs.branches.size, layout.per_month
    pairs_course = [
        np.flatnonzero(layout.pool)[month * per_month + rng.integers(0, per_month, n_branches)]
        for month in range(layout.months.size)
    ]
    pairs_branch = [orgs.branches for _ in range(layout.months.size)]
    standing = np.zeros(layout.n, dtype=bool)
    candidates = np.flatnonzero(
        (channel == CHANNELS.index("党员教育"))
        & ~layout.ugc
        & ~layout.pool
        & (published < period.start)
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
    return comp_course, comp_branch, standing


def _compulsory_lists(
    order: IntArray, comp_course: IntArray, comp_branch: IntArray, orgs: Orgs
) -> tuple[IntArray, IntArray]:
    """Compulsory pairs as CSR lists over courses in publication ``order``: pointers
    (n_courses + 1,) and the branches, sorted and without repeats."""
    new_pos = np.empty_like(order)
    new_pos[order] = np.arange(order.size)
    comp_course = new_pos[comp_course]
    key = np.unique(comp_course * (orgs.kind.size + 1) + comp_branch)
    comp_course, comp_branch = key // (orgs.kind.size + 1), key % (orgs.kind.size + 1)
    compulsory_ptr = np.concatenate(
        [[0], np.cumsum(np.bincount(comp_course, minlength=order.size))]
    ).astype(np.int64)
    return compulsory_ptr, comp_branch


def _assign_lecturers(
    rng: np.random.Generator, topic: IntArray, channel: IntArray, lecturer_topic: IntArray
) -> IntArray:
    """A lecturer for each course: an expert in its topic where there is one (85 %), else
    any lecturer of its channel (every channel has one)."""
    out = np.full(topic.size, -1, dtype=np.int64)
    use_expert = rng.random(topic.size) < 0.85
    for t in range(len(TOPIC_NAMES)):
        experts = np.flatnonzero(lecturer_topic == t)
        sel = np.flatnonzero((topic == t) & use_expert)
        if experts.size:
            out[sel] = experts[rng.integers(0, experts.size, sel.size)]
    lecturer_channel = TOPIC_CHANNEL[lecturer_topic]
    for ch in range(len(CHANNELS)):
        pool = np.flatnonzero(lecturer_channel == ch)
        sel = np.flatnonzero((out < 0) & (channel == ch))
        out[sel] = pool[rng.integers(0, pool.size, sel.size)]
    return out


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
    terms = np.array(TERMS)
    a, b = terms[term_a], terms[term_b]
    n = channel.size
    title = np.empty(n, dtype=object)
    for ch, name in enumerate(CHANNELS):
        templates = TITLE_TEMPLATES[name]
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
    month = np.datetime64("1970-01-01") + (published // DAY).astype("timedelta64[D]")
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
        sentences = np.array(DESCRIPTION_SENTENCES[name])
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
