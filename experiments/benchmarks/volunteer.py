"""Volunteer dispatch at city scale: 2,000 simultaneous requests x 100,000 volunteers.

The simulator (``recommend.volunteer.simulate_volunteering``) registers 100,000 volunteers
on Hangzhou's districts with 100,000 past services, and posts 2,000 requests of the four
kinds that all start within the same two hours (one conflict group: every volunteer serves
at most once). The pool is built once (as a service would keep it); then the batch is
dispatched by the optimiser (candidates pruned per request, then the min-cost matching)
and, side by side, by the nearest-available baseline (same pruning, greedy) as the
reference. One urgent request (应急救助) is shortlisted, median over 50 such requests; its
reference is the floor of any nearest-first shortlist: the distance to all 100,000
volunteers and a top-10 selection. Targets on 2 cores: dispatch < 10 s, shortlist < 50 ms.
Run::

    python experiments/benchmarks/volunteer.py [--volunteers 100000] [--requests 2000]

Acceptance is the truth's mean probability that the dispatched volunteers accept; the Gini
of hours is over every registered volunteer (their last 28 days plus this dispatch). The
last line reads ``RESULT dispatch_s=... shortlist_ms=... fill_rate=... acceptance=...
hours_gini=...`` with the references and ratios after them.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from recommend.volunteer import (
    RequestBatch,
    VolunteerPool,
    dispatch,
    haversine_km,
    shortlist,
    simulate_volunteering,
)
from recommend.volunteer.metrics import gini, hours_by_volunteer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volunteers", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--shortlists", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    world = simulate_volunteering(
        args.volunteers,
        args.requests,
        simultaneous=True,
        history_services=args.volunteers,
        seed=args.seed,
    )
    start = time.perf_counter()
    pool = VolunteerPool.build(world.volunteers, world.services, now=world.now)
    batch = RequestBatch.build(world.requests, pool)
    build_s = time.perf_counter() - start
    print(
        f"{args.volunteers:,} volunteers, {args.requests:,} simultaneous requests "
        f"({int(batch.headcount.sum()):,} people needed); pool built in {build_s:.1f} s; "
        f"load average {load:.1f} on {os.cpu_count()} cores"
    )

    timings: dict[str, tuple[float, float]] = {}
    results = {}
    for policy in ("optimal", "nearest"):
        wall, cpu = time.perf_counter(), time.process_time()
        results[policy] = dispatch(pool, batch, policy=policy)
        timings[policy] = (time.perf_counter() - wall, time.process_time() - cpu)
    print(f"{'policy':>8} {'wall s':>7} {'CPU s':>6} {'fill':>6} {'accept':>7} {'km':>6}")
    figures = {}
    for policy, result in results.items():
        asg = result.assignments
        accept = world.truth.acceptance(
            asg, world.requests, world.volunteers, world.services, world.now
        )
        since = world.now - pd.Timedelta(days=28)
        hours = hours_by_volunteer(
            world.volunteers["volunteer_id"], asg, world.services, since=since
        )
        figures[policy] = (result.fill_rate, float(accept.mean()), gini(hours))
        wall_s, cpu_s = timings[policy]
        print(
            f"{policy:>8} {wall_s:>7.2f} {cpu_s:>6.2f} {result.fill_rate:>6.3f} "
            f"{accept.mean():>7.3f} {asg['distance_km'].mean():>6.2f}  solver={result.solver}"
        )

    urgent = np.flatnonzero(batch.kind == 0)[: args.shortlists]
    shortlist(pool, batch, n=10, at=int(urgent[0]))  # warm
    took, ref = [], []
    for r in urgent:
        t = time.perf_counter()
        shortlist(pool, batch, n=10, at=int(r))
        took.append(time.perf_counter() - t)
        t = time.perf_counter()
        km = haversine_km(pool.lat, pool.lon, batch.lat[r], batch.lon[r])
        np.argpartition(km, 10)[:10]
        ref.append(time.perf_counter() - t)
    shortlist_ms, ref_ms = float(np.median(took) * 1e3), float(np.median(ref) * 1e3)
    print(f"shortlist of an urgent request: {shortlist_ms:.1f} ms (scan of all: {ref_ms:.1f} ms)")

    dispatch_s, ref_s = timings["optimal"][0], timings["nearest"][0]
    fill, accept, hours_gini = figures["optimal"]
    _, ref_accept, ref_gini = figures["nearest"]
    print(
        f"RESULT dispatch_s={dispatch_s:.2f} shortlist_ms={shortlist_ms:.1f} "
        f"fill_rate={fill:.4f} acceptance={accept:.3f} hours_gini={hours_gini:.3f} "
        f"ref_nearest_s={ref_s:.2f} ratio_s={dispatch_s / ref_s:.2f} "
        f"ref_scan_ms={ref_ms:.1f} ratio_ms={shortlist_ms / ref_ms:.2f} "
        f"ref_acceptance={ref_accept:.3f} ref_hours_gini={ref_gini:.3f} build_s={build_s:.1f}"
    )


if __name__ == "__main__":
    main()
