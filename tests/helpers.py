"""Hand-made data and stand-in models that several test files share.

Test modules import it as ``from helpers import ...`` (``tests/conftest.py`` puts this
folder on ``sys.path``; pytest runs with ``--import-mode=importlib``). The session fixtures
built from these (``tiny_dataset``, ``tiny_model``, ``branches_dataset``...) live in
``conftest.py``.

The tiny catalogue
------------------
16 courses ``c00`` .. ``c15``; channels come in runs of four (``c00``-``c03`` are
``CHANNELS[0]``, ``c04``-``c07`` ``CHANNELS[1]``...), lecturers cycle (``L0`` gives ``c00,
c04, c08, c12``), so channel and lecturer rankings are told apart. Course ``c<j>`` lasts
``j + 1`` minutes (``c14``: unknown), every course is published on 2024-01-01 except
``c15`` (2025-06-01, after the data). Branch ``b1`` made ``c09`` and ``c10`` compulsory,
branch ``b2`` ``c10`` and ``c13``.

Members ``m0`` (b1), ``m1`` (b1), ``m2`` (b2), ``m3`` (b2), ``m4`` (b1, no events).
Histories: m0 ``c00`` (completed), ``c05``; m1 ``c02``, ``c03``; m2 ``c10`` (completed),
``c04``; m3 ``c06``, ``c07``. The data time is 2024-03-10.

:class:`FixedFactors` scores every member ``16, 15, ..., 1`` for ``c00`` .. ``c15`` unless
boosted, so the expected menus can be worked out by hand.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from recommend.data.dataset import Dataset
from recommend.engine import MenuOptions, MenuRows, history_rows, rank_chunk, serving_state
from recommend.models.base import Factors, Recommender
from recommend.schema import CHANNELS

__all__ = [
    "CHANNEL_OF",
    "COURSES",
    "N_COURSES",
    "SAMPLE",
    "TITLE",
    "FixedFactors",
    "Hybrid",
    "RandomFactors",
    "ScoresOnly",
    "events_frame",
    "make_branches_dataset",
    "make_tiny_dataset",
    "menu_lists",
    "rank_members",
    "tiny_courses",
    "tiny_events",
    "tiny_members",
]

#: The shipped sample platform (``data/sample``, 3,000 members).
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample"

N_COURSES = 16
COURSES = [f"c{j:02d}" for j in range(N_COURSES)]
CHANNEL_OF = {c: CHANNELS[j // 4] for j, c in enumerate(COURSES)}
TITLE = {c: f"课程{c}" for c in COURSES}


def events_frame(rows: Sequence[tuple[object, object, str, str]]) -> pd.DataFrame:
    """An events table from ``(member_id, course_id, event, timestamp)`` tuples."""
    return pd.DataFrame(rows, columns=["member_id", "course_id", "event", "timestamp"]).assign(
        timestamp=lambda f: pd.to_datetime(f["timestamp"])
    )


# ---------------------------------------------------------------------------- tiny catalogue


def tiny_courses() -> pd.DataFrame:
    """The 16 courses of the tiny catalogue (see the module docstring)."""
    published = [pd.Timestamp("2024-01-01")] * N_COURSES
    published[15] = pd.Timestamp("2025-06-01")  # after the data: not yet published
    duration = [60.0 * (j + 1) for j in range(N_COURSES)]  # c00 1 min ... c15 16 min
    duration[14] = np.nan  # unknown duration
    compulsory: list[list[str]] = [[] for _ in COURSES]
    compulsory[9] = ["b1"]
    compulsory[10] = ["b1", "b2"]
    compulsory[13] = ["b2"]
    return pd.DataFrame(
        {
            "course_id": COURSES,
            "title": [TITLE[c] for c in COURSES],
            "category": [CHANNEL_OF[c] for c in COURSES],
            "duration_seconds": duration,
            "lecturer_id": [f"L{j % 4}" for j in range(N_COURSES)],
            "source": ["official"] * N_COURSES,
            "published_at": published,
            "compulsory_for": compulsory,
        }
    )


def tiny_members() -> pd.DataFrame:
    """Members m0 .. m4 in branches b1 and b2 (m4 never studied)."""
    return pd.DataFrame(
        {
            "member_id": ["m0", "m1", "m2", "m3", "m4"],
            "org_id": ["b1", "b1", "b2", "b2", "b1"],
            "birth_year": [1960, 1985, 1990, 1975, 1950],
            "occupation": ["retired", "white_collar", "blue_collar", "rural", "retired"],
            "district": ["xs", "xs", "gs", "gs", "xs"],
        }
    )


def tiny_events() -> pd.DataFrame:
    """The histories of m0 .. m3 (see the module docstring)."""
    return events_frame(
        [
            ("m0", "c00", "view", "2024-03-01"),
            ("m0", "c00", "complete", "2024-03-01"),
            ("m0", "c05", "view", "2024-03-02"),
            ("m1", "c02", "view", "2024-03-03"),
            ("m1", "c03", "view", "2024-03-03"),
            ("m2", "c10", "view", "2024-03-04"),
            ("m2", "c10", "complete", "2024-03-04"),
            ("m2", "c04", "view", "2024-03-05"),
            ("m3", "c06", "view", "2024-03-06"),
            ("m3", "c07", "view", "2024-03-10"),
        ]
    )


def make_tiny_dataset(courses: pd.DataFrame | None = None) -> Dataset:
    """The tiny catalogue as a dataset (``courses`` replaces its courses table)."""
    return Dataset.from_frames(
        tiny_events(),
        courses=tiny_courses() if courses is None else courses,
        members=tiny_members(),
    )


class FixedFactors(Recommender):
    """Factors that make scores exactly ``boost`` over a default ``16, 15, ..., 1``.

    Course factors are ``[identity | channel_weight * channel one-hot]`` and member factors
    ``[scores | 0]``: the score is the chosen number, and courses of one channel are more
    alike (cosine) than courses of different channels. Fold-in gives a member the default
    scores.
    """

    name = "fixed"

    def __init__(self, boost: dict[str, dict[str, float]] | None = None) -> None:
        self.boost = boost

    def _default_row(self, n_courses: int) -> np.ndarray:
        return np.arange(n_courses, 0, -1, dtype=np.float32)

    def _fit(self, dataset: Dataset) -> None:
        n_m, n_c = dataset.n_members, dataset.n_courses
        scores = np.tile(self._default_row(n_c), (n_m, 1))
        for member, boosts in (self.boost or {}).items():
            i = int(dataset.member_ids.to_index([member])[0])
            for course, value in boosts.items():
                scores[i, int(dataset.course_ids.to_index([course])[0])] = value
        codes = pd.factorize(dataset.courses["category"])[0]
        channel = np.eye(codes.max() + 1, dtype=np.float32)[codes] * 0.5
        self.member_factors_ = np.hstack([scores, np.zeros((n_m, channel.shape[1]), np.float32)])
        self.course_factors_ = np.hstack([np.eye(n_c, dtype=np.float32), channel])

    def factors(self) -> Factors:
        return Factors(self.member_factors_, self.course_factors_)

    def _fold_in(self, member_idx: int, row: object) -> None:
        f = self.member_factors_
        if member_idx >= len(f):
            f = np.vstack([f, np.zeros((member_idx + 1 - len(f), f.shape[1]), np.float32)])
        else:
            f = f.copy()
        f[member_idx, :N_COURSES] = self._default_row(N_COURSES)
        self.member_factors_ = f


class ScoresOnly(FixedFactors):
    """The same scores without factors: exercises the ``score_block`` path."""

    name = "scores_only"

    def factors(self) -> None:  # type: ignore[override]
        return None

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        return self.member_factors_[np.asarray(member_idx), :N_COURSES].copy()


class Hybrid(FixedFactors):
    """A model that scores members from attributes: ascending scores (c15 best)."""

    name = "hybrid"
    uses_features = True

    def cold_member_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        return np.tile(np.arange(N_COURSES, dtype=np.float32), (len(attributes), 1))


# ---------------------------------------------------------------------------- engine calls


def rank_members(
    model: Recommender,
    members: Sequence[object],
    *,
    dense: bool = True,
    orgs: list[str | None] | None = None,
    **options: object,
) -> MenuRows:
    """``rank_chunk`` for members of ``model`` given by external id (unknown: -1), with
    ``MenuOptions(**options)`` (reasons in English unless ``lang`` is given: the engine
    tests read them) and its course filter.

    ``dense=True`` hands the chunk the members' ``score_block`` (the member menu's path);
    ``False`` lets the kernel score them from the factors (the batch job's path).
    """
    state = serving_state(model)
    opts = MenuOptions(**{"lang": "en", **options})  # type: ignore[arg-type]
    idx = model.member_ids_.to_index(list(members), unknown="mask").astype(np.int64)
    seen = history_rows(model.history_, idx)
    scores = np.asarray(model.score_block(idx), dtype=np.float32) if dense else None
    allowed = state.course_filter(opts)
    return rank_chunk(model, state, opts, allowed, idx, seen, dense=scores, orgs=orgs)


def menu_lists(rows: MenuRows, m: int | None = None) -> list[list[str]]:
    """Each member's tiny-catalogue course ids in rank order (``m`` members; all seen when
    ``None``), checking that ranks run 1, 2, ... within each member."""
    m = int(rows.pos.max(initial=-1)) + 1 if m is None else m
    out = []
    for i in range(m):
        mine = rows.pos == i
        assert rows.rank[mine].tolist() == list(range(1, int(mine.sum()) + 1))
        out.append([COURSES[c] for c in rows.course[mine].tolist()])
    return out


# ---------------------------------------------------------------------------- branches


class RandomFactors(Recommender):
    """Fixed Gaussian factors and course bias: a factor model without training."""

    name = "test_random_factors"

    def __init__(self, n_factors: int = 8, seed: int = 0) -> None:
        self.n_factors = n_factors
        self.seed = seed

    def _fit(self, dataset: Dataset) -> None:
        rng = np.random.default_rng(self.seed)
        self.member_factors_ = rng.standard_normal(
            (dataset.n_members, self.n_factors), dtype=np.float32
        )
        self.course_factors_ = rng.standard_normal(
            (dataset.n_courses, self.n_factors), dtype=np.float32
        )
        self.course_bias_ = rng.standard_normal(dataset.n_courses, dtype=np.float32)

    def factors(self) -> Factors:
        return Factors(self.member_factors_, self.course_factors_, self.course_bias_)


def make_branches_dataset(n_members: int, n_courses: int, seed: int = 0) -> Dataset:
    """Members in branches with three compulsory courses each, completions, a course not
    yet published (the last), and a tenth of the members without any event (cold).

    Ids are ``m00000``... and ``c0000``...; the data time is 2024-06-30.
    """
    rng = np.random.default_rng(seed)
    courses = [f"c{j:04d}" for j in range(n_courses)]
    branches = [f"b{i}" for i in range(max(2, n_members // 40))]
    compulsory: list[list[str]] = [[] for _ in courses]
    for b in branches:
        for j in rng.choice(n_courses // 4, size=3, replace=False):
            compulsory[j].append(b)
    now = pd.Timestamp("2024-06-30")
    published = [now - pd.Timedelta(days=10)] * n_courses
    published[-1] = now + pd.Timedelta(days=5)
    course_table = pd.DataFrame(
        {
            "course_id": courses,
            "title": [f"课程{j}" for j in range(n_courses)],
            "category": rng.choice(np.array(CHANNELS, dtype=object), n_courses),
            "duration_seconds": rng.integers(60, 3600, n_courses).astype(float),
            "source": "official",
            "published_at": published,
            "compulsory_for": compulsory,
        }
    )
    member_ids = np.array([f"m{i:05d}" for i in range(n_members)], dtype=object)
    members = pd.DataFrame(
        {
            "member_id": member_ids,
            "org_id": rng.choice(np.array(branches, dtype=object), n_members),
            "birth_year": rng.integers(1950, 2000, n_members),
            "occupation": rng.choice(["retired", "white_collar", "rural"], n_members),
        }
    )
    active = member_ids[: int(n_members * 0.9)]  # the last tenth never studied: cold
    per = rng.poisson(6, active.size) + 1
    who = np.repeat(active, per)
    events = pd.DataFrame(
        {
            "member_id": who,
            "course_id": rng.choice(np.array(courses, dtype=object), who.size),
            "event": np.where(rng.random(who.size) < 0.4, "complete", "view"),
            "timestamp": now - pd.to_timedelta(rng.integers(0, 10_000, who.size), unit="min"),
        }
    )
    return Dataset.from_frames(events, courses=course_table, members=members, now=now)


# ---------------------------------------------------------------------------- fonts

_CJK_FONT_FILES = re.compile(r"(wqy|noto.*cjk|sourcehan|simhei|msyh|droidsansfallback|uming)", re.I)


@contextlib.contextmanager
def no_cjk_font() -> Iterator[None]:
    """matplotlib as on a machine without CJK fonts: the installed ones hidden from it."""
    from matplotlib import font_manager

    from recommend.insights.plots import use_cjk_font

    manager = font_manager.fontManager
    kept, find = manager.ttflist, font_manager.findSystemFonts
    manager.ttflist = [f for f in kept if not _CJK_FONT_FILES.search(f.fname)]
    font_manager.findSystemFonts = lambda *a, **k: []
    try:
        use_cjk_font(None)
        yield
    finally:
        manager.ttflist = kept
        font_manager.findSystemFonts = find
        use_cjk_font(None)
