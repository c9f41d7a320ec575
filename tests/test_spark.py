"""Tests of recommend.spark in Spark local mode: same matrix, comparable ALS, same batch rows.

One SparkSession (local[2], few shuffle partitions, no UI) and the shared small simulated
platform serve the whole module, so the Spark start-up is paid once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# pyspark comes with the dev extra that the test run installs: a missing pyspark fails here.
from pyspark.sql import SparkSession

import recommend as rc
from recommend.batch import BATCH_COLUMNS, run_batch
from recommend.cli import main
from recommend.data.dataset import COURSE_IDX, MEMBER_IDX
from recommend.data.idmap import IdMap
from recommend.errors import ConfigError, DataError
from recommend.evaluation import evaluate
from recommend.spark import (
    SparkALS,
    SparkUnavailableError,
    interactions,
    read_events,
    require_pyspark,
    spark_batch,
    spark_session,
)
from recommend.spark.data import collect_ids, dense_index

# PySpark's own pandas conversions warn under pandas 3; what they produce is checked here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
    pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
    pytest.mark.filterwarnings("ignore:Series.values returning an ndarray"),
]

ALS_PARAMS = dict(n_factors=16, regularization=0.05, alpha=1.0, iterations=8, random_state=0)


@pytest.fixture(scope="module")
def spark():  # type: ignore[no-untyped-def]
    session = spark_session(
        "local[2]",
        app_name="recommend-tests",
        shuffle_partitions=2,
        conf={"spark.ui.enabled": "false", "spark.default.parallelism": "2"},
    )
    yield session
    session.stop()


@pytest.fixture(scope="module")
def platform(small_platform: rc.Platform) -> rc.Platform:
    """The shared small platform (conftest)."""
    return small_platform


@pytest.fixture(scope="module")
def events_dir(platform: rc.Platform, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The events as Parquet partitioned by month, as a platform's event log is stored."""
    root = tmp_path_factory.mktemp("events") / "events"
    frame = platform.events.assign(month=platform.events["timestamp"].dt.strftime("%Y-%m"))
    frame.to_parquet(root, partition_cols=["month"], coerce_timestamps="us")
    return root


@pytest.fixture(scope="module")
def split(platform: rc.Platform) -> tuple[rc.Dataset, rc.Dataset]:
    ds = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    return ds.split(rc.TimeSplit(test_fraction=0.2))


@pytest.fixture(scope="module")
def spark_model(spark, platform, split) -> SparkALS:  # type: ignore[no-untyped-def]
    """SparkALS fitted on the training events, with the training set's id maps."""
    train, _ = split
    events = spark.createDataFrame(train.events.drop(columns=[MEMBER_IDX, COURSE_IDX]))
    data = interactions(
        events,
        courses=platform.courses,
        members=platform.members,
        orgs=platform.orgs,
        member_ids=train.member_ids,
        course_ids=train.course_ids,
    )
    return SparkALS(**ALS_PARAMS).fit(data)


