"""Every model on real MOOC enrolment data (MOOCCubeX), tuned on validation from train only.

Two folders of the same "lines" layout (``train.txt``/``test.txt``, one learner per line):

- ``mooccubex-courses``: random 80/20 split per learner; report NDCG@20 / recall@20.
  Tuning carves a random 20% per-member validation split out of train.
- ``mooccubex-enrolments-97k``: leave-one-out; report HR@10 / NDCG@10. Tuning holds out one
  random course per member from train.

Every model is tuned with the same sampler (Optuna TPE by default) on the validation split;
``fusion`` is then EASE + RP3beta + EDLAE + GF-CF with their tuned parameters and weights learned on
a split of the fit part. ``best`` is the model with the best *validation* score, and the
reference is tuned EASE (``vs_ease`` = test NDCG / tuned EASE's). The test files are read
only for the final report. Skips cleanly when the data is absent.

    python experiments/benchmarks/mooccubex.py [--data DIR] [--trials 20] [--models ease,als]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

from recommend.data.dataset import Dataset
from recommend.data.idmap import IdMap
from recommend.data.loaders import load_mooccubex
from recommend.data.splits import RandomHoldout
from recommend.evaluation import evaluate
from recommend.models import MODEL_NAMES, make_model
from recommend.tuning import FUSION_PARTS, TuningResult, tune, tune_fusion

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"
# Share of the trial budget per model: fewer for slow or one-knob models, more for ALS
# (cheap to fit, four knobs).
TRIAL_SHARE = {"popularity": 0.25, "lightfm": 0.4, "bpr": 0.5, "als": 2.0}


def datasets(folder: Path) -> tuple[Dataset, Dataset]:
    data = load_mooccubex(folder)
    members = IdMap.from_values(pd.concat([data.train["member_id"], data.test["member_id"]]))
    courses = IdMap.from_values(pd.concat([data.train["course_id"], data.test["course_id"]]))
    train = Dataset.from_frames(data.train, member_ids=members, course_ids=courses)
    test = Dataset.from_frames(data.test, member_ids=members, course_ids=courses, now=train.now)
    return train, test


def run(
    name: str,
    folder: Path,
    models: list[str],
    trials: int,
    k: int,
    validation: RandomHoldout,
    sampler: str,
) -> pd.DataFrame:
    train, test = datasets(folder)
    s = train.summary()
    print(
        f"\n== {name}: {s['members']:,} members x {s['courses']:,} courses, "
        f"{s['interactions']:,} train pairs, {test.interactions.nnz:,} test pairs"
    )
    rows = []
    tuned_parts: list[TuningResult] = []
    fuse = "fusion" in models and all(p in models for p in FUSION_PARTS)
    for model in [m for m in models if m != "fusion"] + (["fusion"] if fuse else []):
        n = max(2, round(trials * TRIAL_SHARE.get(model, 1.0)))
        start = time.perf_counter()
        if model == "fusion":
            n = 1
            tuned = tune_fusion(tuned_parts, train, metric=f"ndcg@{k}", validation=validation)
        else:
            tuned = tune(
                model,
                train,
                n_trials=n,
                metric=f"ndcg@{k}",
                validation=validation,
                sampler=sampler,
            )
            tuned_parts.append(tuned)
        result = evaluate(
            make_model(model, **tuned.best_params),
            train,
            test,
            ks=(10, 20),
            n_boot=0,
            segments=False,
        )
        m = result.metrics
        rows.append(
            {
                "model": model,
                "valid_ndcg": tuned.best_score,
                f"ndcg@{k}": m[f"ndcg@{k}"],
                f"recall@{k}": m[f"recall@{k}"],
                "hr@10": m["hit_rate@10"],
                "ndcg@10": m["ndcg@10"],
                "coverage@20": m["coverage@20"],
                "seconds": time.perf_counter() - start,
                "params": tuned.best_params,
            }
        )
        print(
            f"   {model:<11} test ndcg@{k}={m[f'ndcg@{k}']:.4f}  "
            f"(validation {tuned.best_score:.4f}, {n} trials, {rows[-1]['seconds']:.0f} s) "
            f"{tuned.best_params}",
            flush=True,
        )
    # "best": the model with the best validation score, judged on test only afterwards.
    winner = max(rows, key=lambda r: r["valid_ndcg"])
    rows.append(
        {**winner, "model": "best", "params": {"model": winner["model"], **winner["params"]}}
    )
    table = pd.DataFrame(rows).set_index("model")
    if "ease" in table.index:
        table["vs_ease"] = table[f"ndcg@{k}"] / table.loc["ease", f"ndcg@{k}"]
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder holding both sets")
    parser.add_argument("--trials", type=int, default=20, help="tuning trials per model")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated")
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    parser.add_argument("--trials-97k", type=int, help="trials per model on the 97k set")
    parser.add_argument("--skip-97k", action="store_true", help="only the first data set")
    parser.add_argument("--only-97k", action="store_true", help="only the 97k data set")
    args = parser.parse_args()
    data = Path(args.data)
    courses_dir, big_dir = data / "mooccubex-courses", data / "mooccubex-enrolments-97k"
    if not (courses_dir / "train.txt").exists():
        print(f"SKIP: no MOOCCubeX data under {data} (pass --data DIR)")
        print("RESULT skipped=1")
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    results = {}
    if not args.only_97k:
        results["courses"] = run(
            "mooccubex-courses",
            courses_dir,
            models,
            args.trials,
            20,
            RandomHoldout(test_fraction=0.2, seed=0),
            args.sampler,
        )
    if not args.skip_97k and (big_dir / "train.txt").exists():
        results["97k"] = run(
            "mooccubex-enrolments-97k",
            big_dir,
            models,
            args.trials_97k or args.trials,
            10,
            RandomHoldout(test_fraction=0.01, seed=0),
            args.sampler,
        )
    pd.set_option("display.width", 200)
    for name, table in results.items():
        print(f"\n== {name}")
        print(table.drop(columns=["params"]).to_string(float_format=lambda v: f"{v:.4f}"))
    fields: dict[str, object] = {}
    if "courses" in results:
        c = results["courses"]
        fields.update({f"{m}_ndcg20": c.loc[m, "ndcg@20"] for m in c.index})
        fields["best_model"] = c.loc["best", "params"]["model"]
        if "ease" in c.index:
            fields["best_vs_ease"] = float(c.loc["best", "vs_ease"])
    if "97k" in results:
        b = results["97k"]
        fields.update({f"k97_{m}_hr10": b.loc[m, "hr@10"] for m in b.index})
        fields["k97_best_model"] = b.loc["best", "params"]["model"]
    print(
        "RESULT "
        + " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
