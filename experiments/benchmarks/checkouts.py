"""Two checkouts of the library side by side: menu latency and fold-in, before and after.

A change to shared code is measured against the commit before it. Two benchmark runs one
after the other on a shared machine differ by more than most changes do (other jobs come
and go), so this script runs both checkouts at once, each in its own worker process on
the same generated data, and alternates them block by block: a round is one block of
calls in each checkout (the order flips every round), and the figure compared is the
median over rounds of each round's ratio. Load from other processes then falls on both
sides alike. Times are the calling thread's CPU time per call.

Workloads (the data and calls of the benchmarks they name):

- ``menu``: single-member menus on ``menu_latency.py``'s generated platform (20k courses,
  50k members, 64 random factors, BLAS single-threaded): the default menu, the menu
  without continue-learning entries (when the checkout has them: the default menu of a
  checkout that has none does the same work), and the bare menu (no pins, reasons or
  publication filter);
- ``fold_in``: ``ALS.update(member, events)`` end to end on ``fold_in.py``'s simulated
  platform (20k members x 5k courses, 64 factors), each member with two new completions.

Usage::

    git worktree add /tmp/before <commit>
    python experiments/benchmarks/checkouts.py --before /tmp/before/src [--after src]
        [--workloads menu,fold_in] [--rounds 20]

The last line reads ``RESULT menu_default_ratio=... menu_default_before_ms=...
menu_default_after_ms=... ... fold_in_ratio=...`` (ratio: after over before; below 1 is
faster).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: The RESULT line's name of each configuration.
KEYS = {
    "default": "menu_default",
    "without continue-learning": "menu_no_continue",
    "bare": "menu_bare",
    "update": "fold_in",
}


# ------------------------------------------------------------------------- the worker


def _menu_workload(seed: int) -> dict[str, Callable[[], int]]:
    """Block runners of the menu workload, by configuration (in the checkout imported)."""
    sys.path.insert(0, str(HERE))
    import menu_latency as ml

    from recommend.menu import member_menu

    ds = ml.make_dataset(20_000, 50_000, seed)
    model = ml.RandomFactors(64, seed).fit(ds)
    rng = np.random.default_rng(seed + 1)
    ids = ds.member_ids.to_external(rng.choice(ds.n_members, 300, replace=False))
    has_continue = "continue_learning" in member_menu.__code__.co_varnames
    off = {"continue_learning": False} if has_continue else {}
    options = {
        "default": {},
        "without continue-learning": off,
        "bare": {"with_reasons": False, "pin_compulsory": False, "only_published": False, **off},
    }

    def runner(kw: dict[str, object]) -> Callable[[], int]:
        def run() -> int:
            for m in ids:
                member_menu(model, m, **kw)
            return len(ids)

        for m in ids[:100]:  # warm: caches built, code paths taken
            member_menu(model, m, **kw)
        return run

    return {name: runner(kw) for name, kw in options.items()}


def _fold_in_workload(seed: int) -> dict[str, Callable[[], int]]:
    """Block runner of the fold-in workload (in the checkout imported)."""
    sys.path.insert(0, str(HERE))
    import fold_in as fi

    from recommend.data.dataset import Dataset
    from recommend.data.synthetic import SynthConfig, synthesize
    from recommend.models.implicit_models import ALS

    config = SynthConfig(
        n_members=fi.MEMBERS, n_courses=fi.COURSES, events_per_member=fi.EVENTS_PER_MEMBER
    )
    plat = synthesize(config, seed=seed)
    ds = Dataset.from_frames(plat.events, courses=plat.courses, members=plat.members)
    model = ALS(n_factors=fi.FACTORS, random_state=seed).fit(ds)
    _, member_ids, frames = fi.folding_members(plat, ds, 100, seed)

    def run() -> int:
        for member_id, frame in zip(member_ids, frames, strict=True):
            model.update(member_id, frame)
        return len(frames)

    run()  # warm
    return {"update": run}


def worker(workload: str, seed: int) -> None:
    """Serve blocks on request: a configuration name per line in, CPU ms per call out."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        runners = _menu_workload(seed) if workload == "menu" else _fold_in_workload(seed)
        print(json.dumps(list(runners)), flush=True)
        for line in sys.stdin:
            name = line.strip()
            start = time.thread_time()
            calls = runners[name]()
            print(f"{(time.thread_time() - start) / calls * 1e3:.5f}", flush=True)


# ------------------------------------------------------------------------- the driver


class Checkout:
    """A worker process importing the library from ``src``."""

    def __init__(self, src: Path, workload: str, seed: int) -> None:
        env = dict(os.environ, PYTHONPATH=str(src))
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", workload, "--seed", str(seed)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        ready = self.stdout.readline()
        if not ready:
            raise SystemExit(f"the worker on {src} failed to start (its error is above)")
        self.configs: list[str] = json.loads(ready)

    def block(self, name: str) -> float:
        self.stdin.write(name + "\n")
        self.stdin.flush()
        return float(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.process.wait()


def compare(
    before: Path, after: Path, workload: str, rounds: int, seed: int
) -> dict[str, tuple[float, float, float, float, float]]:
    """Per configuration: before ms, after ms (medians), and the median, 25th and 75th
    percentiles of the per-round ratio after / before."""
    sides = {"before": Checkout(before, workload, seed), "after": Checkout(after, workload, seed)}
    try:
        configs = [c for c in sides["after"].configs if c in sides["before"].configs]
        times: dict[tuple[str, str], list[float]] = {
            (side, c): [] for side in sides for c in configs
        }
        for r in range(rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for c in configs:
                for side in order:
                    times[(side, c)].append(sides[side].block(c))
    finally:
        for checkout in sides.values():
            checkout.close()
    out = {}
    for c in configs:
        b, a = np.array(times[("before", c)]), np.array(times[("after", c)])
        ratio = a / b
        out[c] = (
            float(np.median(b)),
            float(np.median(a)),
            float(np.median(ratio)),
            float(np.percentile(ratio, 25)),
            float(np.percentile(ratio, 75)),
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="the src folder of the checkout before")
    parser.add_argument("--after", type=Path, default=HERE.parent.parent / "src")
    parser.add_argument("--workloads", default="menu,fold_in")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.seed)
        return
    if args.before is None:
        parser.error("--before is required: the src folder of the checkout to compare with")
    for side in (args.before, args.after):
        if not (side / "recommend" / "__init__.py").is_file():
            parser.error(f"{side} does not hold the recommend package (give a src folder)")
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(workloads) - {"menu", "fold_in"})
    if unknown:
        parser.error(f"unknown workloads {unknown}: choose from menu, fold_in")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"before {args.before}\nafter  {args.after}")
    print(f"{args.rounds} rounds, load average {load:.1f} on {os.cpu_count()} cores")
    print(f"{'workload / call':44s} {'before ms':>10s} {'after ms':>9s} {'ratio':>6s}  IQR")
    result = []
    for workload in workloads:
        for config, (b, a, ratio, lo, hi) in compare(
            args.before, args.after, workload, args.rounds, args.seed
        ).items():
            name = f"{workload} / {config}"
            print(f"{name:44s} {b:10.3f} {a:9.3f} {ratio:6.3f}  {lo:.3f}-{hi:.3f}")
            key = KEYS[config]
            result += [
                f"{key}_ratio={ratio:.3f}",
                f"{key}_before_ms={b:.3f}",
                f"{key}_after_ms={a:.3f}",
            ]
    print("RESULT " + " ".join(result))


if __name__ == "__main__":
    main()
