"""Data layer: schema validation, id maps, datasets, weighting, splits, simulator, loaders."""

from recommend.data.dataset import Dataset, Features
from recommend.data.idmap import IdMap
from recommend.data.splits import (
    ColdCourseSplit,
    LeaveLastOut,
    RandomHoldout,
    Split,
    Splitter,
    TimeSplit,
)
from recommend.data.validation import check_references, check_table, validate
from recommend.data.weighting import Weighting

__all__ = [
    "ColdCourseSplit",
    "Dataset",
    "Features",
    "IdMap",
    "LeaveLastOut",
    "RandomHoldout",
    "Split",
    "Splitter",
    "TimeSplit",
    "Weighting",
    "check_references",
    "check_table",
    "validate",
]
