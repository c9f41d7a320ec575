"""Scale benchmark of the platform simulator: the city preset against its targets.

Targets: 100k members / 10k courses / ~5M events in under 60 s and under 4 GB peak RSS on
two cores. Run from the repository root::

    python experiments/benchmarks/synth_scale.py
    python experiments/benchmarks/synth_scale.py --members 20000 --courses 3000 --out /tmp/city

The last line is machine-readable:
``RESULT seconds=... events=... peak_rss_mb=... events_per_s=...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time
from pathlib import Path

from recommend.data.synthetic import PRESETS, synthesize

TARGET_SECONDS = 60.0
TARGET_RSS_MB = 4096.0


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def main(argv: list[str] | None = None) -> int:
    city = PRESETS["city"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=city.n_members)
    parser.add_argument("--courses", type=int, default=city.n_courses)
    parser.add_argument("--events-per-member", type=float, default=city.events_per_member)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the platform here")
    args = parser.parse_args(argv)

    config = dataclasses.replace(
        city,
        n_members=args.members,
        n_courses=args.courses,
        events_per_member=args.events_per_member,
    )
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    platform = synthesize(config, seed=args.seed)
    seconds = time.perf_counter() - start
    events = len(platform.events)
    rss = peak_rss_mb()

    print(f"config: {config}")
    print(
        f"members={len(platform.members):,} courses={len(platform.courses):,} "
        f"orgs={len(platform.orgs):,} events={events:,} searches={len(platform.searches):,}"
    )
    print(f"synthesize: {seconds:.1f} s, {events / seconds:,.0f} events/s")
    print(f"peak RSS: {rss:,.0f} MiB (after imports: {rss_before:,.0f} MiB)")
    print(
        f"vs targets: time {seconds / TARGET_SECONDS:.2f} x {TARGET_SECONDS:.0f} s, "
        f"RSS {rss / TARGET_RSS_MB:.2f} x {TARGET_RSS_MB / 1024:.0f} GiB"
    )
    if args.out is not None:
        start = time.perf_counter()
        platform.write(args.out)
        written = sum(f.stat().st_size for f in args.out.iterdir() if f.is_file())
        print(
            f"write: {time.perf_counter() - start:.1f} s, {written / 2**20:,.1f} MiB in {args.out}"
        )
        rss = peak_rss_mb()
        print(f"peak RSS after write: {rss:,.0f} MiB")
    print(
        f"RESULT seconds={seconds:.2f} events={events} peak_rss_mb={rss:.0f} "
        f"events_per_s={events / seconds:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
