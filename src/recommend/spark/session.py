"""A ``SparkSession`` configured the way the Spark jobs of this package expect."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from recommend.spark._compat import require_pyspark

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["spark_session"]

log = logging.getLogger(__name__)

#: Settings every session gets (``conf`` may override them): timestamps are UTC end to end
#: (the library's timestamps are tz-naive UTC), pandas batches travel as Arrow, and Parquet
#: timestamps are written as microseconds with a UTC flag, as the single-machine batch job
#: writes them.
BASE_CONF: Mapping[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.pandas.convertToArrowArraySafely": "true",
}


def spark_session(
    master: str = "local[*]",
    *,
    app_name: str = "recommend",
    driver_memory: str | None = None,
    shuffle_partitions: int | None = None,
    progress: bool = False,
    conf: Mapping[str, Any] | None = None,
) -> SparkSession:
    """Get (or create) the ``SparkSession`` for the jobs of ``recommend.spark``.

    Parameters
    ----------
    master
        Spark master URL: ``local[*]`` (all cores of this machine), ``local[2]``,
        ``yarn``, ``spark://host:7077``, ``k8s://...``.
    app_name
        Application name shown in the Spark UI and logs.
    driver_memory
        ``spark.driver.memory`` (e.g. ``"4g"``); in local mode it is all of Spark's memory.
        Takes effect only when this call starts the JVM.
    shuffle_partitions
        ``spark.sql.shuffle.partitions``; Spark's default (200) is too many for small local
        jobs and too few for national ones (see ``docs/scale_plan.md``).
    progress
        Show Spark's console progress bar.
    conf
        Further Spark settings, applied last.

    Returns
    -------
    pyspark.sql.SparkSession
        An existing active session is returned as it is (its master and memory cannot
        change); the settings above apply to a new one.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    _quiet_pandas_warning()
    if master.startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Local Python workers must run this interpreter (the one with recommend, numpy
        # and pyarrow), not whatever "python3" is first on PATH.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(master).appName(app_name)
    settings: dict[str, Any] = dict(BASE_CONF)
    settings["spark.ui.showConsoleProgress"] = "true" if progress else "false"
    if driver_memory is not None:
        settings["spark.driver.memory"] = driver_memory
    if shuffle_partitions is not None:
        settings["spark.sql.shuffle.partitions"] = str(int(shuffle_partitions))
    settings.update(conf or {})
    for key, value in settings.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    # Runtime SQL settings also reach a session that already existed.
    for key, value in settings.items():
        if key.startswith("spark.sql."):
            spark.conf.set(key, str(value))
    log.info("spark session: master %s, Spark %s", spark.sparkContext.master, spark.version)
    return spark


def _quiet_pandas_warning() -> None:
    # PySpark warns on every pandas conversion that it does not test pandas 3 yet; the
    # conversions this package uses are covered by its own tests.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
