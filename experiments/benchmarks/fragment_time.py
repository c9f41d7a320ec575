"""Evaluation of fragment-time menus (``max_minutes="auto"``) on the simulator.

A simulated platform (``sample`` preset, seed 0: commuters study in short sessions on the
way to and from work, others in longer evening or daytime sessions) is split in time: EASE
is fitted on the first 80% of the period. For members who start a study session in the
last 20%, one session each (seeded draw), a menu of 10 is served at the session's start
time (``now=``) three ways:

- ``none``: no length filter (the reference);
- ``fixed15``: ``max_minutes=15`` for everyone;
- ``auto``: ``max_minutes="auto"``, the member's usual session length at that hour and day.

For every offered course (the model's recommendations; compulsory and continue-learning
entries are the same in all three and left out), *finishable* says whether the course lasts
at most as long as the member actually studied in that session. Reported: the share of
finishable offered courses, recall of the session's course (did the menu hold what the
member chose to study: the cost of filtering), and courses offered per member.

Usage::

    python experiments/benchmarks/fragment_time.py                 # 600 sessions
    python experiments/benchmarks/fragment_time.py --sessions 200

Last line::

    RESULT finish_none=... finish_fixed15=... finish_auto=... recall_none=... recall_auto=...
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import recommend as rc


def _sessions(events: pd.DataFrame, since: pd.Timestamp) -> pd.DataFrame:
    """One row per (member, course) first studied after ``since``: start and minutes."""
    ev = events[events["timestamp"] >= since]
    first = ev[ev["event"] == "view"].groupby(["member_id", "course_id"])["timestamp"].min()
    watched = ev.groupby(["member_id", "course_id"])["watch_seconds"].max() / 60.0
    out = pd.DataFrame({"start": first}).join(watched.rename("minutes"), how="inner")
    return out[out["minutes"] > 0].reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    platform = rc.synthesize("sample", seed=args.seed)
    events = platform.events
    t0, t1 = events["timestamp"].min(), events["timestamp"].max()
    cut = t0 + (t1 - t0) * 0.8
    train = events[events["timestamp"] < cut]
    ds = rc.Dataset.from_frames(
        train, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    model = rc.EASE(l2=200.0).fit(ds)
    known = set(model.member_ids_.external_ids.tolist())
    sessions = _sessions(events, cut)
    sessions = sessions[sessions["member_id"].isin(known)]
    rng = np.random.default_rng(args.seed)
    one = sessions.groupby("member_id").sample(1, random_state=args.seed)
    one = one.iloc[rng.permutation(len(one))[: args.sessions]]
    duration = platform.courses.set_index("course_id")["duration_seconds"] / 60.0

    settings = {"none": None, "fixed15": 15.0, "auto": "auto"}
    rows = {name: {"finish": [], "hit": [], "offered": []} for name in settings}
    sources: list[str] = []
    t_start = time.perf_counter()
    for s in one.itertuples(index=False):
        for name, limit in settings.items():
            menu = rc.member_menu(
                model, [s.member_id], n=10, max_minutes=limit, now=s.start, exclude="seen"
            )
            own = menu[~menu["reason"].str.startswith(("本支部必学", "继续学习", "下一讲"))]
            offered = own["course_id"].to_numpy()
            fits = duration.reindex(offered).to_numpy() <= s.minutes
            rows[name]["finish"].extend(fits.tolist())
            rows[name]["hit"].append(s.course_id in set(menu["course_id"]))
            rows[name]["offered"].append(offered.size)
            if name == "auto":
                sources.append(menu.attrs["fragment_source"][s.member_id])
    seconds = time.perf_counter() - t_start

    table = pd.DataFrame(
        {
            name: {
                "finishable_share": float(np.mean(r["finish"])) if r["finish"] else np.nan,
                "recall_of_session_course": float(np.mean(r["hit"])),
                "offered_per_member": float(np.mean(r["offered"])),
            }
            for name, r in rows.items()
        }
    ).T
    print(
        f"simulator 'sample' seed {args.seed}: EASE on the first 80% of the period; "
        f"{len(one)} sessions in the last 20%, one per member"
    )
    print(
        f"auto limits from the member's own sessions: {np.mean(np.array(sources) == 'member'):.0%}"
    )
    print(table.round(3).to_string())
    ratio = table.loc["auto", "finishable_share"] / table.loc["none", "finishable_share"]
    print(f"auto vs none: finishable share x{ratio:.2f}; {seconds:.1f} s for {3 * len(one)} menus")
    print(
        "RESULT "
        + " ".join(
            [
                f"finish_none={table.loc['none', 'finishable_share']:.3f}",
                f"finish_fixed15={table.loc['fixed15', 'finishable_share']:.3f}",
                f"finish_auto={table.loc['auto', 'finishable_share']:.3f}",
                f"recall_none={table.loc['none', 'recall_of_session_course']:.3f}",
                f"recall_fixed15={table.loc['fixed15', 'recall_of_session_course']:.3f}",
                f"recall_auto={table.loc['auto', 'recall_of_session_course']:.3f}",
                f"sessions={len(one)}",
            ]
        )
    )


if __name__ == "__main__":
    main()
