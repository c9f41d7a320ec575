"""The one rule that turns an external id as written into the id the library keys on.

A string id is normalised by Unicode NFKC (full-width ``ｍ０１`` is ``m01``, an ideographic
space is a space), with zero-width and other invisible format characters removed
(U+200B-U+200F, U+2060-U+2064, U+FEFF) and surrounding white space stripped. Integer ids
are left as they are. Validation applies it to every id column of every table (loaders
read files through validation), and the engine applies it to the member ids of a request,
so ``" m1 "``, ``"ｍ1"`` and ``"m\\u200b1"`` all name member ``m1`` everywhere.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["normalise_id", "normalise_ids"]

_SMALL = 64
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff]")
# ASCII characters ``str.strip`` removes.
_ASCII_SPACE = re.compile("[\t\n\x0b\x0c\r\x1c-\x1f ]")
# Object arrays up to this size are checked as one joined string first.
_JOIN_MAX = 100_000


def _plain(values: np.ndarray) -> bool:
    """True when every value is an ASCII string without white space (nothing for
    ``normalise_id`` to change): one joined string checked at C speed (a few hundred
    candidate ids from a search engine)."""
    if len(values) > _JOIN_MAX:
        return False
    try:
        joined = "".join(values.tolist())
    except TypeError:  # a value that is not a string
        return False
    return joined.isascii() and _ASCII_SPACE.search(joined) is None


def normalise_id(value: str) -> str:
    """``value`` in NFKC, without zero-width characters and surrounding white space."""
    if value.isascii():
        return value.strip()
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", value)).strip()


def normalise_ids(values: pd.Series | np.ndarray | Iterable[object]) -> tuple[Any, np.ndarray]:
    """Normalise the ``str`` values of ``values`` with ``normalise_id``.

    Each distinct string is normalised once (event columns repeat ids many times over);
    values that are not ``str`` (integers, missing values) are passed through unchanged.

    Returns
    -------
    (ids, changed)
        ``ids``: a series (same index) when ``values`` is a series, else an object array,
        of shape ``(n,)``; ``values`` itself when nothing changed. ``changed``: a boolean
        array of shape ``(n,)``, true where a string id was changed by the normalisation.
    """
    if not isinstance(values, pd.Series | np.ndarray):
        values = pd.Series(list(values), dtype=object).to_numpy(dtype=object)
    changed = np.zeros(len(values), dtype=bool)
    if not len(values):
        return values, changed
    if len(values) <= _SMALL:
        # A request's few ids: a loop costs microseconds where factorising costs more.
        raw = values.tolist()
        fixed_small = [normalise_id(v) if isinstance(v, str) else v for v in raw]
        changed[:] = [f is not v and f != v for f, v in zip(fixed_small, raw, strict=True)]
        if not changed.any():
            return values, changed
        out_small = np.empty(len(raw), dtype=object)
        out_small[:] = fixed_small
        if isinstance(values, pd.Series):
            return pd.Series(out_small, index=values.index, dtype=object), changed
        return out_small, changed
    if isinstance(values, np.ndarray) and values.dtype == object and _plain(values):
        return values, changed
    # Factorised as given: an Arrow-backed string column is never copied to objects here.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    unique_list = list(uniques)
    fixed = np.empty(len(unique_list), dtype=object)
    fixed[:] = [normalise_id(u) if isinstance(u, str) else u for u in unique_list]
    differs = np.fromiter(
        (isinstance(u, str) and f != u for u, f in zip(unique_list, fixed.tolist(), strict=True)),
        dtype=bool,
        count=len(unique_list),
    )
    if not differs.any():
        return values, changed
    present = codes >= 0
    changed[present] = differs[codes[present]]
    out = np.asarray(values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values)
    out = out.astype(object, copy=True)
    out[changed] = fixed[codes[changed]]
    if isinstance(values, pd.Series):
        return pd.Series(out, index=values.index, dtype=object), changed
    return out, changed
