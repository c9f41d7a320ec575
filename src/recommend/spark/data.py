"""Events on Spark: read partitioned Parquet, validate, index, weight into a confidence matrix.

The result equals what ``Dataset.from_frames`` builds on one machine, because the same code
does every step that decides a number:

- validation: ``recommend.data.validate("events", ...)`` on each Arrow batch (it works row
  by row, so batch by batch is the same as all at once);
- id maps: the distinct ids (of the events, or of the members/courses tables when given,
  exactly as ``Dataset.from_frames`` chooses) get their dense index on the executors, in
  the order of ``IdMap.from_values`` (integers numerically, strings by code point, which is
  Spark's binary UTF-8 order): a range-partitioned sort, then per-partition offsets. The
  events are joined to that index table in Spark; the driver collects the ids only when a
  ``recommend`` artifact is exported (``SparkInteractions.member_ids``);
- confidence: ``Weighting.event_confidence`` on each batch, with the same durations (the
  course table's ``duration_seconds`` by course index) and the same ``now``: the given one,
  or the data's robust now (``recommend.data.timeline``, with Spark's percentiles at a
  relative error of 1e-6); events dated after it are refused, dropped and counted, or
  kept, as ``on_future`` says;
- summing per (member, course), dropping zeros and ``log`` scaling: ``Weighting.matrix`` on
  each member's events. Events are shuffled by member and sorted within a partition, so a
  member's events are contiguous and a batch boundary never splits a member.

Only the order in which one cell's float32 confidences are added can differ (Spark does not
keep the input row order), so cells agree to float32 rounding, not always bit for bit.
``bm25`` scaling needs whole-matrix statistics and is not available here.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset, align_rows
from recommend.data.idmap import IdMap
from recommend.data.timeline import FUTURE_TOLERANCE, OnFuture, reference_time
from recommend.data.validation import ReferenceReport, personal_columns, validate
from recommend.data.weighting import Weighting
from recommend.errors import ConfigError, DataError, Problem
from recommend.schema import Columns
from recommend.spark._compat import require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row, SparkSession

__all__ = [
    "CONFIDENCE",
    "SparkInteractions",
    "collect_ids",
    "dense_index",
    "interactions",
    "read_events",
]

log = logging.getLogger(__name__)
C = Columns

#: Column of the summed confidence in ``SparkInteractions.frame``.
CONFIDENCE = "confidence"

_REQUIRED = (C.MEMBER, C.COURSE, C.EVENT, C.TIMESTAMP)
_OPTIONAL = (C.WATCH_SECONDS, C.VALUE)
_ID_TYPES = ("string", "bigint", "int", "smallint", "tinyint")
_COMPLETE = "complete"


def read_events(spark: SparkSession, path: str | list[str]) -> DataFrame:
    """Events from Parquet: one file, a folder of files, or a partitioned folder tree.

    Partition columns (``date=2024-05-01/...``) arrive as ordinary columns and are passed
    through; only ``member_id, course_id, event, timestamp`` (required) and
    ``watch_seconds, value`` (optional) are used.

    Raises
    ------
    DataError
        A required column is missing, or a personal column (name, phone...) is present.
    """
    require_pyspark()
    from pyspark.errors import AnalysisException

    paths = [path] if isinstance(path, str) else list(path)
    try:
        frame = spark.read.parquet(*paths)
    except AnalysisException as exc:
        if "TIMESTAMP(NANOS" in str(exc):
            raise DataError(
                f"events ({', '.join(paths)}): timestamps are stored in nanoseconds, which "
                "Spark cannot read; write them in microseconds, e.g. frame.to_parquet(path, "
                "coerce_timestamps='us', allow_truncated_timestamps=True)"
            ) from exc
        raise
    _check_event_columns(frame, where=", ".join(paths))
    return frame


@dataclass(frozen=True, eq=False)
class SparkInteractions:
    """The confidence matrix on Spark with everything a model artifact needs next to it.

    Attributes
    ----------
    frame
        Spark DataFrame ``member_idx int, course_idx int, confidence float``: one row per
        non-zero cell of the ``(n_members, n_courses)`` matrix, as ``Dataset.interactions``.
    completed
        Spark DataFrame of completed pairs ``member_id, course_id, member_idx, course_idx,
        timestamp`` (the last completion), what "already completed" filters need.
    member_index, course_index
        Spark DataFrames ``member_id, member_idx int`` and ``course_id, course_idx int``:
        the id maps as tables on the executors.
    n_members, n_courses
        Sizes of the id maps.
    course_ids
        The course id map on the driver (small; the courses table and durations need it).
    courses, orgs
        Validated pandas tables (``courses`` aligned to ``course_ids``), or ``None``.
    weighting, now
        As in ``Dataset``.
    report
        Events read, kept and dropped for unknown ids.
    """

    frame: DataFrame
    completed: DataFrame
    member_index: DataFrame
    course_index: DataFrame
    n_members: int
    n_courses: int
    course_ids: IdMap
    courses: pd.DataFrame | None
    orgs: pd.DataFrame | None
    weighting: Weighting
    now: pd.Timestamp
    report: ReferenceReport
    members_table: pd.DataFrame | None = field(default=None, repr=False)
    fixed_member_ids: IdMap | None = field(default=None, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def member_ids(self) -> IdMap:
        """The member id map on the driver, collected from ``member_index`` on first use
        (``n_members`` ids; only the export of an artifact needs it)."""
        if self.fixed_member_ids is not None:
            return self.fixed_member_ids
        if "member_ids" not in self._cache:
            self._cache["member_ids"] = collect_ids(self.member_index, MEMBER_IDX, self.n_members)
        member_ids: IdMap = self._cache["member_ids"]
        return member_ids

    @property
    def members(self) -> pd.DataFrame | None:
        """The validated members table (``member_id, org_id``) aligned to ``member_ids``,
        or ``None``; aligning needs the member ids on the driver."""
        if self.members_table is None:
            return None
        if "members" not in self._cache:
            self._cache["members"] = align_rows(self.members_table, C.MEMBER, self.member_ids)
        members: pd.DataFrame = self._cache["members"]
        return members

    def to_csr(self) -> sp.csr_matrix:
        """The matrix on the driver: ``(n_members, n_courses)`` CSR ``float32``, sorted
        indices, no stored zeros (``Dataset.interactions``). Collected once, then cached."""
        if "csr" not in self._cache:
            cells: pd.DataFrame = self.frame.toPandas()
            mat = sp.csr_matrix(
                (
                    cells[CONFIDENCE].to_numpy(np.float32),
                    (cells[MEMBER_IDX].to_numpy(np.int64), cells[COURSE_IDX].to_numpy(np.int64)),
                ),
                shape=(self.n_members, self.n_courses),
                dtype=np.float32,
            )
            mat.sort_indices()
            self._cache["csr"] = mat
        matrix: sp.csr_matrix = self._cache["csr"]
        return matrix

    def to_dataset(self) -> Dataset:
        """The serving view of this data as a ``Dataset`` (what a model artifact keeps):
        the matrix, id maps, tables, and one ``complete`` event per completed pair as
        ``events``. Needs the matrix on the driver (see ``docs/scale_plan.md``)."""
        if "dataset" not in self._cache:
            done: pd.DataFrame = self.completed.toPandas()
            done.insert(2, C.EVENT, _COMPLETE)
            done[C.TIMESTAMP] = done[C.TIMESTAMP].astype("datetime64[ns]")
            done = done[[C.MEMBER, C.COURSE, C.EVENT, C.TIMESTAMP, MEMBER_IDX, COURSE_IDX]]
            for column in (MEMBER_IDX, COURSE_IDX):
                done[column] = done[column].astype(np.int32)
            done = done.sort_values([MEMBER_IDX, COURSE_IDX], kind="stable").reset_index(drop=True)
            self._cache["dataset"] = Dataset(
                interactions=self.to_csr(),
                member_ids=self.member_ids,
                course_ids=self.course_ids,
                events=done,
                courses=self.courses,
                members=self.members,
                orgs=self.orgs,
                weighting=self.weighting,
                now=self.now,
                report=self.report,
            )
        dataset: Dataset = self._cache["dataset"]
        return dataset


def interactions(
    events: DataFrame,
    *,
    courses: pd.DataFrame | DataFrame | None = None,
    members: pd.DataFrame | DataFrame | None = None,
    orgs: pd.DataFrame | DataFrame | None = None,
    weighting: Weighting | None = None,
    on_unknown: Literal["raise", "drop"] = "raise",
    now: pd.Timestamp | str | None = None,
    member_ids: IdMap | None = None,
    course_ids: IdMap | None = None,
    partitions: int | None = None,
    on_future: OnFuture = "raise",
) -> SparkInteractions:
    """Build the confidence matrix of ``events`` on Spark, as ``Dataset.from_frames`` does.

    Parameters
    ----------
    events
        Spark DataFrame of events (``read_events``): ``member_id, course_id, event,
        timestamp`` and optionally ``watch_seconds, value``. Ids are strings or integers.
    courses, members, orgs
        Optional tables (pandas or Spark). As on one machine, ``courses`` and ``members``
        define the course and member universes; of ``members`` only ``member_id`` and
        ``org_id`` are read (what serving keeps).
    weighting
        How events become confidence (``Weighting()`` when ``None``); ``scaling="bm25"``
        is refused.
    on_unknown
        ``"raise"`` refuses events with ids outside the universes; ``"drop"`` drops and
        counts them (``report``).
    now
        Reference time for decay; the data's robust now when ``None`` (see
        ``recommend.data.timeline``: one mistyped ``2100-01-01`` never becomes it).
    member_ids, course_ids
        Fixed universes, as in ``Dataset.from_frames``.
    partitions
        Partitions of the member shuffle (default: ``spark.sql.shuffle.partitions``).
    on_future
        Events dated after the reference time: ``"raise"`` (default) refuses them,
        ``"drop"`` drops and counts them (``report.future_events``), ``"keep"`` keeps them
        with a decay weight of 1, as ``Dataset.from_frames``.

    Returns
    -------
    SparkInteractions

    Raises
    ------
    DataError
        Invalid events (the message of ``validate``, from the batch that failed), unknown
        ids with ``on_unknown="raise"``, or no events left.
    ConfigError
        ``bm25`` scaling, or an invalid ``on_unknown``.
    """
    require_pyspark()
    from pyspark import StorageLevel

    weighting = _spark_weighting(weighting, on_unknown)
    if on_future not in ("raise", "drop", "keep"):
        raise ConfigError(f"on_future={on_future!r}; expected 'raise', 'drop' or 'keep'")
    _check_event_columns(events, where="events")
    tables = _side_tables(courses, members, orgs)
    spark = events.sparkSession
    n_parts = partitions or int(spark.conf.get("spark.sql.shuffle.partitions") or 200)
    ev = _validated(events, weighting).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with executor_errors():
            n_in = ev.count()
        course_table, course_ids = _course_index(ev, courses, tables.courses, course_ids, n_parts)
        member_table, n_members = _member_index(ev, members, tables.members, member_ids, n_parts)
        indexed, report = _known_events(ev, course_table, member_table, n_in, on_unknown)
        ref = reference_time(np.empty(0, "datetime64[ns]"), now) if now is not None else None
        ref = ref if ref is not None else _robust_now(ev)
        indexed, report = _future_events(indexed, report, ref, now is not None, on_future)
        crs = align_rows(tables.courses, C.COURSE, course_ids)
        job = _CellJob(
            weighting=weighting,
            now=ref,
            durations=spark.sparkContext.broadcast(_durations(crs)),
            n_courses=len(course_ids),
        )
        cells, n_cells = _confidence_cells(indexed, job, n_parts)
        completed = _completed_pairs(indexed)
    finally:
        # What is derived from the events is persisted and materialised by now.
        ev.unpersist()
    log.info(
        "spark interactions: %d members x %d courses, %d events kept of %d, %d cells",
        n_members,
        len(course_ids),
        report.events_out,
        n_in,
        n_cells,
    )
    return SparkInteractions(
        frame=cells,
        completed=completed,
        member_index=member_table,
        course_index=course_table,
        n_members=n_members,
        n_courses=len(course_ids),
        course_ids=course_ids,
        courses=crs,
        orgs=tables.orgs,
        weighting=weighting,
        now=ref,
        report=report,
        members_table=tables.members,
        fixed_member_ids=member_ids,
    )


# --------------------------------------------------------------------------- the steps


def _spark_weighting(weighting: Weighting | None, on_unknown: str) -> Weighting:
    """The weighting to use (``Weighting()`` by default); refuses what Spark cannot do."""
    weighting = weighting or Weighting()
    if weighting.scaling == "bm25":
        raise ConfigError(
            "Weighting(scaling='bm25') is not available on Spark: it needs whole-matrix "
            "statistics; use scaling='none' or 'log'"
        )
    if on_unknown not in ("raise", "drop"):
        raise ConfigError(f"on_unknown={on_unknown!r}; expected 'raise' or 'drop'")
    return weighting


@dataclass(frozen=True)
class _SideTables:
    """The validated courses, members (``member_id``, ``org_id`` only) and orgs tables."""

    courses: pd.DataFrame | None
    members: pd.DataFrame | None
    orgs: pd.DataFrame | None


def _side_tables(
    courses: pd.DataFrame | DataFrame | None,
    members: pd.DataFrame | DataFrame | None,
    orgs: pd.DataFrame | DataFrame | None,
) -> _SideTables:
    """Validate the optional tables on the driver (of members only what serving keeps)."""
    crs = validate("courses", _pandas(courses, None)) if courses is not None else None
    mem: pd.DataFrame | None = None
    if members is not None:
        mem = validate("members", _pandas(members, (C.MEMBER, C.ORG)))
        mem = mem[[c for c in (C.MEMBER, C.ORG) if c in mem.columns]]
    org = validate("orgs", _pandas(orgs, None)) if orgs is not None else None
    return _SideTables(crs, mem, org)


def _course_index(
    events: DataFrame,
    courses: pd.DataFrame | DataFrame | None,
    valid: pd.DataFrame | None,
    course_ids: IdMap | None,
    partitions: int,
) -> tuple[DataFrame, IdMap]:
    """The course index table ``course_id, course_idx`` and the course id map.

    A fixed ``course_ids`` is used as given; otherwise the universe is the courses table's
    ids (when given) or the events' ids, indexed on the executors and collected (small:
    one id per course; the durations and the courses table need it on the driver).
    """
    spark = events.sparkSession
    if course_ids is not None:
        return _index_frame(spark, course_ids, C.COURSE, COURSE_IDX), course_ids
    if courses is None or valid is None:
        source = events
    else:
        source = _table_ids(spark, courses, valid, C.COURSE)
    table, n_courses = dense_index(source, C.COURSE, COURSE_IDX, partitions)
    return table, collect_ids(table, COURSE_IDX, n_courses)


def _member_index(
    events: DataFrame,
    members: pd.DataFrame | DataFrame | None,
    valid: pd.DataFrame | None,
    member_ids: IdMap | None,
    partitions: int,
) -> tuple[DataFrame, int]:
    """The member index table ``member_id, member_idx`` and the number of members.

    As ``_course_index``, but the ids stay on the executors unless ``member_ids`` is given
    (a fixed map is on the driver by definition; its order need not be sorted).
    """
    spark = events.sparkSession
    if member_ids is not None:
        return _index_frame(spark, member_ids, C.MEMBER, MEMBER_IDX), len(member_ids)
    if members is None or valid is None:
        source = events
    else:
        source = _table_ids(spark, members, valid, C.MEMBER)
    return dense_index(source, C.MEMBER, MEMBER_IDX, partitions)


def _known_events(
    events: DataFrame,
    course_table: DataFrame,
    member_table: DataFrame,
    n_in: int,
    on_unknown: str,
) -> tuple[DataFrame, ReferenceReport]:
    """The events with their member and course indices, those with unknown ids refused
    or dropped (and counted in the report)."""
    from pyspark.sql import functions as F

    indexed = events.join(F.broadcast(course_table), C.COURSE, "left").join(
        member_table, C.MEMBER, "left"
    )
    report = _check_unknown(indexed, n_in, on_unknown)
    indexed = indexed.where(F.col(MEMBER_IDX).isNotNull() & F.col(COURSE_IDX).isNotNull())
    if report.events_out == 0:
        raise DataError("events: no events left after dropping unknown ids")
    return indexed, report


def _durations(courses: pd.DataFrame | None) -> np.ndarray | None:
    """Course durations in seconds by course index (float64), or ``None`` without them."""
    if courses is None or C.DURATION not in courses.columns:
        return None
    return courses[C.DURATION].to_numpy(dtype=np.float64)


def _confidence_cells(indexed: DataFrame, job: _CellJob, partitions: int) -> tuple[DataFrame, int]:
    """The non-zero cells ``member_idx, course_idx, confidence`` (persisted) and their
    number: events shuffled by member, each member's events weighted together."""
    from pyspark import StorageLevel

    columns = [MEMBER_IDX, COURSE_IDX, C.EVENT, C.TIMESTAMP] + [
        c for c in _OPTIONAL if c in indexed.columns
    ]
    cells = (
        indexed.select(*columns)
        .repartition(partitions, MEMBER_IDX)
        .sortWithinPartitions(MEMBER_IDX)
        .mapInPandas(job, f"{MEMBER_IDX} int, {COURSE_IDX} int, {CONFIDENCE} float")
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    with executor_errors():
        n_cells = cells.count()
    return cells, n_cells


def _completed_pairs(indexed: DataFrame) -> DataFrame:
    """Completed (member, course) pairs with the last completion time (persisted)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    completed = (
        indexed.where(F.col(C.EVENT) == _COMPLETE)
        .groupBy(C.MEMBER, C.COURSE, MEMBER_IDX, COURSE_IDX)
        .agg(F.max(C.TIMESTAMP).alias(C.TIMESTAMP))
        .persist(StorageLevel.MEMORY_AND_DISK)
    )
    completed.count()
    return completed


@contextmanager
def executor_errors() -> Iterator[None]:
    """Re-raise a ``DataError``/``ConfigError`` raised on an executor as itself.

    Spark wraps exceptions of Python workers in ``PythonException`` (message: the worker's
    traceback); the library's own errors keep their class and message.
    """
    from pyspark.errors import PythonException

    try:
        yield
    except PythonException as exc:
        text = str(exc)
        for cls in (DataError, ConfigError):
            marker = f"{cls.__module__}.{cls.__name__}: "
            at = text.rfind(marker)
            if at >= 0:
                message = text[at + len(marker) :].strip()
                raise cls(message) from exc
        raise


def _check_event_columns(frame: DataFrame, *, where: str) -> None:
    columns = list(frame.columns)
    personal = personal_columns(pd.DataFrame(columns=columns))
    if personal:
        raise DataError(
            f"events ({where}): personal columns {personal} are refused: the library needs "
            f"no names, phone numbers, ID numbers or addresses; drop them first: "
            f"frame.drop(*{personal})"
        )
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise DataError(
            f"events ({where}): missing required column(s) {missing}; expected columns "
            f"{list(_REQUIRED)} (present: {columns})"
        )
    types = dict(frame.dtypes)
    for column in (C.MEMBER, C.COURSE):
        if types[column] not in _ID_TYPES:
            raise DataError(
                f"events ({where}): column {column!r} has Spark type {types[column]}; "
                "expected string or integer ids"
            )


def _pandas(frame: Any, columns: tuple[str, ...] | None) -> pd.DataFrame:
    """A pandas copy of a pandas or Spark table (only ``columns`` of a Spark table)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    names = list(frame.columns)
    personal = personal_columns(pd.DataFrame(columns=names))
    if personal:
        raise DataError(
            f"personal columns {personal} are refused; drop them first: frame.drop(*{personal})"
        )
    if columns is not None:
        frame = frame.select(*[c for c in columns if c in names])
    return frame.toPandas()


def _validated(events: DataFrame, weighting: Weighting) -> DataFrame:
    """``validate("events")`` on every batch; ids keep their Spark type (long or string)."""
    from pyspark.sql import functions as F

    types = dict(events.dtypes)
    select = []
    fields = []
    for column in (C.MEMBER, C.COURSE):
        integer = types[column] != "string"
        select.append(F.col(column).cast("bigint" if integer else "string"))
        fields.append(f"{column} {'bigint' if integer else 'string'}")
    select += [F.col(C.EVENT), F.col(C.TIMESTAMP)]
    fields += [f"{C.EVENT} string", f"{C.TIMESTAMP} timestamp"]
    for column in _OPTIONAL:
        if column in types:
            select.append(F.col(column))
            fields.append(f"{column} double")
    return events.select(*select).mapInPandas(
        _Validate(dict(weighting.event_weights)), ", ".join(fields)
    )


@dataclass(frozen=True)
class _Validate:
    """Validates each Arrow batch of events on the executors."""

    event_weights: Mapping[str, float]

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            if len(batch):
                yield validate("events", batch, event_weights=self.event_weights)


def dense_index(ids: DataFrame, column: str, index: str, partitions: int) -> tuple[DataFrame, int]:
    """Dense indices of the distinct values of ``column``, assigned on the executors.

    The order is ``IdMap.from_values``'s: integer ids numerically, string ids by Unicode
    code point (Spark compares strings as UTF-8 bytes, which orders them the same way).
    The distinct ids are range-partitioned and sorted within partitions, frozen with a
    checkpoint (reliable when ``SparkContext.setCheckpointDir`` was called, else local) so
    the partitions cannot change between the two passes, then numbered: a partition's
    first index is the number of ids in the partitions before it (one count per partition
    reaches the driver), plus the row's position within its partition.

    Parameters
    ----------
    ids
        Spark DataFrame with an integer (``bigint``) or ``string`` column ``column``;
        duplicates are fine.
    column, index
        Name of the id column and of the index column to add.
    partitions
        Range partitions of the sort.

    Returns
    -------
    (DataFrame, int)
        Spark DataFrame ``column, index int`` (one row per distinct id; ``index`` runs over
        ``0..n-1``) and ``n``.

    Raises
    ------
    DataError
        A null id, or more than 2**31 - 1 distinct ids (Spark's ALS needs ``int`` indices).
    """
    from pyspark.sql import functions as F

    spark = ids.sparkSession
    ordered = (
        ids.select(column)
        .distinct()
        .repartitionByRange(max(1, int(partitions)), column)
        .sortWithinPartitions(column)
    )
    if spark.sparkContext.getCheckpointDir():
        ordered = ordered.checkpoint(eager=True)
    else:
        ordered = ordered.localCheckpoint(eager=True)
    part = F.spark_partition_id()
    rows = ordered.select(part.alias("part"), F.col(column).isNull().alias("null"))
    counts = (
        rows.groupBy("part")
        .agg(F.count(F.lit(1)).alias("n"), F.max("null").alias("null"))
        .collect()
    )
    if any(r["null"] for r in counts):
        raise DataError(f"{column}: null ids; expected every row to carry an id")
    sizes = np.zeros(max((int(r["part"]) for r in counts), default=-1) + 1, dtype=np.int64)
    for r in counts:
        sizes[int(r["part"])] = int(r["n"])
    n = int(sizes.sum())
    if n > np.iinfo(np.int32).max:
        raise DataError(f"{column}: {n} distinct ids; expected at most {np.iinfo(np.int32).max}")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]) if sizes.size else sizes
    first = F.array(*[F.lit(int(s)) for s in starts]) if sizes.size else F.array(F.lit(0))
    # monotonically_increasing_id: the partition in the upper 31 bits, the row in the lower 33.
    within = F.monotonically_increasing_id() - part.cast("long") * F.lit(1 << 33)
    table = ordered.select(F.col(column), (first[part] + within).cast("int").alias(index))
    return table, n


