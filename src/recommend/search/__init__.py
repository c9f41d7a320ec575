"""Red search: BM25 retrieval over course text, ranked for the member.

- :mod:`recommend.search.index`: the embedded BM25 retriever (``SearchIndex``).
- :mod:`recommend.search.rank`: ``search`` and ``rank_candidates``, the personalised blend.
- :mod:`recommend.search.blend`: learning the blend weights from search logs
  (``fit_blend``) and evaluating rankings on them (``evaluate_search``).
- :mod:`recommend.search.suggest`: ``suggest``, completions as members type.
- :mod:`recommend.search.typing_aids`: how members type (pinyin, initials, typos,
  title prefixes, related words), built and saved with the index.
"""

from __future__ import annotations

from recommend.search.blend import BlendFit, evaluate_search, fit_blend, standard_methods
from recommend.search.index import MAX_QUERY_CHARS, Query, SearchIndex, build_index
from recommend.search.rank import (
    SEARCH_COLUMNS,
    attach_index,
    attached_index,
    rank_candidates,
    search,
)
from recommend.search.suggest import SUGGEST_COLUMNS, suggest
from recommend.search.weights import FEATURES, PREFERENCE_ONLY, TEXT_ONLY, BlendWeights

__all__ = [
    "FEATURES",
    "MAX_QUERY_CHARS",
    "PREFERENCE_ONLY",
    "SEARCH_COLUMNS",
    "SUGGEST_COLUMNS",
    "TEXT_ONLY",
    "BlendFit",
    "BlendWeights",
    "Query",
    "SearchIndex",
    "attach_index",
    "attached_index",
    "build_index",
    "evaluate_search",
    "fit_blend",
    "rank_candidates",
    "search",
    "standard_methods",
    "suggest",
]
