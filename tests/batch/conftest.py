"""Fixtures of the batch job's tests: the shared branch data and factor model, and a saved
ALS artifact for the command line."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import RandomFactors, make_branches_dataset

from recommend.artifact import save
from recommend.data.dataset import Dataset
from recommend.models import ALS


@pytest.fixture(scope="session")
def dataset(branches_dataset: Dataset) -> Dataset:
    """The shared branch data (600 members, 120 courses; see ``helpers``)."""
    return branches_dataset


@pytest.fixture(scope="session")
def model(random_factors: RandomFactors) -> RandomFactors:
    """The shared ``RandomFactors`` fitted on it (never updated)."""
    return random_factors


@pytest.fixture(scope="session")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved ALS on its own, larger data: the command-line tests expect 6,000 members (20
    chunks to kill a run between)."""
    ds = make_branches_dataset(6000, 300, seed=1)
    out = tmp_path_factory.mktemp("model") / "als"
    save(ALS(n_factors=8, iterations=2).fit(ds), out)
    return out
