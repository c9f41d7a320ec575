"""The batch job end to end: every member's menu to Parquet, against two references.

A model with fixed random factors (default 50k members x 20k courses x 64 factors) over a
generated platform (branches with compulsory courses, ~4 events per member, 2% of courses
not yet published, 5% of members without history). ``run_batch`` writes the top 20 of
every member with a history (history excluded, compulsory pins, published only) to
partitioned Parquet; the figures are members per second over the whole job (menus, pins,
files, manifest) and the peak resident memory while it runs.

References, measured in the same run, on the same factors and the same members (those
with a history: every one of them goes through a GEMM on both sides; the members without
history, whose cold-start menus the job shares per attribute row, are left out of both):

(a) ``implicit``'s own batched ``recommend`` (``filter_already_liked_items=True``, N=20,
    BLAS single-threaded or default, whichever the warm-up found faster), ranking only:
    no pins, no filters, no files;
(b) the SGEMM-only lower bound: the members x courses product alone, one single-threaded
    SGEMM per core, no selection at all.

Each side runs once to warm up (on one chunk of members), then three times in turn (job,
implicit, SGEMM, job, ...), so that load from other work on a shared machine weighs on all
of them alike; the figures are the medians of the three. Targets: >= 2x implicit, within
3x of the SGEMM bound, peak RSS < 4 GB independent of the member count (it grows with
``--chunk-size``, not with members; the model's own factors and history are part of the
baseline). The default size keeps a run to a few minutes on two cores; ``--members
1000000`` is the platform-scale run. Run::

    python experiments/benchmarks/batch.py [--members 50000] [--courses 20000] [--repeat 3]

The last line reads ``RESULT members_per_s=... implicit_members_per_s=...
speedup_vs_implicit=... ratio_to_sgemm_bound=... peak_rss_mb=... members=...``.
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
from typing import Any

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


def implicit_seconds(model: RandomFactors, idx: np.ndarray, k: int, limit: int | None) -> float:
    """Seconds of implicit's batched recommend for the members ``idx`` (BLAS ``limit``)."""
    from implicit.cpu.als import AlternatingLeastSquares

    f = model.factors()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        als = AlternatingLeastSquares(factors=f.members.shape[1], num_threads=0, random_state=0)
    # implicit has no course bias: its ranking ignores it (a little less work for it).
    als.user_factors = f.members
    als.item_factors = f.courses
    items = model.history_.base[idx]
    with threadpool_limits(limits=limit, user_api="blas"):
        start = time.perf_counter()
        als.recommend(idx, items, N=k, filter_already_liked_items=True)
        return time.perf_counter() - start


def sgemm_seconds(model: RandomFactors, idx: np.ndarray, rows: int) -> float:
    """Seconds of the product alone for the members ``idx``: one single-threaded SGEMM per
    core, reused buffers."""
    f = model.factors()
    users = f.members[idx]
    n = idx.size
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
    return time.perf_counter() - start


def job_seconds(model: RandomFactors, ids: np.ndarray, out: Path, args: argparse.Namespace) -> Any:
    """Seconds of the batch job for the members ``ids`` into a fresh folder, and its result."""
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    result = run_batch(
        model,
        out,
        n=args.n,
        members=ids,
        chunk_size=args.chunk_size,
        model_version="bench",
        progress=args.progress,
    )
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each side")
    parser.add_argument("--out", help="output folder (default: a temporary one, removed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="show the progress bar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    start = time.perf_counter()
    ds = make_dataset(args.members, args.courses, args.seed)
    model = RandomFactors(args.factors, args.seed).fit(ds)
    # The members both sides rank: those with a history (model indices, in model order).
    idx = np.flatnonzero(np.diff(model.history_.base.indptr) > 0)
    ids = model.member_ids_.external_ids[idx]
    print(
        f"platform: {ds.n_members:,} members ({idx.size:,} with a history, ranked by both "
        f"sides) x {ds.n_courses:,} courses, {len(ds.events):,} events "
        f"({time.perf_counter() - start:.1f} s to generate)"
    )

    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="batch-bench-"))
    out = root / "menus"
    try:
        # Warm-up on one chunk of members: imports, thread pools, BLAS, page cache; and
        # implicit's faster BLAS setting.
        warm = slice(0, min(args.chunk_size, idx.size))
        job_seconds(model, ids[warm], out, args)
        sgemm_seconds(model, idx[warm], 400)
        limits = {"BLAS 1 thread": 1, "BLAS default": None}
        trial = {
            label: implicit_seconds(model, idx[warm], args.n, lim) for label, lim in limits.items()
        }
        implicit_label = min(trial, key=trial.__getitem__)
        load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

        times: dict[str, list[float]] = {"job": [], "implicit": [], "sgemm": []}
        baseline = psutil.Process().memory_info().rss
        peak = baseline
        for _ in range(args.repeat):
            with PeakRss() as rss:
                took, result = job_seconds(model, ids, out, args)
            peak = max(peak, rss.peak)
            times["job"].append(took)
            times["implicit"].append(implicit_seconds(model, idx, args.n, limits[implicit_label]))
            times["sgemm"].append(sgemm_seconds(model, idx, 400))
        size = sum(p.stat().st_size for p in result.files)
    finally:
        if not args.out:
            shutil.rmtree(root, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rate = {side: idx.size / float(np.median(t)) for side, t in times.items()}

    def runs(side: str) -> str:
        return ", ".join(f"{idx.size / t:,.0f}" for t in times[side])

    print(
        f"{idx.size:,} members x {args.courses:,} courses x {args.factors} factors, n={args.n}, "
        f"chunks of {args.chunk_size:,}, median of {args.repeat} runs after a warm-up; load "
        f"average {load_before:.1f} before, {load:.1f} after, on {os.cpu_count()} cores"
    )
    print(
        f"batch job     {rate['job']:>10,.0f} members/s  (runs: {runs('job')}; "
        f"{result.rows:,} rows, {len(result.files)} files, {size / 1e6:.0f} MB)"
    )
    print(
        f"implicit      {rate['implicit']:>10,.0f} members/s  (recommend, {implicit_label}; "
        f"runs: {runs('implicit')})"
    )
    print(f"SGEMM bound   {rate['sgemm']:>10,.0f} members/s  (product only; runs: {runs('sgemm')})")
    print(
        f"peak RSS      {peak / 2**20:>10,.0f} MB  (before the job {baseline / 2**20:,.0f} MB: "
        f"model, history, platform tables; the job added {(peak - baseline) / 2**20:,.0f} MB)"
    )
    print(
        f"ratio: the job is {rate['job'] / rate['implicit']:.2f}x implicit and "
        f"{rate['sgemm'] / rate['job']:.2f}x slower than the SGEMM bound"
    )
    print(
        f"RESULT members_per_s={rate['job']:.0f} implicit_members_per_s={rate['implicit']:.0f} "
        f"speedup_vs_implicit={rate['job'] / rate['implicit']:.2f} "
        f"ratio_to_sgemm_bound={rate['sgemm'] / rate['job']:.2f} "
        f"peak_rss_mb={peak / 2**20:.0f} members={idx.size}"
    )


if __name__ == "__main__":
    main()
