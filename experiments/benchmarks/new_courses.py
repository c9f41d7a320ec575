"""A new course's ranking from its first learners: NDCG@10 among new courses after its
first 5, 20 and 50 learners are ingested, against content placement only.

Protocol (the same on both data sets): ``--new`` courses with more than 80 learners are
picked (seeded) and all their events removed from the training data, so that they are
new: in the catalogue, placed by their content (title, channel, tags...). The model is
fitted on the rest. Each new course's learners are then replayed in order (the
simulator: by time of their first event on it; MOOCCubeX, which has no timestamps: in a
seeded random order) and ingested with ``recommend.ingest`` until every course has 5, then
20, then 50 learners. After each stage, the learners beyond the 60th of each course (never
ingested for it) are the evaluation members: their scores over the new courses (those
already in their history left out) rank the new courses they study, NDCG@10. The row
"content only" is the model before any learner is ingested.

With ``--uploaded`` each model also runs a second time ("name+upload") with the new
courses outside the catalogue at fit: their catalogue rows enter through
``recommend.ingest(model, events, courses=rows)`` before their first learner, as a
branch's upload does (placed by content by the same code as at fit, over the longer
catalogue); the figures should match the catalogue rows of the first run.

- ``sim``: the simulator (``synthesize("sample")``-sized by default);
- ``mooccubex``: ``/work/shared/data/mooccubex-courses/train.txt`` only (course features
  from ``course_profiles.jsonl``); skipped when the folder is absent.

Usage::

    python experiments/benchmarks/new_courses.py [--data DIR] [--models als,bpr,item_knn]
    python experiments/benchmarks/new_courses.py --uploaded   # also through catalogue rows

The last line is machine-readable::

    RESULT sim_als_content=... sim_als_50=... mooccubex_als_content=... mooccubex_als_50=...
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import recommend as rc
from recommend.data.loaders import read_lines, read_mooccubex_courses
from recommend.data.synthetic import SynthConfig, synthesize
from recommend.models.base import Recommender
from recommend.schema import Columns as C

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
STAGES = (5, 20, 50)
HELD_OUT_FROM = 60
PARAMS = {
    "als": {"n_factors": 64, "iterations": 15, "regularization": 0.05},
    "bpr": {"n_factors": 64, "iterations": 100},
    "item_knn": {"k": 100},
    "ease": {"l2": 200.0},
}


def _ndcg(model: Recommender, new_idx: np.ndarray, held: dict[int, set[int]], k: int = 10) -> float:
    """Mean NDCG@k of the held-out members' new courses, ranked among the new courses."""
    members = np.array(sorted(held), dtype=np.int64)
    idx = members  # model indices (ingestion only appends members)
    scores = model.score(idx)[:, new_idx].astype(np.float64)
    seen = model.history_.rows(idx)[:, new_idx].toarray() != 0
    scores[seen] = -np.inf
    position = {int(c): j for j, c in enumerate(new_idx.tolist())}
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for row, member in enumerate(members.tolist()):
        relevant = np.zeros(new_idx.size, dtype=bool)
        relevant[[position[c] for c in held[member]]] = True
        relevant &= ~seen[row]
        top = np.argsort(-scores[row], kind="stable")[:k]
        dcg = float((relevant[top] * discounts[: top.size]).sum())
        ideal = float(discounts[: min(k, int(relevant.sum()))].sum())
        total += dcg / ideal if ideal else 0.0
    return total / max(1, members.size)


