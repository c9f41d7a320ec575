"""The two sides of matching as arrays: ``VolunteerPool`` (volunteers, built once, with
their history) and ``RequestBatch`` (the requests of one dispatch)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.errors import ConfigError
from recommend.text import tokenize
from recommend.volunteer.geo import HANGZHOU, DistrictMap, Grid, haversine_km
from recommend.volunteer.history import History, item_keys, learn_history
from recommend.volunteer.rules import DispatchOptions
from recommend.volunteer.tables import (
    HOURS_PER_WEEK,
    KINDS,
    VolunteerColumns,
    availability_hours,
    validate_requests,
    validate_services,
    validate_tables,
    validate_volunteers,
)

__all__ = ["RequestBatch", "VolunteerPool", "hour_mask", "token_matrix"]

log = logging.getLogger(__name__)
V = VolunteerColumns


def token_matrix(
    texts: list[str], vocabulary: dict[str, int] | None = None
) -> tuple[sp.csr_matrix, dict[str, int]]:
    """Rows of L2-normalised token counts (Chinese segmentation as in search), and the
    vocabulary (grown when not given; tokens outside a given one are left out but still
    count in the norm)."""
    grow = vocabulary is None
    vocab: dict[str, int] = {} if vocabulary is None else vocabulary
    unique, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    indptr: list[int] = [0]
    indices: list[int] = []
    data: list[float] = []
    for text in unique:
        counts: dict[int, float] = {}
        tokens = tokenize(str(text))
        for token in tokens:
            if token not in vocab and grow:
                vocab[token] = len(vocab)
            if token in vocab:
                counts[vocab[token]] = counts.get(vocab[token], 0.0) + 1.0
        norm = np.sqrt(len(tokens)) if tokens else 1.0
        indices.extend(counts)
        data.extend(c / norm for c in counts.values())
        indptr.append(len(indices))
    base = sp.csr_matrix(
        (np.asarray(data, np.float32), np.asarray(indices, np.int64), indptr),
        shape=(len(unique), max(len(vocab), 1)),
    )
    return base[inverse.ravel()].tocsr(), vocab


def hour_mask(start: pd.Series, end: pd.Series) -> np.ndarray:
    """(n, 3) uint64 bit masks of the hours of the week each ``[start, end)`` touches."""
    t0 = start.to_numpy("datetime64[h]").astype(np.int64)
    t1 = (end - pd.Timedelta(seconds=1)).to_numpy("datetime64[h]").astype(np.int64)
    # 1970-01-01 was a Thursday: hour-of-week with Monday 00:00 = 0.
    week0 = (t0 + 72) % HOURS_PER_WEEK
    span = np.minimum(t1 - t0 + 1, HOURS_PER_WEEK)
    out = np.zeros((len(t0), 3), dtype=np.uint64)
    for i in range(len(t0)):
        hours = (week0[i] + np.arange(span[i])) % HOURS_PER_WEEK
        for word in range(3):
            sel = hours[hours // 64 == word] % 64
            if sel.size:
                out[i, word] = np.bitwise_or.reduce(np.uint64(1) << sel.astype(np.uint64))
    return out


@dataclass(frozen=True, eq=False)
class VolunteerPool:
    """Volunteers as arrays, indexed by position in the validated ``volunteers`` table.

    Attributes
    ----------
    table : DataFrame
        The validated volunteers.
    ids : ndarray
        Volunteer ids in position order.
    skill_csr : csr_matrix (n, n_skills) float32
        Skills held; ``skills`` maps a skill to its column, ``holders[j]`` the sorted
        positions of volunteers holding skill ``j``.
    tokens : csr_matrix (n, n_tokens) float32
        L2-normalised tokens of skills and description; ``vocabulary`` maps a token.
    district : (n,) int64
        Code on ``districts`` (-1: none). ``by_district`` sorts positions by it.
    lat, lon : (n,) float64
        Coordinates, the district centroid when not given (NaN when neither is known).
    has_coords : (n,) bool
        Coordinates given (not a centroid).
    lat_rad, lon_rad, cos_lat : (n,) float64
        The coordinates in radians and the cosine of the latitude (for haversine).
    grid : Grid
        The located volunteers (coordinates or district centroid) by map cell;
        ``unlocated`` the sorted positions of the others.
    avail : (n, 3) uint64
        Weekly hours as bits; ``always`` marks volunteers without windows (any hour).
    cap, capacity, fitness : (n,)
        Weekly hour limit, people per request (branches), fit for physical work.
    history : History
    """

    table: pd.DataFrame
    ids: np.ndarray
    skills: dict[str, int]
    skill_csr: sp.csr_matrix
    holders: list[np.ndarray]
    vocabulary: dict[str, int]
    tokens: sp.csr_matrix
    districts: DistrictMap
    district: np.ndarray
    by_district: np.ndarray
    district_start: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    has_coords: np.ndarray
    lat_rad: np.ndarray
    lon_rad: np.ndarray
    cos_lat: np.ndarray
    grid: Grid
    unlocated: np.ndarray
    avail: np.ndarray
    always: np.ndarray
    cap: np.ndarray
    capacity: np.ndarray
    fitness: np.ndarray
    history: History
    now: pd.Timestamp

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls,
        volunteers: pd.DataFrame,
        services: pd.DataFrame | None = None,
        *,
        now: pd.Timestamp | str | None = None,
        districts: DistrictMap = HANGZHOU,
        options: DispatchOptions | None = None,
        skills: list[str] | None = None,
        on_unknown: Literal["raise", "drop"] = "raise",
    ) -> VolunteerPool:
        """Validate ``volunteers`` (and ``services``) and build the pool.

        ``now`` is when dispatch happens (recent hours and weekly caps count back from it);
        the last service when ``None`` (or the current time without services). Services by
        volunteers missing from ``volunteers`` raise a ``DataError`` naming them, or with
        ``on_unknown="drop"`` are left out of the history and counted in a warning.
        """
        options = options or DispatchOptions()
        if on_unknown == "raise":
            tables = validate_tables(volunteers, _no_requests(), services, skills=skills)
            vol, srv = tables.volunteers, tables.services
        elif on_unknown == "drop":
            vol = validate_volunteers(volunteers, skills=skills)
            srv = validate_services(services)
            unknown = ~srv[V.VOLUNTEER].isin(vol[V.VOLUNTEER]).to_numpy()
            if unknown.any():
                log.warning(
                    "left out %d service(s) by %d volunteer(s) not registered",
                    int(unknown.sum()),
                    srv.loc[unknown, V.VOLUNTEER].nunique(),
                )
                srv = srv[~unknown].reset_index(drop=True)
        else:
            raise ConfigError(f"on_unknown={on_unknown!r}; expected 'raise' or 'drop'")
        when = _now(now, srv)
        skill_map = {s: i for i, s in enumerate(sorted({s for xs in vol[V.SKILLS] for s in xs}))}
        skill_csr = _list_matrix(vol[V.SKILLS], skill_map)
        csc = skill_csr.tocsc()
        holders = [csc.indices[csc.indptr[j] : csc.indptr[j + 1]] for j in range(len(skill_map))]
        texts = [
            " ".join(s) + " " + (d or "")
            for s, d in zip(
                vol[V.SKILLS],
                vol[V.DESCRIPTION] if V.DESCRIPTION in vol else [""] * len(vol),
                strict=True,
            )
        ]
        tokens, vocab = token_matrix(texts)
        dmap = districts.with_districts(vol[V.DISTRICT].dropna().unique().tolist())
        code = dmap.codes(vol[V.DISTRICT].tolist(), "volunteers")
        order = np.argsort(code, kind="stable")
        start = np.searchsorted(code[order], np.arange(len(dmap.names) + 1))
        lat, lon, has = _coords(vol, code, dmap)
        windows = vol[V.AVAILABILITY]
        history = learn_history(srv, vol[V.VOLUNTEER], when, options.recent_days)
        log.info("volunteer pool: %d volunteers, %d skills", len(vol), len(skill_map))
        return cls(
            table=vol,
            ids=vol[V.VOLUNTEER].to_numpy(),
            skills=skill_map,
            skill_csr=skill_csr,
            holders=holders,
            vocabulary=vocab,
            tokens=tokens,
            districts=dmap,
            district=code,
            by_district=order,
            district_start=start,
            lat=lat,
            lon=lon,
            has_coords=has,
            lat_rad=np.radians(lat),
            lon_rad=np.radians(lon),
            cos_lat=np.cos(np.radians(lat)),
            grid=Grid.build(lat, lon),
            unlocated=np.flatnonzero(np.isnan(lat)),
            avail=np.asfortranarray(availability_hours(windows.tolist())),
            always=windows.map(len).to_numpy() == 0,
            cap=vol[V.WEEKLY_HOURS].to_numpy(float),
            capacity=vol[V.CAPACITY].to_numpy(np.int64),
            fitness=vol[V.FITNESS].to_numpy(bool),
            history=history,
            now=when,
        )

    def in_districts(self, codes: np.ndarray) -> np.ndarray:
        """Sorted positions of the volunteers in the districts ``codes``."""
        parts = [
            self.by_district[self.district_start[c] : self.district_start[c + 1]] for c in codes
        ]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _no_requests() -> pd.DataFrame:
    """A one-row requests table, so that ``validate_tables`` checks the other two."""
    now = pd.Timestamp("2000-01-03")
    return pd.DataFrame(
        {
            V.REQUEST: ["-"],
            V.KIND: [KINDS[0]],
            V.START: [now],
            V.END: [now + pd.Timedelta(hours=1)],
            V.DISTRICT: ["-"],
        }
    )


def _now(now: pd.Timestamp | str | None, services: pd.DataFrame) -> pd.Timestamp:
    if now is not None:
        return pd.Timestamp(now)
    if len(services):
        return pd.Timestamp(services[V.SERVED_AT].max()) + pd.Timedelta(seconds=1)
    return pd.Timestamp.now(tz="UTC").tz_localize(None)


def _list_matrix(lists: pd.Series, index: dict[str, int]) -> sp.csr_matrix:
    """Binary CSR of list cells over ``index`` (items outside it left out)."""
    cols = [[index[x] for x in xs if x in index] for xs in lists]
    lengths = np.fromiter((len(c) for c in cols), np.int64, len(cols))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.fromiter((c for cs in cols for c in cs), np.int64, int(indptr[-1]))
    data = np.ones(len(indices), np.float32)
    matrix = sp.csr_matrix((data, indices, indptr), shape=(len(cols), max(len(index), 1)))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _coords(
    frame: pd.DataFrame, code: np.ndarray, dmap: DistrictMap
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lat, lon = frame[V.LAT].to_numpy(float).copy(), frame[V.LON].to_numpy(float).copy()
    has = ~np.isnan(lat)
    fill = ~has & (code >= 0)
    lat[fill], lon[fill] = dmap.lat[code[fill]], dmap.lon[code[fill]]
    return lat, lon, has


@dataclass(frozen=True, eq=False)
class RequestBatch:
    """The requests of one dispatch as arrays aligned with the validated table.

    ``skills`` per request: columns of the pool's skills (``unknown`` the needed skills no
    volunteer holds); ``token_idx``/``token_w`` the content tokens (weights L2-normalised);
    ``items`` rows of the collaborative affinity to average; ``district_km`` (n, n_districts)
    the distance from each request to each district.
    """

    table: pd.DataFrame
    ids: np.ndarray
    kind: np.ndarray  # (n,) index into KINDS
    skills: list[np.ndarray]
    unknown: list[list[str]]
    token_idx: list[np.ndarray]
    token_w: list[np.ndarray]
    items: list[np.ndarray]
    district: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    has_coords: np.ndarray
    district_km: np.ndarray
    mask: np.ndarray  # (n, 3) uint64
    hours: np.ndarray
    headcount: np.ndarray
    urgency: np.ndarray
    start: np.ndarray  # int64 ns
    end: np.ndarray
    person: np.ndarray  # object
    approved: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(
        cls, requests: pd.DataFrame, pool: VolunteerPool, *, skills: list[str] | None = None
    ) -> RequestBatch:
        """Validate ``requests`` and line them up with ``pool``."""
        req = validate_requests(requests, skills=skills)
        dmap = pool.districts
        known = set(dmap.names)
        new = sorted({d for d in req[V.DISTRICT].dropna() if d not in known})
        if new:
            # districts nobody volunteers in: far from everyone (a clear "too far" result)
            dmap = dmap.with_districts(new)
        code = dmap.codes(req[V.DISTRICT].tolist(), "requests")
        lat, lon, has = _coords(req, code, dmap)
        n_known = len(pool.districts.names)
        km = dmap.distance[np.maximum(code, 0)][:, :n_known].copy()
        geo = has[:, None] & ~np.isnan(pool.districts.lat)[None, :]
        cent = haversine_km(
            lat[:, None], lon[:, None], pool.districts.lat[None, :], pool.districts.lon[None, :]
        )
        km = np.where(geo, np.maximum(cent - 5.0, 0.0), km)
        km[code < 0] = np.where(geo[code < 0], km[code < 0], np.inf)
        skill_cols, unknown = [], []
        for needed in req[V.SKILLS]:
            skill_cols.append(np.array([pool.skills[s] for s in needed if s in pool.skills]))
            unknown.append([s for s in needed if s not in pool.skills])
        tokens, _ = token_matrix(
            [" ".join(s) + " " + c for s, c in zip(req[V.SKILLS], req[V.CONTENT], strict=True)],
            pool.vocabulary,
        )
        items_map = pool.history.items
        items = [
            np.array([items_map[k] for k in item_keys(kind, list(s)) if k in items_map], np.int64)
            for kind, s in zip(req[V.KIND], req[V.SKILLS], strict=True)
        ]
        return cls(
            table=req,
            ids=req[V.REQUEST].to_numpy(),
            kind=pd.Index(KINDS).get_indexer(req[V.KIND]),
            skills=[s.astype(np.int64) for s in skill_cols],
            unknown=unknown,
            token_idx=[
                tokens.indices[tokens.indptr[i] : tokens.indptr[i + 1]] for i in range(len(req))
            ],
            token_w=[tokens.data[tokens.indptr[i] : tokens.indptr[i + 1]] for i in range(len(req))],
            items=items,
            district=code,
            lat=lat,
            lon=lon,
            has_coords=has,
            district_km=km,
            mask=hour_mask(req[V.START], req[V.END]),
            hours=req[V.HOURS].to_numpy(float),
            headcount=req[V.HEADCOUNT].to_numpy(np.int64),
            urgency=req[V.URGENCY].to_numpy(float),
            start=req[V.START].to_numpy("datetime64[ns]").astype(np.int64),
            end=req[V.END].to_numpy("datetime64[ns]").astype(np.int64),
            person=req[V.PERSON].to_numpy(object),
            approved=req[V.APPROVED].to_numpy(bool),
        )
