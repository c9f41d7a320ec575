"""Who is in a segment: member attributes, segment labels, group selection and the org tree.

Portraits and demand group members the same way: by any member attributes (``age_band``
derived from ``birth_year``, ``occupation``, ``district``, ``mobile``, ``branch``...), within
a population chosen like a group menu's (an org with its sub-branches, an attribute filter,
a list of ids; see :func:`recommend.group.group_members`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from numpy.typing import NDArray

from recommend.data.dataset import AGE_BANDS, age_band
from recommend.errors import ConfigError, DataError
from recommend.schema import Columns
from recommend.selection import filter_mask

__all__ = ["OrgTree", "member_attributes", "segment_codes", "select_members"]

C = Columns

#: ``by="branch"`` is the member's own org (``org_id``).
ALIASES = {"branch": C.ORG}
UNKNOWN = "unknown"


def member_attributes(members: pd.DataFrame, year: int) -> pd.DataFrame:
    """Member attributes for segmenting: the table's columns plus ``age_band`` and ``branch``.

    Parameters
    ----------
    members : DataFrame
        A (validated) members table, one row per member.
    year : int
        Year the age bands refer to (the data's reference time).

    Returns
    -------
    DataFrame
        A copy with ``age_band`` (when ``birth_year`` is present) and ``branch`` (a copy of
        ``org_id``, when present) added; same row order.
    """
    if C.MEMBER not in members.columns:
        raise DataError(f"members table has no {C.MEMBER} column")
    out = members.reset_index(drop=True).copy()
    if C.BIRTH_YEAR in out.columns:
        out["age_band"] = age_band(out[C.BIRTH_YEAR], year)
    if C.ORG in out.columns:
        out["branch"] = out[C.ORG]
    return out


def segment_codes(
    attributes: pd.DataFrame, by: str | Sequence[str] | None
) -> tuple[NDArray[np.int64], np.ndarray, tuple[str, ...]]:
    """Segment of every member by the columns ``by``.

    Parameters
    ----------
    attributes : DataFrame
        From :func:`member_attributes`, one row per member.
    by : str, sequence of str or None
        Columns to segment by; ``None`` puts everyone in one segment ``"all"``. Missing
        values become ``"unknown"``; several columns join as ``"retired / True"``.

    Returns
    -------
    codes : ndarray of int64, shape (n_members,)
        Index into ``labels``.
    labels : ndarray of object, shape (n_segments,)
        Segment names, sorted.
    by : tuple of str
    """
    if by is None:
        return np.zeros(len(attributes), dtype=np.int64), np.array(["all"], dtype=object), ()
    cols = (by,) if isinstance(by, str) else tuple(by)
    if not cols:
        raise ConfigError("by=(): name at least one member attribute, or pass by=None")
    missing = [c for c in cols if c not in attributes.columns]
    if missing:
        hint = (
            " (age_band needs birth_year)" if "age_band" in missing else ""
        ) + "; a loaded model keeps only member_id and org_id: pass the members table"
        raise ConfigError(
            f"by={list(cols)}: the members table has no column(s) {missing}{hint}; "
            f"columns: {sorted(map(str, attributes.columns))}"
        )
    parts = []
    for col in cols:
        values = attributes[col]
        text = values.astype(object).where(values.notna(), UNKNOWN).astype(str)
        parts.append(text.to_numpy(dtype=object))
    joined = (
        parts[0]
        if len(parts) == 1
        else np.array([" / ".join(t) for t in zip(*parts, strict=True)], dtype=object)
    )
    codes, labels = pd.factorize(pd.Series(joined, dtype=object), sort=True)
    if cols == ("age_band",):  # youngest first, not in text order
        order = [label for _, label in AGE_BANDS] + [UNKNOWN]
        rank = np.array([order.index(v) if v in order else len(order) for v in labels])
        perm = np.argsort(rank, kind="stable")
        codes = np.argsort(perm)[codes]
        labels = labels[perm]
    return codes.astype(np.int64), np.asarray(labels, dtype=object), cols


@dataclass(frozen=True)
class OrgTree:
    """The org tree as arrays: ``parent[i]`` is the index of org ``i``'s parent (-1: root).

    Attributes
    ----------
    ids : ndarray of object, shape (n_orgs,)
    parent : ndarray of int64, shape (n_orgs,)
    kind : ndarray of object, shape (n_orgs,)
        ``committee`` / ``general_branch`` / ``branch`` (``None`` when not given).
    """

    ids: np.ndarray
    parent: NDArray[np.int64]
    kind: np.ndarray

    @classmethod
    def from_table(cls, orgs: pd.DataFrame | None, extra_ids: Sequence[object] = ()) -> OrgTree:
        """Build from an orgs table (``org_id``, optional ``parent_id`` and ``kind``).

        Orgs that only appear in ``extra_ids`` (e.g. members' branches without an orgs table)
        become roots. A cycle in ``parent_id`` raises ``DataError``.
        """
        if orgs is None:
            orgs = pd.DataFrame({C.ORG: pd.Series([], dtype=object)})
        ids = pd.Index(orgs[C.ORG].astype(str))
        extra = pd.Index(pd.unique(pd.Series(list(extra_ids), dtype=object).dropna().astype(str)))
        ids = ids.append(extra.difference(ids, sort=False))
        n_table = len(orgs)
        parent = np.full(len(ids), -1, dtype=np.int64)
        if C.PARENT in orgs.columns:
            raw = orgs[C.PARENT]
            pos = ids.get_indexer(raw.astype(str))
            bad = raw.notna().to_numpy() & (pos < 0)
            if bad.any():
                rows = np.flatnonzero(bad)
                raise DataError(
                    f"orgs.{C.PARENT}: {rows.size} parent id(s) not in orgs.{C.ORG} (rows "
                    f"{rows[:5].tolist()}, values {raw.iloc[rows[:5]].tolist()}); expected "
                    "every parent to be an org of the table, or null for a root"
                )
            parent[:n_table] = np.where(raw.notna().to_numpy(), pos, -1)
        kind = np.full(len(ids), None, dtype=object)
        if C.ORG_KIND in orgs.columns:
            kind[:n_table] = orgs[C.ORG_KIND].to_numpy(dtype=object)
        tree = cls(np.asarray(ids, dtype=object), parent, kind)
        tree.depth()  # fails on a cycle
        return tree

    def __len__(self) -> int:
        return int(self.ids.size)

    def index(self, org: object) -> int:
        """Position of org id ``org``; ``DataError`` if unknown."""
        pos = pd.Index(self.ids).get_indexer([str(org)])[0]
        if pos < 0:
            raise DataError(f"org {org!r} is unknown: no such org_id in the orgs tree or members")
        return int(pos)

    def depth(self) -> NDArray[np.int64]:
        """Number of ancestors of each org (0 for roots), shape (n_orgs,)."""
        depth = np.zeros(len(self), dtype=np.int64)
        cur = self.parent.copy()
        for _ in range(len(self) + 1):
            alive = cur >= 0
            if not alive.any():
                return depth
            depth += alive
            cur = np.where(alive, self.parent[np.maximum(cur, 0)], -1)
        raise DataError(f"orgs.{C.PARENT}: the org tree has a cycle; expected a forest")

    def ancestors(self) -> sp.csr_matrix:
        """``A[i, j] = 1`` when org ``j`` is org ``i`` or above it; (n_orgs, n_orgs) CSR."""
        n = len(self)
        rows, cols = [np.arange(n)], [np.arange(n)]
        cur = self.parent.copy()
        while (cur >= 0).any():
            alive = np.flatnonzero(cur >= 0)
            rows.append(alive)
            cols.append(cur[alive])
            cur = np.where(cur >= 0, self.parent[np.maximum(cur, 0)], -1)
        r, c = np.concatenate(rows), np.concatenate(cols)
        return sp.csr_matrix((np.ones(r.size, np.float32), (r, c)), shape=(n, n))

    def children(self, org: int) -> NDArray[np.int64]:
        """Indices of the direct children of org index ``org`` (-1: the roots)."""
        return np.flatnonzero(self.parent == org).astype(np.int64)

    def membership(self, member_orgs: pd.Series | np.ndarray) -> sp.csr_matrix:
        """``M[u, j] = 1`` when member ``u``'s branch is org ``j`` or below it.

        Parameters
        ----------
        member_orgs : array-like, shape (n_members,)
            Each member's own org id (missing: in no org).

        Returns
        -------
        csr_matrix, shape (n_members, n_orgs), float32
        """
        values = pd.Series(np.asarray(member_orgs, dtype=object))
        pos = pd.Index(self.ids).get_indexer(values.astype(str).where(values.notna(), None))
        known = np.flatnonzero(pos >= 0)
        own = sp.csr_matrix(
            (np.ones(known.size, np.float32), (known, pos[known])), shape=(values.size, len(self))
        )
        return (own @ self.ancestors()).tocsr()


def select_members(
    attributes: pd.DataFrame,
    members: Any,
    *,
    tree: OrgTree | None = None,
    now: pd.Timestamp | None = None,
) -> NDArray[np.bool_]:
    """Mask of the members a group description picks, over the rows of ``attributes``.

    Parameters
    ----------
    attributes : DataFrame
        From :func:`member_attributes`.
    members
        ``None`` (everyone); an org id (``str``/``int``): members of that org and all orgs
        below it; a mapping of attribute filters such as ``{"occupation": "retired",
        "age_band": ["60-69", "70+"]}`` or a callable on the table returning a mask (as in
        :func:`recommend.group.group_members`); or a list of member ids.
    tree
        The org tree (needed for an org id).
    now
        Reference time for an ``age_band`` filter.

    Returns
    -------
    ndarray of bool, shape (len(attributes),)
    """
    n = len(attributes)
    if members is None:
        return np.ones(n, dtype=bool)
    if isinstance(members, Mapping) or callable(members):
        return filter_mask(attributes, members, pd.Timestamp(now or pd.Timestamp.now()))
    if isinstance(members, str | int | np.integer):
        if tree is None or C.ORG not in attributes.columns:
            raise ConfigError(f"org {members!r}: needs the orgs tree and the members' org_id")
        j = tree.index(members)
        inside = np.asarray(tree.membership(attributes[C.ORG])[:, j].todense()).ravel() > 0
        return inside
    if isinstance(members, pd.DataFrame):
        raise ConfigError("members: pass a list of member ids, an org id or a filter mapping")
    wanted = pd.Index(pd.unique(pd.Series(list(members), dtype=object)))
    ids = attributes[C.MEMBER].astype(object)
    unknown = wanted.difference(pd.Index(ids), sort=False)
    if len(unknown):
        raise DataError(
            f"members: {len(unknown)} id(s) not in the members table, e.g. "
            f"{unknown[:3].tolist()}; expected ids of the data's members"
        )
    return ids.isin(wanted).to_numpy()
