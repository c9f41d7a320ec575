"""Benchmark of the top-k kernel against ``implicit``'s ``recommend`` and a plain SGEMM.

Same float32 factors and the same seen-courses matrix go to ``recommend.topk.topk_factors``
and to ``implicit.cpu.als.AlternatingLeastSquares.recommend`` (already-seen courses
filtered). Runs are interleaved so that load from other processes hits all contenders alike;
the table shows median and best over ``--repeats``. ``implicit`` is timed both with its
recommended single-threaded BLAS and with BLAS left as is, and the faster of the two counts.

The "numpy SGEMM only" row is the bound: numpy computing the whole members x courses
product in blocks (no masking, no selection), with BLAS threads over all cores. The
"kernel's blocking" row is the same product computed as the kernel does it (one
single-threaded SGEMM per worker), which shows what masking and selection add. GFLOP/s
count only the GEMM, 2 * members * courses * factors.

Usage::

    python experiments/benchmarks/topk.py            # 50k members x 20k courses x 64, k=20

The last line is machine-readable::

    RESULT speedup_vs_implicit=... gflops=... sgemm_gflops=... ours_s=... implicit_s=...
    agreement=...
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

from recommend.topk import TopK, block_rows, topk_factors


def make_problem(
    members: int, courses: int, factors: int, seen: int, seed: int
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Random float32 factors and a CSR of ``seen`` random courses per member."""
    rng = np.random.default_rng(seed)
    member_factors = rng.standard_normal((members, factors), dtype=np.float32)
    course_factors = rng.standard_normal((courses, factors), dtype=np.float32)
    rows = np.repeat(np.arange(members), seen)
    cols = rng.integers(0, courses, size=members * seen)
    data = np.ones(rows.shape[0], dtype=np.float32)
    seen_matrix = sp.csr_matrix((data, (rows, cols)), shape=(members, courses))
    seen_matrix.sum_duplicates()
    return member_factors, course_factors, seen_matrix


def implicit_model(member_factors: np.ndarray, course_factors: np.ndarray):
    """An implicit ALS model carrying the given factors (CPU, all cores)."""
    from implicit.cpu.als import AlternatingLeastSquares

    with warnings.catch_warnings():
        # implicit warns that a multi-threaded BLAS slows its *training*; we only rank.
        warnings.simplefilter("ignore", RuntimeWarning)
        model = AlternatingLeastSquares(
            factors=member_factors.shape[1], num_threads=0, random_state=0
        )
    model.user_factors = member_factors
    model.item_factors = course_factors
    return model


def sgemm(member_factors: np.ndarray, course_factors: np.ndarray, rows: int) -> None:
    """The full members x courses product, block by block, into one reused buffer."""
    n = member_factors.shape[0]
    buffer = np.empty((rows, course_factors.shape[0]), dtype=np.float32)
    course_t = course_factors.T
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        np.matmul(member_factors[start:stop], course_t, out=buffer[: stop - start])


def sgemm_workers(
    member_factors: np.ndarray, course_factors: np.ndarray, rows: int, threads: int
) -> None:
    """The same product as the kernel computes it: one single-threaded SGEMM per worker."""
    n = member_factors.shape[0]
    course_t = np.ascontiguousarray(course_factors.T)
    starts = iter(range(0, n, rows))

    def work() -> None:
        buffer = np.empty((rows, course_factors.shape[0]), dtype=np.float32)
        for start in starts:
            stop = min(start + rows, n)
            np.matmul(member_factors[start:stop], course_t, out=buffer[: stop - start])

    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()