def collect_ids(table: DataFrame, index: str, n: int) -> IdMap:
    """The ``IdMap`` of an index table ``id, index`` (``dense_index``), on the driver.

    Collects the ``n`` ids once (``n x`` ~60 B for string ids, 8 B for integer ids).
    """
    column = next(c for c in table.columns if c != index)
    frame: pd.DataFrame = table.toPandas()
    pos = frame[index].to_numpy(np.int64)
    values = frame[column].to_numpy()
    if len(pos) != n or (n and (pos.min() < 0 or pos.max() >= n)):
        raise DataError(f"{column}: the index table has {len(pos)} rows; expected {n} ids")
    integer = np.asarray(values).dtype.kind in "iu"
    ids = np.empty(n, dtype=np.int64 if integer else object)
    ids[pos] = values if integer else [str(v) for v in values]
    return IdMap(ids)


def _table_ids(
    spark: SparkSession, given: pd.DataFrame | DataFrame, valid: pd.DataFrame, column: str
) -> DataFrame:
    """Spark DataFrame of the ids of a members/courses table, typed as ``validate`` made
    them (``bigint`` or ``string``): a Spark table's own column, or a pandas table's ids."""
    from pyspark.sql import functions as F

    integer = valid[column].dtype.kind in "iu"
    if not isinstance(given, pd.DataFrame):
        return given.select(F.col(column).cast("bigint" if integer else "string").alias(column))
    values = valid[column].to_numpy()
    ids = values.astype(np.int64) if integer else np.asarray([str(v) for v in values], dtype=object)
    return spark.createDataFrame(pd.DataFrame({column: ids}))


