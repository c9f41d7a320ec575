"""Lecturers and courses: channels, topics, durations, publication, quality, compulsory
assignments, and Chinese titles and descriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

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


def simulate_lecturers(
    cfg: SynthConfig, rng: np.random.Generator
) -> tuple[IntArray, IntArray, FloatArray]:
    """Lecturers: home channel, expertise topic and quality (a shift of their courses'
    quality), each channel with at least one lecturer."""
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
    return channel.astype(np.int64), topic, quality


def simulate_courses(
    cfg: SynthConfig,
    rng: np.random.Generator,
    orgs: Orgs,
    period: Period,
    lecturer_topic: IntArray,
    lecturer_quality: FloatArray,
) -> Courses:
    """The course catalogue: official courses, branch uploads (UGC) and the monthly
    compulsory 主题党日 material, with their texts and compulsory assignments."""
    months = month_starts(period)
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
    # Terms: Zipf-like within a topic, so some terms (and queries) are much more common.
    size = np.diff(TOPIC_TERM_START)[topic]
    rank_a = np.minimum(np.floor(size * rng.random(cfg.n_courses) ** 1.6), size - 1).astype(
        np.int64
    )
    term_a = TOPIC_TERM_START[topic] + rank_a
    rank_b = (rank_a + 1 + rng.integers(0, np.maximum(size - 1, 1))) % size
    term_b = TOPIC_TERM_START[topic] + rank_b
    theme_day = TERMS.index("主题党日")
    term_b[pool] = theme_day
    term_a[pool & (term_a == theme_day)] = TERMS.index("三会一课")

    band = np.where(ugc[:, None], _UGC_DURATION[None, :], _CHANNEL_DURATION[channel])
    band = categorical(rng, band)
    band[pool] = 2  # themed-day material is a 20-45 minute lesson
    lo, hi = np.log(_DURATION_BANDS[band, 0]), np.log(_DURATION_BANDS[band, 1])
    duration = np.round(np.exp(lo + rng.random(cfg.n_courses) * (hi - lo)) * 60.0)

    # Publication: most official courses are a back catalogue, most UGC arrives during the
    # period (so it is cold); nothing is published in the last day.
    last = period.end - DAY
    backlog = np.where(ugc, rng.random(cfg.n_courses) < 0.25, rng.random(cfg.n_courses) < 0.75)
    span_before = np.where(ugc, 365, 3 * 365) * DAY
    published = np.where(
        backlog,
        period.start - 1 - (rng.random(cfg.n_courses) * span_before).astype(np.int64),
        period.start + (rng.random(cfg.n_courses) * (last - period.start)).astype(np.int64),
    )
    month_of_pool = np.repeat(np.arange(months.size), per_month)
    published[pool] = months[month_of_pool] + 8 * HOUR

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
    return Courses(
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
