"""The planted preference of every member for every course (``Truth``) and how it is drawn."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Final

import numpy as np
import pandas as pd

from recommend.data.synthetic.catalogue import Courses
from recommend.data.synthetic.config import SynthConfig
from recommend.data.synthetic.ids import format_ids
from recommend.data.synthetic.members import Members
from recommend.data.synthetic.orgs import Orgs
from recommend.data.synthetic.vocabulary import TOPIC_NAMES
from recommend.errors import DataError
from recommend.schema import OCCUPATIONS, Columns

C = Columns
FloatArray = np.ndarray
IntArray = np.ndarray

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
# Standardised log duration z = (ln(minutes) - ln(15)) / 1, about -1.6 (3 min) .. +1.8 (90 min).
_LOG_MINUTES_CENTRE: Final = math.log(15.0)

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
        out: FloatArray = self.member_vectors(m) @ self.course_vectors(c).T
        self.add_local(out, m, c)
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
        pairs: FloatArray = out.astype(np.float32, copy=False)
        return pairs

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

    def add_local(self, out: FloatArray, m: IntArray, c: IntArray) -> None:
        """Add the local appeal of UGC courses to a (members x courses) block in place.

        Sparse: a member only gains on UGC uploaded within their committee, a handful of
        courses, so the block is touched at those entries only.

        Parameters
        ----------
        out : ndarray, shape (len(m), len(c)), float32
            Utilities of members ``m`` for courses ``c``, e.g. from the augmented vectors.
        m, c : ndarray of int64
            Member and course positions (checked by the caller).
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

    def _local_pairs(self, m: IntArray, c: IntArray) -> FloatArray:
        cb = self.course_branch[c]
        ugc = cb >= 0
        mb = self.member_branch[m]
        cb_safe = np.where(ugc, cb, 0)
        same_branch = ugc & (mb == cb)
        same_committee = ugc & (self.org_committee[mb] == self.org_committee[cb_safe])
        appeal = self.local_branch_weight * same_branch
        appeal = appeal + self.local_committee_weight * same_committee
        out: FloatArray = appeal.astype(np.float32)
        return out


def _lookup(ids: np.ndarray, wanted: Any, column: str) -> IntArray:
    wanted_arr = np.asarray(wanted, dtype=object).ravel()
    idx = pd.Index(ids).get_indexer(wanted_arr)
    missing = np.flatnonzero(idx < 0)
    if missing.size:
        raise DataError(
            f"unknown {column}: {missing.size} value(s), e.g. {list(wanted_arr[missing[:3]])}"
        )
    found: IntArray = idx.astype(np.int64)
    return found


def make_truth(
    cfg: SynthConfig,
    rng: np.random.Generator,
    orgs: Orgs,
    members: Members,
    courses: Courses,
) -> Truth:
    """Draw the planted preference (see :class:`Truth`) of the simulated members for the
    simulated courses."""
    d = cfg.n_factors
    n_orgs = orgs.kind.size
    strength = float(cfg.segment_strength)  # 1.0: the planted strength of the presets
    # Members of a branch share part of their latent taste (branch culture). The scales give
    # member_factors @ course_factors a standard deviation of about 1.2, on a par with the
    # segment effects, so both individual and segment structure shape behaviour.
    branch_taste = rng.normal(0.0, 1.0 / math.sqrt(d), (n_orgs, d))
    own = rng.normal(0.0, 1.0 / math.sqrt(d), (cfg.n_members, d))
    member_factors = (0.55 * strength * branch_taste[members.branch] + 0.85 * own) * 1.1
    member_factors *= cfg.taste_scale
    course_factors = rng.normal(0.0, 1.0, (cfg.n_courses, d)) * 1.1

    segment_topic = rng.normal(0.0, 0.2, (len(OCCUPATIONS), len(TOPIC_NAMES)))
    for occ, effects in _SEGMENT_TOPIC.items():
        for topic, effect in effects.items():
            segment_topic[OCCUPATIONS.index(occ), TOPIC_NAMES.index(topic)] += effect

    segment_topic *= strength

    age = (int(np.datetime64(cfg.start, "Y").astype(np.int64)) + 1970 - members.birth_year).astype(
        np.float64
    )
    duration_pref = (
        _SEGMENT_DURATION[members.occupation] * strength
        + 0.015 * strength * (age - 45.0)
        - 1.3 * members.commuter
        + rng.normal(0.0, 0.3, cfg.n_members)
    )
    duration_z = np.log(courses.duration / 60.0) - _LOG_MINUTES_CENTRE

    return Truth(
        member_ids=format_ids("m", cfg.n_members, 6),
        course_ids=format_ids("c", cfg.n_courses, 5),
        org_ids=format_ids("o", n_orgs, 4),
        topic_names=np.array(TOPIC_NAMES),
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
        segment_channel=_SEGMENT_CHANNEL * np.float32(strength),
        segment_topic=segment_topic.astype(np.float32),
        org_committee=orgs.committee,
        skill_weight=1.0,
        local_branch_weight=1.5 * strength,
        local_committee_weight=0.7 * strength,
    )
