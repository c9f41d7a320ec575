"""What a search index keeps to understand how members type, built and saved with it.

``TypingAids`` bundles the ``Lexicon`` (index words by pinyin, initials and spelling), the
``Completions`` (the sorted-prefix structure that suggestions and title-prefix matches
use) and the ``RelatedWords`` (click logs, co-study, dictionary). ``read_words`` turns the
words of a normalised query into weighted index tokens: exact words first, pinyin and
initials below them, corrected typos below those.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.schema import Columns
from recommend.search.completions import (
    COMPLETIONS_FILE,
    TOPS_FILE,
    Completions,
    typed_keys,
)
from recommend.search.lexicon import LEXICON_FILE, Lexicon
from recommend.search.related import MIN_MEMBERS, RELATED_FILE, RelatedWords
from recommend.text import domain_terms, has_han, normalize, syllables

__all__ = [
    "AID_FILES",
    "WEIGHT_EDIT",
    "WEIGHT_HOMOPHONE",
    "WEIGHT_INITIALS",
    "WEIGHT_NEAR_HOMOPHONE",
    "WEIGHT_PINYIN",
    "WEIGHT_RELATED",
    "QueryReading",
    "TypingAids",
    "add_related",
    "read_words",
]

C = Columns
AID_FILES = (LEXICON_FILE, COMPLETIONS_FILE, TOPS_FILE, RELATED_FILE)

#: Weight of a word matched through its full pinyin (an exact Chinese match weighs 1).
WEIGHT_PINYIN = 0.8
#: Weight of a word matched through its initials.
WEIGHT_INITIALS = 0.6
#: Weight of a word read for a homophone typo (same pinyin, other characters).
WEIGHT_HOMOPHONE = 0.7
#: Weight of a word read for a near-homophone typo (zh/z, ch/c, sh/s, l/n, -ng/-n).
WEIGHT_NEAR_HOMOPHONE = 0.6
#: Weight of a word one character away from an unknown typed word.
WEIGHT_EDIT = 0.5
#: Weight of a related word searched for a word no course has.
WEIGHT_RELATED = 0.5
#: Title-prefix matches are boosted only when at most this many titles share the prefix.
PREFIX_LIMIT = 50
_LATIN = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class TypingAids:
    """The lexicon, completions and related words of one index."""

    lexicon: Lexicon
    completions: Completions
    related: RelatedWords

    @classmethod
    def build(
        cls,
        courses: pd.DataFrame,
        vocab: Mapping[str, int],
        df: np.ndarray,
        cut: Callable[[str], list[str]],
        *,
        searches: pd.DataFrame | None = None,
        history: sp.csr_matrix | None = None,
    ) -> TypingAids:
        """Build the aids of an index over ``courses`` (row ``i`` is document ``i``) with
        vocabulary ``vocab`` and document frequencies ``df``; ``cut`` segments text."""
        lexicon = Lexicon.build(vocab, df)
        entries = _entries(courses, cut, searches, history)
        completions = Completions.build(entries)
        related = RelatedWords.build(courses, searches=searches, history=history)
        return cls(lexicon, completions, related)

    def save(self, folder: Path) -> None:
        self.lexicon.save(folder)
        self.completions.save(folder)
        self.related.save(folder)

    @classmethod
    def load(cls, folder: Path) -> TypingAids:
        return cls(Lexicon.load(folder), Completions.load(folder), RelatedWords.load(folder))


def _entries(
    courses: pd.DataFrame,
    cut: Callable[[str], list[str]],
    searches: pd.DataFrame | None,
    history: sp.csr_matrix | None,
) -> pd.DataFrame:
    """Completion entries: titles (weight: log learners), domain terms and tags (log
    courses), popular queries (log searches, typed by ``MIN_MEMBERS`` members or more)."""
    n = len(courses)
    learners = np.zeros(n) if history is None else np.asarray(history.getnnz(axis=0), np.float64)
    parts = []
    if C.TITLE in courses.columns:
        titles = courses[C.TITLE].fillna("").astype(str).str.strip().tolist()
        keep = [i for i, t in enumerate(titles) if t]
        parts.append(
            pd.DataFrame(
                {
                    "text": [titles[i] for i in keep],
                    "kind": 0,
                    "doc": np.array(keep, dtype=np.int64),
                    "weight": np.log1p(learners[keep]),
                    "words": [cut(normalize(titles[i])) for i in keep],
                }
            )
        )
    terms: dict[str, list[int]] = {t: [] for t in domain_terms()}
    if C.TAGS in courses.columns:
        for i, value in enumerate(courses[C.TAGS].tolist()):
            tags = value.split("|") if isinstance(value, str) else value
            if tags is None or isinstance(tags, float):
                continue
            for tag in tags:
                tag = str(tag).strip()
                if tag:
                    terms.setdefault(tag, []).append(i)
    names = list(terms)
    docs = [max(d, key=lambda i: (learners[i], -i)) if d else -1 for d in terms.values()]
    parts.append(
        pd.DataFrame(
            {
                "text": names,
                "kind": 1,
                "doc": np.array(docs, dtype=np.int64),
                "weight": np.log1p([len(d) for d in terms.values()]),
            }
        )
    )
    if searches is not None and len(searches):
        parts.append(_query_entries(courses, searches))
    return pd.concat(parts, ignore_index=True)


def _query_entries(courses: pd.DataFrame, searches: pd.DataFrame) -> pd.DataFrame:
    """Popular queries: typed by ``MIN_MEMBERS`` distinct members or more (a rare query
    could say who typed it), with the course their clicks lead to most."""
    frame = pd.DataFrame(
        {
            "text": [normalize(str(q)) for q in searches["query"].tolist()],
            "member": searches[C.MEMBER].to_numpy(),
        }
    )
    stats = frame.groupby("text").agg(members=("member", "nunique"), n=("member", "size"))
    stats = stats[stats["members"] >= MIN_MEMBERS]
    doc_of = pd.Index(courses[C.COURSE])
    clicks = pd.DataFrame({"text": frame["text"], "clicked": searches["clicked"].to_numpy()})
    clicks = clicks[clicks["text"].isin(stats.index)].explode("clicked").dropna()
    clicks["doc"] = doc_of.get_indexer(clicks["clicked"].to_numpy())
    clicks = clicks[clicks["doc"] >= 0]
    top = clicks.groupby(["text", "doc"]).size().rename("c").reset_index()
    top = top.sort_values(["text", "c", "doc"], ascending=[True, False, True])
    lead = top.drop_duplicates("text").set_index("text")["doc"]
    return pd.DataFrame(
        {
            "text": stats.index.to_numpy(dtype=object),
            "kind": 2,
            "doc": lead.reindex(stats.index).fillna(-1).to_numpy(dtype=np.int64),
            "weight": np.log1p(stats["n"].to_numpy(dtype=np.float64)),
        }
    )


# ============================================================================ reading a query


@dataclass
class QueryReading:
    """Index tokens of a query with their weights, what was searched for instead, and
    the documents whose title starts with what was typed."""

    tokens: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)
    initials: list[str] = field(default_factory=list)
    changed: bool = False
    tolerant: bool = False
    prefix_docs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def add(self, token: str, token_id: int, weight: float) -> None:
        self.tokens.append(token)
        self.ids.append(token_id)
        self.weights.append(weight)

    def replace(self, typed: str, read: str) -> None:
        """``typed`` was read as ``read``."""
        self.shown.append(read)
        self.replaced.append((typed, read))
        self.changed = True

    def searched_as(self, text: str) -> str:
        """The normalised query with each replaced run in place (stop words and spaces
        kept); the words read, joined, when a run is not found as typed."""
        out = text
        for typed, read in self.replaced:
            if typed not in out:
                return (" " if " " in text else "").join(self.shown)
            out = out.replace(typed, read, 1)
        return out


def read_words(
    text: str,
    words: Sequence[str],
    vocab: Mapping[str, int],
    aids: TypingAids,
    subwords: Callable[[str], list[str]],
) -> QueryReading:
    """Weighted index tokens of the words of a normalised query ``text``.

    A word the index knows counts fully (a single Chinese character only when no better
    reading of its neighbours exists). A Latin word the index does not know is read as
    pinyin, else initials. A run of unknown or single Chinese characters is read by its
    sound (homophone typos), else each unknown word as the known word one character away,
    else by its known sub-words. ``shown`` is the query as searched (for the note).
    """
    out = QueryReading()
    lex = aids.lexicon
    i = 0
    while i < len(words):
        word = words[i]
        if _strong(word, vocab, words):
            out.add(word, vocab[word], 1.0)
            out.shown.append(word)
            i += 1
            continue
        if not has_han(word):
            _read_latin(out, word, lex)
            i += 1
            continue
        j = i
        while j < len(words) and has_han(words[j]) and not _strong(words[j], vocab, words):
            j += 1
        _read_han(out, words[i:j], vocab, lex, subwords)
        i = j
    # A last word not taken as typed is often a word being typed: look for titles that
    # start with the query too (as for any reading that changed or missed a word).
    if words and not _strong(words[-1], vocab, words):
        out.tolerant = True
    if out.tolerant:
        out.prefix_docs = _prefix_docs(text, aids.completions)
    return out


def add_related(
    out: QueryReading,
    text: str,
    vocab: Mapping[str, int],
    related: RelatedWords,
    split: Callable[[str], list[str]],
    limit: int = 3,
) -> list[str]:
    """Search the related words of the words no course has (and of the whole query when
    nothing else matched), below an exact match; returns the related phrases used (at
    most ``limit``) and, when some were, forgets the unknown words."""
    whole = "" if out.tokens else text
    used: list[str] = []
    for phrase in related.lookup(whole, out.unknown):
        found = [w for w in split(phrase) if w in vocab]
        for word in found:
            out.add(word, vocab[word], WEIGHT_RELATED)
        if found:
            used.append(phrase)
        if len(used) >= limit:
            break
    if used:
        out.unknown.clear()
    return used


def _strong(word: str, vocab: Mapping[str, int], words: Sequence[str]) -> bool:
    """A word taken as typed: known to the index, and not a lone Chinese character among
    other words (jieba leaves the characters of an unknown word or a typo alone)."""
    return word in vocab and (len(word) > 1 or not has_han(word) or len(words) == 1)


def _read_latin(out: QueryReading, word: str, lex: Lexicon) -> None:
    out.tolerant = True
    reading = lex.read_latin(word) if _LATIN.fullmatch(word) else None
    if reading is None:
        out.unknown.append(word)
        out.shown.append(word)
        return
    weight = WEIGHT_PINYIN if reading.kind == "pinyin" else WEIGHT_INITIALS
    for token, token_id in zip(reading.tokens, reading.token_ids, strict=True):
        out.add(token, token_id, weight)
    if reading.kind == "pinyin":
        out.replace(word, "".join(reading.words))
    else:
        # Initials stand for many words (shbx: 社会保险, 生活必需...): no single reading
        # to show; the note says the letters were read as initials.
        out.shown.append(word)
        out.initials.append(word)


def _read_han(
    out: QueryReading,
    span: Sequence[str],
    vocab: Mapping[str, int],
    lex: Lexicon,
    subwords: Callable[[str], list[str]],
) -> None:
    text = "".join(span)
    reading = lex.read_sounds(text, syllables(text))
    if reading is not None and not reading.corrected:
        # The characters as typed, cut into index words (学 习 -> 学习).
        for word in reading.words:
            if word in vocab:
                out.add(word, vocab[word], 1.0)
        out.shown.append(text)
        return
    out.tolerant = True
    if reading is not None:
        weight = WEIGHT_HOMOPHONE if reading.kind == "sound" else WEIGHT_NEAR_HOMOPHONE
        for token, token_id in zip(reading.tokens, reading.token_ids, strict=True):
            out.add(token, token_id, weight)
        out.replace(text, "".join(reading.words))
        return
    for word in span:
        if word in vocab:
            out.add(word, vocab[word], 1.0)
            out.shown.append(word)
            continue
        near = lex.near(word)
        if near is not None:
            out.add(near, vocab[near], WEIGHT_EDIT)
            out.replace(word, near)
            continue
        parts = subwords(word)
        for part in parts:
            out.add(part, vocab[part], 1.0)
        if not parts:
            out.unknown.append(word)
        out.shown.append(word)


def _prefix_docs(text: str, completions: Completions) -> np.ndarray:
    """Documents whose title starts with what was typed, as typed (normalised), in full
    pinyin or in initials; only for prefixes shared by at most ``PREFIX_LIMIT`` titles."""
    key, full, _ = typed_keys(text)
    found: list[np.ndarray] = []
    if has_han(key):
        if len(key) >= 2:
            found.append(completions.prefix_docs("text", key, PREFIX_LIMIT))
            found.append(completions.prefix_docs("pinyin", full, PREFIX_LIMIT))
    elif len(key) >= 3:
        for form in ("text", "pinyin", "initials"):
            found.append(completions.prefix_docs(form, key, PREFIX_LIMIT))
    if not found:
        return np.empty(0, np.int64)
    return np.unique(np.concatenate(found))
