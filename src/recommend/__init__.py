"""recommend — course recommendations from party members' learning behaviour.

The public API is what this module exports; everything else may change. Red search lives
in the ``recommend.search`` subpackage (``from recommend.search import search``).
"""

from __future__ import annotations

# Imported for its side effect too: it installs the member menu that
# ``Recommender.recommend`` answers with.
import recommend.menu  # noqa: F401
from recommend.data import (
    ColdCourseSplit,
    Dataset,
    Features,
    IdMap,
    LeaveLastOut,
    RandomHoldout,
    Split,
    Splitter,
    TimeSplit,
    Weighting,
    check_references,
    validate,
)
from recommend.errors import (
    ArtifactError,
    ConfigError,
    DataError,
    NotFittedError,
    Problem,
    RecommendError,
    TrackingError,
)
from recommend.messages import load_messages, message_keys, reset_messages, set_messages
from recommend.schema import CHANNELS, Columns
from recommend.version import __version__

_LAZY = {
    "Platform": "recommend.data.synthetic",
    "read_platform": "recommend.data.synthetic",
    "synthesize": "recommend.data.synthetic",
    "Recommender": "recommend.models",
    "make_model": "recommend.models",
    "Popularity": "recommend.models",
    "ALS": "recommend.models",
    "BPR": "recommend.models",
    "ItemKNN": "recommend.models",
    "EASE": "recommend.models",
    "RP3beta": "recommend.models",
    "EDLAE": "recommend.models",
    "Fusion": "recommend.models",
    "LightFM": "recommend.models",
    "ingest": "recommend.models.ingest",
    "ingest_arrays": "recommend.models.ingest",
    "IngestResult": "recommend.models.ingest",
    "warm_refit": "recommend.models.warm",
    "member_menu": "recommend.menu",
    "lecturer_menu": "recommend.menu",
    "compulsory_courses": "recommend.menu",
    "experiment_menu": "recommend.menu",
    "MENU_COLUMNS": "recommend.menu",
    "Experiment": "recommend.engine",
    "analyse_experiment": "recommend.insights",
    "similar_courses": "recommend.similar",
    "order_for_group": "recommend.group",
    "evaluate_group_strategies": "recommend.group",
    "evaluate": "recommend.evaluation",
    "compare": "recommend.evaluation",
    "tune": "recommend.tuning",
    "save": "recommend.artifact",
    "load": "recommend.artifact",
    "run_batch": "recommend.batch",
    "BatchResult": "recommend.batch",
    "rank_candidates": "recommend.search",
    "build_index": "recommend.search",
    "SearchIndex": "recommend.search",
    "BlendWeights": "recommend.search",
    "fit_blend": "recommend.search",
    "evaluate_search": "recommend.search",
    "suggest": "recommend.search",
    "search_terms": "recommend.insights",
    "segment_portrait": "recommend.insights",
    "branch_portrait": "recommend.insights",
    "course_portrait": "recommend.insights",
    "predicted_demand": "recommend.insights",
    "content_gaps": "recommend.insights",
    "build_report": "recommend.insights",
    "read_table": "recommend.data.loaders",
    "read_member_ids": "recommend.data.loaders",
    "read_lines": "recommend.data.loaders",
    "read_movielens": "recommend.data.loaders",
    "read_mooccubex_courses": "recommend.data.loaders",
    "read_mooccubex_members": "recommend.data.loaders",
    "load_mooccubex": "recommend.data.loaders",
    "suggest_mapping": "recommend.data.mapping",
}


def __getattr__(name: str) -> object:
    # The simulator is imported on first use: backends never pay for it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recommend' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazily loaded names too: tab completion offers EASE, member_menu...
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "ALS",
    "BPR",
    "CHANNELS",
    "EASE",
    "EDLAE",
    "ArtifactError",
    "BatchResult",
    "BlendWeights",
    "ColdCourseSplit",
    "Columns",
    "ConfigError",
    "DataError",
    "Dataset",
    "Features",
    "Fusion",
    "IdMap",
    "IngestResult",
    "ItemKNN",
    "LeaveLastOut",
    "LightFM",
    "NotFittedError",
    "Platform",
    "Popularity",
    "Problem",
    "RP3beta",
    "RandomHoldout",
    "RecommendError",
    "Recommender",
    "SearchIndex",
    "Split",
    "Splitter",
    "TimeSplit",
    "TrackingError",
    "Weighting",
    "__version__",
    "analyse_experiment",
    "branch_portrait",
    "build_index",
    "build_report",
    "check_references",
    "compare",
    "compulsory_courses",
    "content_gaps",
    "course_portrait",
    "evaluate",
    "evaluate_group_strategies",
    "evaluate_search",
    "experiment_menu",
    "fit_blend",
    "ingest",
    "ingest_arrays",
    "lecturer_menu",
    "load",
    "load_messages",
    "load_mooccubex",
    "make_model",
    "member_menu",
    "message_keys",
    "order_for_group",
    "predicted_demand",
    "rank_candidates",
    "read_lines",
    "read_member_ids",
    "read_mooccubex_courses",
    "read_mooccubex_members",
    "read_movielens",
    "read_platform",
    "read_table",
    "reset_messages",
    "run_batch",
    "save",
    "search_terms",
    "segment_portrait",
    "set_messages",
    "similar_courses",
    "suggest",
    "suggest_mapping",
    "synthesize",
    "tune",
    "validate",
    "warm_refit",
]
