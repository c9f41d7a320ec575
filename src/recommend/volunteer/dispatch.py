"""Dispatch (派单, not 抢单): the shortlist for one request, and the global assignment of a
batch of requests to volunteers.

A batch is solved pass by pass (emergencies first), and within a pass group by group of
requests whose time windows overlap: each group is a minimum-cost bipartite matching
(``scipy.sparse.csgraph.min_weight_full_bipartite_matching``) between the requests' slots
(one per person of the headcount) and the volunteers on their pruned candidate lists, with
a dummy "unfilled" column per slot priced so that filling a slot always beats leaving it
empty and urgent slots are filled first. A volunteer serves at most once per group (no
overlapping services), and the hours handed out count towards weekly caps and fairness in
the groups that follow. When the optimiser has used up ``time_limit_s``, the remaining
groups are filled greedily (best score first) and the result says so.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

from recommend.checks import positive_int
from recommend.errors import ConfigError
from recommend.volunteer.pool import RequestBatch, VolunteerPool
from recommend.volunteer.rules import WHY, DispatchOptions
from recommend.volunteer.scoring import Candidates, Load, candidates, reason_text, why_text
from recommend.volunteer.tables import KINDS, VolunteerColumns

__all__ = ["POLICIES", "DispatchResult", "dispatch", "shortlist"]

log = logging.getLogger(__name__)
V = VolunteerColumns

#: ``optimal``: the matching on full scores; ``nearest``: each request in posting order
#: takes the nearest feasible volunteers left; ``random``: random feasible volunteers.
Policy = Literal["optimal", "nearest", "random"]
POLICIES: tuple[Policy, ...] = ("optimal", "nearest", "random")
#: One request's chosen volunteers: request, pool positions, scores, km, score parts.
Picked = tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_UNFILLED = 100.0  # cost of an empty slot, above any score difference


@dataclass(frozen=True)
class DispatchResult:
    """What a dispatch decided.

    Attributes
    ----------
    assignments : DataFrame
        ``request_id, volunteer_id, kind, district, score, distance_km, hours, reason,
        assigned_at``: one row per person sent (a branch sending two appears twice).
    unfilled : DataFrame
        ``request_id, kind, district, needed, assigned, missing, why, why_text``: requests
        with fewer volunteers than their headcount, and the first limit that left too few.
    solver : str
        ``"matching"``, ``"matching+greedy"`` (time limit reached), or the baseline policy.
    seconds : float
        Wall time of the dispatch (candidates and solving).
    """

    assignments: pd.DataFrame
    unfilled: pd.DataFrame
    solver: str
    seconds: float

    @property
    def fill_rate(self) -> float:
        """Filled slots over needed slots (approved requests)."""
        needed = self.unfilled.attrs.get("needed_slots", 0)
        return float(len(self.assignments) / needed) if needed else 1.0


def shortlist(
    pool: VolunteerPool,
    request: pd.DataFrame | RequestBatch,
    *,
    n: int = 10,
    options: DispatchOptions | None = None,
    at: int = 0,
) -> pd.DataFrame:
    """The ranked volunteers for one request (row ``at`` of ``request``), with reasons.

    Returns ``volunteer_id, score, rank, distance_km, reason``; empty when no one is
    feasible, with the organiser's explanation in ``attrs["why"]`` (code) and
    ``attrs["why_text"]``.
    """
    positive_int(n, "n")
    options = options or DispatchOptions()
    batch = request if isinstance(request, RequestBatch) else RequestBatch.build(request, pool)
    if not 0 <= at < len(batch):
        raise ConfigError(f"at={at}: the request table has {len(batch)} row(s)")
    found = candidates(pool, batch, at, options, keep=n)
    out = pd.DataFrame(
        {
            V.VOLUNTEER: pool.ids[found.idx],
            V.SCORE: found.score.astype(np.float32),
            V.RANK: np.arange(1, found.idx.size + 1),
            V.DISTANCE_KM: found.km.round(2),
            V.REASON: [
                reason_text(pool, batch, at, int(v), found.parts[i], float(found.km[i]))
                for i, v in enumerate(found.idx)
            ],
        }
    )
    code = found.why if found.idx.size < batch.headcount[at] else ""
    if found.idx.size == 0 and not code:
        code = "too_far"
    out.attrs["why"] = code
    out.attrs["why_text"] = why_text(code, batch, at, options, found.funnel) if code else ""
    out.attrs["funnel"] = found.funnel
    return out


def dispatch(
    pool: VolunteerPool,
    requests: pd.DataFrame | RequestBatch,
    *,
    options: DispatchOptions | None = None,
    policy: Policy = "optimal",
    seed: int = 0,
    reasons: bool = True,
) -> DispatchResult:
    """Assign volunteers to a batch of requests (see the module docstring).

    Parameters
    ----------
    pool
        The volunteers with their history (``VolunteerPool.build``).
    requests
        The requests table (validated here) or a built ``RequestBatch``. Requests not
        ``approved`` are not dispatched and are reported as unfilled.
    policy
        ``"optimal"`` (default), or the baselines ``"nearest"`` and ``"random"`` (same hard
        limits, greedy in posting order).
    seed
        Seed of the ``random`` baseline.
    reasons
        Fill the ``reason`` column (Chinese).
    """
    if policy not in POLICIES:
        raise ConfigError(f"policy={policy!r}; expected one of {POLICIES}")
    options = options or DispatchOptions()
    began = time.perf_counter()
    solving = 0.0  # seconds spent in the optimiser
    batch = requests if isinstance(requests, RequestBatch) else RequestBatch.build(requests, pool)
    load = Load.empty(len(pool))
    rng = np.random.default_rng(seed)
    picked: list[Picked] = []
    found: dict[int, Candidates] = {}
    greedy_after = False
    for group in _groups(batch, policy):
        cands = {}
        for r in group:
            keep = options.candidates + 3 * int(batch.headcount[r])
            c = candidates(
                pool,
                batch,
                r,
                options,
                load=load,
                keep=None if policy == "random" else keep,
                nearest=policy == "nearest",
            )
            found[r] = c
            cands[r] = _policy_view(c, policy, rng, keep)
        if policy == "optimal" and solving < options.time_limit_s:
            tick = time.perf_counter()
            chosen = _match(group, cands, batch, pool)
            solving += time.perf_counter() - tick
        else:
            greedy_after |= policy == "optimal"
            chosen = _greedy(group, cands, batch, pool, by_request=policy != "optimal")
        for r, rows in chosen.items():
            c = cands[r]
            vol = c.idx[rows]
            load.add(
                vol,
                np.full(vol.size, batch.start[r]),
                np.full(vol.size, batch.end[r]),
                np.full(vol.size, batch.hours[r]),
            )
            picked.append((r, vol, c.score[rows], c.km[rows], c.parts[rows]))
    seconds = time.perf_counter() - began
    solver = policy if policy != "optimal" else ("matching+greedy" if greedy_after else "matching")
    assignments = _assignment_frame(pool, batch, picked, reasons)
    unfilled = _unfilled_frame(batch, picked, found, options)
    log.info(
        "dispatch (%s): %d assignments, %d unfilled requests in %.2f s",
        solver,
        len(assignments),
        len(unfilled),
        seconds,
    )
    return DispatchResult(assignments, unfilled, solver, seconds)


def _groups(batch: RequestBatch, policy: str) -> list[list[int]]:
    """Approved requests in passes (emergencies first), each pass cut into groups whose
    time windows overlap; ordered by urgency then start (posting time for baselines)."""
    out: list[list[int]] = []
    approved = np.flatnonzero(batch.approved)
    for first in (True, False):
        members = approved[(batch.kind[approved] == 0) == first]
        if policy != "optimal":
            posted = batch.table[V.POSTED_AT].to_numpy("datetime64[ns]").astype(np.int64)
            out.extend([[int(r)] for r in members[np.lexsort((members, posted[members]))]])
            continue
        members = members[np.argsort(batch.start[members], kind="stable")]
        group: list[int] = []
        reach = np.iinfo(np.int64).min
        for r in members:
            if group and batch.start[r] >= reach:
                out.append(sorted(group, key=lambda i: (-batch.urgency[i], batch.start[i], i)))
                group = []
            group.append(int(r))
            reach = max(reach, int(batch.end[r]))
        if group:
            out.append(sorted(group, key=lambda i: (-batch.urgency[i], batch.start[i], i)))
    return out


def _policy_view(c: Candidates, policy: str, rng: np.random.Generator, keep: int) -> Candidates:
    """The candidates as a baseline policy orders them (nearest first, or random)."""
    if policy == "optimal":
        return c
    key = c.km if policy == "nearest" else rng.random(c.idx.size)
    order = np.argsort(key, kind="stable")[:keep]
    return Candidates(c.idx[order], c.score[order], c.parts[order], c.km[order], c.funnel, c.why)


def _match(
    group: list[int], cands: dict[int, Candidates], batch: RequestBatch, pool: VolunteerPool
) -> dict[int, np.ndarray]:
    """Minimum-cost matching of the group's slots to candidate volunteers; the chosen
    candidate rows per request."""
    slots = [(r, s) for r in group for s in range(int(batch.headcount[r]))]
    if not slots:
        return {}
    vols = np.unique(np.concatenate([cands[r].idx for r in group]))
    if vols.size == 0:
        return {}
    copies = np.minimum(pool.capacity[vols], len(slots))
    col_start = np.concatenate([[0], np.cumsum(copies)])
    n_cols = int(col_start[-1])
    scores = np.concatenate([cands[r].score for r in group])
    top, spread = float(scores.max(initial=0.0)), float(np.ptp(scores)) if scores.size else 0.0
    rows, cols, cost = [], [], []
    for row, (r, _) in enumerate(slots):
        c = cands[r]
        where = np.searchsorted(vols, c.idx)
        n_copy = copies[where]
        pos = np.repeat(col_start[where], n_copy) + _ranges(n_copy)
        rows.append(np.full(pos.size, row))
        cols.append(pos)
        cost.append(np.repeat(1.0 + top - c.score, n_copy))
        rows.append(np.array([row]))
        cols.append(np.array([n_cols + row]))
        cost.append(np.array([1.0 + spread + _UNFILLED * (1.0 + batch.urgency[r])]))
    graph = sp.csr_matrix(
        (np.concatenate(cost), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(slots), n_cols + len(slots)),
    )
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    chosen: dict[int, list[int]] = {}
    for row, col in zip(row_ind, col_ind, strict=True):
        if col >= n_cols:
            continue
        r = slots[row][0]
        v = vols[np.searchsorted(col_start, col, side="right") - 1]
        chosen.setdefault(r, []).append(int(np.flatnonzero(cands[r].idx == v)[0]))
    return {r: np.asarray(sorted(rows_), np.int64) for r, rows_ in chosen.items()}


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``[0..l0), [0..l1), ...`` concatenated."""
    total = int(lengths.sum())
    return np.asarray(np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths))


