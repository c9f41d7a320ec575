"""What a course is about, as (course, value) pairs: channel, tags, duration band, course.

Preferences and demand are counted over these pairs, so a course with three tags counts for
each of them and every level (channel, tag, duration) is handled the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.data.dataset import DURATION_BANDS
from recommend.errors import ConfigError
from recommend.schema import Columns

__all__ = ["LEVELS", "CourseValues", "course_values", "duration_band"]

C = Columns

#: Levels at which preferences and demand are counted.
LEVELS = ("channel", "tag", "duration", "course")
_COLUMN = {"channel": C.CATEGORY, "tag": C.TAGS, "duration": C.DURATION, "course": C.COURSE}


def duration_band(seconds: pd.Series | np.ndarray) -> np.ndarray:
    """Duration band label of each course (``"<=5min"`` ... ``">60min"``; ``None`` if unknown).

    Returns
    -------
    ndarray of object, shape (n,)
    """
    dur = np.asarray(seconds, dtype=np.float64)
    bounds = np.array([lo for lo, _ in DURATION_BANDS])
    labels = np.array([label for _, label in DURATION_BANDS], dtype=object)
    out = labels[np.clip(np.searchsorted(bounds, dur, side="right") - 1, 0, None)]
    out[np.isnan(dur)] = None
    return out


@dataclass(frozen=True)
class CourseValues:
    """Courses and the values they carry at one level.

    Attributes
    ----------
    level : str
    course : ndarray of int64, shape (n_pairs,)
        Course index (row of the courses table).
    code : ndarray of int64, shape (n_pairs,)
        Index into ``labels``.
    labels : ndarray of object, shape (n_values,)
        Sorted values (channel names, tags, duration bands in order, course ids).
    n_courses : int
    """

    level: str
    course: NDArray[np.int64]
    code: NDArray[np.int64]
    labels: np.ndarray
    n_courses: int

    def matrix(self) -> sp.csr_matrix:
        """Indicator ``V[i, v] = 1`` when course ``i`` carries value ``v``; (n_courses,
        n_values) CSR float32."""
        return sp.csr_matrix(
            (np.ones(self.course.size, np.float32), (self.course, self.code)),
            shape=(self.n_courses, self.labels.size),
        )

    def supply(self, courses: NDArray[np.bool_] | None = None) -> NDArray[np.int64]:
        """Number of courses carrying each value (among ``courses`` if given), (n_values,)."""
        keep = np.ones(self.course.size, bool) if courses is None else courses[self.course]
        return np.bincount(self.code[keep], minlength=self.labels.size).astype(np.int64)


def course_values(courses: pd.DataFrame, level: str, *, min_courses: int = 1) -> CourseValues:
    """(course, value) pairs of a courses table at ``level``.

    Parameters
    ----------
    courses : DataFrame
        Courses table, row ``i`` is course index ``i``.
    level : {"channel", "tag", "duration", "course"}
    min_courses : int
        Keep values carried by at least this many courses (rare tags are noise).

    Returns
    -------
    CourseValues
    """
    if level not in LEVELS:
        raise ConfigError(f"level={level!r}; expected one of {LEVELS}")
    column = _COLUMN[level]
    if column not in courses.columns:
        raise ConfigError(
            f"level={level!r} needs a {column!r} column in the courses table; it has "
            f"{sorted(courses.columns)}"
        )
    n = len(courses)
    raw = courses[column].reset_index(drop=True)
    if level == "duration":
        values = pd.Series(duration_band(raw), dtype=object)
    elif level == "tag":
        values = raw.explode()
    else:
        values = raw.astype(object)
    values = values[values.notna() & (values.astype(str) != "")]
    course = values.index.to_numpy(dtype=np.int64)
    text = values.astype(str).to_numpy(dtype=object)
    if level == "duration":
        order = [label for _, label in DURATION_BANDS]
        present = [b for b in order if b in set(text)]
        labels = np.array(present, dtype=object)
        code = pd.Index(labels).get_indexer(text).astype(np.int64)
    else:
        code_raw, labels_raw = pd.factorize(pd.Series(text, dtype=object), sort=True)
        code, labels = code_raw.astype(np.int64), np.asarray(labels_raw, dtype=object)
    pairs = np.unique(course * max(labels.size, 1) + code)
    course, code = pairs // max(labels.size, 1), pairs % max(labels.size, 1)
    if min_courses > 1:
        counts = np.bincount(code, minlength=labels.size)
        keep_value = counts >= min_courses
        remap = np.cumsum(keep_value) - 1
        keep = keep_value[code]
        course, code, labels = course[keep], remap[code[keep]], labels[keep_value]
    return CourseValues(level, course.astype(np.int64), code.astype(np.int64), labels, n)
