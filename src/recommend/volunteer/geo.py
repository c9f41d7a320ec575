"""Distances between volunteers and requests: haversine from coordinates, or the
districts' centroids and adjacency when only districts are known."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from recommend.errors import DataError

__all__ = ["EARTH_KM", "HANGZHOU", "DistrictMap", "Grid", "haversine_km"]

EARTH_KM: Final = 6371.0088
KM_PER_DEG: Final = EARTH_KM * np.pi / 180.0
#: Typical distance between two places in the same district when neither has coordinates.
SAME_DISTRICT_KM: Final = 3.0
#: Distance per adjacency hop when a district has no centroid.
HOP_KM: Final = 15.0


def haversine_km(
    lat1: np.ndarray | float,
    lon1: np.ndarray | float,
    lat2: np.ndarray | float,
    lon2: np.ndarray | float,
) -> np.ndarray:
    """Great-circle distance in km between points given in degrees (broadcasting)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return np.asarray(2 * EARTH_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


@dataclass(frozen=True)
class Grid:
    """Points bucketed in square cells of an equirectangular projection, to find those
    within a radius without measuring the distance to all of them.

    ``order`` lists point positions cell by cell (row-major over ``nx x ny`` cells);
    ``start[c]:start[c+1]`` is cell ``c``'s slice of it. Points without coordinates are left
    out (``located`` is False for them).
    """

    lat0: float
    lon0: float
    km_lon: float  # km per degree of longitude at lat0
    cell_km: float
    nx: int
    ny: int
    order: np.ndarray
    start: np.ndarray
    located: np.ndarray

    @classmethod
    def build(cls, lat: np.ndarray, lon: np.ndarray, cell_km: float = 2.0) -> Grid:
        located = np.isfinite(lat) & np.isfinite(lon)
        if not located.any():
            empty = np.zeros(0, np.int64)
            return cls(0.0, 0.0, KM_PER_DEG, cell_km, 1, 1, empty, np.zeros(2, np.int64), located)
        lat0, lon0 = float(lat[located].min()), float(lon[located].min())
        km_lon = KM_PER_DEG * float(np.cos(np.radians(np.mean(lat[located]))))
        x = (lon[located] - lon0) * km_lon
        y = (lat[located] - lat0) * KM_PER_DEG
        # at most about a million cells, however wide the area
        cell_km = max(cell_km, float(np.sqrt(max(x.max(), 1.0) * max(y.max(), 1.0) / 1e6)))
        nx, ny = int(x.max() // cell_km) + 1, int(y.max() // cell_km) + 1
        cell = (x // cell_km).astype(np.int64) * ny + (y // cell_km).astype(np.int64)
        pos = np.flatnonzero(located)
        order = np.argsort(cell, kind="stable")
        start = np.searchsorted(cell[order], np.arange(nx * ny + 1))
        return cls(lat0, lon0, km_lon, cell_km, nx, ny, pos[order], start, located)

    def near(self, lat: float, lon: float, radius_km: float) -> np.ndarray:
        """Positions of the points in the cells a circle of ``radius_km`` touches (a
        superset of the points within it; measure them to be exact)."""
        x = (lon - self.lon0) * self.km_lon
        y = (lat - self.lat0) * KM_PER_DEG
        x0, x1 = int((x - radius_km) // self.cell_km), int((x + radius_km) // self.cell_km)
        y0, y1 = int((y - radius_km) // self.cell_km), int((y + radius_km) // self.cell_km)
        x0, x1, y0, y1 = max(x0, 0), min(x1, self.nx - 1), max(y0, 0), min(y1, self.ny - 1)
        if x0 > x1 or y0 > y1:
            return np.zeros(0, np.int64)
        cols = np.arange(x0, x1 + 1) * self.ny
        lo, hi = self.start[cols + y0], self.start[cols + y1 + 1]
        lengths = hi - lo
        total = int(lengths.sum())
        flat = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        return self.order[flat]


@dataclass(frozen=True)
class DistrictMap:
    """Districts with optional centroids (degrees) and adjacency.

    ``distance`` between two districts is the centroid distance when both have one,
    else ``HOP_KM`` per hop on the adjacency graph (unreachable: ``inf``); within one
    district ``SAME_DISTRICT_KM``.
    """

    names: tuple[str, ...]
    lat: np.ndarray  # (n,) float64, NaN when unknown
    lon: np.ndarray
    distance: np.ndarray  # (n, n) float64 km

    @classmethod
    def build(
        cls,
        centroids: Mapping[str, tuple[float, float]],
        adjacency: Mapping[str, Sequence[str]] | None = None,
        extra: Sequence[str] = (),
    ) -> DistrictMap:
        """A map of ``centroids`` (name -> (lat, lon)) plus districts only named in
        ``adjacency`` or ``extra`` (without centroid)."""
        adjacency = adjacency or {}
        names = list(centroids)
        for name in [*adjacency, *(n for ns in adjacency.values() for n in ns), *extra]:
            if name not in names:
                names.append(name)
        index = {n: i for i, n in enumerate(names)}
        lat = np.array([centroids.get(n, (np.nan, np.nan))[0] for n in names], dtype=float)
        lon = np.array([centroids.get(n, (np.nan, np.nan))[1] for n in names], dtype=float)
        hops = _hops(len(names), [(index[a], index[b]) for a, bs in adjacency.items() for b in bs])
        dist = hops * HOP_KM
        known = ~np.isnan(lat)
        both = known[:, None] & known[None, :]
        geo = haversine_km(lat[:, None], lon[:, None], lat[None, :], lon[None, :])
        dist = np.where(both, geo, dist)
        np.fill_diagonal(dist, SAME_DISTRICT_KM)
        return cls(tuple(names), lat, lon, dist)

    def with_districts(self, names: Sequence[str]) -> DistrictMap:
        """This map extended by districts it does not know (no centroid, no neighbour)."""
        new = [n for n in dict.fromkeys(names) if n is not None and n not in self.names]
        if not new:
            return self
        n_old, n = len(self.names), len(self.names) + len(new)
        dist = np.full((n, n), np.inf)
        dist[:n_old, :n_old] = self.distance
        np.fill_diagonal(dist, SAME_DISTRICT_KM)
        lat = np.concatenate([self.lat, np.full(len(new), np.nan)])
        lon = np.concatenate([self.lon, np.full(len(new), np.nan)])
        return DistrictMap((*self.names, *new), lat, lon, dist)

    def codes(self, names: Sequence[object], table: str) -> np.ndarray:
        """District codes of ``names`` (-1 for a missing district)."""
        index: dict[object, int] = {n: i for i, n in enumerate(self.names)}
        out = np.array([index.get(n, -2) if n is not None else -1 for n in names], np.int64)
        if (out == -2).any():
            bad = sorted({str(n) for n, c in zip(names, out, strict=True) if c == -2})
            raise DataError(f"{table}.district: districts {bad[:5]} are not on the district map")
        return out


def _hops(n: int, edges: Sequence[tuple[int, int]]) -> np.ndarray:
    """All-pairs hop counts (inf when unreachable) by breadth-first search."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import shortest_path

    if not edges:
        out = np.full((n, n), np.inf)
        np.fill_diagonal(out, 0.0)
        return out
    rows, cols = zip(*edges, strict=True)
    graph = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return np.asarray(shortest_path(graph, directed=False, unweighted=True))


# Hangzhou's districts (approximate centroids) and which border which; the simulator's
# districts (recommend.data.synthetic) are these.
_HZ_CENTROIDS: Final = {
    "上城区": (30.25, 120.18),
    "拱墅区": (30.32, 120.14),
    "西湖区": (30.25, 120.10),
    "滨江区": (30.19, 120.20),
    "萧山区": (30.17, 120.27),
    "余杭区": (30.40, 119.98),
    "临平区": (30.42, 120.30),
    "钱塘区": (30.30, 120.40),
    "富阳区": (30.05, 119.95),
    "临安区": (30.23, 119.72),
    "桐庐县": (29.80, 119.69),
    "淳安县": (29.60, 119.04),
    "建德市": (29.47, 119.28),
}
_HZ_ADJACENT: Final = {
    "上城区": ("拱墅区", "西湖区", "滨江区", "萧山区", "临平区", "钱塘区"),
    "拱墅区": ("西湖区", "余杭区", "临平区"),
    "西湖区": ("余杭区", "富阳区", "滨江区"),
    "滨江区": ("萧山区",),
    "萧山区": ("钱塘区", "富阳区"),
    "余杭区": ("临平区", "富阳区", "临安区"),
    "临平区": ("钱塘区",),
    "富阳区": ("临安区", "桐庐县"),
    "临安区": ("淳安县", "桐庐县"),
    "桐庐县": ("建德市", "淳安县"),
    "淳安县": ("建德市",),
}
HANGZHOU: Final = DistrictMap.build(_HZ_CENTROIDS, _HZ_ADJACENT)
