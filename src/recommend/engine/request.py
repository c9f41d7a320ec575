"""A request's members resolved against a model: ids, model indices, attributes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from recommend.checks import is_scalar
from recommend.data.ids import normalise_id, normalise_ids
from recommend.data.validation import validate
from recommend.errors import DataError
from recommend.schema import SERVING_MEMBER_COLUMNS, Columns

if TYPE_CHECKING:
    from recommend.engine.state import ServingState
    from recommend.models.base import Recommender

__all__ = ["MemberRequest"]

C = Columns
_EMPTY_I64 = np.empty(0, dtype=np.int64)


@dataclass
class MemberRequest:
    """The members a request asks for, resolved against the model.

    Attributes
    ----------
    ids : ndarray, shape (m,)
        Member ids as given, string ids normalised as at load (``recommend.data.ids``:
        NFKC, zero-width characters and surrounding spaces removed, so ``" m1 "`` is
        ``m1``); int64 for integer ids, else object.
    idx : ndarray of int64, shape (m,)
        Model member indices, -1 for members unknown to the model.
    attributes : DataFrame or None
        Validated ``member_attributes`` indexed by ``member_id``.
    """

    ids: np.ndarray  # as given (object or int64), shape (m,)
    idx: NDArray[np.int64]  # model member index, -1 when unknown
    attributes: pd.DataFrame | None  # validated member_attributes indexed by member_id

    @classmethod
    def of_indices(cls, idx: NDArray[np.int64]) -> MemberRequest:
        """A request for members given by model index (no ids, no attributes)."""
        idx = np.asarray(idx, dtype=np.int64)
        return cls(idx, idx, None)

    @classmethod
    def make(
        cls,
        model: Recommender,
        state: ServingState,
        member_ids: Any,
        member_attributes: pd.DataFrame | None,
        unknown: str,
    ) -> MemberRequest:
        # The id map of the caller's snapshot (``with model.reading():``): the history and
        # per-member state read later in the request are of the same version.
        id_map = model.member_ids_
        if is_scalar(member_ids):
            value = member_ids.item() if isinstance(member_ids, np.generic) else member_ids
            if isinstance(value, str):
                value = normalise_id(value)
            integer = isinstance(value, int) and not isinstance(value, bool)
            ids = np.array([value], dtype=np.int64 if integer else object)
            idx = np.array([state.member_index_of(id_map, value)], dtype=np.int64)
        else:
            # Through pandas: it keeps integer ids integers and strings Python strings,
            # where numpy would turn a mixed list into fixed-width text.
            series = pd.Series(
                member_ids if isinstance(member_ids, np.ndarray | pd.Index) else list(member_ids)
            )
            integer = series.dtype.kind in "iu"
            ids = series.to_numpy(dtype=np.int64 if integer else object)
            if not integer and ids.size:
                ids = np.asarray(normalise_ids(ids)[0], dtype=object)
            idx = id_map.to_index(ids, unknown="mask").astype(np.int64) if ids.size else _EMPTY_I64
        if unknown == "raise" and (idx < 0).any():
            missing = pd.unique(ids[idx < 0])
            raise DataError(
                f"{missing.size} member id(s) unknown to the model: {missing[:10].tolist()}"
                f"{' ...' if missing.size > 10 else ''}; pass unknown='fallback' for a "
                "cold-start menu"
            )
        attrs = None
        if member_attributes is not None:
            attrs = validate("members", member_attributes)
            attrs = attrs.drop_duplicates(C.MEMBER, keep="last").set_index(C.MEMBER)
        return cls(ids, idx, attrs)

    def attribute_rows(self, state: ServingState, rows: NDArray[np.int64]) -> pd.DataFrame:
        """Attributes of request rows ``rows``: ``member_attributes`` first, the training
        members table for the rest (only the columns a saved model keeps,
        ``SERVING_MEMBER_COLUMNS``, so answers do not change with a save and load); a
        ``member_id`` column plus whatever is known."""
        ids = self.ids[rows]
        idx = self.idx[rows]
        ds = state.dataset
        known = None
        if ds is not None and ds.members is not None:
            ok = (idx >= 0) & (idx < len(ds.members))
            kept = [c for c in SERVING_MEMBER_COLUMNS if c in ds.members.columns and c != C.MEMBER]
            known = ds.members.iloc[idx[ok]].loc[:, kept]
            known.index = np.flatnonzero(ok)
            known = known.reindex(range(len(rows)))
        given = None
        if self.attributes is not None:
            pos = pd.Index(self.attributes.index).get_indexer(pd.Index(ids))
            found = self.attributes.iloc[pos[pos >= 0]]
            found.index = np.flatnonzero(pos >= 0)
            given = found.reindex(range(len(rows)))
        if given is not None and known is not None:
            frame = given.combine_first(known)
        else:
            frame = given if given is not None else known
        if frame is None:
            frame = pd.DataFrame(index=range(len(rows)))
        frame = frame.reset_index(drop=True)
        frame.insert(0, C.MEMBER, ids)
        return frame

    def given_orgs(self, rows: NDArray[np.int64]) -> list[str | None]:
        """Branch org ids from ``member_attributes`` for request rows (``None``: not given)."""
        out: list[str | None] = [None] * len(rows)
        if self.attributes is None or C.ORG not in self.attributes.columns:
            return out
        given = self.attributes[C.ORG]
        pos = pd.Index(given.index).get_indexer(pd.Index(self.ids[rows]))
        values = given.to_numpy(dtype=object)
        for i, p in enumerate(pos.tolist()):
            if p >= 0 and pd.notna(values[p]):
                out[i] = str(values[p])
        return out
