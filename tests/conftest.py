"""Shared fixtures: the simulated platforms, the tiny hand-made catalogue, branch data.

Everything here is session-scoped and shared by many test files, so it must never be
modified: a test that needs different data derives a new frame (``assign``, ``copy``) or
builds its own. Each platform and dataset fixture checks at the end of the session that its
tables are what they were when it was built.

``tests/`` is put on ``sys.path`` here so that test modules can ``import helpers``.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from helpers import (  # noqa: E402
    SAMPLE,
    FixedFactors,
    RandomFactors,
    make_branches_dataset,
    make_tiny_dataset,
)

import recommend as rc  # noqa: E402

#: Seed of the shared small platform.
SMALL_SEED = 0


# ---------------------------------------------------------------------------- guard


def _tables(obj: Any) -> dict[str, Any]:
    """The parts of a platform or dataset that tests read and must not change."""
    if isinstance(obj, rc.Dataset):
        x = obj.interactions
        parts: dict[str, Any] = {
            "events": obj.events,
            "courses": obj.courses,
            "members": obj.members,
            "orgs": obj.orgs,
            "interactions": (x.indptr, x.indices, x.data),
        }
        return parts
    return {**obj.tables(), "truth": obj.truth}


def _unchanged(obj: Any) -> Iterator[Any]:
    """Yield ``obj``; afterwards fail if a test changed any of its tables in place."""
    before = pickle.loads(pickle.dumps(_tables(obj)))  # a deep copy, lists in cells too
    yield obj
    after = _tables(obj)
    for name, old in before.items():
        new = after[name]
        if isinstance(old, pd.DataFrame):
            pd.testing.assert_frame_equal(new, old, obj=f"shared {name} table")
        elif isinstance(old, tuple):
            for a, b in zip(new, old, strict=True):
                np.testing.assert_array_equal(a, b, err_msg=f"shared {name} changed")
        else:
            assert new == old, f"shared {name} changed"


def _dataset(platform: rc.Platform) -> rc.Dataset:
    return rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )


# ---------------------------------------------------------------------------- platforms


@pytest.fixture(scope="session")
def small_platform() -> Iterator[rc.Platform]:
    """``synthesize("small", seed=0)``: 300 members, 120 courses, every table."""
    yield from _unchanged(rc.synthesize("small", seed=SMALL_SEED))


@pytest.fixture(scope="session")
def small_dataset(small_platform: rc.Platform) -> Iterator[rc.Dataset]:
    """The small platform's events, courses, members and orgs as a ``Dataset``."""
    yield from _unchanged(_dataset(small_platform))


@pytest.fixture(scope="session")
def sample_platform() -> Iterator[rc.Platform]:
    """The shipped sample platform read from ``data/sample``."""
    yield from _unchanged(rc.read_platform(SAMPLE))


@pytest.fixture(scope="session")
def sample_dataset(sample_platform: rc.Platform) -> Iterator[rc.Dataset]:
    """The sample platform as a ``Dataset`` (with orgs)."""
    yield from _unchanged(_dataset(sample_platform))


# ---------------------------------------------------------------------------- hand-made


@pytest.fixture(scope="session")
def tiny_dataset() -> Iterator[rc.Dataset]:
    """The tiny catalogue of ``helpers`` (16 courses, members m0 .. m4)."""
    yield from _unchanged(make_tiny_dataset())


@pytest.fixture(scope="session")
def tiny_model(tiny_dataset: rc.Dataset) -> FixedFactors:
    """``FixedFactors`` on the tiny catalogue; m3 likes lecturer L3 (c03, c07, c11, c15)
    and c01 a lot: c03 40, c11 39, c15 38, c01 30. Never ``update`` it: fit your own."""
    boost = {"m3": {"c03": 40.0, "c11": 39.0, "c15": 38.0, "c01": 30.0}}
    return FixedFactors(boost).fit(tiny_dataset)


@pytest.fixture(scope="session")
def branches_dataset() -> Iterator[rc.Dataset]:
    """600 members in branches with compulsory courses, 120 courses (``helpers``)."""
    yield from _unchanged(make_branches_dataset(600, 120))


@pytest.fixture(scope="session")
def random_factors(branches_dataset: rc.Dataset) -> RandomFactors:
    """``RandomFactors`` fitted on ``branches_dataset``. Never ``update`` it."""
    return RandomFactors().fit(branches_dataset)
