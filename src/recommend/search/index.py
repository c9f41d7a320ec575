"""The embedded retriever: a BM25 index over course title, tags, lecturer and description.

Text is normalised first, at indexing and at query time (``recommend.text.normalize``:
traditional characters to simplified, full-width to half-width, lower case), then
segmented as ``recommend.text`` does (``jieba``'s dictionary and algorithm plus the
shipped dictionary of party-building terms, so 三会一课 or 党史学习教育 stay whole words;
English words and numbers lower-cased; the same stop words). Where ``rjieba`` (the Rust
port of jieba: same dictionary, same segmentation, about ten times faster) is installed
it does the cutting, otherwise ``jieba`` itself.

Members type short forms (党史 for 党史学习教育), so a
document also gets the dictionary sub-words of its long Chinese words, as a search
engine's index-time segmentation does (``jieba.cut_for_search``): 党史学习教育 is indexed
as 党史学习教育, 党史, 学习 and 教育. Queries are not expanded, except a query word the
index does not know, which is replaced by its known sub-words.

How members type is handled by the index's ``TypingAids``
(``recommend.search.typing_aids``), built with it: a query word the index does not know is
read as pinyin or initials of index words (``shbx``, ``dangshi学习``), as a homophone typo
(社会宝险 -> 社会保险) or as the word one character away, each weighted below an exact
match, and the note says what was searched instead; a query that starts a course title
(as typed, in pinyin or in initials) lifts that course; the completions behind
``suggest`` and the related words behind the no-match fallback are saved with the index.
A query whose words the index knows as typed skips the aids (they would read it as it
is), and an index with aids keeps the readings of the last 4,096 distinct queries, so a
query typed again is not normalised, segmented and read again.

Fields are weighted by repetition (title and tags count twice); the lecturer id is one
token. Scoring is BM25 (Lucene variant) from ``bm25s``: a sparse matrix of precomputed
per-(term, course) scores, so a query sums a few columns.

Large catalogues are segmented in worker processes.

An index saves as a directory (``bm25s`` files: JSON + ``.npy`` read with
``allow_pickle=False``, the course ids as ``.npy``, and ``search_index.json`` with the
format version, parameters and the size and SHA-256 of every file), written atomically
(temporary directory + rename). Loading checks every file first. Format 2 adds the typing
aids (``lexicon.parquet``, ``completions.parquet``, ``completion_tops.parquet``,
``related.json``); a format-1 index still loads and searches, without them.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from recommend import store
from recommend.artifact_codec import read_npy
from recommend.errors import ArtifactError, ConfigError, DataError, one_line
from recommend.messages import Message
from recommend.schema import Columns
from recommend.search import notes as member_notes
from recommend.search.typing_aids import TypingAids, add_related, read_words
from recommend.search.weights import BlendWeights
from recommend.text import domain_terms, get_tokenizer, has_han, is_token, normalize
from recommend.version import __version__

__all__ = [
    "DEFAULT_FIELDS",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "MAX_QUERY_CHARS",
    "Query",
    "SearchIndex",
    "build_index",
    "document_tokens",
    "words_of",
]

logger = logging.getLogger(__name__)


def _bm25s() -> Any:
    """The ``bm25s`` module, imported on first use. It sets its own logger to DEBUG on
    import, which prints its debug lines through any handler the application installs
    (``recommend search`` without ``-v``): its logger follows the application's level."""
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.NOTSET)
    return bm25s


C = Columns

FORMAT = "recommend-search-index"
FORMAT_VERSION = 2
MANIFEST = "search_index.json"
COURSE_IDS = "course_ids.npy"

#: Indexed course columns and how many times each counts (BM25F by repetition).
DEFAULT_FIELDS: Mapping[str, int] = {C.TITLE: 2, C.TAGS: 2, C.LECTURER: 1, C.DESCRIPTION: 1}
#: Longer queries are cut to this many characters (a note says so).
MAX_QUERY_CHARS = 64

_CJK = re.compile(r"[\u4e00-\u9fff]+")
# Catalogues below this many courses are segmented in the calling process.
_PARALLEL_MIN_DOCS = 20_000
_CHUNK_DOCS = 2_000
# Distinct words remembered while segmenting (bounded memory on huge catalogues).
_MEMO_MAX = 2_000_000
_SEP = "\x1f"
# Queries whose reading an index with typing aids keeps (the oldest is dropped).
_READINGS_MAX = 4096


# ============================================================================ tokens


_memo: dict[str, tuple[str, ...]] = {}
_cut_lock = threading.Lock()
_cut: Callable[[str], list[str]] | None = None


