"""Spark in local mode against the single-machine path, on the same synthetic data.

Events are generated directly (not through the full simulator, to keep memory sane at a
million members): members in taste segments, each segment with its own skewed course
popularity, ``--events-per-member`` events each over 180 days with watch times, integer
ids. They are written as Parquet files, then measured side by side in one run:

1. preparing the confidence matrix: ``Dataset.from_frames`` (pandas in memory) vs
   ``recommend.spark.interactions`` (Parquet read, validation, id maps, weighting);
2. ALS fit: ``recommend.models.ALS`` (``implicit``, all cores) vs ``SparkALS`` (MLlib,
   ``implicitPrefs``), same rank and iterations; the figure is the ratio Spark / implicit;
3. batch scoring of the same artifact (top ``--n``, history excluded, published only):
   ``run_batch`` vs ``spark_batch``; the ratio is Spark / single machine.

Peak memory is the resident set of this process and all its children (the Spark JVM and
its Python workers). Run::

    python experiments/benchmarks/spark.py [--members 1000000] [--master local[2]]

The last line reads ``RESULT members=... events=... implicit_fit_s=... spark_fit_s=...
fit_ratio=... batch_s=... spark_batch_s=... batch_ratio=... peak_rss_gb=...``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

import recommend as rc
from recommend.batch import run_batch

EVENTS = np.array(["view", "progress", "complete", "like", "favorite", "share"], dtype=object)
EVENT_P = np.array([0.45, 0.25, 0.15, 0.07, 0.05, 0.03])


def generate(
    n_members: int, n_courses: int, per_member: float, seed: int, out: Path, files: int = 8
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Write the events as ``files`` Parquet files under ``out``; return (courses, members,
    events): members in branches of 50, each branch with two compulsory courses."""
    rng = np.random.default_rng(seed)
    n_segments = 64
    durations = rng.integers(120, 3600, n_courses).astype(np.float64)
    branches = np.array([f"b{i:06d}" for i in range(max(1, n_members // 50))], dtype=object)
    compulsory: list[list[str]] = [[] for _ in range(n_courses)]
    for branch, course in zip(
        np.repeat(branches, 2), rng.integers(0, min(200, n_courses), 2 * branches.size), strict=True
    ):
        compulsory[course].append(branch)
    courses = pd.DataFrame(
        {
            "course_id": np.arange(n_courses, dtype=np.int64),
            "category": rng.choice(np.array(rc.CHANNELS, dtype=object), n_courses),
            "duration_seconds": durations,
            "published_at": pd.Timestamp("2024-01-01"),
            "compulsory_for": compulsory,
        }
    )
    member_table = pd.DataFrame(
        {
            "member_id": np.arange(n_members, dtype=np.int64),
            "org_id": branches[np.arange(n_members) // 50 % branches.size],
        }
    )
    # Each segment likes its own (shuffled) Zipf ranking of the catalogue.
    base = 1.0 / np.arange(1, n_courses + 1) ** 0.9
    prefs = np.stack([rng.permutation(base) for _ in range(n_segments)])
    prefs = np.cumsum(prefs / prefs.sum(axis=1, keepdims=True), axis=1)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    bounds = np.linspace(0, n_members, files + 1).astype(np.int64)
    for f in range(files):
        members = np.arange(bounds[f], bounds[f + 1], dtype=np.int64)
        counts = rng.poisson(per_member, members.size)
        member = np.repeat(members, counts)
        segment = member % n_segments
        course = np.empty(member.size, dtype=np.int64)
        for s in range(n_segments):
            at = np.flatnonzero(segment == s)
            course[at] = np.searchsorted(prefs[s], rng.random(at.size))
        course = np.minimum(course, n_courses - 1)
        seconds = rng.integers(0, 180 * 86_400, member.size)
        table = pa.table(
            {
                "member_id": member,
                "course_id": course,
                "event": rng.choice(EVENTS, member.size, p=EVENT_P),
                "timestamp": pa.array(start + seconds.astype("timedelta64[s]")),
                "watch_seconds": durations[course] * rng.random(member.size),
            }
        )
        pq.write_table(table, out / f"part-{f:03d}.parquet")
        total += member.size
    return courses, member_table, total


class PeakMemory:
    """Peak RSS of this process and its children, sampled every 0.2 s."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--courses", type=int, default=10_000)
    parser.add_argument("--events-per-member", type=float, default=15.0)
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--n", type=int, default=20, help="menu length of the batch jobs")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="scratch folder (default: a temporary one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    work = Path(args.work or tempfile.mkdtemp(prefix="spark-bench-"))
    params = dict(n_factors=args.factors, iterations=args.iterations, regularization=0.05)

    with PeakMemory() as memory:
        t = time.perf_counter()
        courses, members, n_events = generate(
            args.members, args.courses, args.events_per_member, args.seed, work / "events"
        )
        print(f"generated {n_events:,} events in {time.perf_counter() - t:.1f} s")

        # ---------------------------------------------------------------- single machine
        t = time.perf_counter()
        events = pd.read_parquet(work / "events")
        ds = rc.Dataset.from_frames(events, courses=courses, members=members)
        dataset_s = time.perf_counter() - t
        del events
        t = time.perf_counter()
        model = rc.ALS(**params).fit(ds)
        implicit_fit_s = time.perf_counter() - t
        rc.save(model, work / "model")
        print(f"single machine: Dataset {dataset_s:.1f} s, implicit ALS fit {implicit_fit_s:.1f} s")
        del model, ds
        t = time.perf_counter()
        single = run_batch(work / "model", work / "menus", n=args.n, progress=False)
        batch_s = time.perf_counter() - t
        print(f"run_batch: {single.members:,} members in {batch_s:.1f} s")

        # ---------------------------------------------------------------- Spark
        from recommend.spark import SparkALS, interactions, read_events, spark_batch, spark_session

        t = time.perf_counter()
        spark = spark_session(args.master, driver_memory=args.driver_memory, shuffle_partitions=16)
        session_s = time.perf_counter() - t
        t = time.perf_counter()
        # The members table as Spark reads it on a cluster (recommend spark train --members):
        # its ids are numbered on the executors, not shipped from the driver.
        members.to_parquet(work / "members.parquet")
        data = interactions(
            read_events(spark, str(work / "events")),
            courses=courses,
            members=spark.read.parquet(str(work / "members.parquet")),
        )
        spark_prep_s = time.perf_counter() - t
        cells = int(data.frame.count())
        t = time.perf_counter()
        spark_model = SparkALS(**params, blocks=4).fit(data)
        spark_fit_s = time.perf_counter() - t
        print(
            f"spark ({args.master}): session {session_s:.1f} s, interactions {spark_prep_s:.1f} s, "
            f"ALS fit {spark_fit_s:.1f} s (export to a recommend ALS included)"
        )
        del spark_model, data
        t = time.perf_counter()
        result = spark_batch(spark, work / "model", work / "spark-menus", n=args.n)
        spark_batch_s = time.perf_counter() - t
        print(
            f"spark_batch: {result.members:,} members in {spark_batch_s:.1f} s "
            f"({result.partitions} partitions); same rows: {result.rows == single.rows}"
        )
        spark.stop()

    def size(path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*.parquet"))

    # Per-row sizes, for sizing a cluster (docs/scale_plan.md).
    event_bytes = size(work / "events") / n_events
    menu_bytes = size(work / "spark-menus") / result.rows
    artifact_bytes = size(work / "model") + (work / "model" / "arrays.npz").stat().st_size
    print(
        f"sizes: {event_bytes:.1f} B per event (Parquet), {cells / n_events:.3f} cells per "
        f"event, {menu_bytes:.1f} B per menu row, artifact {artifact_bytes / 2**20:.0f} MB"
    )
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"RESULT members={args.members} courses={args.courses} events={n_events} "
        f"dataset_s={dataset_s:.1f} spark_prep_s={spark_prep_s:.1f} "
        f"prep_ratio={spark_prep_s / dataset_s:.2f} implicit_fit_s={implicit_fit_s:.1f} "
        f"spark_fit_s={spark_fit_s:.1f} fit_ratio={spark_fit_s / implicit_fit_s:.2f} "
        f"batch_s={batch_s:.1f} spark_batch_s={spark_batch_s:.1f} "
        f"batch_ratio={spark_batch_s / batch_s:.2f} peak_rss_gb={memory.peak / 2**30:.2f} "
        f"cells={cells} event_bytes={event_bytes:.1f} menu_row_bytes={menu_bytes:.1f} "
        f"artifact_mb={artifact_bytes / 2**20:.0f}"
    )


if __name__ == "__main__":
    main()
