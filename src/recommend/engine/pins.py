"""The pin rules: compulsory courses that come first on a menu, whatever the scores.

A member's menu pins the courses their branch made compulsory (``courses.compulsory_for``
holds the branch's ``org_id``) that pass the request's filters and that the member has not
completed (:meth:`ServingState.completed_rows`: in the training data, or in events folded
in with ``update``), best scored first, at most ``MenuOptions.pin_limit``.
A group's menu pins the courses compulsory for the branches of at least a given share of
the group, unless most of the group completed them (:func:`group_pins`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from recommend.engine.rows import small_isin
from recommend.messages import ListText, Message
from recommend.topk import rank_keys

if TYPE_CHECKING:
    from recommend.engine.state import CourseFilter, ServingState
    from recommend.models.base import History

__all__ = [
    "KIND_COMPULSORY",
    "KIND_CONTINUE",
    "KIND_NEXT",
    "GroupPins",
    "PairScorer",
    "Pins",
    "group_pins",
    "member_pins",
]

#: What put a pinned course on a menu (``Pins.kinds``): a compulsory course, a course the
#: member started and has not finished (继续学习), the next lecture of a series they follow
#: (下一讲; see :mod:`recommend.engine.continuing`).
KIND_COMPULSORY = 0
KIND_CONTINUE = 1
KIND_NEXT = 2

#: ``score(rows, courses) -> float32 scores`` of (member row, course index) pairs.
PairScorer = Callable[[NDArray[np.int64], NDArray[np.int64]], NDArray[np.float32]]

_EMPTY_I64 = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Pins:
    """Pinned courses of m members, row-major: within a member best score first, ties by
    course index.

    Attributes
    ----------
    rows : ndarray of int64
        The member (0..m-1) of each pin, ascending.
    courses : ndarray of int64
        Course index of each pin.
    scores : ndarray of float32
        The member's score for the course.
    counts : ndarray of int64, shape (m,)
        Pins per member.
    kinds : ndarray of int8 or None
        What pinned each course (``KIND_*``); ``None``: all compulsory.
    via : ndarray of int64 or None
        For a next lecture, the completed lecture it follows (-1 otherwise); ``None``:
        none.
    """

    rows: NDArray[np.int64]
    courses: NDArray[np.int64]
    scores: NDArray[np.float32]
    counts: NDArray[np.int64]
    kinds: NDArray[np.int8] | None = None
    via: NDArray[np.int64] | None = None

    @classmethod
    def none(cls, m: int) -> Pins:
        """No pins for m members."""
        return cls(_EMPTY_I64, _EMPTY_I64, np.empty(0, np.float32), np.zeros(m, np.int64))

    def kind_array(self) -> NDArray[np.int8]:
        """``kinds`` with compulsory filled in, aligned with ``courses``."""
        if self.kinds is None:
            return np.full(self.courses.size, KIND_COMPULSORY, dtype=np.int8)
        return self.kinds

    def via_array(self) -> NDArray[np.int64]:
        """``via`` with -1 filled in, aligned with ``courses``."""
        if self.via is None:
            return np.full(self.courses.size, -1, dtype=np.int64)
        return self.via

    def then(self, more: Pins) -> Pins:
        """These pins, then ``more``, member by member."""
        if more.rows.size == 0:
            return self
        if self.rows.size == 0:
            return more
        rows = np.concatenate((self.rows, more.rows))
        # Within a member: ours first, in order (one member: they are already).
        order = slice(None) if self.counts.size == 1 else np.argsort(rows, kind="stable")
        return Pins(
            rows[order],
            np.concatenate((self.courses, more.courses))[order],
            np.concatenate((self.scores, more.scores))[order],
            self.counts + more.counts,
            np.concatenate((self.kind_array(), more.kind_array()))[order],
            np.concatenate((self.via_array(), more.via_array()))[order],
        )

    @property
    def starts(self) -> NDArray[np.int64]:
        """Where each member's pins begin in the arrays, shape (m,)."""
        return np.cumsum(self.counts) - self.counts

    def of(self, i: int) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
        """Courses and scores pinned for member ``i``."""
        lo = int(self.starts[i])
        hi = lo + int(self.counts[i])
        return self.courses[lo:hi], self.scores[lo:hi]


