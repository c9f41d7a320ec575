"""``Dataset``: validated tables turned into what models train on.

A dataset holds the members x courses confidence matrix (CSR, ``float32``), the id maps,
the validated tables aligned to those maps, member and course feature matrices for hybrid
models, and a content fingerprint for tracking. It is immutable: models read it, never
change it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.idmap import IdMap
from recommend.data.timeline import OnFuture, check_times
from recommend.data.validation import ReferenceReport, check_references, validate
from recommend.data.weighting import Weighting
from recommend.errors import DataError, Problem
from recommend.schema import Columns

if TYPE_CHECKING:
    from recommend.data.splits import Splitter

__all__ = [
    "AGE_BANDS",
    "Dataset",
    "Features",
    "age_band",
    "align_rows",
    "course_feature_columns",
    "member_feature_columns",
    "one_hot",
]

log = logging.getLogger(__name__)
C = Columns

MEMBER_IDX = "member_idx"
COURSE_IDX = "course_idx"

#: Age bands used for member features and segment breakdowns (lower bounds, labels).
AGE_BANDS: tuple[tuple[int, str], ...] = (
    (0, "<30"),
    (30, "30-39"),
    (40, "40-49"),
    (50, "50-59"),
    (60, "60-69"),
    (70, "70+"),
)
DURATION_BANDS: tuple[tuple[float, str], ...] = (
    (0, "<=5min"),
    (5 * 60 + 1, "5-15min"),
    (15 * 60 + 1, "15-30min"),
    (30 * 60 + 1, "30-60min"),
    (60 * 60 + 1, ">60min"),
)
MEMBER_FEATURE_COLUMNS = (C.GENDER, C.OCCUPATION, C.DISTRICT, C.MOBILE, C.ORG, C.SKILLS)
COURSE_FEATURE_COLUMNS = (C.CATEGORY, C.TAGS, C.LECTURER, C.SOURCE)


def age_band(birth_year: pd.Series | np.ndarray, year: int) -> np.ndarray:
    """Age band label per member (``"unknown"`` where the birth year is missing)."""
    by = pd.to_numeric(pd.Series(np.asarray(birth_year)), errors="coerce").to_numpy(float)
    age = year - by
    labels = np.array([label for _, label in AGE_BANDS], dtype=object)
    bounds = np.array([lo for lo, _ in AGE_BANDS], dtype=float)
    out = labels[np.clip(np.searchsorted(bounds, age, side="right") - 1, 0, len(labels) - 1)]
    out[np.isnan(age)] = "unknown"
    return out


@dataclass(frozen=True)
class Features:
    """A sparse feature matrix with named columns.

    ``matrix`` is ``(n_entities, n_features)`` CSR ``float32`` (1.0 for a present
    feature); ``names`` are ``"column=value"`` strings, e.g. ``"occupation=retired"``.
    """

    matrix: sp.csr_matrix
    names: np.ndarray

    def __len__(self) -> int:
        return int(self.matrix.shape[1])


def one_hot(columns: dict[str, Sequence[object] | pd.Series], n_rows: int) -> Features:
    """One-hot features from single-valued or list-valued columns (lists explode)."""
    parts = []
    for name, values in columns.items():
        s = pd.Series(list(values) if not isinstance(values, pd.Series) else values.to_numpy())
        s.index = np.arange(n_rows)
        s = s.explode()
        s = s[s.notna() & (s.astype(str) != "")]
        if s.empty:
            continue
        parts.append(
            pd.DataFrame({"row": s.index.to_numpy(), "feature": name + "=" + s.astype(str)})
        )
    if not parts:
        return Features(sp.csr_matrix((n_rows, 0), dtype=np.float32), np.array([], dtype=object))
    long = pd.concat(parts, ignore_index=True).drop_duplicates()
    codes, names = pd.factorize(long["feature"], sort=True)
    mat = sp.csr_matrix(
        (np.ones(len(long), np.float32), (long["row"].to_numpy(), codes)),
        shape=(n_rows, len(names)),
    )
    return Features(mat, np.asarray(names, dtype=object))


def member_feature_columns(members: pd.DataFrame, year: int) -> dict[str, Any]:
    """Feature columns of a (validated) members table: age band at ``year``, gender,
    occupation, district, mobile, branch, skills — the input of ``one_hot``."""
    cols: dict[str, Any] = {}
    if C.BIRTH_YEAR in members.columns:
        cols["age_band"] = age_band(members[C.BIRTH_YEAR], year)
    for col in MEMBER_FEATURE_COLUMNS:
        if col in members.columns:
            cols[col] = members[col]
    return cols


def course_feature_columns(courses: pd.DataFrame, *, min_title_courses: int = 1) -> dict[str, Any]:
    """Feature columns of a (validated) courses table: channel, tags, lecturer, source,
    duration band and title words (kept when they occur in ``min_title_courses`` courses)."""
    cols: dict[str, Any] = {col: courses[col] for col in COURSE_FEATURE_COLUMNS if col in courses}
    if C.DURATION in courses.columns:
        bounds = np.array([lo for lo, _ in DURATION_BANDS])
        labels = np.array([label for _, label in DURATION_BANDS], dtype=object)
        dur = courses[C.DURATION].to_numpy(dtype=float)
        band = labels[np.clip(np.searchsorted(bounds, dur, side="right") - 1, 0, None)]
        band[np.isnan(dur)] = None
        cols["duration"] = band
    if C.TITLE in courses.columns:
        from recommend.text import tokenize

        tokens = [sorted(set(tokenize(t))) if isinstance(t, str) else [] for t in courses[C.TITLE]]
        if min_title_courses > 1:
            counts = pd.Series(tokens, dtype=object).explode().value_counts()
            keep = set(counts.index[counts >= min_title_courses])
            tokens = [[t for t in ts if t in keep] for ts in tokens]
        cols["title"] = tokens
    return cols


@dataclass(frozen=True, eq=False)
class Dataset:
    """Confidence matrix, id maps, aligned tables and features; build with ``from_frames``.

    Attributes
    ----------
    interactions
        ``(n_members, n_courses)`` CSR ``float32`` confidence matrix.
    member_ids, course_ids
        ``IdMap`` of members and courses; row ``i`` of every member-aligned array is
        ``member_ids.external_ids[i]``.
    events
        The validated events with two extra ``int32`` columns ``member_idx`` and
        ``course_idx``.
    courses, members
        Validated tables reindexed so that row ``i`` is course/member ``i`` (``None`` when
        not given); entities known only from events have missing attributes.
    orgs
        The validated org table, or ``None``.
    now
        Reference time of the data (the given one, else the data's robust now, see
        ``recommend.data.timeline``): decay and age bands use it.
    report
        What was dropped: events with unknown ids (``on_unknown="drop"``) and future-dated
        events (``on_future="drop"``).
    """

    interactions: sp.csr_matrix
    member_ids: IdMap
    course_ids: IdMap
    events: pd.DataFrame
    courses: pd.DataFrame | None
    members: pd.DataFrame | None
    orgs: pd.DataFrame | None
    weighting: Weighting
    now: pd.Timestamp
    report: ReferenceReport
    _meta: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_frames(
        cls,
        events: pd.DataFrame,
        *,
        courses: pd.DataFrame | None = None,
        members: pd.DataFrame | None = None,
        orgs: pd.DataFrame | None = None,
        weighting: Weighting | None = None,
        on_unknown: Literal["raise", "drop"] = "raise",
        now: pd.Timestamp | str | None = None,
        member_ids: IdMap | None = None,
        course_ids: IdMap | None = None,
        on_future: OnFuture = "raise",
    ) -> Dataset:
        """Validate the tables and build the dataset.

        Parameters
        ----------
        events
            Learning events (required columns ``member_id, course_id, event, timestamp``).
        courses, members, orgs
            Optional attribute tables. When ``courses``/``members`` is given it defines the
            course/member universe (entities with no events included, e.g. new courses),
            and events referring to ids missing from it are handled by ``on_unknown``.
        weighting
            How events become confidence; ``Weighting()`` defaults when ``None``.
        on_unknown
            ``"raise"`` (default) refuses events with unknown ids; ``"drop"`` drops them,
            counts them in ``report`` and logs a warning.
        now
            Reference time for decay and age bands; when ``None``, the data's robust now
            (the last event that is not an outlier: ``recommend.data.timeline``).
        member_ids, course_ids
            Fixed universes (e.g. to give a train and a test set the same indices). Events
            outside them are handled by ``on_unknown``.
        on_future
            Events dated after the reference time: ``"raise"`` (default) refuses them with
            their rows named; ``"drop"`` drops them, counts them in ``report`` and logs a
            warning; ``"keep"`` keeps them with a decay weight of 1 (a test set after its
            training set's ``now``).
        """
        weighting = weighting or Weighting()
        ev = validate("events", events, event_weights=weighting.event_weights)
        crs = validate("courses", courses) if courses is not None else None
        mem = validate("members", members) if members is not None else None
        org = validate("orgs", orgs) if orgs is not None else None
        if mem is not None and org is not None and C.ORG in mem.columns:
            _check_member_orgs(mem, org)

        ev, times = check_times(ev, now=now, on_future=on_future)
        if times.future_dropped:
            log.warning(
                "dropped %d event(s) dated after %s (on_future='drop')",
                times.future_dropped,
                times.now,
            )
        course_universe = _universe(C.COURSE, course_ids, crs)
        member_universe = _universe(C.MEMBER, member_ids, mem)
        ev, report = check_references(
            ev, courses=course_universe, members=member_universe, on_unknown=on_unknown
        )
        if times.future_dropped:
            report = replace(
                report,
                events_in=report.events_in + times.future_dropped,
                future_events=times.future_dropped,
            )
        if ev.empty:
            raise DataError("events: no events left after dropping unknown ids")

        if course_ids is None:
            course_ids = IdMap.from_values(crs[C.COURSE] if crs is not None else ev[C.COURSE])
        if member_ids is None:
            member_ids = IdMap.from_values(mem[C.MEMBER] if mem is not None else ev[C.MEMBER])
        ev[MEMBER_IDX] = member_ids.to_index(ev[C.MEMBER])
        ev[COURSE_IDX] = course_ids.to_index(ev[C.COURSE])

        crs = align_rows(crs, C.COURSE, course_ids)
        mem = align_rows(mem, C.MEMBER, member_ids)
        ref = times.now

        durations = None
        if crs is not None and C.DURATION in crs.columns:
            durations = crs[C.DURATION].to_numpy(dtype=np.float64)[ev[COURSE_IDX].to_numpy()]
        conf = weighting.event_confidence(ev, durations, ref)
        matrix = weighting.matrix(
            ev[MEMBER_IDX].to_numpy(),
            ev[COURSE_IDX].to_numpy(),
            conf,
            (len(member_ids), len(course_ids)),
        )
        return cls(
            interactions=matrix,
            member_ids=member_ids,
            course_ids=course_ids,
            events=ev,
            courses=crs,
            members=mem,
            orgs=org,
            weighting=weighting,
            now=ref,
            report=report,
        )

    # ------------------------------------------------------------------ shape and summary
    @property
    def n_members(self) -> int:
        return len(self.member_ids)

    @property
    def n_courses(self) -> int:
        return len(self.course_ids)

    def summary(self) -> dict[str, Any]:
        """Aggregate statistics (no ids): counts, density, time range, drops."""
        nnz = int(self.interactions.nnz)
        ts = self.events[C.TIMESTAMP]
        return {
            "members": self.n_members,
            "courses": self.n_courses,
            "events": len(self.events),
            "interactions": nnz,
            "density": nnz / max(1, self.n_members * self.n_courses),
            "members_with_events": int((self.interactions.getnnz(axis=1) > 0).sum()),
            "courses_with_events": int((self.interactions.getnnz(axis=0) > 0).sum()),
            "first_event": str(ts.min()),
            "last_event": str(ts.max()),
            "dropped_events": self.report.dropped,
        }

    # ------------------------------------------------------------------ features
    @cached_property
    def member_features(self) -> Features | None:
        """One-hot member features (age band, gender, occupation, district, mobile, branch,
        skills), or ``None`` without a members table."""
        if self.members is None:
            return None
        return one_hot(member_feature_columns(self.members, self.now.year), self.n_members)

    @cached_property
    def course_features(self) -> Features | None:
        """One-hot course features (channel, tags, lecturer, source, duration band, title
        tokens seen in at least two courses), or ``None`` without a courses table."""
        if self.courses is None:
            return None
        columns = course_feature_columns(self.courses, min_title_courses=2)
        return one_hot(columns, self.n_courses)

    def with_new_courses(self, course_ids: IdMap, rows: pd.DataFrame) -> Dataset:
        """This dataset with the courses of ``rows`` (a validated courses table of courses
        it does not know) appended; ``course_ids`` is this map with them added.

        The interaction matrix gets an empty column per course (its arrays shared), the
        courses table their rows (a column only one side has is missing on the other);
        events, members, ``now`` and the weighting stay. Course features are rebuilt from
        the longer table on first use; the fingerprint is computed afresh.
        """
        if not np.array_equal(
            course_ids.external_ids[: self.n_courses], self.course_ids.external_ids
        ):
            raise DataError("with_new_courses: course_ids must extend this dataset's course ids")
        m = self.interactions
        interactions = sp.csr_matrix(
            (m.data, m.indices, m.indptr), shape=(m.shape[0], len(course_ids))
        )
        table = rows if self.courses is None else pd.concat([self.courses, rows], ignore_index=True)
        meta = {k: v for k, v in self._meta.items() if k != "fingerprint"}
        return replace(
            self,
            interactions=interactions,
            course_ids=course_ids,
            courses=align_rows(table, C.COURSE, course_ids),
            _meta=meta,
        )

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """Content hash (hex sha256) of the matrix, id maps, weighting and tables."""
        cached = self._meta.get("fingerprint")
        if cached:
            return str(cached)
        h = hashlib.sha256()
        m = self.interactions
        for arr in (m.indptr, m.indices, m.data):
            h.update(np.ascontiguousarray(arr).tobytes())
        for ids in (self.member_ids.external_ids, self.course_ids.external_ids):
            h.update("\x1f".join(map(str, ids.tolist())).encode())
        h.update(json.dumps(self.weighting.get_params(), sort_keys=True, default=str).encode())
        for frame in (self.courses, self.members, self.orgs):
            if frame is not None:
                flat = frame.map(lambda v: "|".join(map(str, v)) if isinstance(v, list) else v)
                h.update(pd.util.hash_pandas_object(flat.astype(str), index=False).to_numpy())
        self._meta["fingerprint"] = h.hexdigest()
        return self._meta["fingerprint"]

    # ------------------------------------------------------------------ splits
    def split(self, splitter: Splitter) -> tuple[Dataset, Dataset]:
        """Split the events with ``splitter`` into a train and a test dataset.

        Both share this dataset's id maps and tables, so indices line up. The train set's
        ``now`` is its own robust now (its last event but for outliers; no look into the
        future); the test matrix holds the held-out interactions (use it as relevance). The
        events were checked for future dates when this dataset was built, so neither part
        refuses any (``on_future="keep"``).
        """
        raw = self.events.drop(columns=[MEMBER_IDX, COURSE_IDX])
        parts = splitter.split(raw, self.courses)

        def part(events: pd.DataFrame, now: pd.Timestamp | None = None) -> Dataset:
            # This dataset's events passed the future-dated policy already; test events come
            # after the training set's now: kept, never boosted.
            return Dataset.from_frames(
                events,
                courses=self.courses,
                members=self.members,
                orgs=self.orgs,
                weighting=self.weighting,
                member_ids=self.member_ids,
                course_ids=self.course_ids,
                now=now,
                on_future="keep",
            )

        train = part(parts.train)
        test = part(parts.test, now=train.now)
        train._meta["split_info"] = dict(parts.info)
        return train, test


def _universe(col: str, ids: IdMap | None, table: pd.DataFrame | None) -> pd.DataFrame | None:
    if ids is not None:
        return pd.DataFrame({col: ids.external_ids})
    return table


def align_rows(frame: pd.DataFrame | None, col: str, ids: IdMap) -> pd.DataFrame | None:
    """The rows of a members/courses table in the order of an id map, one row per id.

    Row ``i`` of the result is the row whose ``col`` is ``ids.external_ids[i]``; an id the
    table lacks gets a row of nulls with only ``col`` set. ``None`` stays ``None``. This is
    how ``Dataset`` lines its tables up with its indices (``courses.iloc[course_idx]``).

    Parameters
    ----------
    frame
        A validated table with unique ids in ``col``, or ``None``.
    col
        The id column (``member_id`` or ``course_id``).
    ids
        The id map to follow; the result has ``len(ids)`` rows and a fresh 0..n-1 index.
    """
    if frame is None:
        return None
    pos = pd.Index(frame[col]).get_indexer(ids.external_ids)
    out = frame.iloc[np.maximum(pos, 0)].reset_index(drop=True)
    if (pos < 0).any():
        out.loc[pos < 0, :] = None
        out[col] = ids.external_ids
    return out


def _check_member_orgs(members: pd.DataFrame, orgs: pd.DataFrame) -> None:
    org_ids = members[C.ORG]
    unknown = org_ids.notna().to_numpy() & ~org_ids.isin(orgs[C.ORG]).to_numpy()
    if unknown.any():
        raise DataError(
            [
                Problem.at(
                    "members",
                    C.ORG,
                    "branches missing from the orgs table",
                    "every member's org_id in the orgs table (or no orgs table)",
                    unknown,
                    values=pd.unique(org_ids.to_numpy()[unknown]).tolist(),
                )
            ]
        )
