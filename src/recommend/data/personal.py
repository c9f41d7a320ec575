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
_MOBILE_RE = re.compile(_MOBILE)
_EMAIL_RE = re.compile(_EMAIL)
_ID_RE = re.compile(_RESIDENT_ID)
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
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


def _resident_id_ok(value: str) -> bool:
    """``value`` (already of the resident id shape) has the right check digit."""
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return bool(_ID_CHECK[total % 11] == value[17].upper())


def is_resident_id(values: pd.Series) -> np.ndarray:
    """Which strings are 18-character resident identity numbers with a right check digit.

    ``values`` is a series of ``str``; returns a boolean array of its length.
    """
    return np.array(
        [
            isinstance(v, str) and _ID_RE.fullmatch(v) is not None and _resident_id_ok(v)
            for v in values.tolist()
        ],
        dtype=bool,
    )


def _sample_positions(n: int) -> np.ndarray:
    if n <= SAMPLE_ROWS:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, SAMPLE_ROWS).astype(np.int64))


def _as_text(values: pd.Series) -> list[str]:
    """The sampled values of one column as strings (lists flattened; missing values,
    booleans, dates and numbers that cannot be phone or ID numbers left out)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return []
    if pd.api.types.is_integer_dtype(dtype):
        ints = values.dropna().to_numpy(dtype=np.int64)
        return [str(v) for v in ints[(ints >= _SMALL_INT) | (ints <= -_SMALL_INT)].tolist()]
    if pd.api.types.is_numeric_dtype(dtype):
        num = values.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(num) & (np.abs(num) >= _SMALL_INT) & (np.abs(num) < _EXACT_FLOAT)
            ok &= num == np.round(num)
        return [str(int(v)) for v in num[ok].tolist()]
    flat: list[str] = []
    for v in values.tolist():
        if isinstance(v, str):
            flat.append(v)
        elif isinstance(v, int | np.integer) and not isinstance(v, bool | np.bool_):
            flat.append(str(int(v)))
        elif isinstance(v, list | tuple | np.ndarray):
            flat.extend(str(x) for x in v if isinstance(x, str | int | np.integer))
    return flat


def _kinds_found(texts: list[str]) -> list[str]:
    """The kinds of personal data making up at least ``CONTENT_SHARE`` of ``texts``.

    A plain loop with cheap guards first: string methods on an object column loop in
    Python too, and most values (ordinary ids, titles) fail the length guard at once.
    """
    phones = ids = emails = 0
    for raw in texts:
        if len(raw) > _LONGEST:
            continue
        v = raw.strip()
        n = len(v)
        if 11 <= n <= 17 and _MOBILE_RE.fullmatch(v):
            phones += 1
        elif n == 18 and _ID_RE.fullmatch(v) and _resident_id_ok(v):
            ids += 1
        if "@" in v and _EMAIL_RE.fullmatch(v):
            emails += 1
    need = max(1, int(np.ceil(CONTENT_SHARE * len(texts))))
    found = []
    if phones >= need:
        found.append("mainland mobile phone numbers")
    if ids >= need:
        found.append("resident identity numbers")
    if emails >= need:
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
        sample = column if len(column) <= SAMPLE_ROWS else column.iloc[positions]
        texts = _as_text(sample)
        if not texts:
            continue
        kinds = _kinds_found(texts)
        if kinds:
            out[str(col)] = kinds
    return out
