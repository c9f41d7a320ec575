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

import numpy as np
import pandas as pd

__all__ = ["normalise_id", "normalise_ids"]

_SMALL = 64
_INVISIBLE = re.compile("[\u200b-\u200f\u2060-\u2064\ufeff]")


def normalise_id(value: str) -> str:
    """``value`` in NFKC, without zero-width characters and surrounding white space."""
    if value.isascii():
        return value.strip()
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", value)).strip()


def normalise_ids(values: pd.Series | np.ndarray | Iterable[object]) -> tuple[np.ndarray, np.ndarray]:
    """Normalise the ``str`` values of ``values`` with ``normalise_id``.

    Each distinct string is normalised once (event columns repeat ids many times over);
    values that are not ``str`` (integers, missing values) are passed through unchanged.

    Returns
    -------
    (ids, changed)
        ``ids`` an object array of shape ``(n,)``; ``changed`` a boolean array of shape
        ``(n,)``, true where a string id was changed by the normalisation.
    """
    if isinstance(values, pd.Series):
        arr = values.to_numpy(dtype=object)
    elif isinstance(values, np.ndarray):
        arr = values.astype(object)
    else:
        arr = pd.Series(list(values), dtype=object).to_numpy(dtype=object)
    out = np.array(arr, dtype=object, copy=True)
    changed = np.zeros(len(arr), dtype=bool)
    if not len(arr):
        return out, changed
    if len(arr) <= _SMALL:
        # A request's few ids: a loop costs microseconds where factorising costs more.
        for i, v in enumerate(arr.tolist()):
            if isinstance(v, str):
                fixed_one = normalise_id(v)
                if fixed_one != v:
                    out[i] = fixed_one
                    changed[i] = True
        return out, changed
    codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    uniques = np.asarray(uniques, dtype=object)
    fixed = np.array(
        [normalise_id(u) if isinstance(u, str) else u for u in uniques.tolist()], dtype=object
    )
    differs = np.fromiter(
        (isinstance(u, str) and f != u for u, f in zip(uniques.tolist(), fixed.tolist(), strict=True)),
        dtype=bool,
        count=len(uniques),
    )
    if not differs.any():
        return out, changed
    present = codes >= 0
    changed[present] = differs[codes[present]]
    out[changed] = fixed[codes[changed]]
    return out, changed
