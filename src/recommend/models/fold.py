"""Array steps of folding a batch of members in (``Recommender.fold_in_batch``).

Pure functions on arrays and sparse rows, so the snapshot logic in
``recommend.models.base`` stays a short list of named steps: the batch's events as
confidence rows and completions per member (one home for ``update`` and
``recommend.ingest``), the training completions as a matrix, the members' merged history
rows, the learners of new courses, the change in how many members reached each course.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX
from recommend.data.timeline import FUTURE_TOLERANCE
from recommend.errors import DataError, Problem
from recommend.schema import EVENT_COMPLETE, Columns

if TYPE_CHECKING:
    from recommend.data.dataset import Dataset
    from recommend.data.weighting import Weighting

__all__ = [
    "CourseLearners",
    "batch_now",
    "course_durations",
    "event_rows",
    "float_column",
    "learners_from_history",
    "merged_completions",
    "merged_rows",
    "reach_change",
    "split_rows",
    "training_completions",
    "updated_learners",
]

C = Columns
_EMPTY = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class CourseLearners:
    """The learners of a course that had none in the training data (a new course), as
    folded in since: sorted member indices (int64) and their confidences (float32)."""

    members: np.ndarray
    values: np.ndarray


def batch_now(data_now: pd.Timestamp, times: np.ndarray, caller: str) -> pd.Timestamp:
    """The reference time of a batch of event ``times`` (datetime64[ns]): the latest of
    the model's data time and the events'. Missing times, and times beyond the data and
    the clock (a date such as 2100-01-01 would decay everything else to the floor), are
    refused with a ``DataError`` naming their rows (``caller`` opens the message)."""
    missing = np.isnat(times)
    latest = max(data_now, pd.Timestamp.now(tz="UTC").tz_localize(None)) + FUTURE_TOLERANCE
    future = ~missing & (times > np.datetime64(latest.to_datetime64(), "ns"))
    for bad, what in ((missing, "missing event times"), (future, f"events dated after {latest}")):
        if bad.any():
            raise DataError(
                [
                    Problem.at(
                        "events",
                        C.TIMESTAMP,
                        f"{caller}: {what}",
                        "a time for every event, none more than a year after the model's "
                        "data and the clock: fix the dates",
                        bad,
                    )
                ]
            )
    return max(data_now, pd.Timestamp(times.max())) if times.size else data_now


def event_rows(
    weighting: Weighting,
    position: np.ndarray,
    course_idx: np.ndarray,
    kinds: np.ndarray,
    times: np.ndarray,
    *,
    shape: tuple[int, int],
    now: pd.Timestamp,
    durations: np.ndarray | None = None,
    watch_seconds: np.ndarray | None = None,
    value: np.ndarray | None = None,
) -> tuple[sp.csr_matrix, list[np.ndarray]]:
    """A batch of events as one confidence row per member and their completions.

    Parameters
    ----------
    weighting
        The model's training weighting (exact duplicates collapse as at fit).
    position, course_idx : ndarray of int64, shape (n,)
        Each event's row in the result (its member) and course index.
    kinds : ndarray of str, shape (n,)
        Event names.
    times : ndarray of datetime64[ns], shape (n,)
    shape
        (members, n_courses) of the result.
    now
        Reference time of the decay (:func:`batch_now`).
    durations : ndarray of float, shape (n_courses,), optional
        Course durations in seconds (watch ratios).
    watch_seconds, value : ndarray of float, shape (n,), optional

    Returns
    -------
    rows : csr_matrix, shape ``shape``, float32
    completed : list of ndarray of int64
        Per member (row), the courses their ``complete`` events complete (sorted, unique).
    """
    duplicate = None
    if weighting.duplicates == "collapse" and kinds.size:
        # Exact duplicates as the training data has them: equal in every events column.
        columns = {"m": position, "c": course_idx, "e": kinds, "t": times}
        if watch_seconds is not None:
            columns["w"] = watch_seconds
        if value is not None:
            columns["v"] = value
        duplicate = pd.DataFrame(columns).duplicated(keep="first").to_numpy()
    conf = weighting.confidence(
        kinds,
        times,
        value=value,
        watch_seconds=watch_seconds,
        durations=None if durations is None else durations[course_idx],
        duplicate=duplicate,
        now=now,
    )
    rows = weighting.matrix(position, course_idx, conf, shape)
    done = kinds == EVENT_COMPLETE
    return rows, _grouped(position[done], course_idx[done], shape[0])


def _grouped(position: np.ndarray, course_idx: np.ndarray, n: int) -> list[np.ndarray]:
    """Course indices per member row (sorted, unique), from (position, course) pairs."""
    order = np.lexsort((course_idx, position))
    bounds = np.searchsorted(position[order], np.arange(n + 1))
    sorted_courses = course_idx[order].astype(np.int64)
    return [np.unique(sorted_courses[bounds[k] : bounds[k + 1]]) for k in range(n)]


def float_column(frame: pd.DataFrame, name: str) -> np.ndarray | None:
    """Column ``name`` of an events frame as float64, or ``None`` when it has none."""
    return frame[name].to_numpy(dtype=np.float64) if name in frame.columns else None


def course_durations(dataset: Dataset | None) -> np.ndarray | None:
    """(n_courses,) float64 durations in seconds of a dataset's courses (NaN: unknown), or
    ``None`` without a courses table or duration column."""
    courses = None if dataset is None else dataset.courses
    if courses is None or C.DURATION not in courses.columns:
        return None
    return courses[C.DURATION].to_numpy(dtype=np.float64)


def training_completions(dataset: Dataset | None, shape: tuple[int, int]) -> sp.csr_matrix:
    """(n_training_members, n_courses) CSR float32: 1 where the training data (or a loaded
    artifact's completed table) has a ``complete`` event."""
    if dataset is None:
        return sp.csr_matrix(shape, dtype=np.float32)
    ev = dataset.events
    done = (ev[C.EVENT] == EVENT_COMPLETE).to_numpy()
    rows = ev[MEMBER_IDX].to_numpy()[done]
    cols = ev[COURSE_IDX].to_numpy()[done]
    mat = sp.csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=shape)
    mat.sum_duplicates()
    mat.sort_indices()
    return mat


