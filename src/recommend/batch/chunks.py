"""A batch job's menus, chunk by chunk: the engine's ranking, the cold-start menus shared by
members with the same attributes, and the Arrow table of the output rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from recommend.batch import folder
from recommend.engine import (
    ROUTES,
    MemberRequest,
    MenuOptions,
    MenuRows,
    cold_scorers,
    history_rows,
    menu_rows,
    rank_chunk,
    route_codes,
    serving_state,
)
from recommend.models.base import Recommender, Snapshot
from recommend.schema import Columns

__all__ = ["COLD_CHUNK", "ChunkWriter", "Ranked", "arrow_ids"]

C = Columns

# Members without history scored at once for their cold-start menus (bounds the dense
# (members x courses) score block to about 80 MB at 20k courses; each call has a fixed
# cost of a few milliseconds for grouping members by route).
COLD_CHUNK = 1024


@dataclass(frozen=True)
class Ranked:
    """A chunk after the kernel: its members, the menus found so far, and the members
    (positions) whose menus come from the cold-start cache."""

    ids: np.ndarray
    idx: np.ndarray
    parts: list[MenuRows]
    cold: np.ndarray


class ChunkWriter:
    """Menus of a chunk of members, as output rows and files.

    A chunk goes through two stages. :meth:`rank` (the job's thread) runs the engine's
    ranking for the members with a history (the kernel on the model's factors, or the
    member menu's path where that does not apply). :meth:`write` (a helper thread, while
    the next chunk is ranked) adds the cold-start menus, builds the Arrow table straight
    from the arrays (ids gathered by index from Arrow arrays, no Python objects per row)
    and writes the file.
    """

    def __init__(
        self,
        model: Recommender,
        options: MenuOptions,
        version: str,
        generated_at: pd.Timestamp,
        format: str,
        snapshot: Snapshot | None = None,
        *,
        arm: str | None = None,
    ) -> None:
        self.model = model
        # An experiment's arm: written as an ``arm`` column after ``model_version``.
        self.arm = None if arm is None else pa.array([arm], pa.large_string())
        # The version the job reads: the writer thread pins it too (see write).
        self.snapshot = snapshot
        self.options = options
        self.format = format
        self.state = serving_state(model)
        self.filter = self.state.course_filter(options)
        # Members with a history of a factor model are ranked straight from the factors
        # (the kernel's GEMM over the whole chunk); reasons need the member menu's path.
        self.fast = model.course_vectors() is not None and not options.with_reasons
        self.course_ids = arrow_ids(self.state.course_ext)
        self.routes = pa.array(ROUTES, pa.large_string())
        self.version = pa.array([version], pa.large_string())
        self.stamp = generated_at.value // 1000  # microseconds
        self._codes: np.ndarray | None = None
        # Cold-start menus by attribute code (see _cold), kept for the whole job: members
        # who share an attribute row share a menu, whichever chunk they are in.
        self._cold_menus: dict[int, MenuRows] = {}

    # ------------------------------------------------------------------ stage 1
    def rank(self, ids: np.ndarray, idx: np.ndarray | None = None) -> Ranked:
        """The kernel's part of the menus of members ``ids`` (in that order); ``idx``:
        their model indices when the caller knows them (-1: unknown)."""
        model = self.model
        if idx is None:
            idx = model.member_ids_.to_index(ids, unknown="mask").astype(np.int64)
        seen = history_rows(model.history_, idx)
        has_history = seen.counts > 0
        personal = has_history if self.fast else np.zeros(ids.size, dtype=bool)
        parts = []
        if personal.any():
            pos = np.flatnonzero(personal)
            got = rank_chunk(model, self.state, self.options, self.filter, idx[pos], seen.take(pos))
            parts.append(with_positions(got, pos[got.pos]))
        # Members without history of a model that does not score them from their own
        # features get a menu that depends on their attributes only: one menu per
        # distinct attribute row, copied to the members who share it.
        alike = ~has_history & (not getattr(model, "uses_features", False))
        rest = ~personal & ~alike
        if rest.any():
            pos = np.flatnonzero(rest)
            parts.append(self._menus(pos, ids[pos]))
        return Ranked(ids, idx, parts, np.flatnonzero(alike))

    # ------------------------------------------------------------------ stage 2
    def write(self, root: Path, i: int, ranked: Ranked) -> dict[str, Any]:
        """Complete chunk ``i``'s menus and write its file; returns its manifest entry.
        Runs on the job's writer thread, reading the job's snapshot."""
        with self.model.reading(self.snapshot):
            return self._write(root, i, ranked)

    def _write(self, root: Path, i: int, ranked: Ranked) -> dict[str, Any]:
        parts = list(ranked.parts)
        if ranked.cold.size:
            parts.append(self._cold(ranked.cold, ranked.idx, ranked.ids))
        rows = MenuRows.concat(parts).in_request_order()
        table = self._table(ranked.ids, rows)
        # Members per route, each member counted once (by their first row).
        first = np.ones(rows.pos.size, dtype=bool)
        first[1:] = rows.pos[1:] != rows.pos[:-1]
        counts = np.bincount(rows.route[first], minlength=len(ROUTES))
        routes = {
            ROUTES[r]: int(counts[r]) for r in np.argsort(-counts, kind="stable") if counts[r]
        }
        return folder.write_chunk(root, i, table, self.format, routes)

    def _table(self, ids: np.ndarray, rows: MenuRows) -> pa.Table:
        """The output table, built column by column from the arrays."""
        n_rows = rows.pos.size
        zeros = pa.array(np.zeros(n_rows, dtype=np.int32))
        # Repeated values as dictionary arrays (indices into the chunk's members, the
        # catalogue, the routes): Parquet writes their dictionary pages as they are instead
        # of materialising every string and hashing it again; files are written without the
        # Arrow schema, so readers get plain string/int columns either way.
        as_dict = pa.DictionaryArray.from_arrays
        if rows.reason is None:
            reason = as_dict(zeros, pa.array([""], pa.large_string()))
        else:
            reason = pa.array(rows.reason, pa.large_string())
        columns = [
            as_dict(pa.array(rows.pos.astype(np.int32, copy=False)), arrow_ids(ids)),
            as_dict(pa.array(rows.course.astype(np.int32, copy=False)), self.course_ids),
            pa.array(rows.score.astype(np.float32, copy=False)),
            pa.array(rows.rank.astype(np.int32, copy=False)),
            reason,
            as_dict(pa.array(rows.route.astype(np.int32, copy=False)), self.routes),
            as_dict(zeros, self.version),
            pa.array(np.full(n_rows, self.stamp, np.int64), pa.timestamp("us", tz="UTC")),
        ]
        names = list(folder.BATCH_COLUMNS)
        if self.arm is not None:
            columns.insert(7, as_dict(zeros, self.arm))
            names.insert(7, "arm")
        return pa.Table.from_arrays(columns, names=names)

    # ------------------------------------------------------------------ the routes
    def _menus(self, pos: np.ndarray, ids: np.ndarray) -> MenuRows:
        """The member menus of ``ids`` (at chunk positions ``pos``), route by route."""
        request = MemberRequest.make(self.model, self.state, ids, None, "fallback")
        got = menu_rows(self.model, self.state, request, self.options, self.filter)
        return with_positions(got, pos[got.pos])

    def _cold(self, pos: np.ndarray, idx: np.ndarray, ids: np.ndarray) -> MenuRows:
        """Rows of members without history: the menu of their attribute row (computed for
        the first member seen with that row, then reused)."""
        key = self._attribute_codes()
        own = idx[pos]
        inside = (own >= 0) & (own < key.size)
        codes = np.full(pos.size, -1, dtype=np.int64)  # unknown: no attributes at all
        codes[inside] = key[own[inside]]
        unique, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
        cache = self._cold_menus
        new = np.array([c not in cache for c in unique.tolist()], dtype=bool)
        if new.any():
            reps = pos[first[new]]
            if self.options.with_reasons:
                got = self._menus(np.arange(reps.size), ids[reps])
            else:
                got = self._cold_menus_of(idx[reps])
            bounds = np.searchsorted(got.pos, np.arange(reps.size + 1))
            for r, code in enumerate(unique[new].tolist()):
                cache[code] = got.take(slice(bounds[r], bounds[r + 1]))
        menus = [cache[c] for c in unique.tolist()]
        lengths = np.array([m.pos.size for m in menus], dtype=np.int64)[inverse]
        # Each member's rows: their code's menu, in member order.
        starts = np.cumsum([0] + [m.pos.size for m in menus])[:-1][inverse]
        offsets = np.cumsum(lengths) - lengths
        take = np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())
        reason = None
        if self.options.with_reasons:
            reason = np.concatenate([m.reason for m in menus])[take]
        return MenuRows(
            np.repeat(pos, lengths),
            np.concatenate([m.course for m in menus])[take],
            np.concatenate([m.score for m in menus])[take],
            np.concatenate([m.rank for m in menus])[take],
            np.concatenate([m.route for m in menus])[take],
            reason,
        )

    def _cold_menus_of(self, idx: np.ndarray) -> MenuRows:
        """Menus of members without history (model indices, -1: unknown), vectorised:
        their cold-start scores through the engine's ranking. Positions are
        ``0..len(idx) - 1``."""
        parts = []
        for lo in range(0, idx.size, COLD_CHUNK):
            part = idx[lo : lo + COLD_CHUNK]
            for where, scorer in cold_scorers(self.model, self.state, part):
                dense, routes = scorer(where)
                codes = route_codes(routes)
                seen = history_rows(self.model.history_, part[where])
                got = rank_chunk(
                    self.model,
                    self.state,
                    self.options,
                    self.filter,
                    part[where],
                    seen,
                    dense=dense,
                )
                parts.append(
                    MenuRows(
                        lo + where[got.pos], got.course, got.score, got.rank, codes[got.pos], None
                    )
                )
        return MenuRows.concat(parts).in_request_order()

    def _attribute_codes(self) -> np.ndarray:
        """Per training member, a code of their attribute row (all but ``member_id``)."""
        if self._codes is None:
            ds = self.model.dataset_
            members = ds.members if ds is not None else None
            if members is None:
                self._codes = np.empty(0, dtype=np.int64)
            else:
                attrs = members.drop(columns=[C.MEMBER]).astype(str)
                hashed = pd.util.hash_pandas_object(attrs, index=False).to_numpy()
                # Code 0 onwards; -1 is kept for members the table does not describe.
                self._codes = pd.factorize(hashed)[0].astype(np.int64)
        return self._codes


def with_positions(rows: MenuRows, pos: np.ndarray) -> MenuRows:
    """``rows`` with their member positions replaced by ``pos`` (one per row)."""
    return MenuRows(pos, rows.course, rows.score, rows.rank, rows.route, rows.reason)


def arrow_ids(ids: np.ndarray) -> pa.Array:
    """Ids as an Arrow array: int64 for integer ids, large_string for text (as pandas'
    ``str`` columns are written)."""
    if ids.dtype.kind in "iu":
        return pa.array(ids.astype(np.int64, copy=False), pa.int64())
    return pa.array(ids, pa.large_string())
