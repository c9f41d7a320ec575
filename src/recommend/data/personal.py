"""Columns that hold personal data, told by their name or by their content.

The library needs no names, phone numbers, ID numbers or addresses, so validation refuses
any table that carries them (see ``recommend.data.validation``). Two tests, both cheap:

- **by name** (``personal_columns``): the name, lower-cased without spaces, dashes,
  underscores and trailing digits, is one of ``recommend.schema.PERSONAL_COLUMNS``
  (``phone_1`` is ``phone``), or contains a Chinese word for personal data (``电话``,
  ``手机``, ``身份证``, ``证件``, ``姓名``, ``邮箱``, ``住址``, ``微信``);
- **by content** (``personal_content``): in any column, of any name, at least
  ``CONTENT_SHARE`` (1%) of up to ``SAMPLE_ROWS`` (10,000) evenly spaced non-null values
  are, in full, a mainland mobile number (``1[3-9]`` and 9 more digits, optionally
  ``+86`` and separators), an 18-character resident identity number whose check digit
  (ISO 7064 MOD 11-2) is right, or an e-mail address. Lists (``tags``) are searched item
  by item. Ordinary ids (``m000123``, ``c42``, integers below ten digits) never match.

Messages name the column and the kind of data found, never a value.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from recommend.schema import PERSONAL_COLUMNS

__all__ = [
    "CONTENT_SHARE",
    "SAMPLE_ROWS",
    "is_resident_id",
    "personal_columns",
    "personal_content",
]

SAMPLE_ROWS = 10_000
CONTENT_SHARE = 0.01

_CHINESE_WORDS = ("电话", "手机", "身份证", "证件", "姓名", "邮箱", "住址", "微信")
_MOBILE = r"(?:\+?86[- ]?)?1[3-9]\d(?:[- ]?\d{4}){2}"
_EMAIL = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
_RESIDENT_ID = r"[1-8]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[\dXx]"
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_ID_CHECK = np.array(list("10X98765432"))
#: Integers below this are plain counters or ids, never phone or ID numbers.
_SMALL_INT = 10**9
_EXACT_FLOAT = 2**53
_LONGEST = 254  # the longest e-mail address


def _norm_name(name: object) -> str:
    return re.sub(r"[\s_\-]", "", str(name)).lower()


def _is_personal_name(name: object) -> bool:
    norm = _norm_name(name)
    if norm in PERSONAL_COLUMNS or norm.rstrip("0123456789") in PERSONAL_COLUMNS:
        return True
    return any(word in norm for word in _CHINESE_WORDS)


def personal_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` whose names say they hold personal data (name, phone, ...)."""
    return [c for c in frame.columns if _is_personal_name(c)]


def is_resident_id(values: pd.Series) -> np.ndarray:
    """Which strings are 18-character resident identity numbers with a right check digit.

    ``values`` is a series of ``str``; returns a boolean array of its length.
    """
    text = values.astype(str)
    shape_ok = text.str.fullmatch(_RESIDENT_ID).to_numpy(dtype=bool, na_value=False)
    out = np.zeros(len(text), dtype=bool)
    if not shape_ok.any():
        return out
    candidates = text.to_numpy(dtype=object)[shape_ok]
    digits = np.array([[ord(ch) - 48 for ch in v[:17]] for v in candidates], dtype=np.int64)
    want = _ID_CHECK[(digits @ _ID_WEIGHTS) % 11]
    got = np.array([v[17].upper() for v in candidates])
    out[shape_ok] = want == got
    return out


def _sample_positions(n: int) -> np.ndarray:
    if n <= SAMPLE_ROWS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, SAMPLE_ROWS).astype(np.int64))


def _as_text(values: pd.Series) -> pd.Series | None:
    """The sampled values of one column as strings (lists flattened), or ``None`` when the
    column cannot hold personal text (booleans, dates, non-integral numbers)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return None
    if pd.api.types.is_numeric_dtype(dtype):
        num = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        ok = np.isfinite(num) & (np.abs(num) >= _SMALL_INT) & (np.abs(num) < _EXACT_FLOAT)
        ok &= num == np.round(num)
        if pd.api.types.is_integer_dtype(dtype):
            ints = values.to_numpy()
            big = np.abs(ints.astype(np.float64)) >= _SMALL_INT
            return pd.Series([str(int(v)) for v in ints[big]], dtype=object)
        return pd.Series([str(int(v)) for v in num[ok]], dtype=object)
    flat: list[str] = []
    for v in values.tolist():
        if isinstance(v, str):
            flat.append(v)
        elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            flat.append(str(int(v)))
        elif isinstance(v, list | tuple | np.ndarray):
            flat.extend(str(x) for x in v if isinstance(x, str | int | np.integer))
    return pd.Series(flat, dtype=object)


def _kinds_found(text: pd.Series) -> list[str]:
    # A value that is, in full, a phone number, an ID number or an address is short.
    short = np.array([len(v) <= _LONGEST for v in text.tolist()], dtype=bool)
    need_all = max(1, int(np.ceil(CONTENT_SHARE * len(text))))
    if short.sum() < need_all:
        return []
    text = text[short].str.strip()
    length = text.str.len().to_numpy(dtype=np.int64, na_value=0)
    need = need_all
    found = []
    phone_like = (length >= 11) & (length <= 17)
    if phone_like.any():
        hits = text[phone_like].str.fullmatch(_MOBILE).to_numpy(dtype=bool, na_value=False)
        if hits.sum() >= need:
            found.append("mainland mobile phone numbers")
    if (length == 18).any() and is_resident_id(text[length == 18]).sum() >= need:
        found.append("resident identity numbers")
    at = text.str.contains("@", regex=False).to_numpy(dtype=bool, na_value=False)
    if at.any():
        hits = text[at].str.fullmatch(_EMAIL).to_numpy(dtype=bool, na_value=False)
        if hits.sum() >= need:
            found.append("e-mail addresses")
    return found


def personal_content(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Columns whose values are personal data, with the kinds found (see the module doc).

    Columns already refused by name are skipped; the result maps column name to a list of
    kinds such as ``"mainland mobile phone numbers"``.
    """
    positions = _sample_positions(len(frame))
    out: dict[str, list[str]] = {}
    for col in frame.columns:
        if _is_personal_name(col):
            continue
        column = frame[col]
        if not isinstance(column, pd.Series):  # duplicated column names: reported elsewhere
            continue
        sample = column.iloc[positions]
        sample = sample[~sample.isna().to_numpy(dtype=bool)] if len(sample) else sample
        text = _as_text(sample)
        if text is None or not len(text):
            continue
        kinds = _kinds_found(text)
        if kinds:
            out[str(col)] = kinds
    return out