@pytest.fixture(scope="module")
def artifact(spark_model: SparkALS, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(spark_model.save(tmp_path_factory.mktemp("models") / "spark-als"))


# --------------------------------------------------------------------------- the matrix


def _completed_pairs(ds: rc.Dataset) -> pd.DataFrame:
    ev = ds.events
    done = ev.loc[ev["event"] == "complete", [MEMBER_IDX, COURSE_IDX, "timestamp"]]
    done = done.groupby([MEMBER_IDX, COURSE_IDX], as_index=False)["timestamp"].max()
    return done.sort_values([MEMBER_IDX, COURSE_IDX]).reset_index(drop=True)


@pytest.mark.parametrize(
    "weighting",
    [rc.Weighting(), rc.Weighting(scaling="log", log_alpha=2.0, half_life_days=30.0)],
    ids=["default", "log-decay30"],
)
def test_matrix_equals_dataset_from_partitioned_parquet(
    spark, platform, events_dir, weighting
) -> None:  # type: ignore[no-untyped-def]
    expected = rc.Dataset.from_frames(
        platform.events,
        courses=platform.courses,
        members=platform.members,
        orgs=platform.orgs,
        weighting=weighting,
    )
    data = interactions(
        read_events(spark, str(events_dir)),
        courses=platform.courses,
        members=platform.members,
        orgs=platform.orgs,
        weighting=weighting,
    )
    assert data.member_ids == expected.member_ids
    assert data.course_ids == expected.course_ids
    assert data.now == expected.now
    got, want = data.to_csr(), expected.interactions
    assert got.shape == want.shape and got.dtype == np.float32
    # Same cells; values equal up to the order float32 confidences are added in.
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6)
    assert data.report.events_in == data.report.events_out == len(platform.events)

    view = data.to_dataset()
    pairs = view.events[[MEMBER_IDX, COURSE_IDX, "timestamp"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(pairs, _completed_pairs(expected), check_dtype=False)
    assert view.members is not None and list(view.members.columns) == ["member_id", "org_id"]


# Ids whose sort order is easy to get wrong: numeric-looking strings ("10" < "9"), leading
# zeros and signs, case, spaces, the empty string, Latin-1, CJK, astral-plane emoji and
# U+FFFF (Python orders str by code point, Spark by UTF-8 bytes: the same order).
TRICKY = [
    "10",
    "9",
    "010",
    "0",
    "-1",
    "+1",
    "1e3",
    "a",
    "A",
    "Z",
    "aa",
    "a ",
    " a",
    "",
    "é",
    "e\u0301",
    "ß",
    "Ä",
    "中文",
    "中",
    "😀",
    "\uffff",
    "\u00a0",
    "m-2",
    "m-10",
]


def _tricky_strings(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    alphabet = np.array(["a", "B", "0", "9", "1", " ", "-", "é", "中", "😀", "\uffff"])
    lengths = rng.integers(0, 5, size=n)
    return TRICKY + ["".join(rng.choice(alphabet, size=k)) for k in lengths]


@pytest.mark.parametrize("kind", ["string", "integer"])
def test_dense_index_orders_ids_as_idmap_from_values(spark, kind) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(5)
    if kind == "string":
        ids = pd.Series(_tricky_strings(5, 1500), dtype=object)
    else:
        ids = pd.Series(rng.integers(-(10**15), 10**15, size=1500), dtype=np.int64)
    # Every id at least twice, shuffled over several input partitions.
    values = pd.concat([ids, ids.sample(frac=1.0, random_state=1)], ignore_index=True)
    frame = spark.createDataFrame(pd.DataFrame({"member_id": values})).repartition(5)
    table, n = dense_index(frame, "member_id", "member_idx", partitions=4)
    want = IdMap.from_values(values)
    assert n == len(want)
    rows = table.toPandas()
    assert sorted(rows["member_idx"].tolist()) == list(range(n))
    np.testing.assert_array_equal(
        rows["member_idx"].to_numpy(), want.to_index(rows["member_id"].to_numpy())
    )
    assert collect_ids(table, "member_idx", n) == want


def test_tricky_ids_index_like_dataset_from_frames(spark, platform) -> None:  # type: ignore[no-untyped-def]
    """Events with tricky member and course ids: same maps and same matrix."""
    events = platform.events.head(3000).copy()
    members = pd.unique(events["member_id"])
    courses = pd.unique(events["course_id"])
    names = _tricky_strings(11, 4 * (members.size + courses.size))
    # Unique, first-seen order; validation refuses empty ids.
    names = [name for name in dict.fromkeys(names) if name.strip()]
    assert len(names) >= members.size + courses.size
    events["member_id"] = events["member_id"].map(dict(zip(members, names, strict=False)))
    events["course_id"] = events["course_id"].map(
        dict(zip(courses, names[members.size :], strict=False))
    )
    expected = rc.Dataset.from_frames(events)
    data = interactions(spark.createDataFrame(events).repartition(3))
    assert data.member_ids == expected.member_ids
    assert data.course_ids == expected.course_ids
    got, want = data.to_csr(), expected.interactions
    np.testing.assert_array_equal(got.indptr, want.indptr)
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-6)


def test_index_tables_are_built_on_executors(
    spark, platform, events_dir, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """From Parquet events and a Spark members table, no table leaves the driver for the
    executors (``createDataFrame`` is refused) and the member ids are never collected."""
    members_path = tmp_path / "members.parquet"
    platform.members[["member_id", "org_id"]].to_parquet(members_path)
    members = spark.read.parquet(str(members_path))
    events = read_events(spark, str(events_dir))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a driver-side table was shipped to Spark")

    with monkeypatch.context() as patch:
        patch.setattr(SparkSession, "createDataFrame", refuse)
        data = interactions(events, members=members)
        n_cells = data.frame.count()
    assert "member_ids" not in data._cache
    for frame in (data.frame, data.member_index, data.course_index):
        plan = frame._jdf.queryExecution().toString()
        assert "LocalRelation" not in plan and "LocalTableScan" not in plan
    expected = rc.Dataset.from_frames(platform.events, members=platform.members)
    assert data.n_members == len(expected.member_ids) and n_cells == expected.interactions.nnz
    assert data.member_ids == expected.member_ids  # collected here, for the export
    assert data.course_ids == expected.course_ids
    np.testing.assert_array_equal(data.to_csr().indices, expected.interactions.indices)
    pd.testing.assert_frame_equal(
        data.members.reset_index(drop=True),
        expected.members[["member_id", "org_id"]].reset_index(drop=True),
        check_dtype=False,
    )


def test_unknown_ids_raise_or_are_dropped_and_counted(spark, platform) -> None:  # type: ignore[no-untyped-def]
    events = platform.events.copy()
    events.loc[[3, 7, 11], "course_id"] = "no-such-course"
    frame = spark.createDataFrame(events)
    with pytest.raises(DataError, match=r"3 event\(s\) of 1 unknown course_id.*no-such-course"):
        interactions(frame, courses=platform.courses)
    data = interactions(frame, courses=platform.courses, on_unknown="drop")
    expected = rc.Dataset.from_frames(events, courses=platform.courses, on_unknown="drop")
    assert data.report == expected.report
    assert data.report.dropped == 3 and data.report.unknown_courses == 1
    np.testing.assert_array_equal(data.to_csr().indices, expected.interactions.indices)


def test_future_dated_events_follow_the_dataset_rule(spark, platform) -> None:  # type: ignore[no-untyped-def]
    events = platform.events.copy()
    events.loc[[4, 9], "timestamp"] = pd.Timestamp("2100-01-01")
    frame = spark.createDataFrame(events)
    with pytest.raises(DataError, match=r"events\.timestamp: events dated after the data's own"):
        interactions(frame, courses=platform.courses)
    data = interactions(frame, courses=platform.courses, on_future="drop")
    expected = rc.Dataset.from_frames(events, courses=platform.courses, on_future="drop")
    assert data.now == expected.now < pd.Timestamp("2100-01-01")
    assert data.report == expected.report and data.report.future_events == 2
    np.testing.assert_array_equal(data.to_csr().indices, expected.interactions.indices)
    np.testing.assert_allclose(data.to_csr().data, expected.interactions.data, rtol=1e-5)


def test_bad_events_are_refused_with_the_column_named(spark, platform) -> None:  # type: ignore[no-untyped-def]
    events = platform.events.head(200).copy()
    bad_type = events.copy()
    bad_type.loc[5, "event"] = "teleport"
    with pytest.raises(DataError, match="teleport"):
        interactions(spark.createDataFrame(bad_type))
    with pytest.raises(DataError, match=r"missing required column.*timestamp"):
        interactions(spark.createDataFrame(events.drop(columns=["timestamp"])))
    with pytest.raises(DataError, match="personal columns"):
        interactions(spark.createDataFrame(events.assign(phone="13800000000")))
    with pytest.raises(ConfigError, match="bm25"):
        interactions(spark.createDataFrame(events), weighting=rc.Weighting(scaling="bm25"))


def test_nanosecond_parquet_gets_a_clear_error(spark, platform, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "events.parquet"
    platform.events.head(50).to_parquet(path)  # pandas writes nanoseconds
    with pytest.raises(DataError, match="coerce_timestamps='us'"):
        read_events(spark, str(path))


# --------------------------------------------------------------------------- ALS


def test_spark_als_ranks_as_well_as_implicit_als(spark_model, split) -> None:  # type: ignore[no-untyped-def]
    """Different solvers: compare ranking quality on held-out events, not factors."""
    train, test = split
    options = dict(ks=(10,), segments=False, n_boot=0)
    spark_ndcg = evaluate(spark_model.model_, train, test, fit=False, **options).metrics["ndcg@10"]
    local_ndcg = evaluate(rc.ALS(**ALS_PARAMS), train, test, **options).metrics["ndcg@10"]
    popular_ndcg = evaluate(rc.Popularity(), train, test, **options).metrics["ndcg@10"]
    # Stated tolerance: within 15% of implicit's NDCG@10, and far above popularity.
    assert abs(spark_ndcg - local_ndcg) <= 0.15 * local_ndcg, (spark_ndcg, local_ndcg)
    assert spark_ndcg > 2 * popular_ndcg, (spark_ndcg, popular_ndcg)


def test_export_loads_as_a_standard_als_artifact(spark_model, artifact, split) -> None:  # type: ignore[no-untyped-def]
    train, _ = split
    loaded = rc.load(artifact)
    assert type(loaded) is rc.ALS
    assert loaded.get_params()["n_factors"] == ALS_PARAMS["n_factors"]
    assert loaded.member_ids_ == train.member_ids and loaded.course_ids_ == train.course_ids
    np.testing.assert_array_equal(loaded.member_factors_, spark_model.model_.member_factors_)
    # Serving state survives: the training matrix (seen courses), and members' branches.
    np.testing.assert_allclose(
        loaded.history_.base.toarray(), train.interactions.toarray(), rtol=1e-6
    )
    members = train.member_ids.external_ids[:5].tolist()
    menu = loaded.recommend(members, n=5)
    pd.testing.assert_frame_equal(menu, spark_model.model_.recommend(members, n=5))
    # Fold-in works on the exported model like on any ALS (a member with training events).
    member = train.events["member_id"].iloc[0]
    loaded.update(member, train.events.loc[train.events["member_id"] == member].head(3))
    assert np.isfinite(loaded.member_vectors(loaded.member_ids_.to_index([member]))).all()


# --------------------------------------------------------------------------- batch


@pytest.mark.parametrize(
    "options",
    [{}, {"exclude": "completed", "max_minutes": 20, "max_pins": 1}],
    ids=["defaults", "completed-short-onepin"],
)
def test_spark_batch_equals_single_machine_batch(spark, artifact, tmp_path, options) -> None:  # type: ignore[no-untyped-def]
    model = rc.load(artifact)
    known = model.member_ids_.external_ids
    # Members with a history, members without one, and a member the model never saw.
    members = [*known[::2].tolist(), "m-unknown-1"]
    single = run_batch(
        artifact, tmp_path / "single", n=8, members=members, progress=False, **options
    )
    result = spark_batch(
        spark, artifact, tmp_path / "spark", n=8, members=members, partitions=3, **options
    )
    assert result.model_version == single.model_version
    assert result.rows == single.rows and result.routes == single.routes
    assert 0 < result.personal_members < result.members == len(members)

    def table(path: Path) -> pd.DataFrame:
        frame = pd.read_parquet(path)
        return frame.sort_values(["member_id", "rank"]).reset_index(drop=True)

    want, got = table(tmp_path / "single"), table(tmp_path / "spark")
    assert list(got.columns) == list(BATCH_COLUMNS)
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    assert got["generated_at"].nunique() == 1
    pd.testing.assert_frame_equal(
        got.drop(columns="generated_at"), want.drop(columns="generated_at")
    )


def test_spark_batch_refuses_other_models_and_existing_output(
    spark, artifact, split, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    train, _ = split
    with pytest.raises(ConfigError, match="factor models"):
        spark_batch(spark, rc.EASE().fit(train), tmp_path / "ease")
    out = tmp_path / "menus"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not batch output"):
        spark_batch(spark, artifact, out, overwrite=True)
    # Names that only start like Spark's own files are someone else's too: never replaced.
    for name in ("part-time-rota.xlsx", ".tmp-draft.txt", "_notes"):
        other = tmp_path / f"menus-{name}"
        other.mkdir()
        (other / name).write_text("mine")
        with pytest.raises(ConfigError, match="not batch output"):
            spark_batch(spark, artifact, other, overwrite=True)
        assert (other / name).read_text() == "mine"


# --------------------------------------------------------------------------- CLI, import


def test_cli_spark_train_then_batch(spark, platform, events_dir, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    courses = tmp_path / "courses.parquet"
    platform.courses.to_parquet(courses, coerce_timestamps="us")
    model_dir, out = tmp_path / "model", tmp_path / "menus"
    common = ["--master", "local[2]"]
    train_args = ["--events", str(events_dir), "--courses", str(courses), "--out"]
    train_args += [str(model_dir), "--factors", "8", "--iterations", "3", *common]
    assert main(["spark", "train", *train_args]) == 0
    assert "trained ALS on Spark" in capsys.readouterr().out
    model = rc.load(model_dir)
    assert type(model) is rc.ALS and model.member_factors_.shape[1] == 8
    batch_args = ["--model", str(model_dir), "--out", str(out), *common]
    assert main(["spark", "batch", *batch_args, "--n", "4"]) == 0
    menus = pd.read_parquet(out)
    assert list(menus.columns) == list(BATCH_COLUMNS)
    assert menus["member_id"].nunique() == len(model.member_ids_)
    assert (menus.groupby("member_id").size() == 4).all()
    # A second run into the same folder is refused without --overwrite.
    assert main(["spark", "batch", *batch_args]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_missing_pyspark_gives_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyspark", None)  # makes `import pyspark` fail
    with pytest.raises(SparkUnavailableError, match=r"pip install 'recommend\[spark\]'") as err:
        require_pyspark()
    assert isinstance(err.value, ImportError) and isinstance(err.value, ConfigError)


@pytest.mark.parametrize("blocks", [0, -1, True, 2.5, "4"])
def test_spark_als_refuses_bad_blocks(blocks: object) -> None:
    with pytest.raises(ConfigError, match=r"blocks=.*positive integer or None"):
        SparkALS(blocks=blocks)  # type: ignore[arg-type]
    assert SparkALS(blocks=None).blocks is None and SparkALS(blocks=4).blocks == 4


def test_spark_batch_writes_the_captured_rows(spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The Spark batch job serves what it served before the engine change (see
    ``tests/test_equivalence.py``)."""
    import sys

    golden = Path(__file__).resolve().parent / "golden"
    sys.path.insert(0, str(golden))
    import cases

    model = rc.load(golden / "models" / "als")
    want = pd.read_parquet(golden / "outputs" / "als_spark_batch.parquet")
    cases.compare(cases.spark_batch(spark, model, tmp_path), want, "spark batch")
