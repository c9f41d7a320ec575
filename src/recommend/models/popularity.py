"""``Popularity``: what members study most, globally or within a member's segment.

The baseline every other model must beat, and the cold-start answer for members with no
history: the member menu falls back to it, and ``segment_scores`` serves members known only
by their attributes (age, occupation, district, branch).

A course's popularity is the number of distinct members who interacted with it. With
``half_life_days`` set, each member counts ``0.5 ** (age_days / half_life_days)`` instead of
1, where ``age_days`` is the time from the member's latest event on the course back from
``dataset.now``: a course studied by many members lately outranks one studied by as many
members long ago, and one member's repeated views still count once. With no decay the
score is exactly the distinct-member count. An interaction is a non-zero cell of
``dataset.interactions``, so event types the weighting gives no weight do not count.

Segments
--------
``segment`` picks the member attribute popularity is computed within:

- ``None``: global popularity for everyone;
- ``"age_band"`` (from ``birth_year``, bands of ``recommend.data.dataset.AGE_BANDS``),
  ``"occupation"``, ``"district"``, ``"org_id"`` (the member's branch): popularity among the
  members sharing the member's value; ``"gender"`` likewise (never part of ``"auto"``);
- ``"auto"``: the most specific segment with enough members, in the order ``org_id``,
  ``occupation``, ``age_band``, ``district`` (a branch's own choices say most about a
  member; occupation and age drive what members study more than the district does). A
  member takes one segment, never a blend, so a menu can say why ("popular in your branch").

A segment is used only when at least ``min_segment_members`` of its members have some
history; smaller segments, members without the attribute, values unknown to the model and
members added by fold-in get global popularity. A segment score is the segment's count plus
``prior_members`` times the course's global share (the fraction of all active members who
took it, at most 1). With the default of one member, the prior orders the courses a small
segment never touched by global popularity instead of by index, and never reverses two
distinct segment counts. A larger ``prior_members`` (``a``) is an empirical-Bayes shrinkage
blend: a segment of ``n`` active members then ranks by
``n / (n + a) * segment share + a / (n + a) * global share``, so small segments lean on
global popularity and large ones on their own (``recommend.models.cold_routes`` chooses
``a`` on held-out members).
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from typing import ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset, age_band
from recommend.errors import ConfigError, DataError
from recommend.models.base import CourseLearners, MemberState, Recommender
from recommend.schema import Columns

__all__ = ["SEGMENTS", "SEGMENT_KINDS", "Popularity"]

log = logging.getLogger(__name__)
C = Columns

AGE_BAND = "age_band"
#: Segment kinds, in the order ``segment="auto"`` tries them (most specific first).
SEGMENTS: tuple[str, ...] = (C.ORG, C.OCCUPATION, AGE_BAND, C.DISTRICT)
#: Every segment kind: those of ``"auto"`` and ``"gender"``, which only a validated choice
#: (``recommend.models.cold_routes``) or an explicit setting uses.
SEGMENT_KINDS: tuple[str, ...] = (*SEGMENTS, C.GENDER)
SECONDS_PER_DAY = 86_400.0


class Popularity(Recommender):
    """Global, time-decayed or per-segment course popularity (see the module docstring).

    Parameters
    ----------
    half_life_days
        Decay each member's contribution by the age of their latest event on the course
        (half-life in days, measured back from ``dataset.now``); ``None`` counts members.
    segment
        ``None``, ``"age_band"``, ``"occupation"``, ``"district"``, ``"org_id"``,
        ``"gender"`` or ``"auto"``.
    min_segment_members
        Members with history a segment needs before its own popularity is used.
    prior_members
        Weight of global popularity in a segment's scores, in members (> 0): 1 orders by
        the segment's counts, larger values shrink small segments towards global
        popularity (see the module docstring).

    Attributes
    ----------
    global_ : ndarray, shape (n_courses,), float32
        Global popularity.
    segments_ : DataFrame
        One row per segment value: ``segment, value, members`` (in the members table),
        ``active_members`` (with history) and ``used`` (enough members). Aggregates only.
    """

    name: ClassVar[str] = "popularity"

    #: Per snapshot: ingestion adds the members who reach a course (segments: at refit).
    global_ = MemberState()

    def __init__(
        self,
        half_life_days: float | None = None,
        segment: str | None = None,
        min_segment_members: int = 20,
        prior_members: float = 1.0,
    ) -> None:
        self.half_life_days = half_life_days
        self.segment = segment
        self.min_segment_members = min_segment_members
        self.prior_members = prior_members
        self._check_params()

    def _check_params(self) -> None:
        hl = self.half_life_days
        if hl is not None and not (_is_real(hl) and np.isfinite(hl) and hl > 0):
            raise ConfigError(f"half_life_days={hl!r}; expected a number > 0, or None")
        if self.segment is not None and self.segment not in (*SEGMENT_KINDS, "auto"):
            raise ConfigError(
                f"segment={self.segment!r}; expected None, 'auto' or one of {list(SEGMENT_KINDS)}"
            )
        m = self.min_segment_members
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
            raise ConfigError(f"min_segment_members={m!r}; expected an integer >= 1")
        a = self.prior_members
        if not (_is_real(a) and np.isfinite(a) and a > 0):
            raise ConfigError(f"prior_members={a!r}; expected a number > 0")

    @property
    def kinds(self) -> tuple[str, ...]:
        """Segment kinds in use, in the order members are matched against them."""
        if self.segment is None:
            return ()
        return SEGMENTS if self.segment == "auto" else (self.segment,)

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset) -> Self:
        """Count popularity in ``dataset`` (never modified) and return ``self``."""
        self._check_params()  # before the base class records any fitted state
        return super().fit(dataset)

    def _fit(self, dataset: Dataset) -> None:
        reach = self._reach(dataset)
        n_members, n_courses = reach.shape
        active = np.diff(reach.indptr) > 0
        self.global_ = np.asarray(reach.sum(axis=0), dtype=np.float32).ravel()
        self.prior_: np.ndarray = (self.global_ / max(1, int(active.sum()))).astype(np.float32)
        self.reference_year_: int = int(dataset.now.year)

        keys = self._member_keys(dataset)
        # Per kind: the segment values and the row of ``table_`` each value uses (-1: none).
        self.segment_values_: dict[str, np.ndarray] = {}
        self.segment_rows_: dict[str, np.ndarray] = {}
        tables: list[sp.csr_matrix] = []
        summaries: list[pd.DataFrame] = []
        n_rows = 0
        for kind in self.kinds:
            codes, values = pd.factorize(keys[kind])
            has = codes >= 0
            members = np.bincount(codes[has], minlength=len(values))
            active_members = np.bincount(codes[has & active], minlength=len(values))
            used = active_members >= self.min_segment_members
            # Segment counts in one sparse product: (values x members) one-hot @ reach.
            onehot = sp.csr_matrix(
                (np.ones(int(has.sum()), np.float32), (codes[has], np.flatnonzero(has))),
                shape=(len(values), n_members),
            )
            tables.append(sp.csr_matrix(onehot[used] @ reach, dtype=np.float32))
            rows = np.full(len(values), -1, dtype=np.int32)
            rows[used] = n_rows + np.arange(int(used.sum()), dtype=np.int32)
            n_rows += int(used.sum())
            self.segment_values_[kind] = np.asarray(values, dtype=object)
            self.segment_rows_[kind] = rows
            summaries.append(
                pd.DataFrame(
                    {
                        "segment": kind,
                        "value": np.asarray(values, dtype=object),
                        "members": members,
                        "active_members": active_members,
                        "used": used,
                    }
                )
            )
        self.table_: sp.csr_matrix = (
            sp.vstack(tables, format="csr", dtype=np.float32)
            if tables
            else sp.csr_matrix((0, n_courses), dtype=np.float32)
        )
        self.segments_: pd.DataFrame = (
            pd.concat(summaries, ignore_index=True)
            if summaries
            else pd.DataFrame(
                {
                    "segment": pd.Series(dtype=object),
                    "value": pd.Series(dtype=object),
                    "members": pd.Series(dtype=np.int64),
                    "active_members": pd.Series(dtype=np.int64),
                    "used": pd.Series(dtype=bool),
                }
            )
        )
        log.info(
            "popularity: %d members x %d courses, segment=%s, %d segment vectors, "
            "%d members on global popularity",
            n_members,
            n_courses,
            self.segment,
            self.table_.shape[0],
            int((self._member_rows < 0).sum()),
        )

    @property
    def _member_rows(self) -> np.ndarray:
        """Row of ``table_`` for each training member (-1: global), (n_members,) int32.

        Derived from ``dataset_``'s members table on first use rather than stored, so a
        saved model carries no member-level segment labels: after loading an artifact
        (members reduced to id and branch) only branch segments are resolved, and other
        segments come from attributes given at request time (``segment_scores``).
        """
        cached = self.__dict__.get("_member_rows_cache")
        if cached is None or cached[0] is not self.dataset_:
            keys = self._member_keys(self.dataset_, warn=False)  # fit said it already
            rows = self._rows(keys, self.dataset_.n_members)
            cached = (self.dataset_, rows)
            self.__dict__["_member_rows_cache"] = cached
        rows_: np.ndarray = cached[1]
        return rows_

    def _reach(self, dataset: Dataset) -> sp.csr_matrix:
        """Each member's contribution to each course, (n_members, n_courses) CSR float32.

        1 per interaction, or the decay of the member's latest event on the course.
        """
        x = dataset.interactions
        reach = sp.csr_matrix(
            (np.ones(x.nnz, np.float32), x.indices.copy(), x.indptr.copy()), shape=x.shape
        )
        if self.half_life_days is None:
            return reach
        ev = dataset.events
        age_days = (dataset.now - ev[C.TIMESTAMP]).dt.total_seconds().to_numpy() / SECONDS_PER_DAY
        # Events after `now` (possible when now is given) are not boosted, as in weighting.
        decay = np.exp2(-np.maximum(age_days, 0.0) / self.half_life_days)
        # Duplicate (member, course) cells keep the largest decay, i.e. the latest event.
        latest = (
            pd.DataFrame(
                {"m": ev[MEMBER_IDX].to_numpy(), "c": ev[COURSE_IDX].to_numpy(), "d": decay}
            )
            .groupby(["m", "c"], sort=False)["d"]
            .max()
        )
        decayed = sp.csr_matrix(
            (
                latest.to_numpy(dtype=np.float32),
                (latest.index.get_level_values(0), latest.index.get_level_values(1)),
            ),
            shape=x.shape,
        )
        # Restrict to the cells the weighting kept (zero-weight event types do not count).
        return sp.csr_matrix(decayed.multiply(reach), dtype=np.float32)

    def _member_keys(self, dataset: Dataset, *, warn: bool = True) -> dict[str, np.ndarray]:
        """Segment value of every fitted member per kind, as strings (``None``: unknown)."""
        members = dataset.members
        if warn and self.kinds and members is None:
            log.warning(
                "popularity: segment=%r but the dataset has no members table; "
                "every member gets global popularity",
                self.segment,
            )
        n = dataset.n_members
        frame = members if members is not None else pd.DataFrame(index=np.arange(n))
        return {kind: _keys(frame, kind, self.reference_year_, n=n) for kind in self.kinds}

    # ------------------------------------------------------------------ scoring
    def _rows(self, keys: dict[str, np.ndarray], n: int) -> np.ndarray:
        """Row of ``table_`` for ``n`` members (first usable kind in order), -1 for global."""
        return self._rows_and_kinds(keys, n)[0]

    def _rows_and_kinds(self, keys: dict[str, np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
        """Row of ``table_`` (int32, -1: global) for ``n`` members, and the position in
        ``kinds`` of the kind that gave it (int8, -1: global)."""
        rows = np.full(n, -1, dtype=np.int32)
        served = np.full(n, -1, dtype=np.int8)
        for i, kind in enumerate(self.kinds):
            if not len(self.segment_values_[kind]):
                continue
            pos = self._value_index(kind).get_indexer(keys[kind])
            found = np.where(pos >= 0, self.segment_rows_[kind][pos], -1)
            take = (rows < 0) & (found >= 0)
            rows[take] = found[take]
            served[take] = i
        return rows, served

    def _value_index(self, kind: str) -> pd.Index:
        """``segment_values_[kind]`` as an index (its hash table built once, not per call)."""
        cache: dict[str, tuple[np.ndarray, pd.Index]] = self.__dict__.setdefault(
            "_value_index_cache", {}
        )
        values = self.segment_values_[kind]
        got = cache.get(kind)
        if got is None or got[0] is not values:
            got = (values, pd.Index(values, dtype=object))
            cache[kind] = got
        return got[1]

    def _scores(self, rows: np.ndarray) -> np.ndarray:
        """Scores for ``table_`` rows (-1: global), (len(rows), n_courses) float32."""
        out = np.empty((len(rows), len(self.global_)), dtype=np.float32)
        seg = rows >= 0
        out[~seg] = self.global_
        if seg.any():
            # The prior, then each segment row's counts added at its stored courses: one
            # pass over the output instead of densifying the rows and adding.
            at = np.flatnonzero(seg)
            out[at] = self.prior_ * np.float32(self.prior_members)
            table = self._canonical_table()
            picked = rows[at]
            counts = np.diff(table.indptr)[picked]
            starts = np.repeat(
                table.indptr[picked].astype(np.int64) - np.cumsum(counts) + counts, counts
            )
            entries = starts + np.arange(int(counts.sum()), dtype=np.int64)
            flat = np.repeat(at.astype(np.int64) * out.shape[1], counts) + table.indices[entries]
            out.reshape(-1)[flat] += table.data[entries]
        return out

    def _canonical_table(self) -> sp.csr_matrix:
        """``table_`` with at most one entry per (row, course) (duplicates summed), kept."""
        table = self.table_
        cached = self.__dict__.get("_canonical_table_cache")
        if cached is None or cached[0] is not table:
            canonical = table.copy()
            canonical.sum_duplicates()
            cached = (table, canonical)
            self.__dict__["_canonical_table_cache"] = cached
        got: sp.csr_matrix = cached[1]
        return got

    def _fold_in_courses(self, learners: Mapping[int, CourseLearners], reach: np.ndarray) -> None:
        """Global popularity counts the members the batch brought to each course (a
        time-decayed count adds them at full weight: they are recent); segment tables
        change at the next refit."""
        if reach.any():
            self.global_ = np.maximum(self.global_ + reach.astype(np.float32), 0.0)

    def score_block(self, member_idx: np.ndarray) -> np.ndarray:
        """Segment popularity of members ``member_idx``, (len, n_courses) float32.

        Members added by fold-in (indices beyond the fitted members) get global popularity.
        """
        self.check_fitted()
        idx = np.asarray(member_idx, dtype=np.int64)
        member_rows = self._member_rows
        known = (idx >= 0) & (idx < len(member_rows))
        rows = np.full(idx.shape, -1, dtype=np.int32)
        rows[known] = member_rows[idx[known]]
        return self._scores(rows)

    def global_scores(self) -> np.ndarray:
        """Global popularity, shape (n_courses,), float32 (a copy)."""
        self.check_fitted()
        return self.global_.copy()

    def segment_scores(self, attributes: pd.DataFrame) -> np.ndarray:
        """Popularity for members described only by their attributes (cold start).

        Parameters
        ----------
        attributes
            One row per member; columns used among ``birth_year`` (or a ready
            ``age_band``), ``occupation``, ``district``, ``org_id``; others are ignored.
            Missing columns or values, and values unknown to the model, give global
            popularity. Age bands use the fitted data's reference year, so a member is
            matched with the birth cohort the model learned from.

        Returns
        -------
        ndarray, shape (len(attributes), n_courses), float32
        """
        return self.segment_scores_with_kinds(attributes)[0]

    def segment_scores_with_kinds(self, attributes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`segment_scores`, and which segment kind served each member.

        Parameters
        ----------
        attributes
            As in :meth:`segment_scores`.

        Returns
        -------
        scores : ndarray, shape (len(attributes), n_courses), float32
            Exactly what :meth:`segment_scores` returns (a new array, the caller's own).
        kinds : ndarray, shape (len(attributes),), object
            The kind (one of :attr:`kinds`, e.g. ``"org_id"``) whose segment gave the
            member's scores, ``None`` where the member got global popularity.
        """
        rows, kinds = self.segment_rows(attributes)
        return self.row_scores(rows), kinds

    def segment_rows(self, attributes: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """The segment each member of ``attributes`` falls in, without scoring it.

        Parameters
        ----------
        attributes
            As in :meth:`segment_scores`.

        Returns
        -------
        rows : ndarray of int32, shape (len(attributes),)
            Segment row of each member for :meth:`row_scores`, -1 for global popularity.
        kinds : ndarray, shape (len(attributes),), object
            As in :meth:`segment_scores_with_kinds`.
        """
        self.check_fitted()
        if not isinstance(attributes, pd.DataFrame):
            raise DataError(
                f"segment_scores expects a DataFrame of member attributes, got "
                f"{type(attributes).__name__}"
            )
        n = len(attributes)
        frame = attributes.reset_index(drop=True)
        keys = {kind: _keys(frame, kind, self.reference_year_, n=n) for kind in self.kinds}
        rows, served = self._rows_and_kinds(keys, n)
        names = np.array([*self.kinds, None], dtype=object)
        return rows, names[served]

    def row_scores(self, rows: np.ndarray) -> np.ndarray:
        """Scores of segment rows from :meth:`segment_rows` (-1: global popularity),
        (len(rows), n_courses) float32, a new array."""
        self.check_fitted()
        return self._scores(np.asarray(rows, dtype=np.int32))

    def segment_of(self, member_idx: np.ndarray) -> np.ndarray:
        """Segment each member's scores come from, e.g. ``"occupation=retired"`` or
        ``"global"``; shape (len,), object (for explanations and analytics)."""
        self.check_fitted()
        labels = np.array(["global"], dtype=object)
        for kind in self.kinds:
            rows = self.segment_rows_[kind]
            used = rows >= 0
            names = kind + "=" + pd.Series(self.segment_values_[kind][used], dtype=object)
            labels = np.concatenate([labels, names.to_numpy(dtype=object)])
        idx = np.asarray(member_idx, dtype=np.int64)
        member_rows = self._member_rows
        known = (idx >= 0) & (idx < len(member_rows))
        rows = np.full(idx.shape, -1, dtype=np.int64)
        rows[known] = member_rows[idx[known]]
        # Rows are numbered kind by kind in the same order, so label i + 1 is row i.
        return labels[rows + 1]


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _keys(frame: pd.DataFrame, kind: str, year: int, *, n: int) -> np.ndarray:
    """Segment values of ``kind`` for the rows of ``frame`` as strings, ``None`` where unknown.

    Values are compared as strings so that an ``org_id`` of 7 matches "7"; integral floats
    (what a column of ints with gaps becomes) are written without the ".0".
    """
    if kind == AGE_BAND and AGE_BAND not in frame.columns:
        if C.BIRTH_YEAR not in frame.columns:
            return np.full(n, None, dtype=object)
        keys = age_band(frame[C.BIRTH_YEAR].to_numpy(), year).astype(object)
        keys[keys == "unknown"] = None
        return keys
    if kind not in frame.columns:
        return np.full(n, None, dtype=object)
    values = frame[kind]
    if pd.api.types.is_float_dtype(values.dtype):
        finite = values.dropna()
        if (finite == np.round(finite)).all():
            values = values.astype("Int64")
    known = values.notna().to_numpy()
    out = values.astype(str).to_numpy(dtype=object)
    out[~known] = None
    out[known & (out == "")] = None
    return out