def split_rows(rows: sp.csr_matrix) -> list[sp.csr_matrix]:
    """The rows of a CSR matrix as (1, n_courses) CSR matrices sharing its arrays' values
    (built from the index arrays: slicing row by row costs several times more)."""
    n = rows.shape[1]
    out = []
    for k in range(rows.shape[0]):
        lo, hi = int(rows.indptr[k]), int(rows.indptr[k + 1])
        indptr = np.array([0, hi - lo], dtype=rows.indptr.dtype)
        out.append(sp.csr_matrix((rows.data[lo:hi], rows.indices[lo:hi], indptr), shape=(1, n)))
    return out


def merged_rows(old: sp.csr_matrix, new: sp.csr_matrix, *, replace: bool) -> sp.csr_matrix:
    """The members' history rows after a batch: ``new`` in place of ``old`` (``replace``)
    or added to it; CSR float32, sorted, no stored zeros. Both (B, n_courses)."""
    out = sp.csr_matrix(new if replace else old + new, dtype=np.float32)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def merged_completions(
    idx: np.ndarray,
    given: list[np.ndarray],
    folded: Mapping[int, np.ndarray],
    training: sp.csr_matrix,
    *,
    replace: bool,
) -> dict[int, np.ndarray]:
    """Each member's completed courses after a batch (sorted int64): ``given`` alone
    (``replace``) or together with what they had completed (folded-in completions, else
    their training completions)."""
    out: dict[int, np.ndarray] = {}
    n_training = training.shape[0]
    for member, courses in zip(idx.tolist(), given, strict=True):
        done = np.asarray(courses, dtype=np.int64)
        if not replace:
            before = folded.get(member)
            if before is None and member < n_training:
                before = training.indices[training.indptr[member] : training.indptr[member + 1]]
            elif before is None:
                before = _EMPTY
            done = np.union1d(before.astype(np.int64), done)
        else:
            done = np.unique(done)
        out[member] = done
    return out


def reach_change(old: sp.csr_matrix, new: sp.csr_matrix) -> np.ndarray:
    """How many more members have each course in their history after the batch than
    before, (n_courses,) int64 (negative when a replaced history drops a course)."""
    before = np.bincount(old.indices, minlength=old.shape[1])
    after = np.bincount(new.indices, minlength=new.shape[1])
    return (after - before).astype(np.int64)


def updated_learners(
    learners: Mapping[int, CourseLearners],
    new_course: np.ndarray,
    idx: np.ndarray,
    rows: sp.csr_matrix,
    make: type[CourseLearners],
    before: sp.csr_matrix | None = None,
) -> tuple[dict[int, CourseLearners], dict[int, CourseLearners]]:
    """The learners of new courses after a batch, and those of the courses it touched.

    Parameters
    ----------
    learners
        Course index -> learners before the batch (new courses only).
    new_course : ndarray of bool, shape (n_courses,)
        Courses without learners in the training data.
    idx : ndarray of int64, shape (B,)
        The batch's members (unique).
    rows : csr_matrix, shape (B, n_courses)
        Their history rows after the batch.
    before : csr_matrix, shape (B, n_courses), optional
        Their rows before the batch (``None``: look the members up in ``learners``).
    """
    coo = rows.tocoo()
    keep = new_course[coo.col]
    member_of = idx[coo.row[keep]]
    course_of = coo.col[keep].astype(np.int64)
    value_of = coo.data[keep].astype(np.float32)
    batch = np.sort(idx)
    # A course is touched when a batch member learns it now or learnt it before the batch.
    touched = set(np.unique(course_of).tolist())
    if before is not None:
        had = before.indices[new_course[before.indices]]
        touched.update(np.unique(had).tolist())
    else:
        for course, old in learners.items():
            if np.isin(old.members, batch, assume_unique=True).any():
                touched.add(course)
    out = dict(learners)
    changed: dict[int, CourseLearners] = {}
    for course in sorted(touched):
        previous = learners.get(course)
        stay = np.ones(0, dtype=bool) if previous is None else ~np.isin(previous.members, batch)
        mine = course_of == course
        members = np.concatenate(
            [_EMPTY if previous is None else previous.members[stay], member_of[mine]]
        )
        values = np.concatenate(
            [np.empty(0, np.float32) if previous is None else previous.values[stay], value_of[mine]]
        )
        order = np.argsort(members, kind="stable")
        entry = make(members[order].astype(np.int64), values[order].astype(np.float32))
        changed[course] = entry
        if entry.members.size:
            out[course] = entry
        else:
            out.pop(course, None)
    return out, changed


def learners_from_history(
    extra: Mapping[int, sp.csr_matrix], new_course: np.ndarray, make: type[CourseLearners]
) -> dict[int, CourseLearners]:
    """The learners of new courses among folded-in members (rebuilding the map of a model
    loaded from an artifact)."""
    if not extra:
        return {}
    idx = np.array(sorted(extra), dtype=np.int64)
    rows = sp.vstack([extra[int(i)] for i in idx], format="csr", dtype=np.float32)
    learners, _ = updated_learners({}, new_course, idx, rows, make)
    return learners
