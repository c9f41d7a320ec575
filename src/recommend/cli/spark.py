"""``recommend spark train|batch`` (pyspark is imported only when they run)."""

from __future__ import annotations

import argparse
import time
from typing import Any

from recommend.cli.menus import routes_text

__all__ = ["cmd_spark"]


def cmd_spark(args: argparse.Namespace) -> int:
    """``spark train`` or ``spark batch``, in the active Spark session or a new one."""
    # Without pyspark this import raises SparkUnavailableError with the install command.
    from recommend.spark import require_pyspark, spark_session

    existing = require_pyspark().sql.SparkSession.getActiveSession()
    spark = spark_session(
        args.master,
        driver_memory=args.driver_memory,
        shuffle_partitions=args.shuffle_partitions,
        progress=bool(getattr(args, "verbose", False)),
    )
    try:
        if args.spark_verb == "train":
            return _spark_train(spark, args)
        return _spark_batch(spark, args)
    finally:
        if existing is None:  # a session this command started
            spark.stop()


def _spark_train(spark: Any, args: argparse.Namespace) -> int:
    from recommend.data.loaders import read_table
    from recommend.spark.als import SparkALS
    from recommend.spark.data import interactions, read_events

    start = time.perf_counter()
    events = read_events(spark, args.events)
    courses = read_table(args.courses, "courses") if args.courses else None
    orgs = read_table(args.orgs, "orgs") if args.orgs else None
    members = spark.read.parquet(args.members) if args.members else None
    data = interactions(
        events,
        courses=courses,
        members=members,
        orgs=orgs,
        on_unknown=args.on_unknown,
        on_future=args.on_future,
    )
    model = SparkALS(
        n_factors=args.factors,
        regularization=args.regularization,
        alpha=args.alpha,
        iterations=args.iterations,
        random_state=args.seed,
    ).fit(data)
    path = model.save(args.out, overwrite=args.overwrite)
    print(
        f"trained ALS on Spark: {data.n_members:,} members x {data.n_courses:,} courses, "
        f"{data.report.events_out:,} events; fit {model.fit_seconds_:.1f} s, "
        f"total {time.perf_counter() - start:.1f} s; saved to {path}"
    )
    if data.report.dropped:
        print(f"dropped {data.report.dropped:,} events with unknown ids")
    return 0


def _spark_batch(spark: Any, args: argparse.Namespace) -> int:
    from recommend.spark.batch import spark_batch

    result = spark_batch(
        spark,
        args.model,
        args.out,
        n=args.n,
        members=args.members,
        partitions=args.partitions,
        overwrite=args.overwrite,
    )
    routes = routes_text(result.routes)
    print(
        f"{result.members:,} members, {result.rows:,} rows ({routes}) to {result.path} in "
        f"{result.seconds:.1f} s ({result.personal_members:,} members scored on "
        f"{result.partitions} partitions); model_version {result.model_version}"
    )
    return 0
