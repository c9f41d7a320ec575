"""Why a course is on a menu: the reason texts every product shows, in one place.

Constant reasons name the route or rule that put a course on the menu (a compulsory pin,
a cold-start route); a personal recommendation names the studied course it is most like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from recommend.engine.state import ServingState

__all__ = [
    "REASON_BRANCH",
    "REASON_COMPULSORY",
    "REASON_FEATURES",
    "REASON_GLOBAL",
    "REASON_SEGMENT",
    "studied_reasons",
]

REASON_COMPULSORY = "compulsory for your branch"
REASON_BRANCH = "popular in your branch"
REASON_SEGMENT = "popular with members like you"
REASON_GLOBAL = "popular on the platform"
REASON_FEATURES = "recommended for members like you"
_STUDIED = "because you studied "
_CONTINUE = "continue studying "

# History courses considered when explaining a recommendation (the most confident ones):
# a heavy learner's whole history would make the similarity matrix the slowest step.
_REASON_HISTORY = 256


def studied_reasons(
    state: ServingState,
    course_vectors: np.ndarray | None,
    recommended: NDArray[np.int64],
    history: np.ndarray,
    confidence: np.ndarray,
) -> np.ndarray:
    """ "because you studied <title>", naming the history course most like each course.

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
        norms = np.linalg.norm(rec_f, axis=1)[:, None] * np.linalg.norm(hist_f, axis=1)[None, :]
        sim = (rec_f @ hist_f.T) / np.maximum(norms, 1e-12)
    else:
        rec_c = state.channel_codes[recommended]
        hist_c = state.channel_codes[hist]
        same = (rec_c[:, None] == hist_c[None, :]) & (rec_c[:, None] >= 0)
        sim = same + 0.5 * (conf / max(float(conf.max()), 1e-12))[None, :]
    itself = recommended[:, None] == hist[None, :]
    best = hist[np.argmax(np.where(itself, -np.inf, sim), axis=1)]
    again = itself.any(axis=1)
    titles = state.titles
    for i in range(recommended.size):
        if again[i]:
            out[i] = _CONTINUE + titles[recommended[i]]
        else:
            out[i] = _STUDIED + titles[best[i]]
    return out
