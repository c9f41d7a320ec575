"""Scoring volunteers for a request: block candidates (skills, districts), apply the kind's
hard limits (distance, availability, fitness, weekly cap, no overlapping service), then
score what remains from skill match, distance, availability, history, continuity, fitness
and fairness. One function serves shortlists, dispatch and the member view."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommend.volunteer.geo import EARTH_KM
from recommend.volunteer.pool import RequestBatch, VolunteerPool
from recommend.volunteer.rules import REASONS, WHY, DispatchOptions, KindRule
from recommend.volunteer.tables import KINDS

__all__ = ["PARTS", "Candidates", "Load", "candidates", "reason_text", "why_text"]

#: Score components, in the order of ``Candidates.parts`` columns.
PARTS = ("skill", "near", "available", "history", "continuity", "fitness", "fair")


@dataclass
class Load:
    """What a dispatch has handed out so far: hours added per volunteer and the services
    (volunteer, start, end in ns) that a new one must not overlap."""

    hours: np.ndarray  # (n_volunteers,) float64
    vol: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Load:
        none = np.zeros(0, np.int64)
        return cls(np.zeros(n), none, none, none)

    def add(self, vol: np.ndarray, start: np.ndarray, end: np.ndarray, hours: np.ndarray) -> None:
        np.add.at(self.hours, vol, hours)
        self.vol = np.concatenate([self.vol, vol])
        self.start = np.concatenate([self.start, start])
        self.end = np.concatenate([self.end, end])

    def busy(self, idx: np.ndarray, start: int, end: int) -> np.ndarray:
        """Which of the volunteers ``idx`` already serve during ``[start, end)``."""
        if self.vol.size == 0:
            return np.zeros(idx.size, dtype=bool)
        taken = self.vol[(self.start < end) & (self.end > start)]
        if taken.size == 0:
            return np.zeros(idx.size, dtype=bool)
        mask = np.zeros(self.hours.size, dtype=bool)
        mask[taken] = True
        return np.asarray(mask[idx], dtype=bool)


@dataclass(frozen=True)
class Candidates:
    """The best feasible volunteers for one request, best first.

    ``idx`` pool positions, ``score`` total, ``parts`` (len, len(PARTS)) weighted
    components, ``km`` distance; ``funnel`` how many volunteers were left after each hard
    limit (skill, near, available, cap) and ``why`` the code of the first limit that left
    fewer than the headcount (``""`` when enough remained).
    """

    idx: np.ndarray
    score: np.ndarray
    parts: np.ndarray
    km: np.ndarray
    funnel: dict[str, int]
    why: str


def _rows(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat positions into a CSR's data of ``rows``, and the row (0..len-1) of each."""
    starts, lengths = indptr[rows], indptr[rows + 1] - indptr[rows]
    owner = np.repeat(np.arange(len(rows)), lengths)
    offsets = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.repeat(starts, lengths) + offsets, owner


