"""Courses grouped by lecturer, and lecturers ranked by a member's (or group's) scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.schema import Columns

__all__ = ["LECTURER_COLUMNS", "Lecturers", "empty_lecturers"]

C = Columns

#: Columns of a lecturer menu, in order.
LECTURER_COLUMNS = (C.LECTURER, C.SCORE, C.RANK, "courses", "top_course_id")


@dataclass(frozen=True)
class Lecturers:
    """Courses grouped by lecturer: ``order`` lists course indices lecturer by lecturer,
    ``starts`` where each lecturer's run begins, ``segment`` the lecturer of each slot."""

    ids: np.ndarray
    order: NDArray[np.int64]
    starts: NDArray[np.int64]
    segment: NDArray[np.int64]

    @classmethod
    def make(cls, lecturer: pd.Series) -> Lecturers | None:
        codes, uniques = pd.factorize(lecturer)
        if len(uniques) == 0:
            return None
        has = np.flatnonzero(codes >= 0)
        order = has[np.argsort(codes[has], kind="stable")].astype(np.int64)
        segment = codes[order].astype(np.int64)
        starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]]).astype(np.int64)
        return cls(np.asarray(uniques, dtype=object), order, starts, segment)

    def rank(
        self, scores: NDArray[np.float32], n: int, top: int, course_ext: np.ndarray
    ) -> pd.DataFrame:
        """Lecturers by the mean of their ``top`` best course scores (``-inf``: filtered).

        Vectorised over lecturers: ``top`` rounds of a segmented maximum
        (``np.maximum.reduceat``), each knocking out the maximum it found.
        """
        values = scores[self.order].astype(np.float64)
        values[np.isnan(values)] = -np.inf
        eligible = np.add.reduceat(np.isfinite(values).astype(np.int64), self.starts)
        total = np.zeros(self.starts.size)
        best_slot = np.zeros(self.starts.size, dtype=np.int64)
        for round_ in range(top):
            peak = np.maximum.reduceat(values, self.starts)
            hits = np.flatnonzero(values == peak[self.segment])
            first = hits[np.r_[True, self.segment[hits][1:] != self.segment[hits][:-1]]]
            live = np.isfinite(peak)
            total[live] += peak[live]
            if round_ == 0:
                best_slot[self.segment[first]] = first
            values[first] = -np.inf
        ok = np.flatnonzero(eligible > 0)
        mean = np.zeros(self.starts.size)
        mean[ok] = total[ok] / np.minimum(eligible[ok], top)
        # Best mean first; ties by lecturer order of first appearance.
        order = ok[np.lexsort((ok, -mean[ok]))][:n]
        return pd.DataFrame(
            {
                C.LECTURER: self.ids[order],
                C.SCORE: mean[order].astype(np.float32),
                C.RANK: np.arange(1, order.size + 1, dtype=np.int32),
                "courses": eligible[order].astype(np.int32),
                "top_course_id": course_ext[self.order[best_slot[order]]],
            }
        )


def empty_lecturers(course_ext: np.ndarray) -> pd.DataFrame:
    """A lecturer menu with no rows (``course_ext``: the catalogue's ids, for the dtype)."""
    return pd.DataFrame(
        {
            C.LECTURER: pd.Series([], dtype=object),
            C.SCORE: np.empty(0, np.float32),
            C.RANK: np.empty(0, np.int32),
            "courses": np.empty(0, np.int32),
            "top_course_id": course_ext[:0],
        }
    )
