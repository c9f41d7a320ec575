"""Two-way mapping between external ids and dense integer indices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd

from recommend.errors import DataError

__all__ = ["IdMap"]


class IdMap:
    """External ids (``int`` or ``str``) <-> dense indices ``0..n-1``.

    The order is stable: index ``i`` is always ``external_ids[i]``, and ``add`` only
    appends. Build one from observed values with ``IdMap.from_values`` (sorted, unique).

    Parameters
    ----------
    ids
        Unique external ids, in index order. Integer ids are stored as ``int64``, all others
        as Python ``str`` in an object array.
    """

    __slots__ = ("_dict", "_ids", "_index")

    def __init__(self, ids: Iterable[object] | np.ndarray | pd.Index) -> None:
        arr = _as_id_array(ids)
        index = pd.Index(arr)
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:5].tolist()
            raise DataError(f"IdMap: duplicate ids {dup}; expected unique ids")
        self._ids = arr
        self._ids.setflags(write=False)
        self._index = index
        self._dict: dict[object, int] | None = None  # built on the first small lookup

    @classmethod
    def from_values(cls, values: Iterable[object] | np.ndarray | pd.Series) -> IdMap:
        """Map of the distinct ``values``, sorted (so the result does not depend on row order)."""
        arr = _as_id_array(pd.unique(_raw_array(values)))
        return cls(np.sort(arr))

    @property
    def external_ids(self) -> np.ndarray:
        """The ids in index order (read-only ``int64`` or object array of ``str``)."""
        return self._ids

    @property
    def is_integer(self) -> bool:
        return self._ids.dtype.kind == "i"

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return external_id in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IdMap):
            return NotImplemented
        return self._ids.dtype == other._ids.dtype and np.array_equal(self._ids, other._ids)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        head = ", ".join(repr(v) for v in self._ids[:3].tolist())
        return f"IdMap(n={len(self)}, ids=[{head}{', ...' if len(self) > 3 else ''}])"

    def to_index(
        self,
        ids: Iterable[object] | np.ndarray | pd.Series,
        *,
        unknown: Literal["raise", "mask"] = "raise",
    ) -> np.ndarray:
        """Indices of external ``ids``, shape ``(len(ids),)``, ``int32``.

        ``unknown="raise"`` raises a ``DataError`` naming the first unknown ids;
        ``unknown="mask"`` returns ``-1`` for them instead.
        """
        values = _as_query_array(ids, self.is_integer)
        if values.size <= _SMALL_QUERY:
            # Serving looks up one member or a few hundred courses per call: a dict costs a
            # few microseconds where pandas' indexer machinery costs a fraction of a ms.
            table = self._dict
            if table is None:
                table = self._dict = {v: i for i, v in enumerate(self._ids.tolist())}
            idx = np.fromiter(
                (table.get(v, -1) for v in values.tolist()), dtype=np.int32, count=values.size
            )
        else:
            # Hash each distinct id once: event columns repeat ids many times over.
            codes, uniques = pd.factorize(values)
            lookup = np.append(self._index.get_indexer(uniques), -1).astype(np.int32)
            idx = lookup[codes]
        if unknown == "mask":
            return idx
        if unknown != "raise":
            raise DataError(f"unknown={unknown!r}; expected 'raise' or 'mask'")
        missing = idx < 0
        if missing.any():
            shown = pd.unique(np.asarray(values)[missing])[:5].tolist()
            raise DataError(
                f"{int(missing.sum())} id(s) not in the map, e.g. {shown}; expected known ids "
                "(pass unknown='mask' to get -1 for them)"
            )
        return idx

    def to_external(self, index: np.ndarray | Iterable[int]) -> np.ndarray:
        """External ids of indices, same shape as ``index``; indices must be in range."""
        idx = np.asarray(index)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            bad = idx[(idx < 0) | (idx >= len(self))][:5].tolist()
            raise DataError(f"indices {bad} out of range for an IdMap of {len(self)} ids")
        return self._ids[idx]

    def add(self, ids: Iterable[object] | np.ndarray) -> IdMap:
        """A new map with the ids not yet known appended (existing indices unchanged)."""
        arr = _as_id_array(ids)
        new = pd.unique(arr[self.to_index(arr, unknown="mask") < 0])
        if not len(new):
            return self
        return IdMap(np.concatenate([self._ids, np.asarray(new, dtype=self._ids.dtype)]))


def _raw_array(values: Iterable[object] | np.ndarray | pd.Series | pd.Index) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values
    if hasattr(values, "to_numpy"):
        return np.asarray(values.to_numpy())
    values = list(values)
    if all(type(v) is str for v in values):
        # A request's few string ids (the common case): an object array at once.
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    # Through pandas, not np.asarray: numpy's fixed-width strings would drop trailing NULs.
    return np.asarray(pd.Series(values).to_numpy())


def _as_id_array(values: Iterable[object] | np.ndarray | pd.Series | pd.Index) -> np.ndarray:
    arr = _raw_array(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind in "fb":
        raise DataError(f"ids of dtype {arr.dtype}; expected integer or string ids")
    out = np.empty(len(arr), dtype=object)
    out[:] = [str(v) for v in arr]
    return out


#: Lookups of at most this many ids go through a Python dict (built once, on first use).
_SMALL_QUERY = 512


def _as_query_array(values: Iterable[object] | np.ndarray | pd.Series, integer: bool) -> np.ndarray:
    arr = _raw_array(values)
    if integer and arr.dtype.kind in "OUS":
        # A string query against integer ids: compare like for like where possible.
        try:
            return arr.astype(np.int64)
        except (TypeError, ValueError):
            return arr
    if not integer and arr.dtype.kind != "O":
        return arr.astype(str).astype(object)
    return arr
