"""The continue-learning rule: unfinished courses (继续学习) and next lectures (下一讲).

After a member's compulsory pins (:mod:`recommend.engine.pins`) and before the model's
recommendations, a menu holds up to ``MenuOptions.max_continue`` entries (default
:data:`recommend.engine.options.DEFAULT_MAX_CONTINUE`) of two kinds:

* **continue learning** (继续学习): a course the member started (a ``progress`` event, in the
  training data) and has not completed (:meth:`ServingState.completed_rows`, so a course
  completed in events folded in with ``update`` is dropped at once), the most recently
  started first;
* **next lecture** (下一讲): in each series the member follows, the lecture after the
  furthest one they completed, when they have not studied it yet; best scored first.

The two kinds alternate (continue, next, continue, ...) until the cap; an entry must pass
the request's course filter and is never one of the compulsory pins. Series come from the
courses table: ``series_id`` with ``series_order`` (a course with a ``series_id`` and no
order takes the lecture number of its title), or, for courses without a ``series_id``,
inferred from titles that number their lecture (``……（第9讲）``, ``第十二课``): courses whose
titles agree once the number is taken out form a series, ordered by that number.
Progress events folded in with ``update`` do not add entries until the next refit (the
fold-in keeps completions, not progress).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from recommend.engine.pins import KIND_CONTINUE, KIND_NEXT, PairScorer, Pins
from recommend.engine.rows import small_isin

if TYPE_CHECKING:
    from recommend.engine.rows import Rows
    from recommend.engine.state import CourseFilter, ServingState
    from recommend.models.base import History

__all__ = ["continue_pins"]

_EMPTY_I64 = np.empty(0, dtype=np.int64)


def continue_pins(
    state: ServingState,
    history: History,
    idx: NDArray[np.int64],
    seen: Rows,
    limits: NDArray[np.int64],
    allowed: CourseFilter,
    score: PairScorer,
    pinned: Pins,
) -> Pins:
    """The continue-learning and next-lecture entries of members ``idx``.

    Parameters
    ----------
    state
        The model's serving state.
    history
        The request's member histories (``model.history_`` in the request's snapshot).
    idx : ndarray of int64, shape (m,)
        Model member indices (-1: unknown to the model, no entries).
    seen
        The members' history rows (aligned with ``idx``).
    limits : ndarray of int64, shape (m,)
        Most entries per member (the cap, less the room the compulsory pins took).
    allowed
        The request's course filter: an entry must pass it.
    score
        Scores of (member row, course) pairs: next lectures are ordered by them.
    pinned
        The members' compulsory pins (never repeated).

    Returns
    -------
    Pins
        ``kinds`` says which entry is which; ``via`` names, for a next lecture, the
        completed lecture it follows.
    """
    idx = np.asarray(idx, dtype=np.int64)
    m = idx.size
    limits = np.asarray(limits, dtype=np.int64)
    if m == 0 or int(limits.max(initial=0)) <= 0:
        return Pins.none(m)
    started = state.started_rows(idx)
    series = state.series()
    if started.indices.size == 0 and series.empty:
        return Pins.none(m)  # nothing started, no series: the common case stays cheap
    done = state.completed_rows(history, idx)
    done_rows, done_cols = done.row_of_entry, done.indices.astype(np.int64)
    nxt = series.next_course[done_cols] if not series.empty else _EMPTY_I64
    has = nxt >= 0
    any_next = bool(has.any())
    if started.indices.size == 0 and not any_next:
        return Pins.none(m)  # nothing started, no completed lecture with a next one
    # (member row, course) pairs as one key each; a menu's few keys are compared directly.
    n_courses = np.int64(state.n_courses)
    done_keys = done_rows * n_courses + done_cols
    pin_keys = pinned.rows * n_courses + pinned.courses

    # Continue learning: started, not completed, not pinned, allowed.
    c_rows, c_cols = started.row_of_entry, started.indices.astype(np.int64)
    if c_cols.size:
        c_when = np.asarray(started.data, dtype=np.float64)
        keys = c_rows * n_courses + c_cols
        ok = ~small_isin(keys, np.concatenate((done_keys, pin_keys)))
        if allowed.mask is not None:
            ok &= allowed.mask[c_cols]
        c_rows, c_cols, c_when = c_rows[ok], c_cols[ok], c_when[ok]
        c_order = np.lexsort((c_cols, -c_when, c_rows))  # newest first
        c_rows, c_cols = c_rows[c_order], c_cols[c_order]

    # Next lectures: after a completed lecture, not studied, not pinned, not already an
    # entry, allowed; per series the one after the furthest completed lecture. A next
    # lecture is in the series of the lecture it follows (``series_table``), so one entry
    # per (member, series) is also one entry per (member, course).
    n_rows, n_cols, n_via = _EMPTY_I64, _EMPTY_I64, _EMPTY_I64
    if any_next:
        rows, via, cand = done_rows[has], done_cols[has], nxt[has]
        blocked = np.concatenate(
            (
                seen.row_of_entry * n_courses + seen.indices.astype(np.int64),
                done_keys,
                pin_keys,
                c_rows * n_courses + c_cols,
            )
        )
        ok = ~small_isin(rows * n_courses + cand, blocked)
        if allowed.mask is not None:
            ok &= allowed.mask[cand]
        rows, via, cand = rows[ok], via[ok], cand[ok]
        if rows.size:
            # The furthest completed lecture of each (member, series) decides: by member,
            # then series by series, the furthest lecture first (ranks are below n_courses).
            order = np.argsort(rows * n_courses - series.rank[via])
            rows, via, cand = rows[order], via[order], cand[order]
            code = series.code[via]
            first = np.empty(rows.size, dtype=bool)
            first[0] = True
            np.not_equal(rows[1:], rows[:-1], out=first[1:])
            first[1:] |= code[1:] != code[:-1]
            n_rows, n_via, n_cols = rows[first], via[first], cand[first]
            n_scores = np.asarray(score(n_rows, n_cols), dtype=np.float32)
            order = np.lexsort((n_cols, -n_scores, n_rows))
            n_rows, n_cols, n_via = n_rows[order], n_cols[order], n_via[order]

    if c_rows.size == 0 and n_rows.size == 0:
        return Pins.none(m)
    # Alternate the kinds: the j-th entry of a kind takes slot 2 j (continue) or 2 j + 1.
    if n_rows.size == 0:
        rows, cols, via = c_rows, c_cols, np.full(c_rows.size, -1, np.int64)
        kinds = np.full(rows.size, KIND_CONTINUE, np.int8)
    elif c_rows.size == 0:
        rows, cols, via = n_rows, n_cols, n_via
        kinds = np.full(rows.size, KIND_NEXT, np.int8)
    else:
        rows = np.concatenate((c_rows, n_rows))
        cols = np.concatenate((c_cols, n_cols))
        kinds = np.repeat(np.array([KIND_CONTINUE, KIND_NEXT], np.int8), (c_rows.size, n_rows.size))
        via = np.concatenate((np.full(c_rows.size, -1, np.int64), n_via))
        slot = np.concatenate((2 * _position_in_row(c_rows), 2 * _position_in_row(n_rows) + 1))
        order = np.lexsort((slot, rows))
        rows, cols, kinds, via = rows[order], cols[order], kinds[order], via[order]
    keep = _position_in_row(rows) < limits[rows]
    rows, cols, kinds, via = rows[keep], cols[keep], kinds[keep], via[keep]
    scores = np.asarray(score(rows, cols), dtype=np.float32)
    counts = np.bincount(rows, minlength=m).astype(np.int64)
    return Pins(rows, cols, scores, counts, kinds, via)


def _position_in_row(rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """0, 1, ... within each run of equal (ascending) rows."""
    return np.arange(rows.size) - np.searchsorted(rows, rows)