def _index_frame(spark: SparkSession, ids: IdMap, column: str, index: str) -> DataFrame:
    """Spark DataFrame ``column, index`` of an id map."""
    import pyarrow as pa

    values = ids.external_ids
    kind = pa.int64() if ids.is_integer else pa.string()
    table = pa.table(
        {
            column: pa.array(values, type=kind),
            index: pa.array(np.arange(len(ids), dtype=np.int32)),
        }
    )
    return spark.createDataFrame(table)


def _check_unknown(indexed: DataFrame, n_in: int, on_unknown: str) -> ReferenceReport:
    """Count events with unknown ids; raise or report, as ``check_references`` does."""
    from pyspark.sql import functions as F

    counts = _aggregate_row(
        indexed,
        F.sum(F.col(COURSE_IDX).isNull().cast("long")).alias("course_events"),
        F.countDistinct(F.when(F.col(COURSE_IDX).isNull(), F.col(C.COURSE))).alias("courses"),
        F.sum(F.col(MEMBER_IDX).isNull().cast("long")).alias("member_events"),
        F.countDistinct(F.when(F.col(MEMBER_IDX).isNull(), F.col(C.MEMBER))).alias("members"),
        F.sum((F.col(MEMBER_IDX).isNull() | F.col(COURSE_IDX).isNull()).cast("long")).alias(
            "dropped"
        ),
    )
    dropped = int(counts["dropped"] or 0)
    report = ReferenceReport(
        events_in=n_in,
        events_out=n_in - dropped,
        unknown_course_events=int(counts["course_events"] or 0),
        unknown_courses=int(counts["courses"] or 0),
        unknown_member_events=int(counts["member_events"] or 0),
        unknown_members=int(counts["members"] or 0),
    )
    if not dropped:
        return report
    problems = []
    for column, idx, n_events, n_ids in (
        (C.COURSE, COURSE_IDX, report.unknown_course_events, report.unknown_courses),
        (C.MEMBER, MEMBER_IDX, report.unknown_member_events, report.unknown_members),
    ):
        if n_events:
            unknown = indexed.where(F.col(idx).isNull()).select(column).distinct()
            shown = sorted(r[column] for r in unknown.limit(5).collect())
            problems.append(f"{n_events} event(s) of {n_ids} unknown {column}(s), e.g. {shown}")
    if on_unknown == "raise":
        raise DataError(
            f"events: {'; '.join(problems)}; expected ids of the courses/members tables (or "
            "the fixed id maps); pass on_unknown='drop' to drop and count them"
        )
    log.warning("events: dropped %s", "; ".join(problems))
    return report