def agreement(
    ours: TopK,
    implicit_ids: np.ndarray,
    member_factors: np.ndarray,
    course_factors: np.ndarray,
    seen: sp.csr_matrix,
) -> tuple[float, float, int]:
    """Compare top-k sets; differences are fine only where scores tie at the k-th place.

    Returns the fraction of members with identical sets, the fraction whose sets agree up
    to ties (differing courses score within float32 rounding of the k-th best, recomputed
    in float64), and how many returned courses were already seen (must be 0).
    """
    ids_ours = ours.indices.astype(np.int64)
    ids_impl = implicit_ids.astype(np.int64)
    same = np.sort(ids_ours, axis=1) == np.sort(ids_impl, axis=1)
    identical = same.all(axis=1)

    users = member_factors.astype(np.float64)
    courses = course_factors.astype(np.float64)
    exact_ours = np.einsum("nf,nkf->nk", users, courses[ids_ours])
    exact_impl = np.einsum("nf,nkf->nk", users, courses[ids_impl])
    kth = np.minimum(exact_ours.min(axis=1), exact_impl.min(axis=1))
    # float32 GEMM rounding: a few ulps of the score magnitude reachable with these factors.
    scale = np.abs(users).sum(axis=1) * np.abs(courses).max()
    tol = 1e-6 * scale
    differs = ~identical
    ok = identical.copy()
    for row in np.flatnonzero(differs):
        a, b = set(ids_ours[row]), set(ids_impl[row])
        extra = list(a ^ b)
        scores = users[row] @ courses[extra].T
        ok[row] = bool(np.all(np.abs(scores - kth[row]) <= tol[row]))

    rows = np.repeat(np.arange(ids_ours.shape[0]), ids_ours.shape[1])
    seen_returned = int(np.asarray(seen[rows, ids_ours.ravel()]).astype(bool).sum())
    return float(identical.mean()), float(ok.mean()), seen_returned


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seen-per-member", type=int, default=20)
    parser.add_argument("--block-size", type=int, default=None, help="rows per block (ours)")
    parser.add_argument("--threads", type=int, default=None, help="worker threads (ours)")
    parser.add_argument("--sgemm-rows", type=int, default=1024, help="rows per SGEMM block")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    n, m, f, k = args.members, args.courses, args.factors, args.k
    flops = 2.0 * n * m * f
    print(
        f"topk benchmark: {n} members x {m} courses x {f} factors, k={k}, "
        f"{args.seen_per_member} seen per member, {args.repeats} repeats"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus; python {sys.version.split()[0]}"
        f", numpy {np.__version__}"
    )
    for info in threadpool_info():
        print(
            f"  {info['user_api']}: {info['internal_api']} {info.get('version')} "
            f"({info.get('architecture')}), {info['num_threads']} threads"
        )

    threads = args.threads or len(os.sched_getaffinity(0))
    # The kernel's default block (about 96 MB of float32 scores per worker).
    kernel_rows = args.block_size or block_rows(n, m, threads)
    users, courses, seen = make_problem(n, m, f, args.seen_per_member, args.seed)
    model = implicit_model(users, courses)
    userids = np.arange(n)

    def run_ours() -> TopK:
        return topk_factors(
            users, courses, k, exclude=seen, block_size=args.block_size, num_threads=args.threads
        )

    def run_implicit() -> tuple[np.ndarray, np.ndarray]:
        return model.recommend(userids, seen, N=k, filter_already_liked_items=True)

    def run_implicit_blas1() -> tuple[np.ndarray, np.ndarray]:
        with threadpool_limits(limits=1, user_api="blas"):
            return run_implicit()

    contenders: dict[str, Callable[[], object]] = {
        "recommend.topk": run_ours,
        "implicit (BLAS 1 thread)": run_implicit_blas1,
        "implicit (BLAS default)": run_implicit,
        "numpy SGEMM only": lambda: sgemm(users, courses, args.sgemm_rows),
        "SGEMM, kernel's blocking": lambda: sgemm_workers(users, courses, kernel_rows, threads),
    }
    # Warm-up: thread pools, page faults of the first buffers.
    small = slice(0, min(n, 2048))
    topk_factors(users[small], courses, k, exclude=seen[small])
    sgemm(users[small], courses, args.sgemm_rows)

    times: dict[str, list[float]] = {name: [] for name in contenders}
    results: dict[str, object] = {}
    for repeat in range(args.repeats):
        for name, fn in contenders.items():
            seconds, results[name] = timed(fn)
            times[name].append(seconds)
        print(
            f"  repeat {repeat + 1}: " + ", ".join(f"{nm} {t[-1]:.2f}s" for nm, t in times.items())
        )

    median = {name: statistics.median(t) for name, t in times.items()}
    best = {name: min(t) for name, t in times.items()}
    implicit_name = min(("implicit (BLAS 1 thread)", "implicit (BLAS default)"), key=median.get)
    sgemm_s = median["numpy SGEMM only"]

    print()
    print("(vs SGEMM: plain numpy SGEMM time / this row's time; GFLOP/s from the median)")
    print(f"{'':28s} {'median s':>9s} {'best s':>8s} {'GFLOP/s':>8s} {'vs SGEMM':>9s}")
    for name in contenders:
        gflops = flops / median[name] / 1e9
        print(
            f"{name:28s} {median[name]:9.3f} {best[name]:8.3f} {gflops:8.1f} "
            f"{sgemm_s / median[name]:8.0%}"
        )

    ours = results["recommend.topk"]
    assert isinstance(ours, TopK)
    impl_ids, _ = results[implicit_name]  # type: ignore[misc]
    identical, up_to_ties, seen_returned = agreement(ours, impl_ids, users, courses, seen)
    speedup = median[implicit_name] / median["recommend.topk"]
    print()
    print(
        f"speedup vs {implicit_name}: {speedup:.2f}x (median), "
        f"{best[implicit_name] / best['recommend.topk']:.2f}x (best)"
    )
    print(
        f"top-{k} sets identical for {identical:.4%} of members, "
        f"equal up to ties for {up_to_ties:.4%}; already-seen courses returned: {seen_returned}"
    )
    gflops_ours = flops / median["recommend.topk"] / 1e9
    gflops_sgemm = flops / sgemm_s / 1e9
    print(
        f"RESULT speedup_vs_implicit={speedup:.2f} gflops={gflops_ours:.1f} "
        f"sgemm_gflops={gflops_sgemm:.1f} ours_s={median['recommend.topk']:.3f} "
        f"implicit_s={median[implicit_name]:.3f} agreement={up_to_ties:.4f}"
    )
    return 0 if up_to_ties == 1.0 and seen_returned == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
