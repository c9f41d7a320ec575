"""The library's defaults checked on the calibrated simulator, the strong-segment preset and
real data, beside the alternatives they were chosen over.

Three defaults, each scored on validation data only (never a data set's test file):

- **group strategy** (``order_for_group(strategy="coverage")``): every strategy's group
  menus (n=10, random groups of 40 members, on real data also of 10 and 200; no pins).
  Simulator presets: mean true satisfaction of the members (the best true utility on the
  menu, normalised per member; ``evaluate_group_strategies``). Real data
  (``mooccubex-courses`` train, 20% of each learner's courses held out as validation, EASE
  on the rest): the share of members with at least one of their validation courses on the
  group menu.
- **search blend** (``BlendWeights()``, hand-set; the learned blend replaces it when search
  logs exist): text only, preference only, the hand-set blend and blends with other
  preference weights. Simulator presets: MRR of the clicked course on the searches of the
  last 20% of the period (ALS fitted before 60%, as in ``search_blend.py``). Real data:
  ``mooccubex-courses`` learners "search" for a validation course with its discipline field
  as the query (as in ``search_mooccubex.py``, but on validation pairs carved from train);
  MRR of that course.
- **cold route** (chosen by evidence when a model is fitted): the route the selection picks
  and its NDCG@10 on members held out whole (attributes only) vs global popularity, from
  ``cold_members.py``'s protocol; simulator presets and ``mooccubex-enrolments-97k``.

Run (real parts skip cleanly without ``--data``'s folders)::

    python experiments/benchmarks/defaults_check.py [--data DIR] [--seed 0]

The last line reads ``RESULT group_default=... group_best_<set>=... blend_best_<set>=...
cold_route_<set>=... cold_ratio_<set>=...``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
import cold_members

import recommend as rc
from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.data.loaders import load_mooccubex, read_item_map
from recommend.data.splits import RandomHoldout
from recommend.group import BASELINES, STRATEGIES, evaluate_group_strategies, order_for_group
from recommend.search import TEXT_ONLY, BlendWeights, build_index, evaluate_search, fit_blend

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
PRESETS = ("calibrated", "sample")
GROUPS, GROUP_SIZE, MENU = 30, 40, 10
#: Group sizes checked on real data (a small branch, a branch, an organisation).
REAL_GROUP_SIZES = (10, 40, 200)
DEFAULT_STRATEGY = "coverage"


def blends() -> dict[str, BlendWeights]:
    """Search rankings compared; ``hand_set`` is the default ``BlendWeights()``."""
    hand = BlendWeights()
    out = {"text_only": TEXT_ONLY, "preference_only": BlendWeights(0.0, 1.0, 0.0, 0.0)}
    for p in (0.25, 0.5, 0.75, 1.0, 2.0):
        name = "hand_set" if p == hand.preference else f"preference_{p:g}"
        out[name] = BlendWeights(hand.text, p, hand.popularity, hand.freshness)
    return out


def random_groups(ids: np.ndarray, seed: int, size: int = GROUP_SIZE) -> dict[str, list[str]]:
    """``GROUPS`` random groups of ``size`` members (at most 6,000 members in all)."""
    rng = np.random.default_rng(seed)
    count = min(GROUPS, max(1, 6000 // size))
    return {f"g{i}": [str(m) for m in rng.choice(ids, size, replace=False)] for i in range(count)}


# ------------------------------------------------------------------------ simulator
def simulator_checks(preset: str, seed: int) -> dict[str, pd.Series]:
    start = time.perf_counter()
    platform = rc.synthesize(preset, seed=seed)
    ds = rc.Dataset.from_frames(
        platform.events, courses=platform.courses, members=platform.members, orgs=platform.orgs
    )
    model = rc.EASE().fit(ds)
    groups = random_groups(np.asarray(ds.member_ids.external_ids), seed)
    table = evaluate_group_strategies(model, platform, groups, n=MENU)
    group = table.xs("all")["mean_satisfaction"].rename(preset)

    lo, hi = platform.period
    fit_from, test_from = lo + (hi - lo) * 0.6, lo + (hi - lo) * 0.8
    early = platform.events[platform.events["timestamp"] < fit_from]
    early_ds = rc.Dataset.from_frames(
        early,
        courses=platform.courses,
        members=platform.members,
        orgs=platform.orgs,
        on_unknown="drop",
    )
    als = rc.ALS(n_factors=32, iterations=10, random_state=seed).fit(early_ds)
    s = platform.searches
    fit_on = s[(s["timestamp"] >= fit_from) & (s["timestamp"] < test_from)]
    later = s[s["timestamp"] >= test_from]
    methods = blends()
    methods["learned"] = fit_blend(als, fit_on).weights
    blend = evaluate_search(als, later, methods)["mrr"].rename(preset)
    print(f"   {preset}: group and search checks in {time.perf_counter() - start:.0f} s")
    return {"group": group, "blend": blend}


# ------------------------------------------------------------------------ real data
def real_checks(folder: Path, seed: int) -> dict[str, pd.Series]:
    """Group strategies and search blends on ``mooccubex-courses`` train (validation only)."""
    start = time.perf_counter()
    data = load_mooccubex(folder)
    courses = data.courses
    assert courses is not None
    members = IdMap.from_values(data.train["member_id"])
    known = IdMap.from_values(pd.concat([data.train["course_id"], courses["course_id"]]))
    courses = courses[courses["course_id"].isin(known.external_ids)]
    train = Dataset.from_frames(
        data.train, courses=courses, member_ids=members, course_ids=known, on_unknown="drop"
    )
    fit_part, valid = train.split(RandomHoldout(test_fraction=0.2, seed=seed))
    model = rc.EASE(l2=1000.0).fit(fit_part)

    # Group menus: share of members with a validation course on their group's menu.
    truth = valid.interactions.tocsr()
    ids = np.asarray(fit_part.member_ids.external_ids)
    with_truth = ids[np.flatnonzero(truth.getnnz(axis=1) > 0)]
    out = {}
    for size in REAL_GROUP_SIZES:
        hits: dict[str, list[float]] = {s: [] for s in STRATEGIES + BASELINES}
        for spec in random_groups(with_truth, seed, size).values():
            rows = fit_part.member_ids.to_index(spec)
            for strategy in hits:
                menu = order_for_group(model, spec, MENU, strategy=strategy, pin_compulsory=False)
                courses_on = menu.menu["course_id"].to_numpy(dtype=object)
                found = truth[rows][:, fit_part.course_ids.to_index(courses_on)].getnnz(axis=1)
                hits[strategy].extend((found > 0).astype(float).tolist())
        out[f"mooccubex_{size}"] = pd.Series({s: float(np.mean(v)) for s, v in hits.items()})

    # Search: a validation course sought by its first discipline field.
    mapping = read_item_map(folder / "item_map.txt")
    field: dict[str, str] = {}
    with open(folder / "course_profiles.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            cid = mapping.get(str(rec.get("original_id")))
            if cid is not None and rec.get("fields"):
                field[str(cid)] = str(rec["fields"][0])
    pairs = valid.events[["member_id", "course_id"]].drop_duplicates()
    query = pairs["course_id"].astype(str).map(field)
    usable = pairs[query.notna()].assign(query=query[query.notna()])
    sample = usable.sample(n=min(3000, len(usable)), random_state=seed)
    searches = pd.DataFrame(
        {
            "member_id": sample["member_id"].to_numpy(),
            "query": sample["query"].to_numpy(),
            "shown": [[] for _ in range(len(sample))],
            "clicked": [[c] for c in sample["course_id"].tolist()],
        }
    )
    index = build_index(model)
    blend = evaluate_search(model, searches, blends(), index=index, k=10)["mrr"]
    print(
        f"   mooccubex-courses: groups of {REAL_GROUP_SIZES} members, {len(searches)} "
        f"validation searches ({time.perf_counter() - start:.0f} s)"
    )
    return {**out, "blend": blend.rename("mooccubex")}


def cold_checks(data: Path, seed: int) -> dict[str, dict[str, object]]:
    """The chosen cold route and its ratio to global popularity (``cold_members.run``)."""
    out = {}
    for preset in PRESETS:
        p = rc.synthesize(preset, seed=seed)
        ds = Dataset.from_frames(p.events, courses=p.courses, members=p.members, orgs=p.orgs)
        out[preset] = cold_members.run(f"simulator ({preset} preset)", ds, seed)
    folder = data / "mooccubex-enrolments-97k"
    if (folder / "user_list.txt").exists():
        ds = cold_members.enrolments_97k(folder)
        out["97k"] = cold_members.run("mooccubex-enrolments-97k (gender)", ds, seed)
    return out


def show(title: str, columns: dict[str, pd.Series], default: str) -> dict[str, str]:
    table = pd.DataFrame(columns)
    table["default"] = ["<-" if i == default else "" for i in table.index]
    print(f"\n== {title} (default: {default})")
    with pd.option_context("display.width", 160, "display.float_format", "{:.4f}".format):
        print(table.to_string())
    best = {}
    for name in columns:
        col = table[name]
        best[name] = str(col.idxmax())
        ratio = col[default] / col.max()
        print(f"   {name}: best {best[name]} {col.max():.4f}; default/best {ratio:.3f}")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-cold", action="store_true", help="group and search only")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    group: dict[str, pd.Series] = {}
    blend: dict[str, pd.Series] = {}
    for preset in PRESETS:
        got = simulator_checks(preset, args.seed)
        group[preset], blend[preset] = got["group"], got["blend"]
    folder = args.data / "mooccubex-courses"
    if (folder / "course_profiles.jsonl").exists():
        got = real_checks(folder, args.seed)
        blend["mooccubex"] = got.pop("blend")
        group.update(got)
    else:
        print(f"{folder} not found: real-data group and search checks skipped")
    fields: dict[str, object] = {"group_default": DEFAULT_STRATEGY}
    best = show(
        "group strategy: mean true satisfaction (simulator), share of members with a "
        "validation course on the menu (mooccubex)",
        group,
        DEFAULT_STRATEGY,
    )
    fields.update({f"group_best_{k}": v for k, v in best.items()})
    fields.update({f"group_ratio_{k}": group[k][DEFAULT_STRATEGY] / group[k].max() for k in group})
    best = show("search blend: MRR of the sought course", blend, "hand_set")
    fields.update({f"blend_best_{k}": v for k, v in best.items()})
    fields.update({f"blend_ratio_{k}": blend[k]["hand_set"] / blend[k].max() for k in blend})
    if not args.skip_cold:
        print("\n== cold route: chosen on members held out of train, scored on others")
        for key, got in cold_checks(args.data, args.seed).items():
            fields[f"cold_route_{key}"] = got["route"]
            fields[f"cold_ratio_{key}"] = float(got["ratio"])  # type: ignore[arg-type]
    print(
        "RESULT "
        + " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )
    )


if __name__ == "__main__":
    main()
