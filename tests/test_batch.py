"""Tests of the batch job (recommend.batch): same menus as member_menu, files, resume, SQL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from helpers import RandomFactors, make_branches_dataset

from recommend import batch as batch_module
from recommend.artifact import save
from recommend.batch import BATCH_COLUMNS, MANIFEST, run_batch
from recommend.cli import main
from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.menu import MENU_COLUMNS, member_menu
from recommend.models import ALS, EASE
from recommend.schema import CHANNELS

MENU = list(MENU_COLUMNS)


@pytest.fixture(scope="module")
def dataset(branches_dataset: Dataset) -> Dataset:
    """The shared branch data (600 members, 120 courses; see ``helpers``)."""
    return branches_dataset


@pytest.fixture(scope="module")
def model(random_factors: RandomFactors) -> RandomFactors:
    """The shared ``RandomFactors`` fitted on it (never updated)."""
    return random_factors


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
    # Pins, cold routes and a full menu each: the comparison covered every path.
    assert {"personal", "cold_segment"} <= set(got["route"]) or options.get("exclude") == "none"
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
    (vectorised through the kernel, in slices of _COLD_CHUNK members) and reused in later
    chunks: still the member menu."""
    if cold_chunk is not None:
        monkeypatch.setattr(batch_module, "_COLD_CHUNK", cold_chunk)
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


def test_csv_format_and_members_file(model: RandomFactors, tmp_path: Path) -> None:
    members = tmp_path / "members.txt"
    members.write_text("m00003\nm00001\nm00003\nnew-9\n", encoding="utf-8")
    result = run_batch(model, tmp_path / "out", n=3, members=members, format="csv", progress=False)
    got = pd.read_csv(result.files[0], keep_default_na=False)
    assert got["member_id"].drop_duplicates().tolist() == ["m00003", "m00001", "new-9"]
    assert result.members == 3 and list(got.columns) == list(BATCH_COLUMNS)


# ------------------------------------------------------------------------- resume and safety


def test_rerun_keeps_finished_chunks_byte_for_byte(model: RandomFactors, tmp_path: Path) -> None:
    first = run_batch(model, tmp_path / "out", n=5, chunk_size=200, progress=False)
    before = {p.name: p.read_bytes() for p in first.files}
    again = run_batch(model, tmp_path / "out", n=5, chunk_size=200, progress=False)
    assert again.resumed_chunks == 3
    assert {p.name: p.read_bytes() for p in again.files} == before


def test_resume_after_a_stop_gives_the_uninterrupted_output(
    model: RandomFactors, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    full = run_batch(model, out, n=5, chunk_size=200, progress=False)
    reference = {p.name: p.read_bytes() for p in full.files}
    # As a job killed while writing chunk 2 leaves it: the manifest knows chunks 0 and 1,
    # chunk 2's file was renamed into place but not recorded, a temporary file is left.
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["chunks"]["2"]
    manifest["complete"] = False
    (out / MANIFEST).write_text(json.dumps(manifest))
    (out / "part-00002.parquet").write_bytes(b"half a file")
    (out / ".tmp-part-00003.parquet").write_bytes(b"junk")
    resumed = run_batch(model, out, n=5, chunk_size=200, progress=False)
    assert resumed.resumed_chunks == 2
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != MANIFEST} == reference


