"""The batch job on Spark: every member's menu, with the same rows as ``recommend.batch``.

Members with a history are partitioned across the cluster; what every partition needs
about courses (factors, the courses table, branch pins, filters) is broadcast once. Each
batch of members rebuilds a small model that holds only those members (their vectors,
history rows, completed courses and branch) next to the broadcast course side, and runs
the single-machine job, ``recommend.batch.run_batch``, on it (the shared top-k kernel,
compulsory pins, filters, exclusions). A member's menu depends only on their own vector
and rows and on the course side, so each batch yields exactly the rows the single-machine
job writes for its members.

Members without a history (or unknown to the model) get cold-start menus, which depend on
platform-wide popularity and on the member's attributes only: ``run_batch`` computes them
on the driver with the whole model (one menu per distinct attribute row), and they are
joined to the output.

Output: a Parquet folder (``part-*.parquet``, Spark's ``_SUCCESS``) with the columns of
``recommend.batch.BATCH_COLUMNS`` and the same types. A local folder is written under a
temporary name and renamed into place; on a distributed file system Spark's output
committer makes the write all-or-nothing (``_SUCCESS`` marks a finished job).

Only factor models (``ALS``, ``BPR``) run here, and without reasons (``with_reasons``
needs whole-platform lookups per member): ``recommend.batch.run_batch`` covers the rest.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from recommend.batch import BATCH_COLUMNS, member_list, object_version, resolve_model, run_batch
from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset
from recommend.data.idmap import IdMap
from recommend.data.validation import ReferenceReport
from recommend.data.weighting import Weighting
from recommend.engine import (
    DEFAULT_MAX_CONTINUE,
    DEFAULT_MAX_PINS,
    Exclude,
    MenuOptions,
    history_rows,
    serving_state,
)
from recommend.errors import ConfigError
from recommend.models.base import History, Recommender
from recommend.models.implicit_models import ALS, BPR
from recommend.schema import Columns
from recommend.spark._compat import require_pyspark
from recommend.spark.data import executor_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["SparkBatchResult", "spark_batch"]

log = logging.getLogger(__name__)
C = Columns

#: Members per partition when ``partitions`` is not given: big enough to amortise the
#: per-partition course-side set-up, small enough to spread over the executors.
MEMBERS_PER_PARTITION = 50_000

_VECTOR, _SEEN, _SEEN_VALUE, _DONE = "vector", "seen", "seen_value", "completed"


@dataclass(frozen=True)
class SparkBatchResult:
    """What a Spark batch job wrote.

    Attributes
    ----------
    path : str
        The output folder.
    members, rows : int
        Members served and rows written.
    routes : dict
        Members per route (``personal``, ``cold_segment``, ...).
    personal_members : int
        Members whose menus were computed on the executors (the rest on the driver).
    partitions : int
        Partitions of the member table.
    seconds : float
        Wall time.
    model_version, generated_at : str
        As written in every row.
    """

    path: str
    members: int
    rows: int
    routes: dict[str, int]
    personal_members: int
    partitions: int
    seconds: float
    model_version: str
    generated_at: str


def spark_batch(
    spark: SparkSession,
    model: Recommender | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    n: int = 20,
    members: Sequence[Any] | np.ndarray | pd.Series | str | os.PathLike[str] | None = None,
    exclude: Exclude = "seen",
    channel: str | Sequence[str] | None = None,
    max_minutes: float | None = None,
    only_published: bool = True,
    now: pd.Timestamp | str | None = None,
    pin_compulsory: bool = True,
    max_pins: int | None = DEFAULT_MAX_PINS,
    continue_learning: bool = True,
    max_continue: int = DEFAULT_MAX_CONTINUE,
    model_version: str | None = None,
    partitions: int | None = None,
    overwrite: bool = False,
) -> SparkBatchResult:
    """Write every member's menu to ``out`` as Parquet, computed on Spark.

    Parameters
    ----------
    spark
        The session (``recommend.spark.spark_session``).
    model
        A fitted ``ALS`` or ``BPR``, or an artifact directory holding one.
    out
        Output folder (local path, or a URI Spark can write such as ``hdfs://``/``s3a://``).
    n, members, exclude, channel, max_minutes, only_published, now, pin_compulsory, max_pins,
    continue_learning, max_continue
        As in ``recommend.batch.run_batch``.
    model_version
        Written in every row; derived from the model as ``run_batch`` does when ``None``.
    partitions
        Partitions of the member table (default: one per ``MEMBERS_PER_PARTITION``
        members, at least Spark's default parallelism).
    overwrite
        Replace an existing output folder (only one this job type wrote).

    Returns
    -------
    SparkBatchResult

    Raises
    ------
    ConfigError
        Not a factor model, an invalid option, or ``out`` exists (without ``overwrite``)
        or is not a batch output folder.
    ArtifactError
        The artifact directory is missing or damaged.
    """
    require_pyspark()
    start = time.perf_counter()
    if isinstance(model, Recommender):
        version = model_version or object_version(model)
    else:
        model, resolved = resolve_model(model)
        version = model_version or resolved
    model.check_fitted()
    if not isinstance(model, ALS | BPR):
        raise ConfigError(
            f"the Spark batch job scores factor models (ALS, BPR); {type(model).__name__} "
            "is not one: use recommend.run_batch (recommend batch) for it"
        )
    # Validated once, on the driver (the catalogue's checks too), before any job runs.
    checked = MenuOptions(
        n=n,
        exclude=exclude,
        channel=channel,
        max_minutes=max_minutes,
        only_published=only_published,
        now=now,
        pin_compulsory=pin_compulsory,
        max_pins=max_pins,
        continue_learning=continue_learning,
        max_continue=max_continue,
        with_reasons=False,
    )
    serving_state(model).course_filter(checked)
    n = checked.n
    options = {
        "exclude": exclude,
        "channel": channel,
        "max_minutes": max_minutes,
        "only_published": bool(only_published),
        "now": now,
        "pin_compulsory": bool(pin_compulsory),
        "max_pins": max_pins,
        "continue_learning": bool(continue_learning),
        "max_continue": checked.max_continue,
        "with_reasons": False,
    }
    # One version of the model (ids, histories, completions, vectors) for the whole job.
    with model.reading():
        ids = member_list(model, members)
        target = _check_out(out, overwrite)
        generated_at = pd.Timestamp.now(tz="UTC").floor("s")

        idx = model.member_ids_.to_index(ids, unknown="mask").astype(np.int64)
        seen = history_rows(model.history_, idx)
        personal = seen.counts > 0
        schema = _output_schema(model)
        frames = []
        if (~personal).any():
            cold = _menus(model, ids[~personal], n, options, version, generated_at, schema)
            frames.append(spark.createDataFrame(cold))
        n_parts = 0
        if personal.any():
            pos = np.flatnonzero(personal)
            table = _member_table(model, ids[pos], idx[pos], seen.take(pos))
            default = spark.sparkContext.defaultParallelism
            n_parts = partitions or max(default, -(-pos.size // MEMBERS_PER_PARTITION))
            side = spark.sparkContext.broadcast(
                _CourseSide.of(model, n, options, version, generated_at, schema)
            )
            member_frame = spark.createDataFrame(table).repartition(int(n_parts))
            frames.append(member_frame.mapInArrow(_PartitionMenus(side), _spark_schema(schema)))
    result = frames[0]
    for other in frames[1:]:
        result = result.unionByName(other)
    with executor_errors():
        routes, rows = _write(spark, result, target, overwrite)
    took = time.perf_counter() - start
    log.info(
        "spark batch: %d members (%d on executors), %d rows to %s in %.1f s, routes %s",
        ids.size,
        int(personal.sum()),
        rows,
        target,
        took,
        routes,
    )
    return SparkBatchResult(
        path=str(target),
        members=int(ids.size),
        rows=rows,
        routes=routes,
        personal_members=int(personal.sum()),
        partitions=int(n_parts),
        seconds=took,
        model_version=version,
        generated_at=generated_at.isoformat(),
    )


# --------------------------------------------------------------------------- driver side


def _output_schema(model: Recommender) -> pa.Schema:
    """Arrow schema of the output, as ``recommend.batch`` writes it."""

    def id_type(ids: IdMap) -> pa.DataType:
        return pa.int64() if ids.is_integer else pa.string()

    return pa.schema(
        [
            pa.field(C.MEMBER, id_type(model.member_ids_)),
            pa.field(C.COURSE, id_type(model.course_ids_)),
            pa.field(C.SCORE, pa.float32()),
            pa.field(C.RANK, pa.int32()),
            pa.field(C.REASON, pa.string()),
            pa.field(C.ROUTE, pa.string()),
            pa.field("model_version", pa.string()),
            pa.field("generated_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def _spark_schema(schema: pa.Schema) -> str:
    names = {
        pa.int64(): "bigint",
        pa.string(): "string",
        pa.float32(): "float",
        pa.int32(): "int",
    }
    fields = [f"{f.name} {names.get(f.type, 'timestamp')}" for f in schema]
    return ", ".join(fields)


def _menus(
    model: Recommender,
    ids: np.ndarray,
    n: int,
    options: dict[str, Any],
    version: str,
    generated_at: pd.Timestamp,
    schema: pa.Schema,
) -> pa.Table:
    """The output rows of members ``ids`` from ``run_batch`` (into a scratch folder), with
    this job's ``generated_at``."""
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="recommend-spark-batch-") as scratch:
        result = run_batch(
            model,
            Path(scratch) / "menus",
            n=n,
            members=ids,
            chunk_size=max(1, ids.size),
            model_version=version,
            progress=False,
            **options,
        )
        table = pa.concat_tables([pq.read_table(f) for f in result.files])
    stamp = np.full(table.num_rows, generated_at.value // 1000, dtype=np.int64)
    columns = [table.column(name) for name in BATCH_COLUMNS[:-1]]
    columns.append(pa.array(stamp, type=schema.field("generated_at").type))
    return pa.Table.from_arrays(columns, names=list(BATCH_COLUMNS)).cast(schema)


def _list_array(values: np.ndarray, counts: np.ndarray) -> pa.Array:
    offsets = np.zeros(counts.size + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _member_table(model: Recommender, ids: np.ndarray, idx: np.ndarray, seen: Any) -> pa.Table:
    """One row per member with a history: id, branch, vector, history and completions."""
    state = serving_state(model)
    vectors = np.ascontiguousarray(model.member_vectors(idx), dtype=np.float32)
    f = vectors.shape[1]
    done = state.completed_rows(model.history_, idx)
    orgs = state.member_orgs()
    org = np.full(idx.size, None, dtype=object)
    inside = idx < orgs.size
    org[inside] = orgs[idx[inside]]
    id_type = pa.int64() if model.member_ids_.is_integer else pa.string()
    return pa.table(
        {
            C.MEMBER: pa.array(ids, type=id_type),
            C.ORG: pa.array(org, type=pa.string()),
            _VECTOR: _list_array(vectors.ravel(), np.full(idx.size, f)),
            _SEEN: _list_array(seen.indices.astype(np.int32), seen.counts),
            _SEEN_VALUE: _list_array(seen.data.astype(np.float32), seen.counts),
            _DONE: _list_array(done.indices.astype(np.int32), done.counts),
        }
    )


def _is_uri(out: str) -> bool:
    scheme, sep, _ = out.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme != "file"


#: The files a Spark Parquet write leaves (and only those: anything else in the folder is
#: someone else's and is never replaced): part files with the job's UUID, their checksums,
#: the success marker.
_SPARK_OUTPUT = re.compile(
    r"\.?part-\d{5}-[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}(?:-c\d{3})?"
    r"(?:\.[a-z0-9]+)?\.parquet(?:\.crc)?|\.?_SUCCESS(?:\.crc)?"
)


def _check_out(out: str | os.PathLike[str], overwrite: bool) -> str:
    text = os.fspath(out)
    if _is_uri(text):
        return text
    path = Path(text.removeprefix("file://"))
    if path.exists():
        if not path.is_dir():
            raise ConfigError(f"{path} exists and is not a directory")
        names = [p.name for p in path.iterdir()]
        strangers = [name for name in names if not _SPARK_OUTPUT.fullmatch(name)]
        if strangers:
            raise ConfigError(
                f"{path} holds files that are not batch output ({strangers[:3]}); pick an "
                "empty or new output folder"
            )
        if names and not overwrite:
            raise ConfigError(
                f"{path} already holds output; pass overwrite=True (--overwrite) to replace it"
            )
    return str(path)


def _write(
    spark: SparkSession, frame: DataFrame, target: str, overwrite: bool
) -> tuple[dict[str, int], int]:
    """Write the menus; returns (members per route, rows)."""
    from pyspark.sql import functions as F

    if _is_uri(target):
        mode = "overwrite" if overwrite else "errorifexists"
        frame.write.mode(mode).option("compression", "zstd").parquet(target)
        written = target
    else:
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
        try:
            frame.write.option("compression", "zstd").parquet(str(tmp))
            if path.exists():
                aside = path.parent / f".{path.name}.old-{uuid.uuid4().hex}"
                os.rename(path, aside)
                os.rename(tmp, path)
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        written = str(path)
    counts = (
        spark.read.parquet(written)
        .groupBy(C.ROUTE)
        .agg(F.countDistinct(C.MEMBER).alias("members"), F.count(F.lit(1)).alias("rows"))
        .collect()
    )
    routes = {str(r[C.ROUTE]): int(r["members"]) for r in counts}
    return routes, sum(int(r["rows"]) for r in counts)


# --------------------------------------------------------------------------- executor side


@dataclass(frozen=True)
class _CourseSide:
    """Everything a partition needs besides its members: broadcast once per job."""

    model_type: type[Recommender]
    params: dict[str, Any]
    course_ext: np.ndarray
    course_factors: np.ndarray
    course_bias: np.ndarray | None
    courses: pd.DataFrame | None
    orgs: pd.DataFrame | None
    has_members: bool
    weighting: dict[str, Any]
    now: pd.Timestamp
    n: int
    options: dict[str, Any]
    version: str
    generated_at: pd.Timestamp
    schema: pa.Schema
    member_integer: bool
    _cache: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        model: Recommender,
        n: int,
        options: dict[str, Any],
        version: str,
        generated_at: pd.Timestamp,
        schema: pa.Schema,
    ) -> _CourseSide:
        ds = model.dataset_
        courses, bias = model.course_vectors()  # type: ignore[misc]
        return cls(
            model_type=type(model),
            params=model.get_params(),
            course_ext=model.course_ids_.external_ids,
            course_factors=np.ascontiguousarray(courses, dtype=np.float32),
            course_bias=None if bias is None else np.asarray(bias, dtype=np.float32),
            courses=ds.courses,
            orgs=ds.orgs,
            has_members=ds.members is not None and C.ORG in ds.members.columns,
            weighting=ds.weighting.get_params(),
            now=ds.now,
            n=n,
            options=options,
            version=version,
            generated_at=generated_at,
            schema=schema,
            member_integer=model.member_ids_.is_integer,
        )

    @cached_property
    def course_ids(self) -> IdMap:
        return IdMap(self.course_ext)

    @cached_property
    def weighting_obj(self) -> Weighting:
        return Weighting.from_params(self.weighting)

    def shell(self, batch: pa.RecordBatch) -> tuple[Recommender, np.ndarray]:
        """A fitted model of this batch's members only, and their ids (in batch order)."""
        m = batch.num_rows
        n_courses = self.course_ext.size
        ids = batch.column(C.MEMBER).to_numpy(zero_copy_only=False)
        ids = ids.astype(np.int64) if self.member_integer else ids.astype(object)
        member_ids = IdMap(ids)

        def lists(name: str) -> tuple[np.ndarray, np.ndarray]:
            column = batch.column(name)
            offsets = column.offsets.to_numpy()
            values = column.values.to_numpy()[offsets[0] : offsets[-1]]
            return values, np.diff(offsets)

        vec, _ = lists(_VECTOR)
        vectors = vec.astype(np.float32).reshape(m, -1)
        seen, seen_counts = lists(_SEEN)
        seen_value, _ = lists(_SEEN_VALUE)
        indptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum(seen_counts, out=indptr[1:])
        history = sp.csr_matrix(
            (seen_value.astype(np.float32), seen.astype(np.int32), indptr),
            shape=(m, n_courses),
        )
        done, done_counts = lists(_DONE)
        rows = np.repeat(np.arange(m, dtype=np.int32), done_counts)
        events = pd.DataFrame(
            {
                C.MEMBER: ids[rows],
                C.COURSE: self.course_ext[done.astype(np.int64)],
                C.EVENT: "complete",
                C.TIMESTAMP: pd.NaT,
                MEMBER_IDX: rows,
                COURSE_IDX: done.astype(np.int32),
            }
        )
        members = None
        if self.has_members:
            org = batch.column(C.ORG).to_pylist()
            members = pd.DataFrame({C.MEMBER: ids, C.ORG: pd.Series(org, dtype=object)})
        dataset = Dataset(
            interactions=history,
            member_ids=member_ids,
            course_ids=self.course_ids,
            events=events,
            courses=self.courses,
            members=members,
            orgs=self.orgs,
            weighting=self.weighting_obj,
            now=self.now,
            report=ReferenceReport(events_in=0, events_out=0),
        )
        # The fitted state for these members only, next to the broadcast course side.
        model = self.model_type(**self.params).restore(
            member_ids=member_ids,
            course_ids=self.course_ids,
            dataset=dataset,
            history=History(history),
            state={
                "member_factors_": vectors,
                "course_factors_": self.course_factors,
                "course_bias_": self.course_bias,
            },
        )
        return model, ids


@dataclass(frozen=True)
class _PartitionMenus:
    """``mapInArrow`` function: the menus of each batch of members."""

    side: Any  # Spark broadcast of a _CourseSide

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        side: _CourseSide = self.side.value
        for batch in batches:
            if batch.num_rows == 0:
                continue
            model, ids = side.shell(batch)
            table = _menus(
                model, ids, side.n, side.options, side.version, side.generated_at, side.schema
            )
            yield from table.to_batches()
