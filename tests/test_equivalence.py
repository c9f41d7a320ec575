"""Every product serves the same rows as before the serving rules moved into the engine.

The reference rows (``tests/golden/outputs``) were captured by ``tests/golden/capture.py``
from artifacts saved by the library before that change (``tests/golden/models``), so this
also shows that such artifacts still load and serve identically. They were captured again
for two intended changes: reasons in Simplified Chinese by default (the message catalogue)
and menus that pin at most two compulsory courses by default; the ``english_all_pins``
menu case (``lang="en"``, ``max_pins=None``) serves exactly the rows captured before them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

import recommend as rc

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import cases  # noqa: E402

PRODUCTS = ("menus", "lecturers", "groups", "search")


@pytest.fixture(scope="module", params=cases.MODELS)
def loaded(request: pytest.FixtureRequest) -> tuple[str, rc.Recommender]:
    return request.param, rc.load(GOLDEN / "models" / request.param)


def _want(name: str) -> pd.DataFrame:
    return pd.read_parquet(GOLDEN / "outputs" / f"{name}.parquet")


@pytest.mark.parametrize("product", PRODUCTS)
def test_products_serve_the_captured_rows(loaded: tuple[str, rc.Recommender], product: str) -> None:
    name, model = loaded
    got = getattr(
        cases,
        {"menus": "menus", "lecturers": "lecturers", "groups": "groups", "search": "searches"}[
            product
        ],
    )(model)
    cases.compare(got.reset_index(drop=True), _want(f"{name}_{product}"), f"{name} {product}")


def test_batch_job_writes_the_captured_rows(
    loaded: tuple[str, rc.Recommender], tmp_path: Path
) -> None:
    name, model = loaded
    cases.compare(cases.batch(model, tmp_path), _want(f"{name}_batch"), f"{name} batch")
