"""The library's exceptions: every error we raise on purpose is one of these."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "SHOWN_ROWS",
    "ArtifactError",
    "ConfigError",
    "DataError",
    "NotFittedError",
    "Problem",
    "RecommendError",
    "TrackingError",
    "one_line",
]


class RecommendError(Exception):
    """Base class of all errors raised by ``recommend``."""


#: Offending rows (and values) a problem quotes; ``count`` says how many there are in all.
SHOWN_ROWS = 5


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input table.

    ``rows`` holds the 0-based positional row numbers of the first offending rows (at most a few),
    ``count`` how many rows are affected in all, ``values`` a few offending values.
    """

    table: str
    column: str | None
    message: str
    expected: str = ""
    rows: tuple[int, ...] = ()
    count: int = 0
    values: tuple[object, ...] = field(default=())

    @classmethod
    def at(
        cls,
        table: str,
        column: str | None,
        message: str,
        expected: str,
        bad: np.ndarray,
        values: Iterable[object] = (),
    ) -> Problem:
        """The problem of the rows where the boolean mask ``bad`` is set: the first
        :data:`SHOWN_ROWS` of them (and of ``values``) quoted, all of them counted."""
        rows = np.flatnonzero(bad)
        return cls(
            table,
            column,
            message,
            expected,
            rows=tuple(int(r) for r in rows[:SHOWN_ROWS]),
            count=int(rows.size),
            values=tuple(values)[:SHOWN_ROWS],
        )

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        text = f"{where}: {self.message}"
        if self.count:
            text += f" in {self.count} row{'s' if self.count != 1 else ''}"
            if self.rows:
                shown = ", ".join(str(r) for r in self.rows)
                more = ", ..." if self.count > len(self.rows) else ""
                text += f" (row{'s' if len(self.rows) > 1 else ''} {shown}{more})"
        if self.values:
            text += "; values " + ", ".join(repr(v) for v in self.values)
        if self.expected:
            text += f"; expected {self.expected}"
        return text


class DataError(RecommendError, ValueError):
    """Input data is not what the library expects.

    The message names the table, column, offending rows and what was expected; the
    individual findings are in ``problems``.
    """

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        lines = [str(p) for p in self.problems]
        head = "invalid input" if len(lines) != 1 else lines[0]
        body = "" if len(lines) == 1 else "\n  - " + "\n  - ".join(lines)
        super().__init__(head + body)


class ConfigError(RecommendError, ValueError):
    """A configuration value (weighting, split, experiment file, CLI option) is invalid."""


class NotFittedError(RecommendError, RuntimeError):
    """A model was asked to score or recommend before ``fit``."""


class ArtifactError(RecommendError, OSError):
    """A model artifact is missing, truncated, tampered with, or of a newer format."""


class TrackingError(RecommendError, RuntimeError):
    """The MLflow tracking store or model registry cannot be used (a locked or corrupt
    database, an unreachable server); the message names the store and the cause."""


def one_line(exc: BaseException) -> str:
    """A foreign exception's message on one line (whitespace runs, newlines included,
    become one space), for the library's own one-line messages that quote it."""
    return " ".join(str(exc).split()) or type(exc).__name__
