"""Latency of a single-member menu call against the bare top-k kernel.

A model with fixed random factors (20k courses x 64 factors, 50k members) over a generated
catalogue with channels, durations, lecturers, publication dates and branch compulsory
lists. Each configuration is called for random members with a history, warm (caches built
first), one call at a time; the table gives p50/p99 in milliseconds.

Members on the members table without any event (2%) give the row of a known member
without history (the cold route from the member's training attributes).

Target: the default menu (exclude seen, published only, compulsory pins, reasons) at
p50 < 1 ms and p99 < 5 ms. Run::

    python experiments/benchmarks/menu_latency.py [--calls 2000] [--courses 20000]

BLAS runs single-threaded by default (``--blas-threads``), as a serving process should:
concurrency comes from request threads, and a one-member GEMV gains nothing from BLAS
threads while their spinning workers compete with the request thread for the cores.

The last line reads ``RESULT p50_ms=... p99_ms=... p50_kernel_ms=... p50_cpu_ms=...
p99_cpu_ms=...`` (default menu; wall-clock figures, then the calling thread's CPU time,
which a shared machine's load does not inflate).
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from recommend.data.dataset import Dataset
from recommend.errors import ConfigError
from recommend.menu import lecturer_menu, member_menu
from recommend.models.base import Factors, Recommender
from recommend.schema import CHANNELS
from recommend.topk import topk_factors

logger = logging.getLogger("menu_latency")


class RandomFactors(Recommender):
    """Gaussian member and course factors: a stand-in for a trained factor model."""

    name = "random_factors"

    def __init__(self, n_factors: int = 64, seed: int = 0) -> None:
        self.n_factors = n_factors
        self.seed = seed

    def _fit(self, dataset: Dataset) -> None:
        rng = np.random.default_rng(self.seed)
        f = self.n_factors
        self.member_factors_ = rng.standard_normal((dataset.n_members, f), dtype=np.float32)
        self.course_factors_ = rng.standard_normal((dataset.n_courses, f), dtype=np.float32)
        self.course_bias_ = rng.standard_normal(dataset.n_courses, dtype=np.float32) * 0.1

    def factors(self) -> Factors:
        return Factors(self.member_factors_, self.course_factors_, self.course_bias_)


def make_dataset(n_courses: int, n_members: int, seed: int) -> Dataset:
    """A generated platform: skewed course popularity, ~12 courses per member."""
    rng = np.random.default_rng(seed)
    n_branches = max(1, n_members // 50)
    branches = np.array([f"b{i:05d}" for i in range(n_branches)], dtype=object)
    course_ids = np.array([f"c{i:06d}" for i in range(n_courses)], dtype=object)
    now = pd.Timestamp("2024-06-30")
    published = now - pd.to_timedelta(rng.integers(0, 365 * 24, n_courses), unit="h")
    future = rng.random(n_courses) < 0.02
    published = published.where(~future, now + pd.Timedelta(days=30))
    # Each branch has two or three compulsory courses (this month's themed party day and
    # campaign lessons), drawn from a pool of 5% of the catalogue.
    compulsory: list[list[str]] = [[] for _ in range(n_courses)]
    pool = rng.choice(n_courses, size=max(1, n_courses // 20), replace=False)
    for branch in branches:
        for c in rng.choice(pool, size=int(rng.integers(2, 4)), replace=False):
            compulsory[c].append(str(branch))
    courses = pd.DataFrame(
        {
            "course_id": course_ids,
            "title": [f"党课 第{i}讲" for i in range(n_courses)],
            "category": rng.choice(np.array(CHANNELS, dtype=object), n_courses),
            "duration_seconds": np.round(np.exp(rng.normal(6.5, 0.9, n_courses))),
            "lecturer_id": [
                f"L{i:04d}" for i in rng.integers(0, max(1, n_courses // 40), n_courses)
            ],
            "source": "official",
            "published_at": published,
            "compulsory_for": compulsory,
        }
    )
    member_ids = np.array([f"m{i:07d}" for i in range(n_members)], dtype=object)
    members = pd.DataFrame(
        {
            "member_id": member_ids,
            "org_id": rng.choice(branches, n_members),
            "birth_year": rng.integers(1945, 2002, n_members),
            "occupation": rng.choice(["retired", "white_collar", "rural", "student"], n_members),
        }
    )
    per_member = rng.poisson(12, n_members) + 1
    who = np.repeat(np.arange(n_members), per_member)
    popularity = 1.0 / np.arange(1, n_courses + 1) ** 0.8
    what = rng.choice(n_courses, size=who.size, p=popularity / popularity.sum())
    when = now - pd.to_timedelta(rng.integers(0, 180 * 24 * 60, who.size), unit="min")
    kind = np.where(rng.random(who.size) < 0.4, "complete", "view")
    events = pd.DataFrame(
        {
            "member_id": member_ids[who],
            "course_id": course_ids[what],
            "event": kind,
            "timestamp": when,
        }
    )
    # Members on the table without any event yet (2%): their menus take a cold-start
    # route, their segment's popular courses. Drawn last, so the rest stays as it was.
    n_quiet = max(1, n_members // 50)
    quiet = pd.DataFrame(
        {
            "member_id": np.array([f"q{i:07d}" for i in range(n_quiet)], dtype=object),
            "org_id": rng.choice(branches, n_quiet),
            "birth_year": rng.integers(1945, 2002, n_quiet),
            "occupation": rng.choice(["retired", "white_collar", "rural", "student"], n_quiet),
        }
    )
    members = pd.concat([members, quiet], ignore_index=True)
    return Dataset.from_frames(events, courses=courses, members=members, now=now)


def percentiles(
    call: Callable[[object], object], members: np.ndarray, calls: int
) -> tuple[float, float, float, float]:
    """(p50, p99) wall-clock latency in ms of ``call(member)`` over ``calls`` warm calls,
    then the p50 and p99 of the CPU time the calling thread spent (ms): on a shared
    machine the wall clock also counts waiting for a core, the thread's CPU time does
    not."""
    for m in members[:50]:
        call(m)
    times = np.empty(calls)
    cpu = np.empty(calls)
    for i in range(calls):
        m = members[i % members.size]
        start, start_cpu = time.perf_counter(), time.thread_time()
        call(m)
        times[i] = time.perf_counter() - start
        cpu[i] = time.thread_time() - start_cpu
    ms, cpu_ms = times * 1e3, cpu * 1e3
    return (
        float(np.percentile(ms, 50)),
        float(np.percentile(ms, 99)),
        float(np.percentile(cpu_ms, 50)),
        float(np.percentile(cpu_ms, 99)),
    )


DEFAULT = "menu default (seen, published, pins, reasons)"
KNOWN_COLD = "menu known member without history (cold start)"


def supported(call: Callable[[object], object], member: object) -> bool:
    """Whether the checkout under test knows a configuration's options (an older one
    may not: the row is then left out, said on stderr)."""
    try:
        call(member)
    except (TypeError, ConfigError) as exc:
        logger.warning("left out (not supported by this checkout): %s", exc)
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    start = time.perf_counter()
    ds = make_dataset(args.courses, args.members, args.seed)
    model = RandomFactors(args.factors, args.seed).fit(ds)
    logger.info(
        "dataset %d members x %d courses, %d events (%.1f s)",
        ds.n_members,
        ds.n_courses,
        len(ds.events),
        time.perf_counter() - start,
    )
    rng = np.random.default_rng(args.seed + 1)
    sample = rng.choice(ds.n_members, size=min(args.calls, ds.n_members), replace=False)
    ids = ds.member_ids.to_external(sample)
    quiet = np.array([m for m in ds.member_ids.external_ids if str(m).startswith("q")])
    f = model.factors()
    history = model.history_

    # The reference: one member's factors through the kernel with their history masked,
    # rows prepared outside the timed call.
    rows = {int(i): history.rows(np.array([i])) for i in sample}
    vectors = {int(i): f.members[[i]] for i in sample}

    def bare_kernel(i: object) -> object:
        return topk_factors(
            vectors[int(i)], f.courses, 10, course_bias=f.course_bias, exclude=rows[int(i)]
        )

    configs: dict[str, Callable[[object], object]] = {
        DEFAULT: lambda m: member_menu(model, m),
        "menu without continue-learning entries": lambda m: member_menu(
            model, m, continue_learning=False
        ),
        "menu without reasons": lambda m: member_menu(model, m, with_reasons=False),
        "menu bare (no pins/reasons/published)": lambda m: member_menu(
            model, m, with_reasons=False, pin_compulsory=False, only_published=False
        ),
        "menu channel + max_minutes=10": lambda m: member_menu(
            model, m, channel=CHANNELS[1], max_minutes=10
        ),
        "menu max_minutes='auto'": lambda m: member_menu(model, m, max_minutes="auto"),
        "menu exclude completed": lambda m: member_menu(model, m, exclude="completed"),
        "menu diversity=0.5": lambda m: member_menu(model, m, diversity=0.5),
        "lecturer menu": lambda m: lecturer_menu(model, m),
        # Unknown ids: the cold-start route (platform popularity, nothing to exclude).
        "menu unknown member (cold start)": lambda m: member_menu(model, f"new-{m}"),
    }
    # Members on the table without history: the model's cold route from their attributes
    # (segment or platform popularity, as validated at fit), one member at a time.
    quiet_calls = {KNOWN_COLD: lambda m: member_menu(model, m)}
    results: dict[str, tuple[float, float, float, float]] = {}
    with threadpool_limits(limits=args.blas_threads, user_api="blas"):
        results["bare topk kernel (reference)"] = percentiles(bare_kernel, sample, args.calls)
        for name, call in configs.items():
            if name != DEFAULT and not supported(call, ids[0]):
                continue
            results[name] = percentiles(call, ids, args.calls)
        for name, call in quiet_calls.items():
            results[name] = percentiles(call, quiet, args.calls)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.members} members x {args.courses} courses x {args.factors} factors, "
        f"{args.calls} warm calls, BLAS threads {args.blas_threads}, "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )
    print(f"{'call':48s} {'p50 ms':>8s} {'p99 ms':>8s} {'p50 CPU ms':>11s} {'p99 CPU ms':>11s}")
    for name, (p50, p99, c50, c99) in results.items():
        print(f"{name:48s} {p50:8.3f} {p99:8.3f} {c50:11.3f} {c99:11.3f}")
    p50, p99, c50, c99 = results[DEFAULT]
    p50_kernel = results["bare topk kernel (reference)"][0]
    print(
        f"RESULT p50_ms={p50:.3f} p99_ms={p99:.3f} p50_kernel_ms={p50_kernel:.3f} "
        f"p50_cpu_ms={c50:.3f} p99_cpu_ms={c99:.3f}"
    )


if __name__ == "__main__":
    main()