def _greedy(
    group: list[int],
    cands: dict[int, Candidates],
    batch: RequestBatch,
    pool: VolunteerPool,
    *,
    by_request: bool,
) -> dict[int, np.ndarray]:
    """Greedy filling: request by request in the given order (``by_request``, the
    baselines), or best-scored pair first over the whole group."""
    left = {int(v): int(pool.capacity[v]) for r in group for v in cands[r].idx}
    need = {r: int(batch.headcount[r]) for r in group}
    chosen: dict[int, list[int]] = {}
    if by_request:
        pairs = [(r, i) for r in group for i in range(cands[r].idx.size)]
    else:
        flat = [(float(cands[r].score[i]), r, i) for r in group for i in range(cands[r].idx.size)]
        pairs = [(r, i) for _, r, i in sorted(flat, key=lambda t: -t[0])]
    used: set[tuple[int, int]] = set()
    for r, i in pairs:
        v = int(cands[r].idx[i])
        if need[r] == 0 or left[v] == 0 or (r, v) in used:
            continue
        left[v] -= 1
        need[r] -= 1
        used.add((r, v))
        chosen.setdefault(r, []).append(i)
    return {r: np.asarray(rows, np.int64) for r, rows in chosen.items()}


def _assignment_frame(
    pool: VolunteerPool, batch: RequestBatch, picked: list[Picked], reasons: bool
) -> pd.DataFrame:
    req, vol, score, km = [], [], [], []
    texts: list[str] = []
    for r, v, s, d, parts in picked:
        req.append(np.full(v.size, r))
        vol.append(v)
        score.append(s)
        km.append(d)
        if reasons:
            texts.extend(
                reason_text(pool, batch, r, int(v[i]), parts[i], float(d[i])) for i in range(v.size)
            )
    r_idx = np.concatenate(req) if req else np.zeros(0, np.int64)
    v_idx = np.concatenate(vol) if vol else np.zeros(0, np.int64)
    table = batch.table
    posted = table[V.POSTED_AT].to_numpy("datetime64[ns]")[r_idx]
    return pd.DataFrame(
        {
            V.REQUEST: batch.ids[r_idx],
            V.VOLUNTEER: pool.ids[v_idx],
            V.KIND: table[V.KIND].to_numpy(object)[r_idx],
            V.DISTRICT: table[V.DISTRICT].to_numpy(object)[r_idx],
            V.SCORE: (np.concatenate(score) if score else np.zeros(0)).astype(np.float32),
            V.DISTANCE_KM: (np.concatenate(km) if km else np.zeros(0)).round(2),
            V.HOURS: batch.hours[r_idx],
            V.REASON: texts if reasons else [""] * r_idx.size,
            V.ASSIGNED_AT: np.maximum(posted, np.datetime64(pool.now, "ns")),
        }
    )


def _unfilled_frame(
    batch: RequestBatch,
    picked: list[Picked],
    found: dict[int, Candidates],
    options: DispatchOptions,
) -> pd.DataFrame:
    got = np.zeros(len(batch), np.int64)
    for r, v, *_ in picked:
        got[r] += v.size
    rows = []
    for r in range(len(batch)):
        need = int(batch.headcount[r])
        if got[r] >= need:
            continue
        if not batch.approved[r]:
            code, text = "not_approved", WHY["not_approved"]
        else:
            c = found[r]
            code = c.why or "taken"
            text = why_text(code, batch, r, options, c.funnel)
        rows.append(
            (
                batch.ids[r],
                KINDS[batch.kind[r]],
                batch.table[V.DISTRICT].iloc[r],
                need,
                int(got[r]),
                need - int(got[r]),
                code,
                text,
            )
        )
    columns = [V.REQUEST, V.KIND, V.DISTRICT, "needed", "assigned", "missing", "why", "why_text"]
    out = pd.DataFrame(rows, columns=columns)
    out.attrs["needed_slots"] = int(batch.headcount[batch.approved].sum())
    return out
