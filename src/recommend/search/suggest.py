"""Suggestions as members type: ``suggest(model, member_id, prefix, n)``.

Completions come from the index's ``Completions`` (course titles, domain terms and tags,
popular queries), matched on what was typed as Chinese (normalised: 黨 finds 党), as a
pinyin prefix (``dangs``) or as initials (``sh``). The best-used candidates of the prefix
are re-ranked for the member: half how much an entry is used, half how much the member is
predicted to like the course it leads to (the member menu's routes; a member unknown to the
model gets the cold-start route). A lookup is two binary searches per key form plus a
small GEMV, whatever the catalogue size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recommend.checks import positive_int
from recommend.engine import MenuOptions
from recommend.errors import ArtifactError, DataError
from recommend.search.completions import FORMS, KINDS, typed_key
from recommend.search.index import SearchIndex
from recommend.search.rank import attached_index, minmax, preference_of, search_request
from recommend.text import has_han

if TYPE_CHECKING:
    from recommend.models.base import Recommender

__all__ = ["SUGGEST_COLUMNS", "suggest"]

#: Columns of a suggestion list, in order.
SUGGEST_COLUMNS = ("text", "kind", "course_id", "score", "rank")
#: Candidates per key form re-ranked for the member, per suggestion asked for.
_POOL = 4
_MAX_PREFIX = 64


def suggest(
    model: Recommender,
    member_id: Any,
    prefix: str,
    n: int = 8,
    *,
    index: SearchIndex | None = None,
    member_attributes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Completions of what a member is typing, best first.

    Parameters
    ----------
    model
        A fitted (or loaded) ``Recommender``.
    member_id
        One external member id (unknown members get the cold-start route).
    prefix
        What has been typed so far: Chinese (simplified or traditional), full pinyin
        (``dangshi``) or initials (``shbx``); case and full-width letters do not matter.
    n
        Suggestions to return (fewer when fewer entries match).
    index
        The ``SearchIndex``; by default the one attached to the model.
    member_attributes
        As in ``member_menu``.

    Returns
    -------
    pandas.DataFrame
        ``text`` (what to show: a title, a term, a popular query), ``kind`` (``title``,
        ``term`` or ``query``), ``course_id`` (the course it leads to; ``None`` for none),
        ``score`` (float32), ``rank`` (int32, 1..). Empty when nothing completes the
        prefix.

    Raises
    ------
    DataError
        ``prefix`` is not a string, or is empty or only whitespace.
    ArtifactError
        The index was saved without completions (format 1): rebuild it.
    """
    k = positive_int(n, "n")
    if not isinstance(prefix, str):
        raise DataError(f"prefix must be a string, got {type(prefix).__name__}: {prefix!r}")
    if not prefix.strip():
        raise DataError(f"prefix is empty ({prefix!r}); expected the first characters typed")
    index = index if index is not None else attached_index(model)
    if index.aids is None:
        raise ArtifactError(
            "the search index has no completions (saved in format 1): rebuild it with "
            "build_index and save the model again"
        )
    options = MenuOptions(
        exclude="none", pin_compulsory=False, continue_learning=False, with_reasons=False
    )
    sstate, req, seen = search_request(model, member_id, member_attributes, options)
    comp = index.aids.completions
    key = typed_key(prefix[:_MAX_PREFIX])
    pool = _POOL * k
    # Chinese is matched as text; letters as text (Latin titles), pinyin or initials.
    forms = ("text",) if has_han(key) else FORMS
    found = [comp.complete(form, key, pool) for form in forms]
    entries = np.unique(np.concatenate(found)) if found else np.empty(0, np.int64)
    if entries.size == 0:
        return _frame([], [], [], np.empty(0, np.float32))
    docs = comp.doc[entries]
    align = sstate.alignment(model, index)
    courses = np.where(docs >= 0, align.doc_course[np.maximum(docs, 0)], -1)
    pref = preference_of(model, sstate, req, courses, seen)
    score = 0.5 * minmax(comp.weight[entries].astype(np.float64)) + 0.5 * minmax(pref)
    order = _first_of_each_text(comp.text, entries, np.lexsort((entries, -score)), k)
    picked = entries[order]
    ids = sstate.menu.course_ext
    course_ids = [None if c < 0 else ids[c] for c in courses[order].tolist()]
    return _frame(
        [comp.text[e] for e in picked.tolist()],
        [KINDS[int(comp.kind[e])] for e in picked.tolist()],
        course_ids,
        score[order].astype(np.float32),
    )


def _first_of_each_text(
    texts: list[str], entries: np.ndarray, order: np.ndarray, k: int
) -> np.ndarray:
    """The first ``k`` positions of ``order`` whose entry text was not seen before (courses
    may share a title; a tag may also be a popular query)."""
    seen: set[str] = set()
    keep: list[int] = []
    for pos in order.tolist():
        text = texts[int(entries[pos])]
        if text not in seen:
            seen.add(text)
            keep.append(pos)
            if len(keep) == k:
                break
    return np.array(keep, dtype=np.int64)


def _frame(text: list[str], kind: list[str], course: list[Any], score: np.ndarray) -> pd.DataFrame:
    def column(values: list[Any]) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    return pd.DataFrame(
        {
            "text": column(text),
            "kind": column(kind),
            "course_id": column(course),
            "score": score,
            "rank": np.arange(1, len(text) + 1, dtype=np.int32),
        },
        copy=False,
    )
