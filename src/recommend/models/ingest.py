"""Ingestion: a micro-batch of new events folded into a fitted model without refitting.

``ingest(model, events)`` validates an events frame once; ``ingest_arrays(model, ...)`` is
the fast path for a backend that validated its events already (ids, names and times as
arrays). Both turn the batch into one confidence row per member it touches (the weighting
of the model's training data) and hand them to ``Recommender.fold_in_batch``, which adds
them to the members' histories, re-solves their learned state, appends new members,
re-places the new courses they study from their learners, updates popularity counts, and
publishes all of it as ONE new snapshot: a request running meanwhile answers as before the
batch or as after it, never from half of it.

What a batch changes, per model (see ``docs/architecture.md``, "Ingestion"):

- every model: the members' histories (new confidences added to their rows: old events
  keep the decay they had at fit; the next refit re-weights everything) and completions;
- ALS, BPR, LightFM: the members' vectors, re-solved with the course side fixed;
- ALS: a new course (no learners in the training data) gets the exact least-squares
  solution of ALS's own course step against the member vectors; BPR: its pairwise
  objective for that course; both start from, and are pulled towards, the content
  placement, so a course with one learner is not thrown far from its content neighbours;
- item-kNN: a new course's column (and row) of the similarity matrix from its learners;
- EASE: members score from their new histories at once; a new course keeps its content
  placement until the next refit (its weights come from a matrix inverse over all
  courses, which one course's learners cannot update in place);
- popularity: global counts grow by the members who reach each course.

Courses unknown to the model are refused (``DataError`` naming them) unless the batch
brings their catalogue rows (``courses=``): validated as at load, appended to the model's
catalogue in the same snapshot, placed by content as courses without learners are at fit
(``Recommender.extended_catalogue``, ``_add_courses``), and then, like every course in the
catalogue without training learners, re-placed from their first learners.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recommend.data.idmap import IdMap
from recommend.data.validation import validate
from recommend.errors import DataError, Problem
from recommend.models import fold
from recommend.models.base import Catalogue, Recommender
from recommend.schema import Columns

__all__ = ["IngestResult", "ingest", "ingest_arrays"]

log = logging.getLogger(__name__)
C = Columns


@dataclass(frozen=True)
class IngestResult:
    """What one ingested batch changed.

    Attributes
    ----------
    version : int
        The model snapshot the batch was published as.
    events : int
        Events folded in.
    members : int
        Members the batch touched.
    new_members : int
        Of them, members the model did not know.
    new_courses : tuple of str
        Courses without training learners that the batch gave learners (re-placed from
        them where the model supports it).
    added_courses : tuple of str
        Catalogue rows the batch added (placed by content, then from their learners).
    """

    version: int
    events: int
    members: int
    new_members: int
    new_courses: tuple[str, ...]
    added_courses: tuple[str, ...] = ()


def ingest(
    model: Recommender, events: pd.DataFrame, *, courses: pd.DataFrame | None = None
) -> IngestResult:
    """Fold a micro-batch of new ``events`` (an events frame) into ``model``.

    The frame is validated once (the schema, ids normalised as at load); events of courses
    the model does not know, and events dated beyond the model's data and the clock, are
    refused with a ``DataError`` naming them. ``courses``: new catalogue rows (a courses
    table, validated as at load) that enter the catalogue with the batch, so the batch's
    events may study them (``events`` may then be empty). The batch is then folded in as
    :func:`ingest_arrays` does. Returns an :class:`IngestResult`.
    """
    model.check_fitted()
    if len(events) == 0 and courses is not None:  # catalogue rows before any learner
        return ingest_arrays(model, [], [], [], [], courses=courses)
    ds = model.dataset_
    ev = validate("events", events, event_weights=ds.weighting.event_weights)
    return ingest_arrays(
        model,
        ev[C.MEMBER].to_numpy(dtype=object),
        ev[C.COURSE].to_numpy(dtype=object),
        ev[C.EVENT].to_numpy(dtype=object),
        ev[C.TIMESTAMP].to_numpy(dtype="datetime64[ns]"),
        watch_seconds=fold.float_column(ev, C.WATCH_SECONDS),
        value=fold.float_column(ev, C.VALUE),
        courses=courses,
    )


def ingest_arrays(
    model: Recommender,
    member_ids: Any,
    course_ids: Any,
    events: Any,
    timestamps: Any,
    *,
    watch_seconds: Any = None,
    value: Any = None,
    courses: pd.DataFrame | None = None,
) -> IngestResult:
    """The fast path of :func:`ingest`, for events a backend validated already.

    Parameters
    ----------
    model
        A fitted model.
    member_ids : array-like, shape (n,)
        External member ids, normalised as the platform's ids are (no check here beyond
        type); members the model does not know are added.
    course_ids : array-like, shape (n,)
        External course ids; all must be known to the model.
    events : array-like of str, shape (n,)
        Event names (each must have a weight in the model's weighting).
    timestamps : array-like of datetime64, shape (n,)
        Event times (naive UTC).
    watch_seconds, value : array-like of float, shape (n,), optional
        As the events columns of the same names (NaN: not given).
    courses : DataFrame, optional
        New catalogue rows (a courses table, validated here as at load): appended to the
        model's catalogue, placed by content as courses without learners are at fit, and
        published with the batch (whose events may study them). Models that cannot place
        a course before a refit refuse them (``ConfigError``).

    Returns
    -------
    IngestResult

    Raises
    ------
    DataError
        Arrays of different lengths, unknown courses, missing or far-future times, a bad
        catalogue row (naming its column and rows) or a course already in the catalogue.
    ConfigError
        An event name without a weight.
    """
    model.check_fitted()
    members = np.asarray(member_ids, dtype=object).reshape(-1)
    course_ids = np.asarray(course_ids, dtype=object).reshape(-1)
    kinds = np.asarray(events, dtype=object).reshape(-1)
    times = np.asarray(timestamps, dtype="datetime64[ns]").reshape(-1)
    watch = None if watch_seconds is None else np.asarray(watch_seconds, np.float64).reshape(-1)
    weight = None if value is None else np.asarray(value, np.float64).reshape(-1)
    _check_lengths(members, course_ids, kinds, times, watch, weight)
    added = courses is not None and len(courses) > 0
    if members.size == 0 and not added:
        return IngestResult(model.snapshot().version, 0, 0, 0, ())
    # One writer at a time: the course indices below refer to the catalogue the batch is
    # published with (readers take no lock).
    with model.lock:
        catalogue = model.extended_catalogue(courses) if added else None
        return _fold_in(model, members, course_ids, kinds, times, watch, weight, catalogue)


def _fold_in(
    model: Recommender,
    members: np.ndarray,
    course_ids: np.ndarray,
    kinds: np.ndarray,
    times: np.ndarray,
    watch: np.ndarray | None,
    weight: np.ndarray | None,
    catalogue: Catalogue | None,
) -> IngestResult:
    """The events as confidence rows per member, folded in with ``catalogue`` (if any)."""
    known_courses = model.course_ids_ if catalogue is None else catalogue.course_ids
    course_idx = _course_indices(known_courses, course_ids)
    ds = model.dataset_
    unique, position = np.unique(members, return_inverse=True)
    rows, completed = fold.event_rows(
        ds.weighting,
        position.reshape(-1),
        course_idx,
        kinds,
        times,
        shape=(unique.size, len(known_courses)),
        now=fold.batch_now(ds.now, times, "ingest"),
        durations=(
            model.course_durations()
            if catalogue is None
            else fold.course_durations(catalogue.dataset)
        ),
        watch_seconds=watch,
        value=weight,
    )
    before = model.snapshot()
    known = before.member_ids.to_index(unique, unknown="mask") >= 0
    n_added = len(known_courses) - len(model.course_ids_)
    snapshot = model.fold_in_batch(unique, rows, completed, catalogue=catalogue)
    with model.reading(snapshot):
        studied = np.unique(course_idx)
        placed = studied[model.new_course_mask()[studied]]
    result = IngestResult(
        snapshot.version,
        int(members.size),
        int(unique.size),
        int((~known).sum()),
        tuple(str(c) for c in known_courses.external_ids[placed].tolist()),
        tuple(str(c) for c in known_courses.external_ids[len(known_courses) - n_added :]),
    )
    log.info(
        "ingest: %d events, %d members (%d new), %d new course(s), %d catalogue row(s) "
        "-> version %d",
        result.events,
        result.members,
        result.new_members,
        len(result.new_courses),
        len(result.added_courses),
        result.version,
    )
    return result


def _check_lengths(*arrays: np.ndarray | None) -> None:
    names = ("member_ids", "course_ids", "events", "timestamps", "watch_seconds", "value")
    sizes = {n: a.size for n, a in zip(names, arrays, strict=True) if a is not None}
    if len(set(sizes.values())) > 1:
        raise DataError(f"ingest_arrays: arrays of different lengths {sizes}; expected one each")


def _course_indices(known: IdMap, courses: np.ndarray) -> np.ndarray:
    idx = known.to_index(courses, unknown="mask").astype(np.int64)
    if (idx < 0).any():
        unknown = pd.unique(courses[idx < 0])[:5].tolist()
        raise DataError(
            [
                Problem.at(
                    "events",
                    C.COURSE,
                    f"ingest: courses {unknown} are not in the model's catalogue",
                    "courses in the model's catalogue (a new course enters it with its "
                    "catalogue row: ingest(model, events, courses=rows))",
                    idx < 0,
                )
            ]
        )
    return idx
