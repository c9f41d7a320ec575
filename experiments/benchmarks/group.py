"""Latency of a group menu against the bare scoring + top-k of the same members.

A model with fixed random factors (20k courses x 64 factors, 50k members) over the
generated catalogue of ``menu_latency.py`` (channels, durations, lecturers, publication
dates, branch compulsory lists). A group menu of n=10 with a 120-minute budget and a quota
of two theory-study courses (coverage strategy) is ordered for 5,000 and for 100 random
members, warm (caches built first); the reference is the shared kernel's top-k of the same
members (``model.topk``: scoring + selection, nothing else). Targets: 5,000 members
< 200 ms, 100 members < 10 ms on 2 cores. Run::

    python experiments/benchmarks/group.py [--repeats 7] [--rounds 3]

Group menu and reference alternate ``--rounds`` times, ``--repeats`` calls each; the
figures are medians over the rounds of the per-round medians. The last line reads
``RESULT ms_5000=... ms_100=... ref_ms_5000=... ref_ms_100=...``. On a shared machine,
read the ratio to the reference (and the CPU times) along with the absolute figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from menu_latency import RandomFactors, make_dataset

from recommend.group import order_for_group


def median_ms(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median wall and CPU (all threads of the process) milliseconds of ``call``."""
    call()  # warm: per-model lookups, thread pools
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the two")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    ds = make_dataset(args.courses, args.members, args.seed)
    model = RandomFactors(seed=args.seed).fit(ds)
    rng = np.random.default_rng(args.seed)
    ids = model.member_ids_.external_ids
    results = {}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"{args.courses} courses, {args.members} members; median of {args.repeats} calls; "
        f"load average {load:.1f} on {os.cpu_count()} cores (CPU ms: all threads)"
    )
    print(
        f"{'group':>8} {'group menu ms':>14} {'score+top-k ms':>15} {'ratio':>6} "
        f"{'menu CPU ms':>12} {'ref CPU ms':>11}"
    )
    for size in (5_000, 100):
        pick = rng.choice(len(ids), size=size, replace=False)
        members = list(ids[pick])

        def group(members: list[object] = members) -> object:
            return order_for_group(
                model, members, 10, budget_minutes=120, quotas={"理论学习": 2}, max_pins=2
            )

        def reference(pick: np.ndarray = pick) -> object:
            return model.topk(pick, 20)

        # Alternate the two, so that a burst of load on the machine hits both alike.
        runs: dict[str, list[tuple[float, float]]] = {"group": [], "reference": []}
        for _ in range(args.rounds):
            runs["group"].append(median_ms(group, args.repeats))
            runs["reference"].append(median_ms(reference, args.repeats))
        (ms, cpu), (ref, ref_cpu) = (
            tuple(float(np.median(v)) for v in zip(*runs[k], strict=True))
            for k in ("group", "reference")
        )
        results[size] = (ms, ref)
        print(f"{size:>8} {ms:>14.1f} {ref:>15.1f} {ms / ref:>6.2f} {cpu:>12.1f} {ref_cpu:>11.1f}")
    menu = group()
    print(
        f"\nlast menu: {len(menu.menu)} courses, {menu.total_minutes:.0f} minutes, "
        f"coverage {menu.coverage:.2f}"
    )
    print(
        f"RESULT ms_5000={results[5_000][0]:.1f} ms_100={results[100][0]:.1f} "
        f"ref_ms_5000={results[5_000][1]:.1f} ref_ms_100={results[100][1]:.1f}"
    )


if __name__ == "__main__":
    main()