def _cutter() -> Callable[[str], list[str]]:
    """The word cutter: ``rjieba`` with the domain terms when installed, else ``jieba``."""
    global _cut
    with _cut_lock:
        if _cut is None:
            try:
                import rjieba
            except ImportError:
                tok = get_tokenizer()
                _cut = tok.lcut
            else:
                seg = rjieba.Jieba()
                for term in domain_terms():
                    # The frequency recommend.text gives them: same segmentation.
                    seg.add_word(term, 2_000_000, None)

                def cut(text: str, seg: Any = seg) -> list[str]:
                    return list(seg.cut(text, True))

                _cut = cut
        return _cut


def words_of(text: str) -> list[str]:
    """Words of a phrase as ``recommend.text.tokenize`` gives them (lower-cased, domain
    terms whole, no stop words, no punctuation or single Latin letters)."""
    out = []
    for word in _cutter()(text.lower()):
        word = word.strip()
        if is_token(word):
            out.append(word)
    return out


def _subwords(word: str, freq: Mapping[str, int]) -> list[str]:
    """Dictionary 2- and 3-character words inside a long Chinese word (as
    ``jieba.cut_for_search``: 2-grams of words longer than 2, 3-grams of words longer
    than 3)."""
    out = []
    if len(word) > 2 and _CJK.fullmatch(word):
        for n in (2, 3):
            if len(word) <= n:
                break
            for i in range(len(word) - n + 1):
                gram = word[i : i + n]
                if freq.get(gram):
                    out.append(gram)
    return out


def _expansion(word: str, freq: Mapping[str, int]) -> tuple[str, ...]:
    """Index tokens of one word from the cutter: nothing for stop words and punctuation,
    else the word and its dictionary sub-words. Remembered: words repeat a lot."""
    found = _memo.get(word)
    if found is not None:
        return found
    w = word.strip()
    result: tuple[str, ...] = ()
    if is_token(w):
        result = (w, *_subwords(w, freq))
    if len(_memo) >= _MEMO_MAX:
        _memo.clear()
    _memo[word] = result
    return result


def _text_tokens(text: object, freq: Mapping[str, int]) -> list[str]:
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return []
    out: list[str] = []
    memo = _memo
    for word in _cutter()(normalize(str(text))):
        found = memo.get(word)
        out.extend(_expansion(word, freq) if found is None else found)
    return out


def _field_tokens(value: object, kind: str, freq: Mapping[str, int]) -> list[str]:
    if kind == C.LECTURER:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return []
        text = str(value).strip().lower()
        return [text] if text else []
    if kind == C.TAGS:
        if isinstance(value, str):
            value = value.split("|")
        if value is None or isinstance(value, float):
            return []
        out: list[str] = []
        for tag in cast("Iterable[object]", value):  # a list or an array of tags
            out.extend(_text_tokens(tag, freq))
        return out
    return _text_tokens(value, freq)


def document_tokens(row: Mapping[str, Any], fields: Mapping[str, int]) -> list[str]:
    """Index tokens of one course (a mapping of its columns), fields repeated by weight."""
    freq = get_tokenizer().FREQ
    out: list[str] = []
    for name, weight in fields.items():
        tokens = _field_tokens(row.get(name), name, freq)
        out.extend(tokens * int(weight))
    return out


def _tokenize_rows(
    rows: list[tuple[Any, ...]], names: tuple[str, ...], weights: tuple[int, ...]
) -> list[str]:
    """Token strings of many courses, each joined by ``_SEP`` (cheap to send between
    processes)."""
    freq = get_tokenizer().FREQ
    out = []
    for row in rows:
        tokens: list[str] = []
        for value, name, weight in zip(row, names, weights, strict=True):
            tokens.extend(_field_tokens(value, name, freq) * weight)
        out.append(_SEP.join(tokens))
    return out


