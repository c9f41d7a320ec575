"""New catalogue rows for a fitted model: the steps of ``Recommender.extended_catalogue``.

A branch uploads a course and wants it offered today: ``recommend.ingest`` takes its
catalogue row with the day's events. The rows are validated as at load
(``recommend.data.validation``) and checked against the catalogue; the training data
grows by ``Dataset.with_new_courses`` (an empty column per course), the members' histories
are widened to match. The model then places the courses by content
(``Recommender._add_courses``) and their first learners fold in as for any course without
training learners.
"""

from __future__ import annotations

import pandas as pd
import scipy.sparse as sp

from recommend.data.idmap import IdMap
from recommend.data.validation import validate
from recommend.errors import DataError, Problem
from recommend.schema import Columns

__all__ = ["new_course_rows", "widened", "widened_rows"]

C = Columns


def new_course_rows(courses: pd.DataFrame, known: IdMap) -> pd.DataFrame:
    """``courses`` validated as a courses table at load, every id new to ``known``.

    Raises
    ------
    DataError
        A row the courses validation refuses (naming column and rows), or a course the
        catalogue has already (naming its rows and ids).
    """
    rows = validate("courses", courses)
    found = known.to_index(rows[C.COURSE].to_numpy(), unknown="mask") >= 0
    if found.any():
        raise DataError(
            [
                Problem.at(
                    "courses",
                    C.COURSE,
                    "courses already in the model's catalogue",
                    "only courses the model does not know (a known course's attributes "
                    "change at the next refit)",
                    found,
                    values=rows[C.COURSE].to_numpy()[found].tolist(),
                )
            ]
        )
    return rows


def widened(matrix: sp.csr_matrix, n_courses: int) -> sp.csr_matrix:
    """``matrix`` with empty columns appended up to ``n_courses`` (its arrays shared)."""
    out = sp.csr_matrix(
        (matrix.data, matrix.indices, matrix.indptr), shape=(matrix.shape[0], n_courses)
    )
    out.has_sorted_indices = matrix.has_sorted_indices
    return out


def widened_rows(rows: dict[int, sp.csr_matrix], n_courses: int) -> dict[int, sp.csr_matrix]:
    """Folded-in history rows (member index -> (1, n) CSR) widened to ``n_courses``."""
    return {member: widened(row, n_courses) for member, row in rows.items()}
