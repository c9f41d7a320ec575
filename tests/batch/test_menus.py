"""The batch job's menus (recommend.batch): the same as member_menu on every path, the
output's schema and layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import RandomFactors

from recommend.batch import BATCH_COLUMNS, MANIFEST, chunks, run_batch
from recommend.batch.folder import LOCK
from recommend.data.dataset import Dataset
from recommend.menu import MENU_COLUMNS, member_menu
from recommend.models import ALS, EASE
from recommend.schema import CHANNELS

MENU = list(MENU_COLUMNS)


def _read(result_path: Path) -> pd.DataFrame:
    return pd.read_parquet(result_path).reset_index(drop=True)


def _same_menus(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    a = got[MENU].reset_index(drop=True)
    b = ref[MENU].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        a.drop(columns=["score"]), b.drop(columns=["score"]), check_dtype=False
    )
    np.testing.assert_allclose(a["score"], b["score"], rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------- the menus


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"exclude": "completed", "max_pins": 1},
        {"channel": CHANNELS[1], "max_minutes": 20},
        {"pin_compulsory": False, "exclude": "none", "only_published": False},
    ],
)
def test_rows_are_the_member_menus(model: RandomFactors, tmp_path: Path, options: dict) -> None:
    ids = ["nobody-2", *model.member_ids_.external_ids.tolist(), "nobody-1"]
    result = run_batch(
        model, tmp_path / "out", n=7, members=ids, chunk_size=150, progress=False, **options
    )
    got = _read(result.path)
    _same_menus(got, member_menu(model, ids, n=7, with_reasons=False, **options))
    assert result.chunks == len(result.files) == 5
    # Pins, cold routes and a full menu each: the comparison covered every path. Known
    # members without history are served by what a saved model keeps of them (their branch):
    # its segment when the validated cold route is by branch, global popularity otherwise.
    assert {"personal", "cold_global"} <= set(got["route"]) or options.get("exclude") == "none"
    assert (got["route"] != "personal").any()
    assert got.loc[got["member_id"] == "nobody-1", "route"].iloc[0] == "cold_global"


@pytest.mark.parametrize(
    ("kind", "cold_chunk"), [("factors", None), ("ease", None), ("factors", 1)]
)
def test_cold_menus_shared_across_chunks_equal_the_member_menus(
    model: RandomFactors,
    dataset: Dataset,
    tmp_path: Path,
    kind: str,
    cold_chunk: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Members without history get the menu of their attribute row, computed once per job
    (vectorised through the kernel, in slices of COLD_CHUNK members) and reused in later
    chunks: still the member menu."""
    if cold_chunk is not None:
        monkeypatch.setattr(chunks, "COLD_CHUNK", cold_chunk)
    fitted = model if kind == "factors" else EASE(l2=50.0).fit(dataset)
    ids = np.random.default_rng(1).permutation(fitted.member_ids_.external_ids)[:400].tolist()
    ids += ["nobody-1", "nobody-2"]
    options = {"exclude": "completed", "max_pins": 2}
    result = run_batch(
        fitted, tmp_path / "out", n=6, members=ids, chunk_size=40, progress=False, **options
    )
    got = _read(result.path)
    _same_menus(got, member_menu(fitted, ids, n=6, with_reasons=False, **options))
    cold = got.drop_duplicates("member_id")["route"].ne("personal")
    assert cold.sum() >= 20  # cold members spread over most chunks


def test_models_without_factors_and_reasons_take_the_menu_path(
    dataset: Dataset, tmp_path: Path
) -> None:
    model = EASE(l2=50.0).fit(dataset)
    result = run_batch(model, tmp_path / "out", n=5, with_reasons=True, progress=False)
    got = _read(result.path)
    _same_menus(got, member_menu(model, model.member_ids_.external_ids, n=5))
    assert got["reason"].str.len().gt(0).all()


def test_output_schema_and_layout(model: RandomFactors, tmp_path: Path) -> None:
    result = run_batch(model, tmp_path / "out", n=4, chunk_size=250, progress=False)
    assert sorted(p.name for p in result.path.iterdir()) == [
        LOCK,
        MANIFEST,
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    got = _read(result.path)
    assert tuple(got.columns) == BATCH_COLUMNS
    assert got["model_version"].nunique() == 1 and got["generated_at"].nunique() == 1
    assert got["member_id"].nunique() == result.members == model.member_ids_.external_ids.size
    assert len(got) == result.rows
    assert sum(result.routes.values()) == result.members
    manifest = json.loads((result.path / MANIFEST).read_text())
    assert manifest["complete"] and manifest["job"]["n"] == 4
    assert [manifest["chunks"][str(i)]["members"] for i in range(3)] == [250, 250, 100]


def test_parquet_statistics_serve_lookups_by_member(model: RandomFactors, tmp_path: Path) -> None:
    """Row-group statistics exist for the columns readers filter on (one member's menu),
    not for course ids and reasons; scores (byte-stream split) read back as written."""
    result = run_batch(model, tmp_path / "out", n=4, chunk_size=250, progress=False)
    meta = pq.ParquetFile(result.files[1]).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    stats = {name: meta.row_group(0).column(i).statistics for i, name in enumerate(names)}
    ids = model.member_ids_.external_ids[250:500]
    assert stats["member_id"].has_min_max
    assert (stats["member_id"].min, stats["member_id"].max) == (min(ids), max(ids))
    assert stats["rank"].has_min_max and (stats["rank"].min, stats["rank"].max) == (1, 4)
    for name in ("course_id", "reason"):
        assert stats[name] is None or not stats[name].has_min_max
    got = _read(result.path)
    ref = member_menu(model, model.member_ids_.external_ids, n=4, with_reasons=False)
    _same_menus(got, ref)
    one = pd.read_parquet(result.path, filters=[("member_id", "==", ids[3])])
    assert one["member_id"].eq(ids[3]).all() and len(one) == 4


@pytest.mark.parametrize("with_courses", [False, True])
def test_catalogue_without_compulsory_courses(tmp_path: Path, with_courses: bool) -> None:
    """No branch has compulsory courses (or there is no courses table): plain menus."""
    rng = np.random.default_rng(0)
    events = pd.DataFrame(
        {
            "member_id": [f"m{i}" for i in rng.integers(0, 300, 5000)],
            "course_id": [f"c{i}" for i in rng.integers(0, 80, 5000)],
            "event": "view",
            "timestamp": pd.Timestamp("2024-01-01"),
        }
    )
    courses = pd.DataFrame(
        {"course_id": [f"c{i}" for i in range(80)], "category": "理论学习", "duration_seconds": 600}
    )
    ds = Dataset.from_frames(events, courses=courses if with_courses else None)
    model = ALS(n_factors=8, iterations=2).fit(ds)
    members = [*ds.member_ids.external_ids[:10].tolist(), "someone-new"]
    result = run_batch(model, tmp_path / "menus", n=5, members=members, progress=False)
    rows = _read(result.path)
    assert result.rows == len(rows) == 5 * len(members)
    assert result.routes.get("personal") == 10 and sum(result.routes.values()) == 11
    first = model.recommend([members[0]], n=5)
    got = rows[rows["member_id"] == members[0]].sort_values("rank")
    assert got["course_id"].tolist() == first["course_id"].tolist()
