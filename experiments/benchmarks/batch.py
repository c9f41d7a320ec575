"""The batch job end to end: every member's menu to Parquet, against two references.

A model with fixed random factors (default 1M members x 20k courses x 64 factors) over a
generated platform (branches with compulsory courses, ~4 events per member, 2% of courses
not yet published, 5% of members without history, who take the cold-start route).
``run_batch`` writes every member's top 20 (history excluded, compulsory pins, published
only) to partitioned Parquet; the figures are members per second over the whole job
(menus, pins, cold routes, files, manifest) and the peak resident memory while it runs.

References, measured in the same run on the same factors:

(a) ``implicit``'s own batched ``recommend`` (``filter_already_liked_items=True``, N=20;
    the faster of BLAS single-threaded and BLAS default), ranking only: no pins, no
    filters, no files;
(b) the SGEMM-only lower bound: the members x courses product alone, one single-threaded
    SGEMM per core, no selection at all.

Both references are timed on ``--ref-members`` members (default 100k), once before and once
after the job, and extrapolated per member (their cost is linear in members); the ratios
use the mean of the two rates, so that load from other work on a shared machine that
changes during the run weighs on both sides. Targets: >= 2x implicit, within 3x of the SGEMM
bound, peak RSS < 4 GB independent of the member count (it grows with ``--chunk-size``,
not with members; the model's own factors and history are part of the baseline). Run::

    python experiments/benchmarks/batch.py [--members 1000000] [--courses 20000]

The last line reads ``RESULT members_per_s=... speedup_vs_implicit=...
ratio_to_sgemm_bound=... peak_rss_mb=...``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import psutil

# The benchmarks share one stand-in factor model (this folder is on sys.path when run).
from menu_latency import RandomFactors
from threadpoolctl import threadpool_limits

from recommend.batch import run_batch
from recommend.data.dataset import Dataset
from recommend.schema import CHANNELS

logger = logging.getLogger("batch_bench")


def make_dataset(n_members: int, n_courses: int, seed: int) -> Dataset:
    """A generated platform: skewed popularity, ~4 events per member, 5% cold members."""
    rng = np.random.default_rng(seed)
    n_branches = max(1, n_members // 50)
    branches = np.array([f"b{i:06d}" for i in range(n_branches)], dtype=object)
    course_ids = np.array([f"c{i:06d}" for i in range(n_courses)], dtype=object)
    now = pd.Timestamp("2024-06-30")
    published = now - pd.to_timedelta(rng.integers(0, 365 * 24, n_courses), unit="h")
    published = published.where(rng.random(n_courses) >= 0.02, now + pd.Timedelta(days=30))
    # Two or three compulsory courses per branch, from a pool of 5% of the catalogue.
    pool = rng.choice(n_courses, size=max(1, n_courses // 20), replace=False)
    picks = rng.choice(pool, size=(n_branches, 3))
    compulsory: list[list[str]] = [[] for _ in range(n_courses)]
    for b, row in enumerate(picks.tolist()):
        for c in set(row[: 2 + b % 2]):
            compulsory[c].append(str(branches[b]))
    courses = pd.DataFrame(
        {
            "course_id": course_ids,
            "title": [f"党课 第{i}讲" for i in range(n_courses)],
            "category": rng.choice(np.array(CHANNELS, dtype=object), n_courses),
            "duration_seconds": np.round(np.exp(rng.normal(6.5, 0.9, n_courses))),
            "source": "official",
            "published_at": published,
            "compulsory_for": compulsory,
        }
    )
    member_ids = np.array([f"m{i:08d}" for i in range(n_members)], dtype=object)
    members = pd.DataFrame({"member_id": member_ids, "org_id": rng.choice(branches, n_members)})
    active = rng.random(n_members) >= 0.05
    per_member = np.where(active, rng.poisson(3, n_members) + 1, 0)
    who = np.repeat(np.arange(n_members), per_member)
    popularity = 1.0 / np.arange(1, n_courses + 1) ** 0.8
    what = rng.choice(n_courses, size=who.size, p=popularity / popularity.sum())
    events = pd.DataFrame(
        {
            "member_id": member_ids[who],
            "course_id": course_ids[what],
            "event": np.where(rng.random(who.size) < 0.4, "complete", "view"),
            "timestamp": now - pd.to_timedelta(rng.integers(0, 180 * 24 * 60, who.size), "min"),
        }
    )
    return Dataset.from_frames(events, courses=courses, members=members, now=now)


class PeakRss:
    """Samples this process's resident memory in a background thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def implicit_rate(model: RandomFactors, n: int, k: int) -> tuple[float, str]:
    """Members/s of implicit's batched recommend on the first ``n`` members."""
    from implicit.cpu.als import AlternatingLeastSquares

    f = model.factors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        als = AlternatingLeastSquares(factors=f.members.shape[1], num_threads=0, random_state=0)
    # implicit has no course bias: its ranking ignores it (a little less work for it).
    als.user_factors = f.members[:n]
    als.item_factors = f.courses
    userids = np.arange(n)
    items = model.history_.base[:n]
    rates = {}
    for label, limit in (("BLAS 1 thread", 1), ("BLAS default", None)):
        with threadpool_limits(limits=limit, user_api="blas"):
            start = time.perf_counter()
            als.recommend(userids, items, N=k, filter_already_liked_items=True)
            rates[label] = n / (time.perf_counter() - start)
    best = max(rates, key=rates.__getitem__)
    return rates[best], best