def member_pins(
    state: ServingState,
    history: History,
    idx: NDArray[np.int64],
    limit: int,
    allowed: CourseFilter,
    score: PairScorer,
    orgs: Sequence[str | None] | None = None,
) -> Pins:
    """The compulsory courses to pin on the menus of members ``idx``.

    Parameters
    ----------
    state
        The model's serving state.
    history
        The request's member histories (``model.history_`` in the request's snapshot):
        courses completed in events folded in with ``update`` are not pinned.
    idx : ndarray of int64, shape (m,)
        Model member indices (-1: unknown to the model).
    limit
        Most pins per member (``MenuOptions.pin_limit``; 0: none).
    allowed
        The request's course filter: a pin must pass it.
    score
        Scores of (member row, course) pairs, to order each member's pins.
    orgs
        Per member, a branch org id that overrides the training members table (a
        request's ``member_attributes``); ``None`` entries keep the training branch.
    """
    idx = np.asarray(idx, dtype=np.int64)
    m = idx.size
    if limit <= 0 or not state.branch_pins():
        return Pins.none(m)
    rows, cols = _candidates(state, history, idx, allowed, orgs)
    if rows.size == 0:
        return Pins.none(m)
    scores = np.asarray(score(rows, cols), dtype=np.float32)
    keys = rank_keys(scores, cols)
    if m == 1:
        order = np.argsort(keys)[:limit]
        return Pins(rows[order], cols[order], scores[order], np.array([order.size], np.int64))
    # Rows ascending, then best score first, ties by course: the rank of each
    # (score, course) key, combined with the row, orders them as a three-key lexsort
    # would, in two plain sorts that take half its time.
    ranks = np.empty(keys.size, dtype=np.int64)
    ranks[np.argsort(keys)] = np.arange(keys.size)
    order = np.argsort(rows * keys.size + ranks)
    rows, cols, scores = rows[order], cols[order], scores[order]
    counts = np.bincount(rows, minlength=m)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    keep = (np.arange(rows.size) - first) < limit
    rows, cols, scores = rows[keep], cols[keep], scores[keep]
    return Pins(rows, cols, scores, np.bincount(rows, minlength=m).astype(np.int64))