def run(
    label: str,
    events: pd.DataFrame,
    courses: pd.DataFrame,
    order: pd.Series,
    n_new: int,
    models: list[str],
    seed: int,
    uploaded: bool = False,
) -> dict[str, float]:
    """Fit without the new courses, ingest their learners stage by stage, print a table."""
    rng = np.random.default_rng(seed)
    learners = events.groupby(C.COURSE, observed=True)[C.MEMBER].nunique()
    eligible = learners[learners > HELD_OUT_FROM + 20].index.to_numpy()
    new = rng.choice(eligible, size=min(n_new, eligible.size), replace=False)
    is_new = events[C.COURSE].isin(new).to_numpy()
    train = rc.Dataset.from_frames(events[~is_new], courses=courses)
    stream = events[is_new].assign(_order=order[is_new].to_numpy())
    # Each learner's place among the course's learners (by their first event on it).
    first = stream.groupby([C.COURSE, C.MEMBER], observed=True)["_order"].min().reset_index()
    first["place"] = first.groupby(C.COURSE, observed=True)["_order"].rank(method="first")
    stream = stream.merge(first[[C.COURSE, C.MEMBER, "place"]], on=[C.COURSE, C.MEMBER])
    stream = stream.sort_values(["place", "_order"], kind="stable")
    new_idx = train.course_ids.to_index(new).astype(np.int64)
    out_of = stream[stream["place"] > HELD_OUT_FROM]
    held: dict[int, set[int]] = {}
    members = train.member_ids.to_index(out_of[C.MEMBER], unknown="mask")
    for m, c in zip(
        members.tolist(), train.course_ids.to_index(out_of[C.COURSE]).tolist(), strict=True
    ):
        if m >= 0:
            held.setdefault(int(m), set()).add(int(c))
    print(
        f"\n== {label}: {train.n_members} members x {train.n_courses} courses, "
        f"{len(new)} new courses, {len(held)} evaluation members"
    )
    header = f"{'model':14s} {'content only':>13s}" + "".join(
        f"{f'{k} learners':>13s}" for k in STAGES
    )
    print(header)
    result: dict[str, float] = {}
    # The same training data without the new courses in the catalogue (--uploaded).
    rows = courses[courses[C.COURSE].isin(new)]
    before_upload = rc.Dataset.from_frames(
        events[~is_new], courses=courses[~courses[C.COURSE].isin(new)]
    )
    runs = [(name, False) for name in models] + [(name, True) for name in models if uploaded]
    for name, upload in runs:
        model = rc.make_model(name, **PARAMS[name]).fit(before_upload if upload else train)
        if upload:
            rc.ingest(model, stream.iloc[:0].drop(columns=["_order", "place"]), courses=rows)
        idx = model.course_ids_.to_index(new).astype(np.int64)
        # Course indices of the held-out pairs in this model's catalogue.
        mine = {
            m: {int(idx[np.flatnonzero(new_idx == c)[0]]) for c in cs} for m, cs in held.items()
        }
        row = [_ndcg(model, idx, mine)]
        done = 0
        for k in STAGES:
            batch = stream[(stream["place"] > done) & (stream["place"] <= k)]
            rc.ingest(model, batch.drop(columns=["_order", "place"]))
            done = k
            row.append(_ndcg(model, idx, mine))
        key = f"{name}+upload" if upload else name
        print(f"{key:14s} " + "".join(f"{v:13.4f}" for v in row))
        result[f"{label}_{key.replace('+', '_')}_content"] = row[0]
        for k, v in zip(STAGES, row[1:], strict=True):
            result[f"{label}_{key.replace('+', '_')}_{k}"] = v
    print(
        f"(random order among {len(new)} courses: NDCG@10 about "
        f"{_random_ndcg(len(new), held, new_idx, seed):.4f})"
    )
    return result


def _random_ndcg(n: int, held: dict[int, set[int]], new_idx: np.ndarray, seed: int) -> float:
    rng = np.random.default_rng(seed)
    discounts = 1.0 / np.log2(np.arange(2, 12))
    position = {int(c): j for j, c in enumerate(new_idx.tolist())}
    total = 0.0
    for courses in held.values():
        relevant = np.zeros(n, dtype=bool)
        relevant[[position[c] for c in courses]] = True
        top = rng.permutation(n)[:10]
        total += (relevant[top] * discounts[: top.size]).sum() / discounts[
            : min(10, relevant.sum())
        ].sum()
    return total / max(1, len(held))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", default="als,bpr,item_knn,ease")
    parser.add_argument("--new", type=int, default=40, help="new courses")
    parser.add_argument("--members", type=int, default=3000)
    parser.add_argument("--courses", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--uploaded",
        action="store_true",
        help="also run each model with the new courses entering as ingested catalogue rows",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    models = args.models.split(",")
    out: dict[str, float] = {}

    plat = synthesize(SynthConfig(n_members=args.members, n_courses=args.courses), seed=args.seed)
    ev = plat.events.reset_index(drop=True)
    out.update(
        run("sim", ev, plat.courses, ev[C.TIMESTAMP], args.new, models, args.seed, args.uploaded)
    )

    folder = args.data / "mooccubex-courses"
    if (folder / "train.txt").exists():
        ev = read_lines(folder / "train.txt").reset_index(drop=True)
        courses = read_mooccubex_courses(
            folder / "course_profiles.jsonl", item_map=folder / "item_map.txt"
        )
        courses = courses[courses[C.COURSE].isin(ev[C.COURSE])]
        # No timestamps: learners arrive in a seeded random order.
        order = pd.Series(np.random.default_rng(args.seed).permutation(len(ev)), index=ev.index)
        out.update(run("mooccubex", ev, courses, order, args.new, models, args.seed, args.uploaded))
    else:
        print(f"\n(no {folder}: the MOOCCubeX part is skipped)", file=sys.stderr)
    print("RESULT " + " ".join(f"{k}={v:.4f}" for k, v in out.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
