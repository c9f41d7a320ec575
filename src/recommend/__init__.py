"""recommend — course recommendations from party members' learning behaviour.

The public API is what this module exports; everything else may change.
"""

from __future__ import annotations

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
)
from recommend.schema import CHANNELS, Columns

__version__ = "0.1.0"

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
    "LightFM": "recommend.models",
    "member_menu": "recommend.menu",
    "lecturer_menu": "recommend.menu",
    "order_for_group": "recommend.group",
    "evaluate_group_strategies": "recommend.group",
    "evaluate": "recommend.evaluation",
    "compare": "recommend.evaluation",
    "tune": "recommend.tuning",
    "save": "recommend.artifact",
    "load": "recommend.artifact",
    "run_batch": "recommend.batch",
    "BatchResult": "recommend.batch",
}


def __getattr__(name: str) -> object:
    # The simulator is imported on first use: backends never pay for it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'recommend' has no attribute {name!r}")


__all__ = [
    "ALS",
    "BPR",
    "CHANNELS",
    "EASE",
    "ArtifactError",
    "BatchResult",
    "ColdCourseSplit",
    "Columns",
    "ConfigError",
    "DataError",
    "Dataset",
    "Features",
    "IdMap",
    "ItemKNN",
    "LeaveLastOut",
    "LightFM",
    "NotFittedError",
    "Platform",
    "Popularity",
    "Problem",
    "RandomHoldout",
    "RecommendError",
    "Recommender",
    "Split",
    "Splitter",
    "TimeSplit",
    "Weighting",
    "__version__",
    "check_references",
    "compare",
    "evaluate",
    "evaluate_group_strategies",
    "lecturer_menu",
    "load",
    "make_model",
    "member_menu",
    "order_for_group",
    "read_platform",
    "run_batch",
    "save",
    "synthesize",
    "tune",
    "validate",
]
