"""Completions as members type: a sorted-prefix structure over what they may be typing.

Entries are course titles, domain terms and popular queries, each with a weight (how much
it is used). Each entry is keyed three ways — its normalised text (spaces and punctuation
removed), its full pinyin and its pinyin initials — and each key list is sorted, so the
entries a prefix completes are one contiguous range found by binary search. A prefix with a
long range (a letter, 党) has its best entries computed at build time, so a lookup never
scans more than ``LONG_RANGE`` entries.

Built with the search index and saved with it (``completions.parquet`` and
``completion_tops.parquet``, listed in the index manifest).
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommend.artifact_codec import read_parquet
from recommend.errors import ArtifactError
from recommend.text import normalize, syllables

__all__ = [
    "COMPLETIONS_FILE",
    "FORMS",
    "KINDS",
    "LONG_RANGE",
    "TOPS_FILE",
    "Completions",
    "typed_key",
    "typed_keys",
]

COMPLETIONS_FILE = "completions.parquet"
TOPS_FILE = "completion_tops.parquet"
#: Entry kinds, by code.
KINDS = ("title", "term", "query")
#: Key forms: normalised text, full pinyin, initials.
FORMS = ("text", "pinyin", "initials")
#: Ranges longer than this are answered from the entries kept at build time.
LONG_RANGE = 2048
#: Entries kept for each long range, best first.
_TOP_KEPT = 64
_NOT_KEY = re.compile(r"[^\w]+")
_NOT_LATIN = re.compile(r"[^a-z0-9]+")
_END = "\U0010ffff"


def typed_key(text: str) -> str:
    """The text key of what was typed: normalised, without spaces or punctuation (typed
    letters are matched as they are against the pinyin and initials keys)."""
    return _bare(normalize(text))


def _bare(norm: str) -> str:
    return _NOT_KEY.sub("", norm).replace("_", "")


def typed_keys(text: str, words: Sequence[str] | None = None) -> tuple[str, str, str]:
    """The three keys of a text: normalised without spaces or punctuation, full pinyin and
    initials (letters and digits only). ``words``: the normalised text already cut into
    words, spaces left out (the pinyin of a word depends on its neighbours within the word
    only; the text is then not normalised again)."""
    if isinstance(words, list | tuple):
        parts = list(words)
        key = _bare("".join(parts))
    else:
        norm = normalize(text)
        parts, key = [norm], _bare(norm)
    sylls = [s for part in parts for s in syllables(part)]
    full = _NOT_LATIN.sub("", "".join(sylls))
    heads = _NOT_LATIN.sub("", "".join(s[0] for s in sylls if s and s[0].isalnum()))
    return key, full, heads


@dataclass(frozen=True)
class _Keys:
    """One key form: the sorted keys and the entry of each, with its weight."""

    keys: list[str]
    entry: np.ndarray  # int64, entry id of each sorted key
    weight: np.ndarray  # float32, weight of that entry
    tops: dict[str, np.ndarray]  # prefix -> entry ids, best first (long ranges only)


class Completions:
    """Entries that complete typed prefixes (read-only once built; safe to share).

    Attributes
    ----------
    text : list of str
        What each entry shows (a title, a term, a query).
    kind : ndarray of int8, shape (n,)
        Index into ``KINDS``.
    doc : ndarray of int64, shape (n,)
        The index document an entry leads to (its course; for a term or query the course
        it leads to most), -1 for none.
    weight : ndarray of float32, shape (n,)
        How much the entry is used (log scale), higher first.
    """

    def __init__(
        self,
        text: Sequence[str],
        kind: np.ndarray,
        doc: np.ndarray,
        weight: np.ndarray,
        keys: Mapping[str, Sequence[str]],
        tops: dict[str, dict[str, np.ndarray]] | None = None,
    ) -> None:
        self.text = list(text)
        self.kind = np.asarray(kind, dtype=np.int8)
        self.doc = np.asarray(doc, dtype=np.int64)
        self.weight = np.asarray(weight, dtype=np.float32)
        self.keys = {form: list(keys[form]) for form in FORMS}
        self._forms: dict[str, _Keys] = {}
        for form in FORMS:
            raw = np.array(self.keys[form], dtype=object)
            order = np.argsort(raw, kind="stable") if raw.size else np.empty(0, np.int64)
            sorted_keys = raw[order].tolist()
            w = self.weight[order]
            found = None if tops is None else tops.get(form)
            table = _long_ranges(sorted_keys, order, w) if found is None else found
            self._forms[form] = _Keys(sorted_keys, order.astype(np.int64), w, table)

    def __len__(self) -> int:
        return len(self.text)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        entries: pd.DataFrame,
    ) -> Completions:
        """Completions from a frame of ``text, kind, doc, weight`` (optional ``words``:
        the text cut into words). Courses with the same title keep an entry each (each
        is lifted when a query starts its title); ``suggest`` shows a text once."""
        frame = entries.reset_index(drop=True)
        keys: dict[str, list[str]] = {form: [] for form in FORMS}
        words = frame["words"].tolist() if "words" in frame.columns else [None] * len(frame)
        for text, cut in zip(frame["text"].tolist(), words, strict=True):
            for form, key in zip(FORMS, typed_keys(text, cut), strict=True):
                keys[form].append(key)
        return cls(
            frame["text"].astype(str).tolist(),
            frame["kind"].to_numpy(dtype=np.int8),
            frame["doc"].to_numpy(dtype=np.int64),
            frame["weight"].to_numpy(dtype=np.float32),
            keys,
        )

    # ------------------------------------------------------------------ lookups
    def complete(self, form: str, prefix: str, k: int) -> np.ndarray:
        """Up to ``k`` entry ids whose ``form`` key starts with ``prefix``, highest weight
        first (int64)."""
        table = self._forms[form]
        if not prefix:
            return np.empty(0, np.int64)
        lo = bisect.bisect_left(table.keys, prefix)
        hi = bisect.bisect_left(table.keys, prefix + _END, lo)
        if hi - lo > LONG_RANGE:
            found = table.tops.get(prefix)
            if found is not None:
                return found[:k]
            hi = lo + LONG_RANGE  # not reached when the tops are complete
        if hi <= lo:
            return np.empty(0, np.int64)
        w = table.weight[lo:hi]
        part = np.argpartition(-w, k - 1)[:k] if w.size > k else np.arange(w.size)
        best = part[np.lexsort((part, -w[part]))]
        return table.entry[lo + best]

    def count(self, form: str, prefix: str) -> int:
        """How many entries' ``form`` key starts with ``prefix``."""
        keys = self._forms[form].keys
        lo = bisect.bisect_left(keys, prefix)
        return bisect.bisect_left(keys, prefix + _END, lo) - lo

    def prefix_docs(self, form: str, prefix: str, limit: int) -> np.ndarray:
        """Documents of the title entries whose ``form`` key starts with ``prefix``; empty
        when more than ``limit`` entries do (a prefix too common to single out courses)."""
        table = self._forms[form]
        lo = bisect.bisect_left(table.keys, prefix)
        hi = bisect.bisect_left(table.keys, prefix + _END, lo)
        if not prefix or hi <= lo or hi - lo > limit:
            return np.empty(0, np.int64)
        ids = table.entry[lo:hi]
        ids = ids[(self.kind[ids] == 0) & (self.doc[ids] >= 0)]
        return np.unique(self.doc[ids])

    # ------------------------------------------------------------------ files
    def save(self, folder: Path) -> None:
        """Write ``completions.parquet`` and ``completion_tops.parquet`` into ``folder``."""
        frame = pd.DataFrame(
            {
                "text": self.text,
                "kind": self.kind,
                "doc": self.doc,
                "weight": self.weight,
                **{f"key_{form}": self.keys[form] for form in FORMS},
            }
        )
        frame.to_parquet(folder / COMPLETIONS_FILE, index=False)
        rows = [
            (form, prefix, ids.tolist())
            for form in FORMS
            for prefix, ids in sorted(self._forms[form].tops.items())
        ]
        tops = pd.DataFrame(rows, columns=["form", "prefix", "entries"])
        tops.to_parquet(folder / TOPS_FILE, index=False)

    @classmethod
    def load(cls, folder: Path) -> Completions:
        """Read the files :meth:`save` wrote (already checked against the manifest)."""
        try:
            frame = read_parquet(folder / COMPLETIONS_FILE).to_pandas()  # bounded memory
            rows = read_parquet(folder / TOPS_FILE).to_pandas()  # bounded memory
            tops: dict[str, dict[str, np.ndarray]] = {form: {} for form in FORMS}
            for form, prefix, ids in rows.itertuples(index=False):
                tops[str(form)][str(prefix)] = np.asarray(ids, dtype=np.int64)
            return cls(
                frame["text"].astype(str).tolist(),
                frame["kind"].to_numpy(dtype=np.int8),
                frame["doc"].to_numpy(dtype=np.int64),
                frame["weight"].to_numpy(dtype=np.float32),
                {form: frame[f"key_{form}"].astype(str).tolist() for form in FORMS},
                tops,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"the completions in {folder} are malformed: {exc}") from exc


