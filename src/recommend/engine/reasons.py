"""Why a course is on a menu: the reasons every product shows, in one place.

A reason is kept as a :class:`~recommend.messages.Message` (a catalogue key and its
parameters) while a menu is ranked, and rendered once, in the requested language, by
:func:`reason_texts`. Constant reasons name the route or rule that put a course on the
menu (a compulsory pin, a cold-start route, the segment whose members study it); a
personal recommendation names the studied course it is most like. Why now is added where
it applies (``reason.new``, ``reason.short``): a course published in the last
:data:`NEW_DAYS` days, and how few minutes a course takes when the member asked for
courses that fit a time. The English templates leave these out by default, so English
reasons read as they always did.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.engine.pins import KIND_CONTINUE, KIND_NEXT
from recommend.messages import Message, texts, value_message
from recommend.schema import Columns as C

if TYPE_CHECKING:
    from recommend.engine.options import MenuOptions
    from recommend.engine.pins import Pins
    from recommend.engine.state import ServingState

__all__ = [
    "NEW_DAYS",
    "REASON_BRANCH",
    "REASON_COMPULSORY",
    "REASON_FEATURES",
    "REASON_GLOBAL",
    "REASON_SEGMENT",
    "pin_reasons",
    "reason_texts",
    "segment_reason",
    "studied_reasons",
]

REASON_COMPULSORY = Message("reason.compulsory")
REASON_BRANCH = Message("reason.branch")
REASON_SEGMENT = Message("reason.segment")
REASON_GLOBAL = Message("reason.global")
REASON_FEATURES = Message("reason.features")

#: A course published at most this many days before the menu's time reads as new.
NEW_DAYS = 30
_DAY_NS = 86_400 * 10**9

# History courses considered when explaining a recommendation (the most confident ones):
# a heavy learner's whole history would make the similarity matrix the slowest step.
_REASON_HISTORY = 256


def segment_reason(kind: object, value: object) -> Message:
    """Why a cold-start member gets a segment's popular courses: the segment named where
    the catalogue can say it (their occupation, age, district), the branch, or members
    like them."""
    if kind == C.ORG:
        return REASON_BRANCH
    known = value is not None and not (pd.api.types.is_scalar(value) and bool(pd.isna(value)))
    if kind == C.OCCUPATION and known:
        return Message.of("reason.segment.occupation", value=value_message("occupation", value))
    if kind == "age_band":
        return Message("reason.segment.age_band")
    if kind == C.DISTRICT and known:
        return Message.of("reason.segment.district", value=str(value))
    return REASON_SEGMENT


def pin_reasons(state: ServingState, pins: Pins) -> np.ndarray:
    """Why each pinned course is on the menu, aligned with ``pins.courses``: compulsory
    (本支部必学), continue learning (继续学习) or the next lecture (下一讲) after the one
    the member completed."""
    out = np.empty(pins.courses.size, dtype=object)
    titles = state.titles
    for i, (kind, course, via) in enumerate(
        zip(
            pins.kind_array().tolist(),
            pins.courses.tolist(),
            pins.via_array().tolist(),
            strict=True,
        )
    ):
        if kind == KIND_CONTINUE:
            out[i] = _made("reason.resume", titles[course])
        elif kind == KIND_NEXT:
            out[i] = _made("reason.next_lecture", titles[via])
        else:
            out[i] = REASON_COMPULSORY
    return out


def _made(key: str, title: str) -> Message:
    """The message ``key`` naming ``title``: the same object for the same pair (see
    ``_MADE``)."""
    message = _MADE.get((key, title))
    if message is None:
        message = _remember((key, title), Message(key, (("title", title),)))
    return message


def studied_reasons(
    state: ServingState,
    course_vectors: np.ndarray | None,
    recommended: NDArray[np.int64],
    history: np.ndarray,
    confidence: np.ndarray,
) -> np.ndarray:
    """ "because you studied <title>" (因为你学过《<title>》), naming the history course
    most like each course, as messages (rendered by :func:`reason_texts`).

    Factor models: cosine similarity of course factors. Other models: a history course of
    the same channel, the most confident one (confidence carries recency when the
    weighting decays); the most confident of all otherwise. A recommended course that is
    itself in the history (``exclude`` other than "seen") reads "continue studying".
    """
    out = np.empty(recommended.size, dtype=object)
    if recommended.size == 0:
        return out
    if history.size == 0:
        # Nothing studied to name: the route's own reason for members without history.
        out[:] = REASON_FEATURES
        return out
    hist = history.astype(np.int64)
    conf = confidence.astype(np.float64)
    if hist.size > _REASON_HISTORY:
        keep = np.argpartition(-conf, _REASON_HISTORY)[:_REASON_HISTORY]
        hist, conf = hist[keep], conf[keep]
    if course_vectors is not None and course_vectors.shape[0] == state.n_courses:
        rec_f = np.asarray(course_vectors[recommended], dtype=np.float32)
        hist_f = np.asarray(course_vectors[hist], dtype=np.float32)
        # Cosine similarity, up to each row's own positive factor (the recommended course's
        # norm), which does not change the row's best history course.
        hist_norms = np.sqrt(np.einsum("ij,ij->i", hist_f, hist_f))
        sim = (rec_f @ hist_f.T) / np.maximum(hist_norms, 1e-12)[None, :]
    else:
        rec_c = state.channel_codes[recommended]
        hist_c = state.channel_codes[hist]
        same = (rec_c[:, None] == hist_c[None, :]) & (rec_c[:, None] >= 0)
        sim = same + 0.5 * (conf / max(float(conf.max()), 1e-12))[None, :]
    itself = recommended[:, None] == hist[None, :]
    best = hist[np.argmax(np.where(itself, -np.inf, sim), axis=1)]
    again = itself.any(axis=1)
    # The same message object for the same (kind, named course): rows repeat the studied
    # course, and a message found again is not built, hashed nor rendered again.
    titles = state.titles
    made = _MADE  # looked up inline: a call per row costs more than the lookup
    for i, (course, named, is_again) in enumerate(
        zip(recommended.tolist(), best.tolist(), again.tolist(), strict=True)
    ):
        key = ("reason.continue", titles[course]) if is_again else ("reason.studied", titles[named])
        message = made.get(key)
        out[i] = message if message is not None else _made(*key)
    return out


def reason_texts(
    state: ServingState, courses: NDArray[np.int64], reasons: np.ndarray, options: MenuOptions
) -> np.ndarray:
    """The reasons of menu rows as text in ``options.lang``, each with why now.

    Parameters
    ----------
    state
        The model's serving state (publication times, durations).
    courses : ndarray of int64, shape (r,)
        Course index of each row.
    reasons : ndarray of object, shape (r,)
        A :class:`~recommend.messages.Message` per row.
    options
        The request: ``lang``, ``now`` (what "new" is measured from) and ``max_minutes``
        (when set, each row says how many minutes its course takes).

    Returns
    -------
    ndarray of object (str), shape (r,)
    """
    out = np.empty(courses.size, dtype=object)
    if courses.size == 0:
        return out
    # A menu has a few rows: plain Python on lists is cheaper than numpy per row here.
    ref = options.now if options.now is not None else state.now
    published: list[int] | None = None
    ref_ns = since = 0
    if state.published is not None and ref is not None:
        ref_ns = int(pd.Timestamp(ref).value)
        since = ref_ns - NEW_DAYS * _DAY_NS
        published = state.published[courses].tolist()
    minutes: list[int] | None = None
    if options.max_minutes is not None and state.durations is not None:
        secs = state.durations[courses]
        known = np.isfinite(secs)
        mins = np.full(courses.size, -1, dtype=np.int64)
        mins[known] = np.maximum(np.ceil(secs[known] / 60.0), 1).astype(np.int64)
        minutes = mins.tolist()
    made = _MADE
    messages = reasons.tolist()
    for i, message in enumerate(messages):
        is_new = published is not None and since < published[i] <= ref_ns
        mins_i = -1 if minutes is None else minutes[i]
        if is_new or mins_i >= 0:
            key = (message, is_new, mins_i)
            found = made.get(key)
            if found is None:
                if is_new:
                    message = Message("reason.new", (("reason", message),))
                if mins_i >= 0:
                    message = Message("reason.short", (("minutes", mins_i), ("reason", message)))
                found = _remember(key, message)
            messages[i] = found
    out[:] = texts(messages, options.lang)  # rendered once per message and wording (cached)
    return out


# Reason messages made for earlier rows, by what they are made of (a studied title, a
# reason with why now): the same object again for the same reason, so rows do not build
# and hash a new message each time, and its rendered text is found at once. Messages do
# not depend on the wording, so nothing here goes stale; cleared when full.
_MADE_MAX = 1 << 16
_MADE: dict[tuple[object, ...], Message] = {}


def _remember(key: tuple[object, ...], message: Message) -> Message:
    if len(_MADE) >= _MADE_MAX:
        _MADE.clear()
    _MADE[key] = message
    return message
