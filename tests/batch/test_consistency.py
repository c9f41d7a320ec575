"""The batch job reads one version of the model, and checks what it is given before any
file is written: table names, the SQL target, member ids written as validation reads them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommend.batch import run_batch
from recommend.batch.chunks import ChunkWriter
from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.models import ALS


@pytest.fixture(scope="module")
def als(dataset: Dataset) -> ALS:
    return ALS(n_factors=8, iterations=2, random_state=0).fit(dataset)


def _read(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_an_update_landing_mid_job_leaves_the_job_on_its_version(
    dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ALS(n_factors=8, iterations=2, random_state=0).fit(dataset)  # updated here
    members = model.member_ids_.external_ids
    # The last chunk's first member completes its top course while chunk 0 is ranked.
    target = str(members[-50])
    before = _read(run_batch(model, tmp_path / "before", n=5, chunk_size=100, progress=False).path)
    course = before.loc[before["member_id"] == target, "course_id"].iloc[0]
    done = pd.DataFrame(
        {
            "member_id": [target],
            "course_id": [course],
            "event": ["complete"],
            "timestamp": [dataset.now],
        }
    )
    rank = ChunkWriter.rank
    landed = threading.Event()

    def rank_then_update(self: ChunkWriter, ids: np.ndarray, idx: np.ndarray | None = None):  # type: ignore[no-untyped-def]
        got = rank(self, ids, idx)
        if not landed.is_set():
            writer = threading.Thread(target=model.update, args=(target, done))
            writer.start()
            writer.join()
            landed.set()
        return got

    monkeypatch.setattr(ChunkWriter, "rank", rank_then_update)
    during = _read(run_batch(model, tmp_path / "during", n=5, chunk_size=100, progress=False).path)
    assert landed.is_set() and model.snapshot().version > 0
    pd.testing.assert_frame_equal(
        during.drop(columns="generated_at"), before.drop(columns="generated_at")
    )
    monkeypatch.setattr(ChunkWriter, "rank", rank)
    after = _read(run_batch(model, tmp_path / "after", n=5, chunk_size=100, progress=False).path)
    assert course not in set(after.loc[after["member_id"] == target, "course_id"])


@pytest.mark.parametrize("table", ["", "  ", " menus", "a\nb", "x" * 129, 7])
def test_bad_table_names_are_refused_before_any_file(
    als: ALS, tmp_path: Path, table: object
) -> None:
    url = f"sqlite:///{tmp_path / 'menus.db'}"
    with pytest.raises(ConfigError, match=r"table=.*expected a SQL table name"):
        run_batch(als, tmp_path / "out", sql=url, table=table, progress=False)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_a_sql_target_that_fails_is_a_config_error_without_the_url(
    als: ALS, tmp_path: Path
) -> None:
    (tmp_path / "db").mkdir()  # a folder where the database file should be
    url = f"sqlite:///{tmp_path / 'db'}"
    with pytest.raises(ConfigError, match=r"SQL table 'menus': OperationalError") as err:
        run_batch(als, tmp_path / "out", n=3, sql=url, table="menus", progress=False)
    assert "\n" not in str(err.value) and "sqlite:///" not in str(err.value)


def test_member_ids_are_read_as_validation_reads_them(als: ALS, tmp_path: Path) -> None:
    known = [str(m) for m in als.member_ids_.external_ids[:3]]
    written = [f" {known[0]} ", known[1].replace("m", "ｍ"), f"{known[2]}\u200b", known[0]]
    got = _read(run_batch(als, tmp_path / "out", n=3, members=written, progress=False).path)
    assert got["member_id"].drop_duplicates().tolist() == known
    assert set(got["route"]) != {"cold_global"}  # known members, not cold ones
