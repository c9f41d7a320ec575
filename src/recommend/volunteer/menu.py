"""For members: the requests a volunteer is best placed to take (我能帮上忙的), like a menu."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recommend.checks import positive_int
from recommend.errors import DataError
from recommend.volunteer.pool import RequestBatch, VolunteerPool
from recommend.volunteer.rules import DispatchOptions
from recommend.volunteer.scoring import candidates, reason_text
from recommend.volunteer.tables import KINDS, VolunteerColumns

__all__ = ["volunteer_menu"]

V = VolunteerColumns
COLUMNS = (V.VOLUNTEER, V.REQUEST, V.KIND, V.SCORE, V.RANK, V.DISTANCE_KM, "placed", V.REASON)


def volunteer_menu(
    pool: VolunteerPool,
    requests: pd.DataFrame | RequestBatch,
    volunteer_ids: Sequence[object],
    *,
    n: int = 5,
    options: DispatchOptions | None = None,
) -> pd.DataFrame:
    """For each volunteer, the open requests they suit best (我能帮上忙的).

    Only approved requests the volunteer can take (every hard limit of the request's kind:
    distance, hours, weekly cap, skills) are listed, best first by ``score``: the match as a
    share of the best a volunteer could score for that kind (kinds weigh differently). Returns
    ``volunteer_id, request_id, kind, score, rank, distance_km, placed, reason``, where
    ``placed`` is the volunteer's rank among everyone who could take the request (1: the
    dispatcher's first choice). Unknown volunteer ids raise ``DataError``.
    """
    positive_int(n, "n")
    options = options or DispatchOptions()
    batch = requests if isinstance(requests, RequestBatch) else RequestBatch.build(requests, pool)
    index = pd.Index(pool.ids)
    pos = index.get_indexer(pd.Index(list(volunteer_ids)))
    if (pos < 0).any():
        unknown = [v for v, p in zip(volunteer_ids, pos, strict=True) if p < 0]
        raise DataError(
            f"volunteer_menu: unknown volunteer ids {unknown[:5]}; expected ids "
            "of the pool's volunteers table"
        )
    open_ = np.flatnonzero(batch.approved)
    rows = []
    for v in pos:
        only = np.array([v], dtype=np.int64)
        found = []
        for req in open_.tolist():
            c = candidates(pool, batch, req, options, only=only)
            if c.idx.size:
                # kinds weigh their components differently: compare shares of the best
                rule = options.rules[KINDS[batch.kind[req]]]
                top = (
                    rule.skill
                    + rule.near
                    + rule.available
                    + rule.history
                    + rule.continuity
                    + rule.fitness
                )
                found.append((float(c.score[0]) / top, req, c))
        found.sort(key=lambda t: (-t[0], t[1]))
        for rank, (share, r, c) in enumerate(found[:n], start=1):
            everyone = candidates(pool, batch, r, options)
            placed = int(np.flatnonzero(everyone.idx == v)[0]) + 1
            rows.append(
                (
                    pool.ids[v],
                    batch.ids[r],
                    KINDS[batch.kind[r]],
                    np.float32(share),
                    rank,
                    round(float(c.km[0]), 2),
                    placed,
                    reason_text(pool, batch, r, int(v), c.parts[0], float(c.km[0])),
                )
            )
    return pd.DataFrame(rows, columns=list(COLUMNS))