def test_a_failed_write_stops_the_job_cleanly_and_resumes(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are written in a helper thread while the next one is ranked: a write that
    fails stops the job with its error, the manifest names only whole chunks, and a rerun
    completes the output exactly as an uninterrupted run writes it."""
    import recommend.batch as batch

    reference = run_batch(model, tmp_path / "ref", n=5, chunk_size=100, progress=False)
    write_table = batch.pq.write_table
    calls = []

    def flaky(table: object, where: object, **options: object) -> None:
        calls.append(where)
        if len(calls) == 3:
            raise OSError("disk full")
        write_table(table, where, **options)

    out = tmp_path / "out"
    monkeypatch.setattr(batch.pq, "write_table", flaky)
    with pytest.raises(OSError, match="disk full"):
        run_batch(model, out, n=5, chunk_size=100, progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    assert sorted(manifest["chunks"]) == ["0", "1"] and not manifest["complete"]
    assert sorted(p.name for p in out.iterdir()) == [
        MANIFEST,
        "part-00000.parquet",
        "part-00001.parquet",
    ]
    monkeypatch.setattr(batch.pq, "write_table", write_table)
    resumed = run_batch(model, out, n=5, chunk_size=100, progress=False)
    assert resumed.resumed_chunks == 2
    pd.testing.assert_frame_equal(
        _read(out).drop(columns="generated_at"), _read(reference.path).drop(columns="generated_at")
    )


def test_damaged_finished_chunk_is_written_again(model: RandomFactors, tmp_path: Path) -> None:
    out = tmp_path / "out"
    full = run_batch(model, out, n=5, chunk_size=300, progress=False)
    good = full.files[0].read_bytes()
    full.files[0].write_bytes(good[:-10])
    again = run_batch(model, out, n=5, chunk_size=300, progress=False)
    assert again.resumed_chunks == 1 and full.files[0].read_bytes() == good


@pytest.mark.parametrize(
    "change", [{"n": 6}, {"members": ["m00001"]}, {"model_version": "other"}, {"chunk_size": 99}]
)
def test_other_arguments_refuse_to_mix(model: RandomFactors, tmp_path: Path, change: dict) -> None:
    args = {"n": 5, "chunk_size": 200, "progress": False}
    run_batch(model, tmp_path / "out", **args)
    with pytest.raises(ConfigError, match="other arguments"):
        run_batch(model, tmp_path / "out", **{**args, **change})
    result = run_batch(model, tmp_path / "out", **{**args, **change}, overwrite=True)
    assert result.resumed_chunks == 0
    assert sorted(p.name for p in result.path.iterdir()) == sorted(
        [MANIFEST, *(p.name for p in result.files)]
    )


def test_refuses_a_folder_with_other_files(model: RandomFactors, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not batch output"):
        run_batch(model, tmp_path, progress=False)
    assert (tmp_path / "notes.txt").exists()


def test_bad_options(model: RandomFactors, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="chunk_size"):
        run_batch(model, tmp_path / "a", chunk_size=0, progress=False)
    with pytest.raises(ConfigError, match="sql and table"):
        run_batch(model, tmp_path / "a", sql="sqlite://", progress=False)
    with pytest.raises(ConfigError, match="channel"):
        run_batch(model, tmp_path / "a", channel="nope", progress=False)
    with pytest.raises(ConfigError, match="unknown model URI scheme 's3'"):
        run_batch("s3://bucket/model", tmp_path / "a", progress=False)
    assert not (tmp_path / "a").exists()


# ------------------------------------------------------------------------- SQL


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


# ------------------------------------------------------------------------- command line


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Own, larger data: the CLI tests expect 6,000 members (20 chunks to kill a run between).
    ds = make_branches_dataset(6000, 300, seed=1)
    out = tmp_path_factory.mktemp("model") / "als"
    save(ALS(n_factors=8, iterations=2).fit(ds), out)
    return out


def test_cli_batch_and_models_uri(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "menus"
    assert main(["batch", "--model", str(artifact), "--out", str(out), "--n", "3", "--quiet"]) == 0
    assert "wrote menus of 6,000 members" in capsys.readouterr().out
    assert _read(out)["member_id"].nunique() == 6000
    # A registry with no such model: a clear error naming the URI, no output.
    store = f"sqlite:///{tmp_path / 'registry.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", store)
        code = main(["batch", "--model", "models:/menus@champion", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "models:/menus@champion: cannot fetch the model" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_killed_mid_run_resumes_to_the_same_output(artifact: Path, tmp_path: Path) -> None:
    def command(out: Path) -> list[str]:
        # Reasons take the per-member path: slow enough to be killed between chunks.
        return [
            sys.executable,
            "-m",
            "recommend.cli",
            "batch",
            "--model",
            str(artifact),
            "--out",
            str(out),
            "--n",
            "5",
            "--chunk-size",
            "300",
            "--with-reasons",
            "--quiet",
        ]

    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.Popen(command(out), env=env)
    deadline = time.monotonic() + 120
    chunks = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            chunks = len(json.loads((out / MANIFEST).read_text())["chunks"])
        except (OSError, ValueError, KeyError):
            chunks = 0
        if chunks >= 1:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    manifest = json.loads((out / MANIFEST).read_text())
    assert not manifest["complete"], "the job finished before it could be killed"
    kept = set(manifest["chunks"])

    subprocess.run(command(out), env=env, check=True)
    subprocess.run(command(tmp_path / "whole"), env=env, check=True)
    resumed, whole = _read(out), _read(tmp_path / "whole")
    assert resumed["generated_at"].nunique() == 1
    cols = [c for c in BATCH_COLUMNS if c != "generated_at"]
    pd.testing.assert_frame_equal(resumed[cols], whole[cols])
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["complete"] and kept <= set(manifest["chunks"])
    assert len(manifest["chunks"]) == 20
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]


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


def test_same_job_with_a_tuple_of_channels_resumes(model: RandomFactors, tmp_path: Path) -> None:
    """Options compare as the manifest stores them: a tuple equals the list JSON gives back."""
    channels = (CHANNELS[0], CHANNELS[1])
    first = run_batch(model, tmp_path / "out", n=3, channel=channels, progress=False)
    again = run_batch(model, tmp_path / "out", n=3, channel=channels, progress=False)
    assert again.resumed_chunks == len(first.files) and again.rows == first.rows


def test_rerun_of_a_damaged_job_is_not_complete_until_done(
    model: RandomFactors, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import recommend.batch as batch_module

    first = run_batch(model, tmp_path / "out", n=3, chunk_size=200, progress=False)
    first.files[1].unlink()

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise OSError("disk full")

    monkeypatch.setattr(batch_module, "_write_chunk", broken)
    with pytest.raises(OSError, match="disk full"):
        run_batch(model, tmp_path / "out", n=3, chunk_size=200, progress=False)
    manifest = json.loads((first.path / MANIFEST).read_text())
    assert manifest["complete"] is False and "1" not in manifest["chunks"]
    monkeypatch.undo()
    again = run_batch(model, tmp_path / "out", n=3, chunk_size=200, progress=False)
    assert json.loads((first.path / MANIFEST).read_text())["complete"] is True
    assert again.resumed_chunks == len(first.files) - 1
