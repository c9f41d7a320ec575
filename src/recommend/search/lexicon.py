"""How members type: the index's words by pinyin, initials and near spellings.

Built at indexing time from the index's own words (``Lexicon.build``) and saved with it:

- every indexed word with a Chinese character, with its full pinyin (``shehuibaoxian``)
  and its initials (``shbx``), so a query typed in pinyin, in initials, or mixed
  (``dangshi学习``) finds the words it sounds like;
- the same pinyin also corrects homophone typos of an input method (社会宝险 is searched
  as 社会保险: same pinyin), and near-homophones through a fuzzy pinyin that does not tell
  zh/z, ch/c, sh/s, n/l or -ng/-n apart (组题党日 is searched as 主题党日), as many
  speakers type; a sorted word list finds the known words one character away from an
  unknown one (one substitution, insertion or deletion).

Words that sound the same are ranked by how many courses use them (document frequency),
and only the few most used are kept for each spelling.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommend.artifact_codec import read_parquet
from recommend.errors import ArtifactError
from recommend.text import has_han, initials, pinyin, stop_words, syllables

__all__ = ["LEXICON_FILE", "Lexicon", "Reading", "fuzzy"]

LEXICON_FILE = "lexicon.parquet"
#: Words kept per pinyin or initials spelling, most used first.
_PER_KEY = 3
#: Longest word (characters) a spelling may stand for.
_MAX_KEY = 40
#: Shortest and longest word corrected by a one-character edit (bounded work per word).
_MIN_EDIT = 3
_MAX_EDIT = 8
#: Candidates looked at per one-character-edit probe (bounded work for unknown words).
_EDIT_SCAN = 400


@dataclass(frozen=True)
class Reading:
    """How a run of typed text was read: index token ids and their words, the words shown
    for the run, how it was read (``"pinyin"``, ``"initials"``, ``"sound"``) and whether
    the words differ from the typed characters (a correction)."""

    token_ids: tuple[int, ...]
    tokens: tuple[str, ...]
    words: tuple[str, ...]
    kind: str
    corrected: bool


class Lexicon:
    """Index words by pinyin, initials and spelling (read-only; safe to share).

    Parameters
    ----------
    word_ids : ndarray of int64, shape (n,)
        Index token id of each word with a Chinese character.
    words : sequence of str, length n
    df : ndarray of int64, shape (n,)
        Courses that contain each word.
    """

    def __init__(self, word_ids: np.ndarray, words: Sequence[str], df: np.ndarray) -> None:
        self.word_ids = np.asarray(word_ids, dtype=np.int64)
        self.words = list(words)
        self.df = np.asarray(df, dtype=np.int64)
        order = np.argsort(-self.df, kind="stable")  # most used first within each key
        pinyin_of: dict[str, list[int]] = {}
        initials_of: dict[str, list[int]] = {}
        fuzzy_of: dict[str, list[int]] = {}
        for i in order.tolist():
            word = self.words[i]
            if len(word) > _MAX_KEY:
                continue
            # A single character's initial would stand for thousands of words.
            keys = [(pinyin_of, pinyin(word)), (fuzzy_of, fuzzy(syllables(word)))]
            if len(word) > 1:
                keys.append((initials_of, initials(word)))
            for table, key in keys:
                found = table.setdefault(key, [])
                if len(found) < _PER_KEY:
                    found.append(i)
        # Tuples of ints are not tracked by the garbage collector: a large lexicon adds
        # nothing to the collector's work while serving.
        self._pinyin = {k: tuple(v) for k, v in pinyin_of.items()}
        self._initials = {k: tuple(v) for k, v in initials_of.items()}
        self._fuzzy = {k: tuple(v) for k, v in fuzzy_of.items()}
        # Stop words are not indexed, but members type them (xuexiyushijian: 学习与实践):
        # a syllable read as one is shown and not searched.
        stops = sorted(w for w in stop_words() if has_han(w))
        self._stops = {pinyin(w): w for w in stops}
        self._fuzzy_stops = {fuzzy(syllables(w)): w for w in stops}
        self._id_of = {w: int(t) for w, t in zip(self.words, self.word_ids.tolist(), strict=True)}
        self._df_of = dict(zip(self.words, self.df.tolist(), strict=True))
        self._sorted = sorted(self.words)
        self._reversed = sorted(w[::-1] for w in self.words)

    # ------------------------------------------------------------------ building and files
    @classmethod
    def build(cls, vocab: Mapping[str, int], df: np.ndarray) -> Lexicon:
        """The lexicon of an index vocabulary (word -> token id) and its document
        frequencies (``df[token_id]``)."""
        pairs = [(w, t) for w, t in vocab.items() if has_han(w)]
        words = [w for w, _ in pairs]
        ids = np.array([t for _, t in pairs], dtype=np.int64)
        return cls(ids, words, np.asarray(df, dtype=np.int64)[ids] if ids.size else ids)

    def save(self, folder: Path) -> None:
        """Write ``lexicon.parquet`` into ``folder``."""
        frame = pd.DataFrame({"word": self.words, "token_id": self.word_ids, "df": self.df})
        frame.to_parquet(folder / LEXICON_FILE, index=False)

    @classmethod
    def load(cls, folder: Path) -> Lexicon:
        """Read ``lexicon.parquet`` (already checked against the index manifest)."""
        try:
            frame = read_parquet(folder / LEXICON_FILE).to_pandas()  # bounded memory
            words = frame["word"].astype(str).tolist()
            ids = frame["token_id"].to_numpy(dtype=np.int64)
            df = frame["df"].to_numpy(dtype=np.int64)
        except (OSError, ValueError, KeyError) as exc:
            raise ArtifactError(f"{folder / LEXICON_FILE} is malformed: {exc}") from exc
        return cls(ids, words, df)

    def __len__(self) -> int:
        return len(self.words)

    # ------------------------------------------------------------------ lookups
    def read_latin(self, text: str) -> Reading | None:
        """A run of Latin letters read as full pinyin, else as initials, of index words
        (``sanhuiyike`` -> 三会一课, ``dsxx`` -> 党史 学习); None when it reads as neither."""
        for kind, table, stops in (
            ("pinyin", self._pinyin, self._stops),
            ("initials", self._initials, {}),
        ):
            parts = _cover(text, table, range(len(text) + 1), stops)
            if parts is not None:
                reading = self._reading(parts, table, kind, stops)
                if reading.token_ids:
                    return reading
        return None

    def read_sounds(self, text: str, syllables: Sequence[str]) -> Reading | None:
        """A run of Chinese characters read by its sound: the index words with the same
        pinyin (homophone typos of an input method). ``corrected`` when the words differ
        from the typed characters; None when the sound is not covered by index words."""
        for kind, table, stops, sylls in (
            ("sound", self._pinyin, self._stops, list(syllables)),
            ("near-sound", self._fuzzy, self._fuzzy_stops, [fuzzy((s,)) for s in syllables]),
        ):
            joined = "".join(sylls)
            cuts = np.cumsum([0, *(len(s) for s in sylls)]).tolist()
            parts = _cover(joined, table, cuts, stops)
            if parts is None:
                continue
            reading = self._reading(parts, table, kind, stops)
            corrected = "".join(reading.words) != text
            if kind == "near-sound" and not corrected:
                continue
            return Reading(reading.token_ids, reading.tokens, reading.words, kind, corrected)
        return None

    def near(self, word: str) -> str | None:
        """The most used index word one character away from ``word`` (substitution,
        insertion or deletion), or None. Chinese words of 3+ characters only: one
        character of two is half the word (模型 is not a typo of 模范); homophone typos of
        short words are read by their sound instead."""
        if not _MIN_EDIT <= len(word) <= _MAX_EDIT or not has_han(word):
            return None
        best: tuple[int, str] | None = None
        for cand in self._edits(word):
            df = self._df_of.get(cand, 0)
            if df and (best is None or (df, cand) > best):
                best = (df, cand)
        return None if best is None else best[1]

    # ------------------------------------------------------------------ helpers
    def _reading(
        self,
        parts: list[str],
        table: Mapping[str, Sequence[int]],
        kind: str,
        stops: Mapping[str, str],
    ) -> Reading:
        ids: list[int] = []
        tokens: list[str] = []
        words: list[str] = []
        for key in parts:
            if key in stops:
                words.append(stops[key])
                continue
            found = table[key]
            words.append(self.words[found[0]])
            ids.extend(int(self.word_ids[i]) for i in found)
            tokens.extend(self.words[i] for i in found)
        return Reading(
            tuple(ids), tuple(tokens), tuple(words), kind, kind in ("pinyin", "initials")
        )

    def _edits(self, word: str) -> Iterable[str]:
        n = len(word)
        for i in range(n):
            deleted = word[:i] + word[i + 1 :]
            if len(deleted) >= _MIN_EDIT:
                yield deleted
            # Substitution at i (length n) or insertion before i (length n + 1).
            head, tail = word[:i], word[i + 1 :]
            for cand in self._between(head, tail, n):
                yield cand
            for cand in self._between(word[:i], word[i:], n + 1):
                yield cand
        yield from self._between(word, "", n + 1)  # a character missing at the end

    def _between(self, head: str, tail: str, length: int) -> Iterable[str]:
        """Known words of ``length`` characters starting with ``head`` and ending with
        ``tail`` (scanning the sorted list by the longer of the two)."""
        if len(head) >= len(tail):
            source, key = self._sorted, head
            lo = bisect.bisect_left(source, key)
            for cand in source[lo : lo + _EDIT_SCAN]:
                if not cand.startswith(key):
                    break
                if len(cand) == length and cand.endswith(tail):
                    yield cand
        else:
            source, key = self._reversed, tail[::-1]
            lo = bisect.bisect_left(source, key)
            for rev in source[lo : lo + _EDIT_SCAN]:
                if not rev.startswith(key):
                    break
                cand = rev[::-1]
                if len(cand) == length and cand.startswith(head):
                    yield cand


_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("l", "n"))


def fuzzy(sylls: Sequence[str]) -> str:
    """Pinyin syllables joined as many speakers do not tell them apart: zh/z, ch/c, sh/s
    and l/n initials, -ng/-n finals (``fuzzy(("zhong", "lian")) == "zonnian"``)."""
    out = []
    for s in sylls:
        for long, short in _FUZZY_INITIALS:
            if s.startswith(long):
                s = short + s[len(long) :]
                break
        if s.endswith("ng") and len(s) > 2:
            s = s[:-1]
        out.append(s)
    return "".join(out)


def _cover(
    text: str,
    table: Mapping[str, Sequence[int]],
    cuts: Iterable[int],
    stops: Mapping[str, str],
) -> list[str] | None:
    """Split ``text`` at allowed ``cuts`` into the fewest keys of ``table`` or ``stops``
    that cover it all (dynamic programming over the cut points); None when no split
    covers it."""
    points = sorted(set(cuts))
    if not text or points[0] != 0 or points[-1] != len(text):
        return None
    best: dict[int, tuple[int, list[str]]] = {0: (0, [])}
    for end in points[1:]:
        for start in points:
            if start >= end:
                break
            if end - start > 6 * _MAX_KEY or start not in best:
                continue
            key = text[start:end]
            if key in table or key in stops:
                cost, parts = best[start]
                if end not in best or cost + 1 < best[end][0]:
                    best[end] = (cost + 1, [*parts, key])
    found = best.get(len(text))
    return None if found is None else found[1]