def sgemm_rate(model: RandomFactors, n: int, rows: int) -> float:
    """Members/s of the product alone: one single-threaded SGEMM per core, reused buffers."""
    f = model.factors()
    users = f.members[:n]
    course_t = np.ascontiguousarray(f.courses.T)
    starts = iter(range(0, n, rows))
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1

    def work() -> None:
        buffer = np.empty((rows, course_t.shape[1]), dtype=np.float32)
        for lo in starts:
            hi = min(lo + rows, n)
            np.matmul(users[lo:hi], course_t, out=buffer[: hi - lo])

    start = time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--ref-members", type=int, default=100_000)
    parser.add_argument("--out", help="output folder (default: a temporary one, removed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show the progress bar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    ds = make_dataset(args.members, args.courses, args.seed)
    model = RandomFactors(args.factors, args.seed).fit(ds)
    logger.info(
        "platform: %d members x %d courses, %d events (%.1f s to generate)",
        ds.n_members,
        ds.n_courses,
        len(ds.events),
        time.perf_counter() - start,
    )
    ref_n = min(args.ref_members, args.members)
    # The references run before and after the job, and each counts at its mean rate: on a
    # machine shared with other work, load that changes during the run then weighs on the
    # job and on the references alike.
    sgemm_before = sgemm_rate(model, ref_n, 400)
    implicit_before, implicit_label = implicit_rate(model, ref_n, args.n)
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="batch-bench-"))
    baseline = psutil.Process().memory_info().rss
    try:
        with PeakRss() as rss:
            t0 = time.perf_counter()
            result = run_batch(
                model,
                out / "menus",
                n=args.n,
                chunk_size=args.chunk_size,
                model_version="bench",
                overwrite=True,
                progress=args.progress,
            )
            took = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in result.files)
    finally:
        if not args.out:
            shutil.rmtree(out, ignore_errors=True)
    ours = result.members / took
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sgemm_after = sgemm_rate(model, ref_n, 400)
    implicit_after, _ = implicit_rate(model, ref_n, args.n)
    sgemm = (sgemm_before + sgemm_after) / 2
    implicit = (implicit_before + implicit_after) / 2
    print(
        f"{args.members:,} members x {args.courses:,} courses x {args.factors} factors, "
        f"n={args.n}, chunks of {args.chunk_size:,}; load average {load_before:.1f} before "
        f"the job, {load:.1f} after it, on {os.cpu_count()} cores"
    )
    print(
        f"batch job     {ours:>10,.0f} members/s  ({took:.1f} s, {result.rows:,} rows, "
        f"{len(result.files)} files, {size / 1e6:.0f} MB, routes {result.routes})"
    )
    print(
        f"implicit      {implicit:>10,.0f} members/s  (recommend, {implicit_label}, "
        f"measured on {ref_n:,} members before and after the job: {implicit_before:,.0f} "
        f"and {implicit_after:,.0f})"
    )
    print(
        f"SGEMM bound   {sgemm:>10,.0f} members/s  (product only, measured on {ref_n:,} "
        f"members before and after the job: {sgemm_before:,.0f} and {sgemm_after:,.0f})"
    )
    print(
        f"peak RSS      {rss.peak / 2**20:>10,.0f} MB  (before the job {baseline / 2**20:,.0f} MB: "
        f"model, history, platform tables; the job added {(rss.peak - baseline) / 2**20:,.0f} MB)"
    )
    print(
        f"RESULT members_per_s={ours:.0f} speedup_vs_implicit={ours / implicit:.2f} "
        f"ratio_to_sgemm_bound={sgemm / ours:.2f} peak_rss_mb={rss.peak / 2**20:.0f}"
    )


if __name__ == "__main__":
    main()