def _chunks(rows: list[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    for lo in range(0, len(rows), size):
        yield rows[lo : lo + size]


def _segment(
    frame: pd.DataFrame, fields: Mapping[str, int], n_jobs: int, progress: bool
) -> list[str]:
    names = tuple(fields)
    weights = tuple(int(w) for w in fields.values())
    rows = list(zip(*(frame[n].tolist() for n in names), strict=True)) if names else []
    get_tokenizer()  # initialise before forking: workers inherit the dictionaries
    _cutter()
    bar = tqdm(total=len(rows), desc="segmenting courses", unit="course", disable=not progress)
    out: list[str] = []
    try:
        use_pool = n_jobs > 1 and len(rows) >= _PARALLEL_MIN_DOCS
        methods = multiprocessing.get_all_start_methods()
        if use_pool and "fork" in methods:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(n_jobs) as pool:
                jobs = pool.imap(
                    _tokenize_chunk, ((c, names, weights) for c in _chunks(rows, _CHUNK_DOCS))
                )
                for part in jobs:
                    out.extend(part)
                    bar.update(len(part))
        else:
            for chunk in _chunks(rows, _CHUNK_DOCS):
                out.extend(_tokenize_rows(chunk, names, weights))
                bar.update(len(chunk))
    finally:
        bar.close()
    return out


def _tokenize_chunk(
    args: tuple[list[tuple[Any, ...]], tuple[str, ...], tuple[int, ...]],
) -> list[str]:
    return _tokenize_rows(*args)


# ============================================================================ queries


@dataclass(frozen=True)
class Query:
    """A parsed query: the text searched for, its words and their index ids.

    ``text`` is the query normalised (simplified characters, half-width, lower case) and
    ``typed`` as the member typed it (for display). ``tokens`` are the words found in the
    index (after reading unknown words as pinyin, typos or known sub-words),
    ``token_ids`` their int32 ids and ``weights`` their float32 weights (None: all 1),
    ``words`` all words of the query (stop words removed), ``notes`` what happened to the
    query (truncated, unknown words, what was searched instead...) as catalogue messages
    (``note.text(lang)``; ``str(note)`` is English), ``searched_as`` the
    query as searched when a reading replaced typed words, ``prefix_docs`` the documents
    whose title starts with what was typed.
    """

    text: str
    words: tuple[str, ...]
    tokens: tuple[str, ...]
    token_ids: np.ndarray
    notes: tuple[Message, ...] = field(default=())
    typed: str = ""
    weights: np.ndarray | None = None
    searched_as: str | None = None
    prefix_docs: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    @property
    def empty(self) -> bool:
        """True when no query word is in the index: nothing can match."""
        return self.token_ids.size == 0 and self.prefix_docs.size == 0


# ============================================================================ the index


class SearchIndex:
    """A BM25 index over a course catalogue.

    Build with :meth:`build` (or :func:`build_index` from a fitted model), query with
    :meth:`parse` + :meth:`top`, save with :meth:`save` and read back with :meth:`load`.
    Read-only once built: safe to share between threads.

    Attributes
    ----------
    course_ids : ndarray, shape (n_docs,)
        The course id of each document, in index order (object for strings, int64).
    params : dict
        ``k1``, ``b``, ``method`` and ``fields`` (column -> repetition weight).
    weights : BlendWeights or None
        Blend weights stored with the index (e.g. learned by ``fit_blend``); ``None`` uses
        the defaults.
    aids : TypingAids or None
        Pinyin, typo, completion and related-word lookups (None for a format-1 index).
    """

    def __init__(
        self,
        retriever: Any,
        course_ids: np.ndarray,
        params: Mapping[str, Any],
        weights: BlendWeights | None = None,
        aids: TypingAids | None = None,
    ) -> None:
        self._bm25 = retriever
        self.course_ids = course_ids
        self.params = dict(params)
        self.weights = weights
        self.aids = aids
        scores = retriever.scores
        self._indptr = np.asarray(scores["indptr"])
        self._indices = np.asarray(scores["indices"])
        self._vocab: dict[str, int] = dict(retriever.vocab_dict)
        # Queries read through the typing aids, by what was typed (``_kept_reading``).
        self._readings: dict[tuple[str, tuple[Message, ...]], Query] = {}
        self._readings_lock = threading.Lock()

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        courses: pd.DataFrame,
        *,
        fields: Mapping[str, int] | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        n_jobs: int | None = None,
        progress: bool = False,
        searches: pd.DataFrame | None = None,
        history: Any = None,
    ) -> SearchIndex:
        """Index a courses table.

        Parameters
        ----------
        courses
            ``course_id`` (unique) plus any of the ``fields`` columns; missing columns are
            skipped, ``tags`` may hold lists or ``|``-separated strings.
        fields
            Column -> repetition weight; by default title and tags x2, lecturer id and
            description x1.
        k1, b
            BM25 parameters.
        n_jobs
            Worker processes that segment text for catalogues of 20,000 courses or more;
            all cores by default.
        progress
            Show a progress bar.
        searches
            A search log (``member_id, query, clicked``): popular queries become
            suggestions and queries clicking the same courses become related words.
        history
            (n_members, n_courses) CSR learning matrix whose columns follow the rows of
            ``courses``: title suggestions are weighted by learners, tags related by
            co-study.

        Raises
        ------
        DataError
            No ``course_id`` column, duplicate course ids, or no indexable column.
        ConfigError
            A parameter is out of range.
        """
        bm25s = _bm25s()

        if not isinstance(courses, pd.DataFrame):
            raise DataError(f"courses must be a DataFrame, got {type(courses).__name__}")
        if C.COURSE not in courses.columns:
            raise DataError(f"courses has no {C.COURSE!r} column; columns: {list(courses.columns)}")
        ids = courses[C.COURSE]
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            rows = np.flatnonzero(dup)
            raise DataError(
                f"courses.{C.COURSE}: duplicate ids in {rows.size} rows (rows "
                f"{', '.join(map(str, rows[:5]))}); values {ids.iloc[rows[:5]].tolist()}; "
                "expected one row per course"
            )
        if ids.isna().any():
            rows = np.flatnonzero(ids.isna().to_numpy())
            raise DataError(f"courses.{C.COURSE}: missing ids in rows {rows[:5].tolist()}")
        wanted = dict(DEFAULT_FIELDS if fields is None else fields)
        for name, weight in wanted.items():
            if isinstance(weight, bool) or not isinstance(weight, int | np.integer) or weight < 1:
                raise ConfigError(f"field weight of {name!r} must be a positive integer")
        used = {n: int(w) for n, w in wanted.items() if n in courses.columns}
        if not used:
            raise DataError(
                f"courses has none of the indexed columns {list(wanted)}; nothing to search"
            )
        if not (k1 > 0 and 0.0 <= b <= 1.0):
            raise ConfigError(f"BM25 needs k1 > 0 and 0 <= b <= 1, got k1={k1!r}, b={b!r}")
        jobs = (os.cpu_count() or 1) if n_jobs is None else int(n_jobs)

        texts = _segment(courses, used, max(1, jobs), progress)
        vocab: dict[str, int] = {}
        corpus_ids: list[list[int]] = []
        for joined in texts:
            tokens = joined.split(_SEP) if joined else []
            corpus_ids.append([vocab.setdefault(t, len(vocab)) for t in tokens])
        if not vocab:
            raise DataError("the indexed columns of courses hold no searchable word")
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index((corpus_ids, vocab), create_empty_token=False, show_progress=progress)
        params = {"k1": float(k1), "b": float(b), "method": "lucene", "fields": used}
        df = np.diff(np.asarray(retriever.scores["indptr"]))
        aids = TypingAids.build(
            courses.reset_index(drop=True),
            vocab,
            df,
            _title_words,
            searches=searches,
            history=history,
        )
        course_ids = ids.to_numpy()
        if course_ids.dtype.kind not in "iu":
            course_ids = np.array([str(v) for v in course_ids.tolist()], dtype=object)
        else:
            course_ids = course_ids.astype(np.int64)
        logger.info("indexed %d courses, %d distinct words", len(course_ids), len(vocab))
        return cls(retriever, course_ids, params, aids=aids)

    # ------------------------------------------------------------------ properties
    @property
    def n_docs(self) -> int:
        """Number of indexed courses."""
        return int(self.course_ids.shape[0])

    @property
    def vocabulary_size(self) -> int:
        """Number of distinct indexed words."""
        return len(self._vocab)

    def __repr__(self) -> str:
        return f"SearchIndex({self.n_docs} courses, {self.vocabulary_size} words)"

    # ------------------------------------------------------------------ queries
    def parse(self, query: object, *, max_chars: int = MAX_QUERY_CHARS) -> Query:
        """Segment a query into index words.

        Parameters
        ----------
        query
            The text typed by the member.
        max_chars
            Longer queries are cut to this many characters; a note says so.

        Returns
        -------
        Query
            ``empty`` when no word of the query is in the index (e.g. only stop words);
            ``notes`` explain it.

        Raises
        ------
        DataError
            ``query`` is not a string, or is empty or only whitespace.
        """
        if not isinstance(query, str):
            raise DataError(f"query must be a string, got {type(query).__name__}: {query!r}")
        typed = query.strip()
        if not typed:
            raise DataError(f"query is empty ({query!r}); expected some words to search for")
        notes: list[Message] = []
        if len(typed) > max_chars:
            notes.append(member_notes.truncated(max_chars, len(typed)))
            logger.info("query of %d characters truncated to %d", len(typed), max_chars)
            typed = typed[:max_chars]
        if self.aids is not None:
            return self._kept_reading(self.aids, typed, notes)
        text = normalize(typed)
        freq = get_tokenizer().FREQ
        words = words_of(text)
        tokens: list[str] = []
        unknown: list[str] = []
        for word in words:
            if word in self._vocab:
                tokens.append(word)
                continue
            parts = [p for p in _subwords(word, freq) if p in self._vocab]
            if parts:
                tokens.extend(parts)
            else:
                unknown.append(word)
        if not words:
            notes.append(member_notes.nothing_to_search())
        elif not tokens:
            notes.append(member_notes.no_course_has(unknown))
        elif unknown:
            notes.append(member_notes.some_words_unknown(unknown))
        # A word typed twice counts twice, as BM25 sums over query terms.
        ids = np.array([self._vocab[t] for t in tokens], dtype=np.int32)
        return Query(text, tuple(words), tuple(tokens), ids, tuple(notes), typed=typed)

    def _kept_reading(self, aids: TypingAids, typed: str, notes: list[Message]) -> Query:
        """:meth:`_read` of what was typed, kept per index: members type the same queries
        again and again, and an index is read-only once built, so a reading never
        changes. Each call gets its own arrays."""
        key = (typed, tuple(notes))
        found = self._readings.get(key)
        if found is None:
            text = normalize(typed)
            found = self._read(aids, typed, text, words_of(text), notes)
            with self._readings_lock:
                if len(self._readings) >= _READINGS_MAX:
                    self._readings.pop(next(iter(self._readings)), None)
                self._readings[key] = found
        return Query(
            found.text,
            found.words,
            found.tokens,
            found.token_ids.copy(),
            found.notes,
            found.typed,
            None if found.weights is None else found.weights.copy(),
            found.searched_as,
            found.prefix_docs.copy(),
        )

    def _read(
        self, aids: TypingAids, typed: str, text: str, words: list[str], notes: list[Message]
    ) -> Query:
        """``parse`` with the typing aids: pinyin, initials, typos, title prefixes, related
        words."""
        vocab = self._vocab
        # The index knows every word as typed, and none is a lone character among others
        # (a typo's pieces) nor one being typed: the aids would read the query as it is
        # (no prefix lift: the last word is complete), so they are skipped.
        if (
            words
            and all(w in vocab for w in words)
            and (len(words) == 1 or not any(len(w) == 1 and has_han(w) for w in words))
        ):
            ids = np.array([vocab[w] for w in words], dtype=np.int32)
            return Query(text, tuple(words), tuple(words), ids, tuple(notes), typed=typed)
        return self._read_aided(aids, typed, text, words, notes)

    def _read_aided(
        self, aids: TypingAids, typed: str, text: str, words: list[str], notes: list[Message]
    ) -> Query:
        """:meth:`_read` through every typing aid (what the short cut must equal)."""
        freq = get_tokenizer().FREQ

        def known_subwords(word: str) -> list[str]:
            return [p for p in _subwords(word, freq) if p in self._vocab]

        got = read_words(text, words, self._vocab, aids, known_subwords)
        searched_as = None
        if got.changed:
            searched_as = got.searched_as(text)
            notes.append(member_notes.searched_as(searched_as))
        if got.initials:
            notes.append(member_notes.read_as_initials(got.initials))
        if got.unknown:
            unknown = list(got.unknown)
            used = add_related(got, text, self._vocab, aids.related, words_of)
            if used:
                notes.append(member_notes.related_instead(unknown, used))
        if not words:
            notes.append(member_notes.nothing_to_search())
        elif not got.tokens and got.prefix_docs.size == 0:
            notes.append(member_notes.no_course_has(got.unknown))
        elif got.unknown:
            notes.append(member_notes.some_words_unknown(got.unknown))
        ids = np.array(got.ids, dtype=np.int32)
        weights = np.array(got.weights, dtype=np.float32)
        return Query(
            text,
            tuple(words),
            tuple(got.tokens),
            ids,
            tuple(notes),
            typed=typed,
            weights=None if bool((weights == 1.0).all()) else weights,
            searched_as=searched_as,
            prefix_docs=got.prefix_docs,
        )

    def scores(self, query: Query) -> np.ndarray:
        """BM25 score of every course for ``query``, (n_docs,) float32 (a new array).

        Tokens read through pinyin or typos count with their weight; courses whose title
        starts with what was typed (``query.prefix_docs``) get the best score on top."""
        if query.empty:
            return np.zeros(self.n_docs, dtype=np.float32)
        if query.weights is None:
            out = np.asarray(self._bm25.get_scores_from_ids(query.token_ids), dtype=np.float32)
        else:
            out = np.zeros(self.n_docs, dtype=np.float32)
            for weight in np.unique(query.weights).tolist():
                ids = query.token_ids[query.weights == weight]
                part = np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)
                out += np.float32(weight) * part
        if query.prefix_docs.size:
            top = float(out.max()) if out.size else 0.0
            out[query.prefix_docs] += top if top > 0 else 1.0
        return out

    def top(
        self, query: Query, k: int, *, allow: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best matching courses: (doc indices int64, BM25 scores float32).

        Only courses with a positive score (at least one query word) are returned, best
        first, ties by index order. ``allow`` is an optional (n_docs,) bool mask.
        """
        if query.empty or k < 1:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores = self.scores(query)
        if allow is not None:
            np.multiply(scores, allow, out=scores)
        cand = np.flatnonzero(scores > 0)
        values = scores[cand]
        if cand.size > k:
            keep = np.argpartition(-values, k - 1)[:k]
            cand, values = cand[keep], values[keep]
        order = np.lexsort((cand, -values))
        return cand[order].astype(np.int64), values[order]

    def matched_words(self, query: Query, docs: np.ndarray) -> list[list[str]]:
        """For each doc, the query words it contains (in query order, no repeats)."""
        docs = np.asarray(docs, dtype=np.int64)
        out: list[list[str]] = [[] for _ in range(docs.size)]
        seen: set[int] = set()
        for token, tid in zip(query.tokens, query.token_ids.tolist(), strict=True):
            if tid in seen:
                continue
            seen.add(tid)
            postings = self._indices[self._indptr[tid] : self._indptr[tid + 1]]
            pos = np.searchsorted(postings, docs)
            hit = (pos < postings.size) & (postings[np.minimum(pos, postings.size - 1)] == docs)
            for i in np.flatnonzero(hit).tolist():
                out[i].append(token)
        return out

    def with_weights(self, weights: BlendWeights | None) -> SearchIndex:
        """The same index carrying other blend weights (shares the arrays)."""
        return SearchIndex(self._bm25, self.course_ids, self.params, weights, self.aids)

    def with_aids(self, aids: TypingAids | None) -> SearchIndex:
        """The same index with other typing aids (``None``: plain BM25 words, as a format-1
        index searches); shares the arrays."""
        return SearchIndex(self._bm25, self.course_ids, self.params, self.weights, aids)

    # ------------------------------------------------------------------ saving
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> dict[str, Any]:
        """Write the index as a directory, atomically.

        This makes an index a part of a model artifact (``recommend.artifact.ArtifactPart``):
        ``recommend.save(model, path, search_index=index)`` saves it in
        ``path/search_index/``.

        Returns
        -------
        dict
            ``sha256`` and ``bytes`` of the written ``search_index.json`` (which holds the
            checksums of every other file), to reference the index from a model artifact.

        Raises
        ------
        ArtifactError
            ``path`` exists (without ``overwrite``), is not a search index, or cannot be
            written.
        """
        target = Path(path)
        store.check_replaceable(target, overwrite=overwrite, marker=MANIFEST, what="search index")
        try:
            with store.staged_dir(target, overwrite=overwrite) as tmp:
                self._bm25.save(str(tmp), corpus=None, allow_pickle=False)
                ids = self.course_ids
                ids_arr = ids.astype(np.int64) if ids.dtype.kind in "iu" else ids.astype(str)
                np.save(tmp / COURSE_IDS, ids_arr, allow_pickle=False)
                if self.aids is not None:
                    self.aids.save(tmp)
                files = {file.name: store.file_entry(file) for file in sorted(tmp.iterdir())}
                store.write_json(tmp / MANIFEST, self._manifest(files), allow_nan=False)
                entry = store.file_entry(tmp / MANIFEST)
        except ArtifactError:
            raise
        except OSError as exc:
            raise ArtifactError(
                f"could not write the search index {target}: {one_line(exc)}"
            ) from exc
        logger.info("saved search index of %d courses to %s", self.n_docs, target)
        return dict(entry)

    def _manifest(self, files: Mapping[str, store.FileEntry]) -> dict[str, Any]:
        """Content of ``search_index.json`` for an index whose files are ``files``."""

        kind = self.course_ids.dtype.kind
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "library_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "n_docs": self.n_docs,
            "vocabulary": self.vocabulary_size,
            "course_id_kind": "int" if kind in "iu" else "str",
            "params": self.params,
            "weights": None if self.weights is None else self.weights.to_dict(),
            "typing_aids": self.aids is not None,
            "files": dict(files),
        }

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, expect: Mapping[str, Any] | None = None
    ) -> SearchIndex:
        """Read an index written by :meth:`save`, checking every file first.

        Parameters
        ----------
        path
            The index directory.
        expect
            ``sha256``/``bytes`` of ``search_index.json`` as recorded by a model artifact:
            the index must be the one saved with that model.

        Raises
        ------
        ArtifactError
            Missing or unreadable manifest, newer format, a file missing, truncated or
            failing its checksum, or an index that is not the expected one.
        """
        root = Path(path)
        manifest = root / MANIFEST
        if not manifest.is_file():
            raise ArtifactError(f"no search index at {root}: {MANIFEST} is missing")
        if expect is not None and store.sha256(manifest) != expect.get("sha256"):
            raise ArtifactError(
                f"{manifest} differs from the one recorded in the model artifact: the "
                "search index was replaced or modified after the model was saved"
            )
        meta = store.read_json(manifest)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ArtifactError(f"{manifest} does not describe a search index")
        version = meta.get("format_version")
        if type(version) is not int or version < 1:
            raise ArtifactError(f"{manifest}: invalid format_version {version!r}")
        if version > FORMAT_VERSION:
            raise ArtifactError(
                f"{root} has search index format {version}, newer than {FORMAT_VERSION} that "
                "this library reads; upgrade recommend to load it"
            )
        files = meta.get("files")
        if not isinstance(files, dict):
            raise ArtifactError(f"{manifest} lists no valid files (hand-edited?)")
        # Only files the manifest lists (and so checksums) are ever read.
        unlisted = sorted(set(_INDEX_FILES) - set(files))
        if unlisted:
            raise ArtifactError(f"{manifest} does not list {unlisted}, which an index needs")
        store.verify_files(root, files, listing=MANIFEST, required=COURSE_IDS)
        try:
            index = _read_index(cls, root, meta)
        except ArtifactError:
            raise
        except (
            ValueError,
            TypeError,
            LookupError,
            AttributeError,
            ImportError,
            OverflowError,
            RecursionError,
            OSError,
        ) as exc:
            raise ArtifactError(
                f"{root} is malformed: {type(exc).__name__}: {one_line(exc)} (hand-edited?)"
            ) from exc
        logger.info("loaded search index of %d courses from %s", index.n_docs, root)
        return index


# What SearchIndex.load reads besides the manifest: bm25s's files and the course ids.
_PARAMS_FILE = "params.index.json"
_VOCAB_FILE = "vocab.index.json"
_SCORES_FILES = {
    "data": "data.csc.index.npy",
    "indices": "indices.csc.index.npy",
    "indptr": "indptr.csc.index.npy",
}
_INDEX_FILES = (_PARAMS_FILE, _VOCAB_FILE, *_SCORES_FILES.values(), COURSE_IDS)
# bm25s settings an index may hold, and their allowed values (None: any finite number);
# the BM25 variants that need a non-occurrence array (bm25l, bm25+) are never written.
_BM25_SETTINGS: Mapping[str, tuple[Any, ...] | None] = {
    "k1": None,
    "b": None,
    "delta": None,
    "method": ("lucene", "robertson", "atire"),
    "idf_method": ("lucene", "robertson", "atire", None),
    "dtype": ("float32", "float64"),
    "int_dtype": ("int32", "int64"),
}


def _read_index(cls: type[SearchIndex], root: Path, meta: Mapping[str, Any]) -> SearchIndex:
    """Rebuild an index from its verified files, checking that they fit together.

    bm25s's own loader would pass any setting in its parameter file to its constructor
    (an unknown backend imports a module); this reads the settings it knows, the
    vocabulary and the score matrix, and checks every size and index range.
    """
    bm25s = _bm25s()

    def fail(what: str) -> ArtifactError:
        return ArtifactError(f"{root}: {what} (hand-edited or forged index)")

    settings = store.read_json(root / _PARAMS_FILE)
    if not isinstance(settings, dict):
        raise fail(f"{_PARAMS_FILE} is not a JSON object")
    kwargs: dict[str, Any] = {}
    for key, allowed in _BM25_SETTINGS.items():
        value = settings.get(key)
        if allowed is not None:
            ok = value in allowed
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            ok = ok and math.isfinite(cast("float", value))
        if not ok:
            raise fail(f"{_PARAMS_FILE}: invalid {key}={value!r}")
        kwargs[key] = value
    vocab = store.read_json(root / _VOCAB_FILE)
    ids = list(vocab.values()) if isinstance(vocab, dict) else None
    n_words = len(vocab) if isinstance(vocab, dict) else -1
    if ids is None or not all(type(i) is int for i in ids) or sorted(ids) != list(range(n_words)):
        raise fail(f"{_VOCAB_FILE} does not map words to the ids 0 .. n-1")
    if n_words != meta.get("vocabulary"):
        raise fail(f"{_VOCAB_FILE} holds {n_words} words, {MANIFEST} says {meta.get('vocabulary')}")
    scores = {key: read_npy(root / name) for key, name in _SCORES_FILES.items()}
    course_ids = read_npy(root / COURSE_IDS)
    n_docs = meta.get("n_docs")
    if course_ids.ndim != 1 or course_ids.dtype.kind not in "iuU" or len(course_ids) != n_docs:
        raise fail(f"{COURSE_IDS} does not match n_docs in {MANIFEST}")
    if settings.get("num_docs") != n_docs:
        raise fail(f"{_PARAMS_FILE} says num_docs={settings.get('num_docs')!r}, not {n_docs}")
    _check_scores(scores, n_words, n_docs, kwargs["dtype"], fail)
    retriever = bm25s.BM25(**kwargs, backend="numpy")
    retriever.vocab_dict = vocab
    retriever.unique_token_ids_set = set(ids)
    retriever.scores = {**scores, "num_docs": n_docs}
    retriever.nonoccurrence_array = None
    params, weights = meta.get("params", {}), meta.get("weights")
    if not isinstance(params, dict) or not isinstance(weights, dict | None):
        raise fail(f"{MANIFEST}: params must be an object and weights an object or null")
    # Format 1 has no typing aids: it searches as it always did.
    aids = TypingAids.load(root) if meta.get("typing_aids") is True else None
    return cls(
        retriever,
        course_ids.astype(np.int64) if course_ids.dtype.kind in "iu" else course_ids.astype(object),
        params,
        None if weights is None else BlendWeights.from_dict(weights),
        aids,
    )


def _check_scores(
    scores: Mapping[str, np.ndarray],
    n_words: int,
    n_docs: int,
    dtype: str,
    fail: Callable[[str], ArtifactError],
) -> None:
    """The (n_docs, n_words) CSC score matrix: sizes, index ranges and finite scores."""
    data, indices, indptr = scores["data"], scores["indices"], scores["indptr"]
    shapes_ok = data.ndim == indices.ndim == indptr.ndim == 1 and len(indptr) == n_words + 1
    kinds_ok = (
        data.dtype == np.dtype(dtype) and indices.dtype.kind in "iu" and indptr.dtype.kind in "iu"
    )
    if not (shapes_ok and kinds_ok) or len(data) != len(indices):
        raise fail("the score arrays do not match each other or the vocabulary")
    if indptr[0] != 0 or indptr[-1] != len(data) or (np.diff(indptr) < 0).any():
        raise fail("the score matrix's column pointers are out of order or range")
    if len(indices) and (indices.min() < 0 or indices.max() >= n_docs):
        raise fail("the score matrix refers to documents beyond n_docs")
    if not np.isfinite(data).all():
        raise fail("the score matrix holds non-finite scores")


def build_index(
    source: Any,
    *,
    fields: Mapping[str, int] | None = None,
    k1: float = 1.2,
    b: float = 0.75,
    n_jobs: int | None = None,
    progress: bool = False,
    searches: pd.DataFrame | None = None,
) -> SearchIndex:
    """A search index over a fitted model's courses table, or over a courses DataFrame.

    Parameters
    ----------
    source
        A fitted ``Recommender`` (its ``dataset_.courses``; its learning history weights
        title suggestions and relates tags by co-study) or a courses DataFrame.
    fields, k1, b, n_jobs, progress
        As in :meth:`SearchIndex.build`.
    searches
        A search log: popular queries as suggestions, click-related queries.

    Raises
    ------
    DataError
        The model was trained without a courses table, or the table cannot be indexed.
    """
    history = None
    if isinstance(source, pd.DataFrame):
        courses = source
    else:
        source.check_fitted()
        dataset = getattr(source, "dataset_", None)
        courses = None if dataset is None else dataset.courses
        if courses is None:
            raise DataError(
                "the model was trained without a courses table: there is no course text to "
                "search; build the index from a courses DataFrame instead"
            )
        history = _history_by_row(source, courses)
    return SearchIndex.build(
        courses,
        fields=fields,
        k1=k1,
        b=b,
        n_jobs=n_jobs,
        progress=progress,
        searches=searches,
        history=history,
    )


def _history_by_row(model: Any, courses: pd.DataFrame) -> Any:
    """The model's learning matrix with its columns in the order of ``courses``' rows
    (courses unknown to the model: empty columns)."""
    import scipy.sparse as sp

    idx = model.course_ids_.to_index(courses[C.COURSE].to_numpy(), unknown="mask")
    idx = np.asarray(idx, dtype=np.int64)
    base = sp.csr_matrix(model.history_.base)
    known = np.flatnonzero(idx >= 0)
    pick = sp.csr_matrix(
        (np.ones(known.size, np.float32), (idx[known], known)),
        shape=(base.shape[1], len(courses)),
    )
    return (base @ pick).tocsr()


def _title_words(text: str) -> list[str]:
    """Words of a normalised title, punctuation and spaces included (for its pinyin)."""
    return [w for w in _cutter()(text) if w.strip()]
