"""Concurrent reads while members are folded in: throughput and consistency.

A simulated platform (``recommend.data.synthetic``, 3,000 members x 800 courses by
default) is fitted with ``ALS`` and with ``EASE``. For each model, ``--members`` members
get two alternative histories each: A (their training events plus two courses viewed and
completed) and B (their training events plus two other courses viewed). The menu of each
member under A and under B (``member_menu``, ``n=10``, default options: exclusions of
seen courses, compulsory pins, reasons) is computed single-threaded first.

Then a writer thread folds the members in again and again, alternating A and B
(``model.update``), while ``--readers`` threads ask for those members' menus. Every menu a
reader gets must equal the member's A menu or their B menu: any other menu mixes two
states (e.g. the history before an update with the scores after it) and is counted as
inconsistent. The count must be 0.

Side by side in the same run, as references: the readers alone (no writer) and the writer
alone (no readers), for the same time each. The ratios say what the other side costs:
``reads_vs_alone`` is reads/s with the writer over reads/s without it, ``updates_vs_alone``
the same for updates.

BLAS runs single-threaded, as a serving process should (concurrency comes from request
threads). The interpreter's thread switch interval is lowered to 50 us (``--switch-us``;
Python's default is 5000) so that threads interleave often and a read torn by an update
shows: with the default members (4, so readers and the writer meet on the same member)
the code before snapshots counted 9 inconsistent menus in a default run (2 with 64
members and Python's switch interval); throughput on this 2-core machine was about the
same at either interval.

Usage::

    python experiments/benchmarks/concurrency.py                  # ~40 s
    python experiments/benchmarks/concurrency.py --seconds 20 --switch-us 5

The last line is machine-readable (summed over both models; per model above it)::

    RESULT reads_per_s=... updates_per_s=... inconsistent=...
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from recommend.data.dataset import Dataset
from recommend.data.synthetic import SynthConfig, synthesize
from recommend.menu import member_menu
from recommend.models.base import Recommender
from recommend.models.ease import EASE
from recommend.models.implicit_models import ALS
from recommend.schema import Columns as C

Menu = tuple[tuple[object, ...], ...]


@dataclass
class Phase:
    """What one timed phase did."""

    seconds: float
    reads: int = 0
    updates: int = 0
    inconsistent: int = 0

    @property
    def reads_per_s(self) -> float:
        return self.reads / self.seconds

    @property
    def updates_per_s(self) -> float:
        return self.updates / self.seconds


def as_menu(frame: pd.DataFrame) -> Menu:
    """A menu as comparable rows: course, score, reason, route in rank order."""
    cols = [C.COURSE, C.SCORE, C.REASON, C.ROUTE]
    return tuple(frame[cols].itertuples(index=False, name=None))


def histories(
    events: pd.DataFrame, member_ids: np.ndarray, courses: np.ndarray, when: pd.Timestamp, seed: int
) -> dict[object, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per member: history A (own events + two courses viewed and completed) and history B
    (own events + two other courses viewed)."""
    rng = np.random.default_rng(seed)
    cols = [C.MEMBER, C.COURSE, C.EVENT, C.TIMESTAMP]
    by_member = {m: f[cols] for m, f in events[events[C.MEMBER].isin(member_ids)].groupby(C.MEMBER)}
    out = {}
    for m in member_ids:
        picked = rng.choice(courses, size=4, replace=False)
        a = pd.DataFrame(
            {
                C.MEMBER: [m] * 4,
                C.COURSE: [picked[0], picked[1], picked[0], picked[1]],
                C.EVENT: ["view", "view", "complete", "complete"],
                C.TIMESTAMP: [when] * 4,
            }
        )
        b = pd.DataFrame(
            {C.MEMBER: [m] * 2, C.COURSE: picked[2:], C.EVENT: "view", C.TIMESTAMP: when}
        )
        own = by_member[m]
        out[m] = (
            pd.concat([own, a], ignore_index=True),
            pd.concat([own, b], ignore_index=True),
        )
    return out


