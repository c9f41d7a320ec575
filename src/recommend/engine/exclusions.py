"""The exclusion rule: which of a member's courses a menu leaves out.

``exclude="seen"``
    Every course in the member's history (folded-in events included).
``exclude="completed"``
    Only courses the member completed (:meth:`ServingState.completed_rows`: a
    ``complete`` event in the training data or in events folded in with ``update``).
``exclude="none"``
    Nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from recommend.engine.rows import Rows

if TYPE_CHECKING:
    from recommend.engine.state import ServingState
    from recommend.models.base import History

__all__ = ["exclusion_rows"]


def exclusion_rows(
    state: ServingState, history: History, seen: Rows, idx: NDArray[np.int64], exclude: str
) -> Rows | None:
    """Courses to leave out of the menus of members ``idx``, or ``None`` for none.

    Parameters
    ----------
    state
        The model's serving state.
    history
        The member histories ``seen`` was read from (the request's snapshot).
    seen
        The members' history rows, aligned with ``idx``.
    idx : ndarray of int64, shape (m,)
        Model member indices (-1: unknown, nothing to exclude).
    exclude
        ``"seen"``, ``"completed"`` or ``"none"`` (see the module).
    """
    if exclude == "seen":
        return seen
    if exclude == "completed":
        return state.completed_rows(history, np.asarray(idx, dtype=np.int64))
    return None
