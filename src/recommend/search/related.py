"""Related words for queries that match no course, mined from the data.

Three sources, merged (``RelatedWords.build``):

- **click logs**: two queries are related when members who typed them clicked the same
  courses (cosine of their click vectors); a query also points to the channel most of its
  clicks fall in;
- **course co-study**: two tags are related when the members who study courses with one
  also study courses with the other (cosine of the tags' learner vectors);
- **the shipped dictionary** ``resources/related_terms.txt`` (``word<TAB>related words
  separated by spaces<TAB>channel``), for words no course or log has yet.

Saved with the search index as ``related.json``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend import store
from recommend.errors import ArtifactError
from recommend.schema import Columns
from recommend.text import normalize

__all__ = ["RELATED_FILE", "RelatedWords", "dictionary"]

C = Columns
RELATED_FILE = "related.json"
#: Related entries kept per word or query, most related first.
_KEEP = 5
#: Least cosine for two queries (or tags) to count as related.
_MIN_COSINE = 0.2
#: A query must have been typed by this many distinct members to be mined: suggestions and
#: notes show queries to other members, so a rare one could say who typed it.
MIN_MEMBERS = 5


def dictionary() -> tuple[dict[str, list[str]], dict[str, str]]:
    """The shipped related-words dictionary: word -> related words, word -> channel."""
    text = resources.files("recommend.resources").joinpath("related_terms.txt").read_text("utf-8")
    related: dict[str, list[str]] = {}
    channels: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        word = normalize(parts[0])
        related[word] = [normalize(w) for w in parts[1].split()] if len(parts) > 1 else []
        if len(parts) > 2 and parts[2].strip():
            channels[word] = parts[2].strip()
    return related, channels


class RelatedWords:
    """Query or word -> related words, and the channel a query points to (read-only)."""

    def __init__(self, related: Mapping[str, Sequence[str]], channels: Mapping[str, str]) -> None:
        self.related = {k: list(v) for k, v in related.items()}
        self.channels = dict(channels)

    def __len__(self) -> int:
        return len(self.related)

    def lookup(self, text: str, words: Iterable[str]) -> list[str]:
        """Related words of a normalised query: those of the whole query first, then of
        each of its words (no repeats, not the query's own words)."""
        own = {text, *words}
        out: list[str] = []
        for key in (text, *words):
            for related in self.related.get(key, ()):
                if related not in own and related not in out:
                    out.append(related)
        return out

    def channel(self, text: str, words: Iterable[str]) -> str | None:
        """The channel a normalised query points to, if any source says."""
        for key in (text, *words):
            found = self.channels.get(key)
            if found is not None:
                return found
        return None

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        courses: pd.DataFrame,
        *,
        searches: pd.DataFrame | None = None,
        history: sp.csr_matrix | None = None,
    ) -> RelatedWords:
        """Mine related words.

        Parameters
        ----------
        courses
            The indexed courses (row ``i`` is document ``i``): ``course_id``, optional
            ``category`` and ``tags``.
        searches
            A search log (``member_id, query, clicked``), optional.
        history
            (n_members, n_courses) learning matrix whose columns follow ``courses``' rows
            (co-study), optional.
        """
        related, channels = dictionary()
        category = courses[C.CATEGORY].to_numpy(dtype=object) if C.CATEGORY in courses else None
        if searches is not None and len(searches):
            _from_clicks(courses, searches, category, related, channels)
        if history is not None and C.TAGS in courses.columns:
            _from_costudy(courses, history, category, related, channels)
        return cls(related, channels)

    # ------------------------------------------------------------------ files
    def save(self, folder: Path) -> None:
        store.write_json(
            folder / RELATED_FILE, {"related": self.related, "channels": self.channels}
        )

    @classmethod
    def load(cls, folder: Path) -> RelatedWords:
        data: Any = store.read_json(folder / RELATED_FILE)
        if not isinstance(data, dict) or not isinstance(data.get("related"), dict):
            raise ArtifactError(f"{folder / RELATED_FILE} does not hold related words")
        return cls(data["related"], data.get("channels") or {})


def _add(related: dict[str, list[str]], key: str, values: Iterable[str]) -> None:
    found = related.setdefault(key, [])
    for value in values:
        if value != key and value not in found and len(found) < 2 * _KEEP:
            found.append(value)