def run_phase(
    model: Recommender,
    plans: dict[object, tuple[pd.DataFrame, pd.DataFrame]],
    answers: dict[object, tuple[Menu, Menu]],
    seconds: float,
    readers: int,
    write: bool,
    seed: int,
) -> Phase:
    """Readers and/or a writer for ``seconds``; counts reads, updates and menus that are
    neither a member's A menu nor their B menu."""
    members = list(plans)
    stop = threading.Event()
    start = threading.Barrier(readers + int(write) + 1)
    reads = [0] * readers
    bad = [0] * readers
    updates = [0]

    def writer() -> None:
        start.wait()
        i = 0
        while not stop.is_set():
            member = members[i % len(members)]
            model.update(member, plans[member][(i // len(members)) % 2])
            i += 1
        updates[0] = i

    def reader(t: int) -> None:
        rng = np.random.default_rng([seed, t])
        start.wait()
        while not stop.is_set():
            member = members[int(rng.integers(len(members)))]
            got = as_menu(member_menu(model, member, n=10))
            reads[t] += 1
            if got not in answers[member]:
                bad[t] += 1

    threads = [threading.Thread(target=reader, args=(t,)) for t in range(readers)]
    if write:
        threads.append(threading.Thread(target=writer))
    for th in threads:
        th.start()
    start.wait()
    began = time.perf_counter()
    stop.wait(seconds)  # the timed phase: the main thread only keeps time
    stop.set()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - began
    return Phase(elapsed, sum(reads), updates[0], sum(bad))


def bench(
    name: str,
    model: Recommender,
    plans: dict[object, tuple[pd.DataFrame, pd.DataFrame]],
    args: argparse.Namespace,
) -> Phase:
    answers: dict[object, tuple[Menu, Menu]] = {}
    for member, (a, b) in plans.items():
        model.update(member, a)
        menu_a = as_menu(member_menu(model, member, n=10))
        model.update(member, b)
        menu_b = as_menu(member_menu(model, member, n=10))
        answers[member] = (menu_a, menu_b)
    differ = sum(a != b for a, b in answers.values())
    reading = run_phase(model, plans, answers, args.seconds / 2, args.readers, False, args.seed)
    writing = run_phase(model, plans, answers, args.seconds / 2, 0, True, args.seed)
    both = run_phase(model, plans, answers, args.seconds, args.readers, True, args.seed)
    print(
        f"\n{name}: {len(plans)} members, A and B menus differ for {differ}; "
        f"{args.readers} readers + 1 writer for {both.seconds:.1f} s"
    )
    print(f"{'phase':<24} {'reads/s':>10} {'updates/s':>10} {'inconsistent':>13}")
    for label, phase in (
        ("readers alone", reading),
        ("writer alone", writing),
        ("readers + writer", both),
    ):
        print(
            f"{label:<24} {phase.reads_per_s:10.0f} {phase.updates_per_s:10.0f} "
            f"{phase.inconsistent:13d}"
        )
    print(
        f"reads_vs_alone={both.reads_per_s / max(reading.reads_per_s, 1e-9):.2f} "
        f"updates_vs_alone={both.updates_per_s / max(writing.updates_per_s, 1e-9):.2f} "
        f"(reads {both.reads}, updates {both.updates})"
    )
    return both


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members-total", type=int, default=3_000)
    parser.add_argument("--courses", type=int, default=800)
    parser.add_argument("--members", type=int, default=4, help="members folded in")
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="concurrent phase per model")
    parser.add_argument("--switch-us", type=float, default=50.0, help="thread switch interval")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    t0 = time.perf_counter()
    plat = synthesize(SynthConfig(n_members=args.members_total, n_courses=args.courses), seed=0)
    ds = Dataset.from_frames(plat.events, courses=plat.courses, members=plat.members)
    rng = np.random.default_rng(args.seed)
    active = np.flatnonzero(ds.interactions.getnnz(axis=1) > 0)
    chosen = ds.member_ids.to_external(rng.choice(active, args.members, replace=False))
    warm = ds.course_ids.external_ids[ds.interactions.getnnz(axis=0) > 0]
    plans = histories(plat.events, chosen, warm, ds.now + pd.Timedelta(hours=1), args.seed)
    print(
        f"concurrency benchmark: {ds.n_members:,} members x {ds.n_courses:,} courses, "
        f"{ds.interactions.nnz:,} interactions; {os.cpu_count()} cpus; data "
        f"{time.perf_counter() - t0:.1f} s"
    )
    sys.setswitchinterval(args.switch_us / 1e6)
    print(f"thread switch interval {sys.getswitchinterval() * 1e6:.0f} us")

    total = Phase(0.0)
    with threadpool_limits(1, "blas"):
        for name, make in (("ALS", lambda: ALS(random_state=args.seed)), ("EASE", EASE)):
            t0 = time.perf_counter()
            model = make().fit(ds)
            print(f"{name} fit {time.perf_counter() - t0:.1f} s")
            got = bench(name, model, plans, args)
            total.seconds += got.seconds
            total.reads += got.reads
            total.updates += got.updates
            total.inconsistent += got.inconsistent
    verdict = "met" if total.inconsistent == 0 else "MISSED"
    print(f"\ntarget: no inconsistent menu -> {verdict}")
    print(
        f"RESULT reads_per_s={total.reads_per_s:.0f} updates_per_s={total.updates_per_s:.0f} "
        f"inconsistent={total.inconsistent}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