def _row_dot(
    matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """``matrix[rows] @ w`` for a sparse ``w`` given by ``cols``/``weights``."""
    if cols.size == 0 or rows.size == 0:
        return np.zeros(rows.size)
    lookup = np.zeros(matrix.shape[1])
    lookup[cols] = weights
    flat, owner = _rows(matrix.indptr, rows)
    values = matrix.data[flat] * lookup[matrix.indices[flat]]
    return np.bincount(owner, weights=values, minlength=rows.size)


def _overlap(pool: VolunteerPool, idx: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Share of the request's weekly hours in each volunteer's windows (1 without windows)."""
    need = int(np.bitwise_count(mask).sum())
    if need == 0:
        return np.ones(idx.size)
    got = np.zeros(idx.size, dtype=np.int64)
    for word in np.flatnonzero(mask):  # a request of a few hours touches one word
        got += np.bitwise_count(pool.avail[:, word][idx] & mask[word])
    return np.where(pool.always[idx], 1.0, got / need)


def _distance(pool: VolunteerPool, batch: RequestBatch, r: int, idx: np.ndarray) -> np.ndarray:
    """Km from request ``r`` to volunteers ``idx``: haversine when either side has
    coordinates (a district centroid stands in for the other), else the district table."""
    lat, lon = float(batch.lat[r]), float(batch.lon[r])
    if np.isfinite(lat):
        # haversine with the pool's radians and cosines computed once
        s_lat = np.sin((pool.lat_rad[idx] - np.radians(lat)) * 0.5)
        s_lon = np.sin((pool.lon_rad[idx] - np.radians(lon)) * 0.5)
        a = s_lat * s_lat + pool.cos_lat[idx] * np.cos(np.radians(lat)) * s_lon * s_lon
        geo = 2.0 * EARTH_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
    else:
        geo = np.full(idx.size, np.nan)
    table_rows = ~((pool.has_coords[idx] | batch.has_coords[r]) & np.isfinite(geo))
    if table_rows.any():
        code = pool.district[idx[table_rows]]
        table = pool.districts.distance[max(int(batch.district[r]), 0)]
        if batch.district[r] < 0 or batch.district[r] >= len(pool.districts.names):
            table = np.full(len(pool.districts.names), np.inf)
        geo[table_rows] = np.where(code >= 0, table[np.maximum(code, 0)], np.inf)
    return np.asarray(geo)


def candidates(
    pool: VolunteerPool,
    batch: RequestBatch,
    r: int,
    options: DispatchOptions,
    *,
    load: Load | None = None,
    keep: int | None = None,
    only: np.ndarray | None = None,
    nearest: bool = False,
) -> Candidates:
    """The feasible volunteers for request ``r`` of ``batch``, scored, best ``keep`` first
    (all feasible when ``None``); ``only`` restricts to given pool positions; ``nearest``
    keeps the nearest instead of the best scored (the nearest-available baseline).

    With ``keep``, the search starts within twice the kind's ``near_km`` and widens (x2, up
    to ``max_km``) until ``keep`` volunteers pass every hard limit, like a ride-hailing
    dispatcher looking around the pick-up point first.
    """
    rule = options.rules[KINDS[batch.kind[r]]]
    radius = rule.max_km
    base = None
    if _skill_blocked(batch, r, rule):
        # few hold a skill: measure them all once, widen the ring over the distances
        base_idx = _block(pool, batch, r, rule, radius, only)
        base = (base_idx, _distance(pool, batch, r, base_idx))
    if keep is not None and (base is not None or np.isfinite(batch.lat[r])):
        radius = min(rule.max_km, 0.5 * rule.near_km)
    while True:
        idx, km, overlap, funnel = _feasible(pool, batch, r, rule, radius, load, only, base)
        if keep is None or idx.size >= 2 * keep or radius >= rule.max_km:
            break
        radius = min(rule.max_km, 2.0 * radius)
    parts = _parts(pool, batch, r, rule, options, idx, km, overlap, load)
    score = parts.sum(axis=1)
    if keep is not None and idx.size > keep:
        top = np.argpartition(km if nearest else -score, keep - 1)[:keep]
        idx, score, parts, km = idx[top], score[top], parts[top], km[top]
    order = np.lexsort((idx, -score))
    why = _why(batch, r, rule, funnel)
    return Candidates(idx[order], score[order], parts[order], km[order], funnel, why)


def _skill_blocked(batch: RequestBatch, r: int, rule: KindRule) -> bool:
    return rule.skill_required and bool(batch.skills[r].size or batch.unknown[r])


def _feasible(
    pool: VolunteerPool,
    batch: RequestBatch,
    r: int,
    rule: KindRule,
    radius: float,
    load: Load | None,
    only: np.ndarray | None,
    base: tuple[np.ndarray, np.ndarray] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Volunteers within ``radius`` (and those who served the request's person before,
    within ``max_km``) that pass the hard limits, their distance and availability, and how
    many were left after each limit. ``base`` holds already blocked and measured
    candidates."""
    funnel: dict[str, int] = {}
    if base is None:
        idx = _block(pool, batch, r, rule, radius, only)
        served = _served(pool, batch, r, only) if rule.continuity > 0 else None
        if served is not None:
            idx = np.concatenate([idx, served[~_member(served, idx)]])
        km = _distance(pool, batch, r, idx)
    else:
        idx, km = base
        served = _served(pool, batch, r, only) if rule.continuity > 0 else None
    if rule.fitness_required:
        fit = pool.fitness[idx]
        idx, km = idx[fit], km[fit]
    funnel["skill"] = idx.size
    near = km <= radius
    if served is not None and radius < rule.max_km:
        near |= _member(idx, served) & (km <= rule.max_km)
    idx, km = idx[near], km[near]
    funnel["near"] = idx.size
    overlap = _overlap(pool, idx, batch.mask[r])
    ok = overlap >= rule.min_available - 1e-9
    idx, km, overlap = idx[ok], km[ok], overlap[ok]
    funnel["available"] = idx.size
    added = load.hours[idx] if load is not None else 0.0
    ok = pool.history.week_hours[idx] + added + batch.hours[r] <= pool.cap[idx] + 1e-9
    if load is not None:
        ok &= ~load.busy(idx, int(batch.start[r]), int(batch.end[r]))
    idx, km, overlap = idx[ok], km[ok], overlap[ok]
    funnel["cap"] = idx.size
    return idx, km, overlap, funnel


def _member(values: np.ndarray, among: np.ndarray) -> np.ndarray:
    """``np.isin`` that is fast when either side holds a handful of values."""
    if among.size <= 8 or values.size <= 8:
        return np.asarray((values[:, None] == among[None, :]).any(axis=1), dtype=bool)
    return np.isin(values, among, kind="table")


def _served(
    pool: VolunteerPool, batch: RequestBatch, r: int, only: np.ndarray | None
) -> np.ndarray | None:
    person = batch.person[r]
    served = pool.history.served.get(person) if person is not None else None
    if served is not None and only is not None:
        served = served[np.isin(served, only)]
    return served


def _block(
    pool: VolunteerPool,
    batch: RequestBatch,
    r: int,
    rule: KindRule,
    radius: float,
    only: np.ndarray | None,
) -> np.ndarray:
    """Candidate positions before the hard limits: holders of a needed skill when the
    kind requires one, else the volunteers on the map cells within ``radius`` (and those
    without a location in the districts within reach)."""
    if only is not None and only.size <= 64:
        # a few given volunteers (a member's own list): check them, skip the blocking
        idx = np.asarray(only, dtype=np.int64)
        if _skill_blocked(batch, r, rule):
            needed = batch.skills[r]
            idx = idx[_row_dot(pool.skill_csr, idx, needed, np.ones(needed.size)) > 0]
        return idx
    if _skill_blocked(batch, r, rule):
        held = [pool.holders[j] for j in batch.skills[r]]
        if len(held) == 1:
            idx = held[0]
        else:
            idx = np.unique(np.concatenate(held)) if held else np.zeros(0, np.int64)
    elif np.isfinite(batch.lat[r]):
        idx = pool.grid.near(float(batch.lat[r]), float(batch.lon[r]), radius)
        if pool.unlocated.size:
            idx = np.concatenate([idx, pool.unlocated])
    else:
        reach = np.flatnonzero(batch.district_km[r] <= radius)
        idx = pool.in_districts(reach)
    if only is not None:
        idx = idx[np.isin(idx, only)]
    return idx.astype(np.int64, copy=False)


def _parts(
    pool: VolunteerPool,
    batch: RequestBatch,
    r: int,
    rule: KindRule,
    options: DispatchOptions,
    idx: np.ndarray,
    km: np.ndarray,
    overlap: np.ndarray,
    load: Load | None,
) -> np.ndarray:
    """Weighted score components (len(idx), len(PARTS))."""
    needed = batch.skills[r]
    n_needed = needed.size + len(batch.unknown[r])
    text = _row_dot(pool.tokens, idx, batch.token_idx[r], batch.token_w[r])
    if n_needed:
        held = _row_dot(pool.skill_csr, idx, needed, np.ones(needed.size)) / n_needed
        skill = 0.75 * held + 0.25 * np.minimum(text, 1.0)
    else:
        skill = np.minimum(text, 1.0)
    hist = pool.history
    items = batch.items[r]
    rows = hist.affinity_row[idx]
    affinity = hist.affinity[rows][:, items].mean(axis=1) if items.size else np.zeros(idx.size)
    history = 0.5 * affinity + 0.5 * hist.reliability[idx]
    person = batch.person[r]
    served = hist.served.get(person) if person is not None else None
    continuity = _member(idx, served).astype(float) if served is not None else np.zeros(idx.size)
    recent = hist.recent_hours[idx] + (load.hours[idx] if load is not None else 0.0)
    fair = recent / (recent + options.fair_hours)
    return np.column_stack(
        [
            rule.skill * skill,
            rule.near * np.exp(-km / rule.near_km),
            rule.available * overlap,
            rule.history * history,
            rule.continuity * continuity,
            rule.fitness * pool.fitness[idx],
            -rule.fair * fair,
        ]
    )


def _why(batch: RequestBatch, r: int, rule: KindRule, funnel: dict[str, int]) -> str:
    need = int(batch.headcount[r])
    if rule.skill_required and batch.unknown[r] and batch.skills[r].size == 0:
        return "unknown_skill"
    for stage, code in (("near", "too_far"), ("available", "unavailable"), ("cap", "at_cap")):
        if funnel[stage] == 0:
            return code
    return "short_supply" if funnel["cap"] < need else ""


def why_text(
    code: str, batch: RequestBatch, r: int, options: DispatchOptions, funnel: dict[str, int]
) -> str:
    """The organiser's text for an unfilled request (``WHY`` catalogue)."""
    rule = options.rules[KINDS[batch.kind[r]]]
    skills = "、".join(batch.unknown[r]) or "—"
    return WHY[code].format(
        skills=skills,
        km=rule.max_km,
        needed=int(batch.headcount[r]),
        supply=int(funnel.get("cap", 0)),
    )


def reason_text(
    pool: VolunteerPool, batch: RequestBatch, r: int, v: int, parts: np.ndarray, km: float
) -> str:
    """Why volunteer ``v`` suits request ``r``: its strongest score components, in Chinese."""
    out: list[str] = []
    # availability is a precondition more than a merit: said after what sets one apart;
    # the fairness penalty is said last, when it helped
    salience = parts[:-1] * np.where(np.arange(len(PARTS) - 1) == PARTS.index("available"), 0.4, 1)
    order = np.argsort(-salience, kind="stable")
    for j in order[:3]:
        if parts[j] <= 0.05:
            continue
        name = PARTS[j]
        if name == "skill":
            mine = pool.skill_csr.indices[pool.skill_csr.indptr[v] : pool.skill_csr.indptr[v + 1]]
            names = list(pool.skills)
            held = [names[j] for j in np.intersect1d(mine, batch.skills[r])]
            out.append(REASONS["skill"].format(skills="、".join(held)) if held else REASONS["text"])
        elif name == "near":
            same = pool.district[v] == batch.district[r] and batch.district[r] >= 0
            text = REASONS["near"].format(km=km)
            if same and not (pool.has_coords[v] and batch.has_coords[r]):
                text = REASONS["same_district"].format(
                    district=pool.districts.names[pool.district[v]]
                )
            out.append(text)
        elif name == "history" and pool.history.completed[v, batch.kind[r]] == 0:
            continue  # the prior of a newcomer is no merit to state
        else:
            out.append(REASONS[name])
    if parts[-1] > -0.05 and pool.history.recent_hours[v] == 0 and len(out) < 4:
        out.append(REASONS["fair"])
    return "；".join(out) or REASONS["default"]
