"""Benchmark of ingestion: micro-batches of new events folded into a fitted ALS model
while 8 threads serve menus, against the frame path and per-member ``update()``.

A simulated platform (``recommend.data.synthetic``, 20k members x 2k courses by default)
is split in time: the model (``ALS``, 64 factors) is fitted on the events before the cut,
with ``--new-courses`` courses stripped of all their learners (new courses: in the
catalogue, placed by content). The events after the cut, and all events of the new
courses, are the stream, replayed in time order in micro-batches of ``--batch`` events.

Measured in the same run, on two copies of the same fitted model (one artifact loaded
twice):

- ``ingest_arrays`` (the fast path) on every micro-batch while 8 reader threads ask for
  single members' menus without pause: events folded in per second, menus served;
- ``ingest`` (the frame path: validation, then the same fold-in) on the same batches,
  same readers: the reference for throughput;
- the fast path again with no reader: what the readers' share of the interpreter costs;
- one member with three new events: ``ingest_arrays`` p50 (the array path's fold-in of
  one member), against ``update()`` (the member's whole history as a frame) on the other
  copy;
- one new learner of a new course: ``ingest_arrays`` p50 of that batch (the member's
  fold-in plus the course's least-squares re-solve against all member vectors);
- a branch's upload: one catalogue row ingested alone (``--uploads`` times, median: the
  training data grown, course features rebuilt, the course placed by content), and the
  first menu after it (the new catalogue's serving cache is built then) against a menu
  in steady state.

Usage::

    python experiments/benchmarks/ingest.py                       # 20k x 2k
    python experiments/benchmarks/ingest.py --members 3000 --courses 600 --batch 200

The last line is machine-readable::

    RESULT events_per_s=... fold_in_p50_ms=... course_fold_in_p50_ms=... frame_events_per_s=...
        update_p50_ms=... ratio_vs_frame=... ratio_vs_update=... alone_events_per_s=...
        upload_ms=... first_menu_after_upload_ms=... menu_ms=...
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import threading
import time

import numpy as np
import pandas as pd

import recommend as rc
from recommend.data.synthetic import SynthConfig, synthesize
from recommend.models.base import Recommender
from recommend.schema import Columns as C

READERS = 8
TARGET_MS = 1.0


def _readers(
    model: Recommender, members: np.ndarray, stop: threading.Event, n: int = READERS
) -> list[int]:
    """Start ``n`` threads asking for single members' menus until ``stop``; returns the
    per-thread counters (filled while they run)."""
    counts = [0] * n

    def run(k: int) -> None:
        rng = np.random.default_rng(k)
        while not stop.is_set():
            rc.member_menu(model, [members[rng.integers(members.size)]], n=10)
            counts[k] += 1

    threads = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(n)]
    for thread in threads:
        thread.start()
    return counts


def _replay(
    model: Recommender, batches: list[pd.DataFrame], *, arrays: bool, readers: int = READERS
) -> dict:
    """Fold ``batches`` in one after the other while ``readers`` threads serve menus."""
    stop = threading.Event()
    counts = _readers(model, model.member_ids_.external_ids[:5000], stop, readers)
    time.sleep(0.5)  # readers running before the clock starts
    busy = 0.0
    start_reads = sum(counts)
    t_start = time.perf_counter()
    for b in batches:
        t0 = time.perf_counter()
        if arrays:
            rc.ingest_arrays(
                model,
                b[C.MEMBER].to_numpy(),
                b[C.COURSE].to_numpy(),
                b[C.EVENT].to_numpy(),
                b[C.TIMESTAMP].to_numpy(),
            )
        else:
            rc.ingest(model, b)
        busy += time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    reads = sum(counts) - start_reads
    stop.set()
    n_events = sum(len(b) for b in batches)
    return {
        "events_per_s": n_events / busy,
        "menus_per_s": reads / wall,
        "events": n_events,
        "batches": len(batches),
    }


def _p50_p99(times: list[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1e3
    return float(np.median(ms)), float(np.percentile(ms, 99))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--courses", type=int, default=2_000)
    parser.add_argument("--events-per-member", type=float, default=40.0)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--new-courses", type=int, default=40)
    parser.add_argument("--batch", type=int, default=500, help="events per micro-batch")
    parser.add_argument("--batches", type=int, default=40, help="micro-batches replayed")
    parser.add_argument("--n", type=int, default=300, help="single fold-ins timed")
    parser.add_argument("--uploads", type=int, default=5, help="catalogue rows ingested")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    t0 = time.perf_counter()
    config = SynthConfig(
        n_members=args.members, n_courses=args.courses, events_per_member=args.events_per_member
    )
    plat = synthesize(config, seed=args.seed)
    events = plat.events.sort_values(C.TIMESTAMP, kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(args.seed)
    studied = events[C.COURSE].value_counts()
    # New courses drawn among moderately popular ones, so they have learners to replay.
    pool = studied.index[len(studied) // 10 : len(studied) // 2].to_numpy()
    new = rng.choice(pool, size=min(args.new_courses, pool.size), replace=False)
    cut = events[C.TIMESTAMP].quantile(0.9)
    is_new = events[C.COURSE].isin(new).to_numpy()
    train = events[(events[C.TIMESTAMP] <= cut).to_numpy() & ~is_new]
    stream = events[(events[C.TIMESTAMP] > cut).to_numpy() | is_new]
    ds = rc.Dataset.from_frames(train, courses=plat.courses, members=plat.members)
    stream = stream[stream[C.COURSE].isin(ds.course_ids.external_ids)]
    t_data = time.perf_counter() - t0

    t0 = time.perf_counter()
    fitted = rc.ALS(n_factors=args.factors, random_state=args.seed).fit(ds)
    t_fit = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        rc.save(fitted, f"{tmp}/als")
        fast, frame, single, alone = (rc.load(f"{tmp}/als") for _ in range(4))
    del fitted

    size = args.batch
    batches = [
        stream.iloc[i : i + size].reset_index(drop=True)
        for i in range(0, min(len(stream), size * args.batches), size)
    ]
    result_fast = _replay(fast, batches, arrays=True)
    result_frame = _replay(frame, batches, arrays=False)
    result_alone = _replay(alone, batches, arrays=True, readers=0)

    # One member, three new events: the array path against update() on another copy.
    when = ds.now + pd.Timedelta(minutes=5)
    warm = ds.course_ids.external_ids[ds.interactions.getnnz(axis=0) > 0]
    members = rng.choice(ds.member_ids.external_ids, size=args.n, replace=False)
    own = train.groupby(C.MEMBER, observed=True)
    fold_times, update_times = [], []
    kinds = np.array(["view", "progress", "complete"], dtype=object)
    for m in members.tolist():
        courses = rng.choice(warm, size=3, replace=False)
        times = np.full(3, np.datetime64(when.to_datetime64(), "ns"))
        t0 = time.perf_counter()
        rc.ingest_arrays(single, np.array([m] * 3, dtype=object), courses, kinds, times)
        fold_times.append(time.perf_counter() - t0)
        history = pd.concat(
            [
                own.get_group(m) if m in own.groups else train.iloc[:0],
                pd.DataFrame({C.MEMBER: m, C.COURSE: courses, C.EVENT: kinds, C.TIMESTAMP: when}),
            ]
        )
        t0 = time.perf_counter()
        frame.update(m, history)
        update_times.append(time.perf_counter() - t0)

    # One new learner of a new course: the member's fold-in and the course's re-solve.
    new_idx = ds.course_ids.to_index(new).astype(np.int64)
    course_times = []
    for k, m in enumerate(rng.choice(ds.member_ids.external_ids, size=args.n).tolist()):
        course = ds.course_ids.external_ids[new_idx[k % new_idx.size]]
        t0 = time.perf_counter()
        rc.ingest_arrays(
            single,
            np.array([m], dtype=object),
            np.array([course], dtype=object),
            np.array(["view"], dtype=object),
            np.array([np.datetime64(when.to_datetime64(), "ns")]),
        )
        course_times.append(time.perf_counter() - t0)

    # A branch's upload: one catalogue row alone, then the first menu (cache rebuilt).
    upload_times, first_menu, steady = [], [], []
    reader = str(ds.member_ids.external_ids[0])
    for k in range(args.uploads):
        row = plat.courses.sample(1, random_state=args.seed + k).assign(
            **{C.COURSE: f"upload-{k}", C.PUBLISHED_AT: when}
        )
        t0 = time.perf_counter()
        rc.ingest_arrays(single, [], [], [], [], courses=row)
        upload_times.append(time.perf_counter() - t0)
        for out in (first_menu, steady, steady, steady):
            t0 = time.perf_counter()
            rc.member_menu(single, [reader], n=10, now=when)
            out.append(time.perf_counter() - t0)

    fold_p50, fold_p99 = _p50_p99(fold_times)
    update_p50, update_p99 = _p50_p99(update_times)
    course_p50, course_p99 = _p50_p99(course_times)
    print(f"python {sys.version.split()[0]} on {platform.machine()}, {os.cpu_count()} cores")
    print(
        f"data: {ds.n_members} members x {ds.n_courses} courses, {ds.interactions.nnz} "
        f"training pairs, {len(new)} new courses; stream {len(stream)} events "
        f"({t_data:.1f} s); ALS fit {t_fit:.1f} s"
    )
    print(f"\nmicro-batches of {size} events, {READERS} threads serving menus meanwhile:")
    print(f"{'path':28s} {'events/s':>10s} {'menus/s':>9s} {'batches':>8s}")
    for name, r in (
        ("ingest_arrays (fast path)", result_fast),
        ("ingest (frame)", result_frame),
        ("ingest_arrays, no readers", result_alone),
    ):
        print(f"{name:28s} {r['events_per_s']:10.0f} {r['menus_per_s']:9.0f} {r['batches']:8d}")
    print(f"\none member folded in (p50 / p99 ms over {args.n}):")
    print(f"  ingest_arrays, 3 events          {fold_p50:7.3f} / {fold_p99:7.3f}")
    print(f"  update(), whole history frame    {update_p50:7.3f} / {update_p99:7.3f}")
    print(f"  new course's learner (+ course)  {course_p50:7.3f} / {course_p99:7.3f}")
    upload_ms, first_ms, menu_ms = (
        float(np.median(t)) * 1e3 for t in (upload_times, first_menu, steady)
    )
    print(f"\na branch's upload (median of {args.uploads}):")
    print(f"  one catalogue row ingested       {upload_ms:9.1f} ms")
    print(f"  first menu after it              {first_ms:9.1f} ms (steady state {menu_ms:.1f} ms)")
    ratio_frame = result_fast["events_per_s"] / result_frame["events_per_s"]
    ratio_update = update_p50 / fold_p50
    verdict = "meets" if fold_p50 < TARGET_MS else "misses"
    print(f"\narray fold-in p50 {verdict} the {TARGET_MS} ms target")
    print(
        f"RESULT events_per_s={result_fast['events_per_s']:.0f} fold_in_p50_ms={fold_p50:.3f} "
        f"course_fold_in_p50_ms={course_p50:.3f} "
        f"frame_events_per_s={result_frame['events_per_s']:.0f} update_p50_ms={update_p50:.3f} "
        f"ratio_vs_frame={ratio_frame:.2f} ratio_vs_update={ratio_update:.2f} "
        f"alone_events_per_s={result_alone['events_per_s']:.0f} upload_ms={upload_ms:.1f} "
        f"first_menu_after_upload_ms={first_ms:.1f} menu_ms={menu_ms:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