def _candidates(
    state: ServingState,
    history: History,
    idx: NDArray[np.int64],
    allowed: CourseFilter,
    orgs: Sequence[str | None] | None,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(row, course) of every pin candidate: branch compulsory, allowed, not completed."""
    table = state.compulsory_table()
    codes = table.codes(idx)
    if orgs is not None:
        for i, org in enumerate(orgs):
            if org is not None:
                codes[i] = table.code_of(org)
    if idx.size == 1:
        return _candidates_of_one(state, history, idx, allowed, int(codes[0]))
    got = table.rows(codes)
    rows = got.row_of_entry
    cols = got.indices.astype(np.int64)
    if allowed.mask is not None and cols.size:
        ok = allowed.mask[cols]
        rows, cols = rows[ok], cols[ok]
    if cols.size:
        done = state.completed_rows(history, idx)
        if done.indices.size:
            n_courses = np.int64(state.n_courses)
            done_keys = done.row_of_entry * n_courses + done.indices.astype(np.int64)
            done_keys.sort()  # usually sorted already (rows ascending, sorted indices)
            keys = rows * n_courses + cols
            at = np.minimum(np.searchsorted(done_keys, keys), done_keys.size - 1)
            ok = done_keys[at] != keys
            rows, cols = rows[ok], cols[ok]
    return rows, cols


def _candidates_of_one(
    state: ServingState,
    history: History,
    idx: NDArray[np.int64],
    allowed: CourseFilter,
    code: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """:func:`_candidates` for one member (a backend's request): plain slices."""
    if code < 0:
        return _EMPTY_I64, _EMPTY_I64
    table = state.compulsory_table()
    cols = table.indices[table.indptr[code] : table.indptr[code + 1]]
    if allowed.mask is not None and cols.size:
        cols = cols[allowed.mask[cols]]
    if cols.size:
        done = state.completed_rows(history, idx).indices
        if done.size:
            cols = cols[~small_isin(cols, done.astype(np.int64))]
    return np.zeros(cols.size, dtype=np.int64), cols


@dataclass(frozen=True)
class GroupPins:
    """Courses a group menu must hold, and what the organiser should know about them.

    Attributes
    ----------
    courses : ndarray of int64
        Course indices: requested ones first, then compulsory ones, most widely compulsory
        first.
    notes : tuple of Message
        Compulsory courses left out (completed by most of the group, or over
        ``max_pins``), as catalogue messages.
    """

    courses: NDArray[np.int64]
    notes: tuple[Message, ...]


def group_pins(
    state: ServingState,
    idx: NDArray[np.int64],
    *,
    requested: NDArray[np.int64],
    pin_compulsory: bool,
    share: float,
    published: NDArray[np.bool_] | None,
    done_share: NDArray[np.float64],
    exclude_completed: float | None,
    max_pins: int | None,
) -> GroupPins:
    """The courses a group menu pins.

    Parameters
    ----------
    state
        The model's serving state.
    idx : ndarray of int64, shape (m,)
        Model indices of the group's members (all known).
    requested : ndarray of int64
        Courses the organisation asked for (``must_include``), pinned first.
    pin_compulsory
        Also pin compulsory courses.
    share
        A course is pinned when it is compulsory for the branches of at least this share
        of the group.
    published : ndarray of bool or None
        Courses that may be offered (``None``: all).
    done_share : ndarray of float64, shape (n_courses,)
        Per course, the share of the group that completed it.
    exclude_completed
        Compulsory courses completed by at least this share are not pinned (``None``:
        pinned anyway).
    max_pins
        At most this many compulsory pins (``None``: all).
    """
    pins: list[int] = list(dict.fromkeys(int(c) for c in requested))  # once each, in order
    notes: list[Message] = []
    table = state.compulsory_table()
    if pin_compulsory and table.indptr.size > 1:
        # Per course, the members whose branch made it compulsory: members per branch,
        # spread over each branch's courses.
        codes = table.codes(idx)
        per_branch = np.bincount(codes[codes >= 0], minlength=table.indptr.size - 1)
        need = np.bincount(
            table.indices,
            weights=np.repeat(per_branch, np.diff(table.indptr)),
            minlength=state.n_courses,
        )
        comp = np.flatnonzero(need >= share * idx.size)
        if published is not None:
            comp = comp[published[comp]]
        if exclude_completed is not None:
            done = comp[done_share[comp] >= exclude_completed]
            if done.size:
                notes.append(
                    Message.of(
                        "note.group_completed_pins",
                        count=int(done.size),
                        ids=ListText(tuple(map(str, state.course_ext[done][:5].tolist()))),
                    )
                )
            comp = comp[done_share[comp] < exclude_completed]
        # Most widely compulsory first.
        comp = comp[np.argsort(-need[comp], kind="stable")]
        if max_pins is not None and comp.size > max_pins:
            left = state.course_ext[comp[max_pins:]][:5].tolist()
            notes.append(
                Message.of(
                    "note.group_max_pins",
                    count=int(comp.size - max_pins),
                    max_pins=max_pins,
                    ids=ListText(tuple(map(str, left))),
                )
            )
            comp = comp[:max_pins]
        pins.extend(int(c) for c in comp if c not in pins)
    return GroupPins(np.asarray(pins, dtype=np.int64), tuple(notes))
