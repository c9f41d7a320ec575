"""Diversity: maximal marginal relevance (MMR) across channels."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from recommend.engine.rows import small_isin

__all__ = ["MMR_POOL", "mmr"]

#: Candidate pool for MMR, as a multiple of n: diversity can only promote what is in it.
MMR_POOL = 3


def mmr(
    scores: NDArray[np.float32],
    channels: NDArray[np.int32],
    pinned_channels: NDArray[np.int32],
    need: int,
    weight: float,
) -> NDArray[np.int64]:
    """Greedy MMR over a pool sorted best first; positions of the ``need`` picks in order.

    Similarity is 1 between courses of the same (known) channel, else 0, so the maximal
    similarity to the picks so far is just "is this channel covered yet".
    """
    need = min(need, scores.size)
    s = scores.astype(np.float64)
    lo, hi = float(s.min()), float(s.max())
    rel = (s - lo) / (hi - lo) if hi > lo else np.ones(s.size)
    covered = small_isin(channels, pinned_channels[pinned_channels >= 0]) & (channels >= 0)
    value = rel - weight * covered
    picks = np.empty(need, dtype=np.int64)
    for step in range(need):
        # argmax takes the first maximum: among equals, the better-ranked course.
        j = int(np.argmax(value))
        picks[step] = j
        value[j] = -np.inf
        c = channels[j]
        if c >= 0:
            newly = (channels == c) & ~covered
            if newly.any():
                covered |= newly
                value[newly] -= weight
    return picks
