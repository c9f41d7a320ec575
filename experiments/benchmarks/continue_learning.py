"""Evaluation of continue-learning (继续学习) and next-lecture (下一讲) entries on the simulator.

A simulated platform (``sample`` preset with ``plant_series=True``: official theory lectures
grouped into numbered series that members go on with after completing a lecture) is split
in time: EASE is fitted on the first 80% of the period and every member with a history is
served a menu of 10 at the split, with the entries (``continue_learning=True``, the
default) and without them (the reference). Against what each member studied in the last
20% (any event on the course), reported:

- precision of the entries by kind: the share of 继续学习 / 下一讲 entries the member
  studied, next to the precision of the model's own recommendations on the same menus;
- hits@10 per member and precision@10 of the whole menu, with and without the entries.

Usage::

    python experiments/benchmarks/continue_learning.py
    python experiments/benchmarks/continue_learning.py --seed 1

Last line::

    RESULT precision_continue=... precision_next=... precision_model=... hits_with=...
    hits_without=...   (one line)
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import pandas as pd

import recommend as rc
from recommend.data.synthetic import PRESETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = dataclasses.replace(PRESETS["sample"], plant_series=True)
    platform = rc.synthesize(cfg, seed=args.seed)
    ev = platform.events
    t0, t1 = ev["timestamp"].min(), ev["timestamp"].max()
    cut = t0 + (t1 - t0) * 0.8
    train, later = ev[ev["timestamp"] < cut], ev[ev["timestamp"] >= cut]
    ds = rc.Dataset.from_frames(
        train, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    model = rc.EASE(l2=200.0).fit(ds)
    members = model.member_ids_.external_ids
    studied = set(zip(later["member_id"], later["course_id"], strict=True))

    start = time.perf_counter()
    with_entries = rc.member_menu(model, members, n=10, now=cut)
    seconds = time.perf_counter() - start
    without = rc.member_menu(model, members, n=10, now=cut, continue_learning=False)

    def hit(menu: pd.DataFrame) -> np.ndarray:
        return np.array(
            [(m, c) in studied for m, c in zip(menu["member_id"], menu["course_id"], strict=True)]
        )

    with_entries["hit"] = hit(with_entries)
    without["hit"] = hit(without)
    kind = np.select(
        [
            with_entries["reason"].str.startswith("继续学习"),
            with_entries["reason"].str.startswith("下一讲"),
            with_entries["reason"].str.startswith("本支部必学"),
        ],
        ["continue", "next", "compulsory"],
        "model",
    )
    by_kind = with_entries.assign(kind=kind).groupby("kind")["hit"].agg(["size", "mean"])
    by_kind.columns = ["entries", "precision"]
    hits_with = float(with_entries.groupby("member_id")["hit"].sum().mean())
    hits_without = float(without.groupby("member_id")["hit"].sum().mean())
    print(
        f"simulator 'sample' + planted series, seed {args.seed}: EASE on the first 80%, "
        f"{len(members)} members served at the split ({seconds:.1f} s for the menus with entries)"
    )
    print(by_kind.round(3).to_string())
    print(
        f"hits@10 per member: with entries {hits_with:.3f}, without {hits_without:.3f} "
        f"(x{hits_with / hits_without:.2f}); precision@10 {with_entries['hit'].mean():.3f} vs "
        f"{without['hit'].mean():.3f}"
    )

    def p(name: str) -> float:
        return float(by_kind.loc[name, "precision"]) if name in by_kind.index else float("nan")

    print(
        f"RESULT precision_continue={p('continue'):.3f} precision_next={p('next'):.3f} "
        f"precision_model={p('model'):.3f} hits_with={hits_with:.3f} "
        f"hits_without={hits_without:.3f}"
    )


if __name__ == "__main__":
    main()
