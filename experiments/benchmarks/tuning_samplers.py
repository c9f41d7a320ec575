"""Optuna TPE (with pruning) against random search at equal trial counts.

Both samplers tune the same models on the same validation split carved from the training
data (never the test data), with the same number of trials and seeds; the table shows the
best validation NDCG@20 each finds, the trials TPE pruned and the time spent. Reference:
random search (``tpe/random`` >= 1 means TPE found at least as good parameters).

Data sets: the simulator sample (``data/sample``, a random 80/20 split per member; the
validation split is carved from its training part) and ``mooccubex-courses`` (train.txt
only, tuned on a random 20% per member of it; skipped when absent).

    python experiments/benchmarks/tuning_samplers.py [--trials 15] [--seeds 0,1] \
        [--models als,rp3beta,edlae]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import pandas as pd

from recommend.cli.data import load_sample
from recommend.data.dataset import Dataset
from recommend.data.loaders import load_mooccubex
from recommend.data.splits import RandomHoldout
from recommend.tuning import tune

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def sample_train() -> Dataset:
    platform = load_sample(ROOT / "data" / "sample")
    ds = Dataset.from_frames(platform.events, courses=platform.courses, members=platform.members)
    return ds.split(RandomHoldout(test_fraction=0.2, seed=0))[0]


def mooc_train(folder: Path) -> Dataset:
    return Dataset.from_frames(load_mooccubex(folder).train)


def compare(name: str, train: Dataset, models: list[str], trials: int, seeds: list[int]) -> list:
    validation = RandomHoldout(test_fraction=0.2, seed=0)
    rows = []
    for model in models:
        for seed in seeds:
            row: dict[str, object] = {"data": name, "model": model, "seed": seed}
            for sampler in ("random", "tpe"):
                start = time.perf_counter()
                result = tune(
                    model,
                    train,
                    n_trials=trials,
                    metric="ndcg@20",
                    validation=validation,
                    seed=seed,
                    sampler=sampler,
                )
                row[sampler] = result.best_score
                row[f"{sampler}_s"] = time.perf_counter() - start
                if sampler == "tpe":
                    row["pruned"] = result.n_pruned
            row["tpe/random"] = float(row["tpe"]) / float(row["random"])  # type: ignore[arg-type]
            print(
                f"   {name:<8} {model:<8} seed {seed}: random {row['random']:.4f} "
                f"({row['random_s']:.0f} s), tpe {row['tpe']:.4f} ({row['tpe_s']:.0f} s, "
                f"{row['pruned']} pruned)",
                flush=True,
            )
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder of mooccubex-courses")
    parser.add_argument("--trials", type=int, default=15, help="trials per sampler and model")
    parser.add_argument("--seeds", default="0", help="comma-separated sampler seeds")
    parser.add_argument("--models", default="als,rp3beta,edlae", help="comma-separated")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    print(f"== {args.trials} trials per sampler, models {models}, seeds {seeds}")
    rows = compare("sample", sample_train(), models, args.trials, seeds)
    folder = Path(args.data) / "mooccubex-courses"
    if (folder / "train.txt").exists():
        rows += compare("mooc", mooc_train(folder), models, args.trials, seeds)
    else:
        print(f"   (no mooccubex-courses under {args.data}: simulator sample only)")
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    ratios = table["tpe/random"].tolist()
    wins = sum(r >= 1.0 for r in ratios)
    print(
        f"RESULT median_tpe_vs_random={statistics.median(ratios):.4f} "
        f"min_tpe_vs_random={min(ratios):.4f} tpe_at_least_as_good={wins}/{len(ratios)} "
        f"tpe_seconds={table['tpe_s'].sum():.0f} random_seconds={table['random_s'].sum():.0f} "
        f"pruned={int(table['pruned'].sum())} trials={args.trials}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
