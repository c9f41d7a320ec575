"""Cold members (known only by attributes): every cold route's NDCG@10 and the chosen one.

Protocol, per data set: 20% of the members with history are held out entirely (outer test
members); a model (EASE) is fitted on the others, which chooses its cold route on members
held out *inside* that training data (``recommend.models.cold_routes``). Every candidate
route is then refitted on the whole training part and scored on the outer test members
from their attributes alone, against the courses they took (NDCG@10). The reference is
global popularity measured in the same run (``ratio_vs_global``).

- the simulator (``synthesize("sample")``: branch, occupation, age band, district);
- ``mooccubex-enrolments-97k`` (real learners; attribute: gender from ``user_list.txt``).
  Only ``train.txt`` is read: its learners are split into train and test members;
  ``test.txt`` is never used. Skipped when the folder is absent.

    python experiments/benchmarks/cold_members.py [--data DIR] [--seed 1]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

import recommend as rc
from recommend.data.dataset import COURSE_IDX, MEMBER_IDX, Dataset
from recommend.metrics import ndcg_at_k
from recommend.models.cold_routes import COLD_GLOBAL
from recommend.models.ease import EASE
from recommend.models.popularity import Popularity
from recommend.topk import topk_scores

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
K = 10
TEST_SHARE = 0.2
BLOCK = 4096


def simulator(seed: int) -> Dataset:
    p = rc.synthesize("sample", seed=seed)
    return Dataset.from_frames(p.events, courses=p.courses, members=p.members, orgs=p.orgs)


def enrolments_97k(folder: Path) -> Dataset:
    """``train.txt`` enrolments (deduplicated) with each learner's gender."""
    pairs = []
    with open(folder / "train.txt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) > 1:
                pairs += [(parts[0], c) for c in parts[1:]]
    events = pd.DataFrame(pairs, columns=["member_id", "course_id"]).drop_duplicates()
    events["event"] = "interaction"
    events["timestamp"] = pd.Timestamp("2021-01-01")
    users = pd.read_csv(folder / "user_list.txt", sep=r"\s+", dtype=str)
    members = pd.DataFrame({"member_id": users["remap_id"], "gender": users["gender"]})
    members = members[members["member_id"].isin(events["member_id"])]
    return Dataset.from_frames(events, members=members)


def outer_split(ds: Dataset, seed: int) -> tuple[Dataset, np.ndarray]:
    """Training data without a random 20% of the active members, and those members."""
    active = np.flatnonzero(np.diff(ds.interactions.indptr) > 0)
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(active, size=round(TEST_SHARE * active.size), replace=False))
    keep = ~np.isin(ds.events[MEMBER_IDX].to_numpy(), held)
    train = Dataset.from_frames(
        ds.events.loc[keep].drop(columns=[MEMBER_IDX, COURSE_IDX]),
        courses=ds.courses,
        members=ds.members,
        orgs=ds.orgs,
        weighting=ds.weighting,
        member_ids=ds.member_ids,
        course_ids=ds.course_ids,
        now=ds.now,
        on_future="keep",
    )
    return train, held.astype(np.int64)


def settings(route: str) -> tuple[str | None, float]:
    """``segment`` and ``prior_members`` of a candidate route name."""
    if route == COLD_GLOBAL:
        return None, 1.0
    m = re.fullmatch(r"(segment|blend):([a-z_]+)(?::([0-9.e+]+))?", route)
    if m is None:
        raise ValueError(f"unknown route {route!r}")
    return m.group(2), float(m.group(3) or 1.0)


def test_ndcg(pop: Popularity, attributes: pd.DataFrame, truth: object) -> float:
    """Mean NDCG@10 of ``pop``'s cold scores for the test members, in blocks."""
    values = []
    n_courses = len(pop.global_)
    for lo in range(0, len(attributes), BLOCK):
        part = attributes.iloc[lo : lo + BLOCK].reset_index(drop=True)
        scores = pop.segment_scores(part)
        top = topk_scores(lambda rows, s=scores: s[rows], np.arange(len(part)), n_courses, K)
        values.append(ndcg_at_k(top.indices, truth[lo : lo + BLOCK], K))  # type: ignore[index]
    return float(np.mean(np.concatenate(values)))


def run(name: str, ds: Dataset, seed: int) -> dict[str, object]:
    train, held = outer_split(ds, seed)
    print(
        f"\n== {name}: {ds.n_members:,} members x {ds.n_courses:,} courses; "
        f"{held.size:,} members held out (attributes only)"
    )
    start = time.perf_counter()
    model = EASE().fit(train)
    choice = model.cold_route_
    print(
        f"EASE fitted with its cold route in {time.perf_counter() - start:.1f}s; "
        f"chosen on {choice['members']:,} members held out of train: {choice['route']}"
    )
    assert train.members is not None
    attributes = train.members.iloc[held].reset_index(drop=True)
    truth = ds.interactions[held]
    rows = []
    for route, valid in choice["scores"].items():
        if route == "features":
            continue
        segment, prior = settings(route)
        pop = Popularity(segment=segment, prior_members=prior).fit(train)
        rows.append(
            {
                "route": route,
                "valid_ndcg@10": valid,
                "test_ndcg@10": test_ndcg(pop, attributes, truth),
                "chosen": "<-" if route == choice["route"] else "",
            }
        )
    table = pd.DataFrame(rows)
    glob = float(table.loc[table["route"] == COLD_GLOBAL, "test_ndcg@10"].iloc[0])
    table["vs_global"] = table["test_ndcg@10"] / glob
    with pd.option_context("display.width", 120, "display.float_format", "{:.4f}".format):
        print(table.to_string(index=False))
    chosen = float(table.loc[table["route"] == choice["route"], "test_ndcg@10"].iloc[0])
    best = table.loc[table["test_ndcg@10"].idxmax()]
    print(
        f"chosen {choice['route']}: test NDCG@10 {chosen:.4f} vs global {glob:.4f} "
        f"(x{chosen / glob:.3f}); best on test: {best['route']} {best['test_ndcg@10']:.4f}"
    )
    return {"route": choice["route"], "ratio": chosen / glob}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    results = {"sim": run("simulator (sample preset)", simulator(args.seed), args.seed)}
    folder = args.data / "mooccubex-enrolments-97k"
    if (folder / "train.txt").exists() and (folder / "user_list.txt").exists():
        results["97k"] = run("mooccubex-enrolments-97k (gender)", enrolments_97k(folder), args.seed)
    else:
        print(f"\n{folder} not found: real-data part skipped")
    parts = []
    for key, got in results.items():
        parts.append(f"{key}_route={got['route']} {key}_ratio_vs_global={got['ratio']:.4f}")
    ratio = min(float(got["ratio"]) for got in results.values())  # type: ignore[arg-type]
    print(f"RESULT {' '.join(parts)} ratio_vs_global={ratio:.4f}")


if __name__ == "__main__":
    main()