def _robust_now(events: DataFrame) -> pd.Timestamp:
    """The data's robust now (``recommend.data.timeline.reference_time``) on Spark: the
    latest event no later than q99.9 + max(FUTURE_TOLERANCE, q99.9 - q0.1)."""
    from pyspark.sql import functions as F

    micros = F.unix_micros(F.col(C.TIMESTAMP))
    quantiles = F.percentile_approx(micros, [0.001, 0.999], 1_000_000).alias("q")
    low, high = _aggregate_row(events, quantiles)["q"]
    limit = int(high) + max(FUTURE_TOLERANCE.value // 1000, int(high) - int(low))
    last = _aggregate_row(events.where(micros <= limit), F.max(micros).alias("last"))["last"]
    return pd.Timestamp(int(last) * 1000)


def _future_events(
    indexed: DataFrame, report: ReferenceReport, ref: pd.Timestamp, given: bool, on_future: str
) -> tuple[DataFrame, ReferenceReport]:
    """Events after ``ref``: refused (``DataError`` with their count), dropped and
    counted, or kept."""
    from pyspark.sql import functions as F

    if on_future == "keep":
        return indexed, report
    late = F.col(C.TIMESTAMP) > F.lit(ref.to_pydatetime())
    n_future = int(_aggregate_row(indexed, F.sum(late.cast("long")).alias("n"))["n"] or 0)
    if not n_future:
        return indexed, report
    if on_future == "raise":
        whose = "the given now" if given else "the data's own now"
        raise DataError(
            [
                Problem(
                    table="events",
                    column=C.TIMESTAMP,
                    message=f"events dated after {whose} ({ref})",
                    expected="no event after the reference time: fix the dates, pass "
                    "on_future='drop' to drop (and count) them, or give a later now",
                    count=n_future,
                )
            ]
        )
    if report.events_out == n_future:
        raise DataError("events: no events left after dropping future-dated ones")
    log.warning("spark interactions: dropped %d event(s) dated after %s", n_future, ref)
    report = dataclasses.replace(
        report, events_out=report.events_out - n_future, future_events=n_future
    )
    return indexed.where(~late), report


def _aggregate_row(frame: DataFrame, *columns: Column) -> Row:
    """The one row of a global aggregate of ``frame`` (no grouping: always one row)."""
    row = frame.agg(*columns).first()
    if row is None:  # Spark returns one row even for an empty frame
        raise RuntimeError("a global aggregate returned no row")
    return row


@dataclass(frozen=True)
class _CellJob:
    """Per partition (members contiguous): event confidence, then per-member sums.

    Runs ``Weighting.event_confidence`` and ``Weighting.matrix`` on whole members, carrying
    the rows of the last member of a batch over to the next batch.
    """

    weighting: Weighting
    now: pd.Timestamp
    durations: Any  # a Spark broadcast of the (n_courses,) float64 durations, or of None
    n_courses: int

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        carry: pd.DataFrame | None = None
        for batch in batches:
            if carry is not None:
                batch = pd.concat([carry, batch], ignore_index=True)
            if not len(batch):
                continue
            member = batch[MEMBER_IDX].to_numpy()
            # Everything but the last member, who may continue in the next batch.
            cut = int(np.searchsorted(member, member[-1], side="left"))
            carry = batch.iloc[cut:].reset_index(drop=True)
            if cut:
                yield self.cells(batch.iloc[:cut].reset_index(drop=True))
        if carry is not None and len(carry):
            yield self.cells(carry)

    def cells(self, events: pd.DataFrame) -> pd.DataFrame:
        member = events[MEMBER_IDX].to_numpy(np.int64)
        course = events[COURSE_IDX].to_numpy(np.int64)
        durations = self.durations.value
        conf = self.weighting.event_confidence(
            events, None if durations is None else durations[course], self.now
        )
        local, members = pd.factorize(member, sort=True)
        mat = self.weighting.matrix(local, course, conf, (len(members), self.n_courses))
        coo = mat.tocoo()
        return pd.DataFrame(
            {
                MEMBER_IDX: np.asarray(members, dtype=np.int32)[coo.row],
                COURSE_IDX: coo.col.astype(np.int32),
                CONFIDENCE: coo.data.astype(np.float32),
            }
        )