def _long_ranges(keys: list[str], entry: np.ndarray, weight: np.ndarray) -> dict[str, np.ndarray]:
    """For every prefix shared by more than ``LONG_RANGE`` sorted keys, its best entries.

    Prefixes are grown one character at a time while some range stays long; keys are
    sorted, so the keys sharing a prefix are contiguous."""
    out: dict[str, np.ndarray] = {}
    n = len(keys)
    if n <= LONG_RANGE:
        return out
    spans = [(0, n)]  # ranges still long at the previous length
    length = 0
    while spans:
        length += 1
        longer = []
        for lo, hi in spans:
            heads = np.array([k[:length] for k in keys[lo:hi]], dtype=object)
            change = np.flatnonzero(heads[1:] != heads[:-1]) + 1
            bounds = [0, *change.tolist(), hi - lo]
            for a, b in itertools.pairwise(bounds):
                if b - a <= LONG_RANGE or len(keys[lo + a]) < length:
                    continue
                w = weight[lo + a : lo + b]
                part = np.argpartition(-w, _TOP_KEPT - 1)[:_TOP_KEPT]
                best = part[np.lexsort((part, -w[part]))]
                out[str(heads[a])] = entry[lo + a + best].astype(np.int64)
                longer.append((lo + a, lo + b))
        spans = longer
    return out