def _cosine_neighbours(matrix: sp.csr_matrix, min_count: float) -> list[list[int]]:
    """For each row, the rows with cosine >= ``_MIN_COSINE`` (and a co-count of at least
    ``min_count``), most similar first, at most ``_KEEP``."""
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    co = (matrix @ matrix.T).tocsr()
    out: list[list[int]] = []
    for row in range(matrix.shape[0]):
        lo, hi = co.indptr[row], co.indptr[row + 1]
        cols, vals = co.indices[lo:hi], co.data[lo:hi]
        keep = (cols != row) & (vals >= min_count)
        cols, vals = cols[keep], vals[keep]
        if cols.size == 0 or norms[row] == 0:
            out.append([])
            continue
        cos = vals / (norms[row] * norms[cols])
        good = cos >= _MIN_COSINE
        cols, cos = cols[good], cos[good]
        order = np.lexsort((cols, -cos))[:_KEEP]
        out.append(cols[order].tolist())
    return out


def _majority(category: np.ndarray | None, docs: np.ndarray, weights: np.ndarray) -> str | None:
    if category is None or docs.size == 0:
        return None
    labels = pd.Series(weights, index=category[docs]).groupby(level=0).sum()
    labels = labels[labels.index.notna()]
    if labels.empty or labels.max() < 0.5 * labels.sum():
        return None
    return str(labels.sort_values(ascending=False, kind="stable").index[0])


def _from_clicks(
    courses: pd.DataFrame,
    searches: pd.DataFrame,
    category: np.ndarray | None,
    related: dict[str, list[str]],
    channels: dict[str, str],
) -> None:
    """Queries related by their clicked courses; the channel each query's clicks point to."""
    doc_of = pd.Index(courses[C.COURSE])
    frame = searches[[C.MEMBER, "query", "clicked"]].copy()
    frame["query"] = [normalize(str(q)) for q in frame["query"].tolist()]
    members = frame.groupby("query")[C.MEMBER].nunique()
    kept = members[members >= MIN_MEMBERS].index
    frame = frame[frame["query"].isin(kept)].explode("clicked").dropna(subset=["clicked"])
    if frame.empty:
        return
    docs = doc_of.get_indexer(frame["clicked"].to_numpy())
    frame = frame[docs >= 0].assign(doc=docs[docs >= 0])
    q_code, q_names = pd.factorize(frame["query"], sort=True)
    matrix = sp.csr_matrix(
        (np.ones(q_code.size, np.float32), (q_code, frame["doc"].to_numpy())),
        shape=(q_names.size, len(courses)),
    )
    matrix.sum_duplicates()
    for row, near in enumerate(_cosine_neighbours(matrix, 1.0)):
        _add(related, str(q_names[row]), (str(q_names[j]) for j in near))
        lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
        found = _majority(category, matrix.indices[lo:hi], matrix.data[lo:hi])
        if found is not None:
            channels.setdefault(str(q_names[row]), found)


def _from_costudy(
    courses: pd.DataFrame,
    history: sp.csr_matrix,
    category: np.ndarray | None,
    related: dict[str, list[str]],
    channels: dict[str, str],
) -> None:
    """Tags related by the members who study them; the channel each tag's courses are in."""
    tags = courses[C.TAGS].reset_index(drop=True)
    tags = tags.map(lambda v: v.split("|") if isinstance(v, str) else v).explode().dropna()
    if tags.empty:
        return
    names = [normalize(str(t)) for t in tags.tolist()]
    t_code, t_names = pd.factorize(pd.Series(names), sort=True)
    course_tag = sp.csr_matrix(
        (np.ones(t_code.size, np.float32), (tags.index.to_numpy(), t_code)),
        shape=(len(courses), t_names.size),
    )
    course_tag.data[:] = 1.0
    learners = (history.astype(bool).astype(np.float32) @ course_tag).T.tocsr()
    learners.data = np.log1p(learners.data)
    for row, near in enumerate(_cosine_neighbours(learners, 0.0)):
        _add(related, str(t_names[row]), (str(t_names[j]) for j in near))
        docs = course_tag[:, row].nonzero()[0]
        found = _majority(category, docs, np.ones(docs.size))
        if found is not None:
            channels.setdefault(str(t_names[row]), found)
