"""The simulator's statistics beside real enrolment data (the calibration table).

Prints, for simulated presets and the two real MOOCCubeX sets (``train.txt`` only), the
popularity, activity and density statistics of ``recommend.data.synthetic.calibration``
and, on a random per-member 80/20 holdout carved from the training pairs, the NDCG@20 of
global popularity, of EASE (best of a small lambda grid) and of popularity within each
member segment (simulator: branch, occupation, age band, district; the 97k set: gender;
``mooccubex-courses`` has no member attributes). Ratios are against global popularity
measured in the same run. docs/simulator.md holds the table::

    PYTHONPATH=src python experiments/calibrate_simulator.py \
        [--data /work/shared/data] [--presets calibrated,sample] [--seed 0]

Real sets that are absent are skipped. Ends with one ``RESULT`` line (the first preset's
figures and the real ranges).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommend.data.synthetic import synthesize
from recommend.data.synthetic.calibration import (
    compulsory_pair_share,
    holdout,
    k_core,
    ndcg_of_scores,
    pair_statistics,
    platform_pairs,
    popularity_ndcg,
    read_lines,
)

LAMBDAS = (50.0, 200.0, 800.0, 3200.0)
ROWS = (
    ("members", "{:.0f}"),
    ("courses", "{:.0f}"),
    ("pairs", "{:.0f}"),
    ("density", "{:.4f}"),
    ("top1_share", "{:.3f}"),
    ("top10_share", "{:.3f}"),
    ("item_gini", "{:.3f}"),
    ("slope", "{:.2f}"),
    ("member_gini", "{:.3f}"),
    ("member_q10", "{:.0f}"),
    ("member_q50", "{:.0f}"),
    ("member_q90", "{:.0f}"),
    ("compulsory_share", "{:.3f}"),
    ("ndcg_pop", "{:.4f}"),
    ("ease_vs_pop", "{:.2f}x"),
    ("best_segment", "{}"),
    ("segment_lift", "{:.3f}x"),
)


def ease_ndcg(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> float:
    """Best NDCG@20 of EASE over ``LAMBDAS`` (dense closed form)."""
    n_users = int(max(train[0].max(), test[0].max())) + 1
    n_items = int(max(train[1].max(), test[1].max())) + 1
    x = sp.csr_matrix((np.ones(train[0].size, dtype=np.float64), train), shape=(n_users, n_items))
    gram = (x.T @ x).toarray()
    best = 0.0
    for lam in LAMBDAS:
        p = np.linalg.inv(gram + lam * np.eye(n_items))
        b = -p / np.diag(p)[None, :]
        np.fill_diagonal(b, 0.0)
        best = max(best, ndcg_of_scores(lambda u, b=b: x[u] @ b, train, test))
    return best


def measure(
    member: np.ndarray, course: np.ndarray, segments: dict[str, np.ndarray], seed: int
) -> dict[str, object]:
    stats: dict[str, object] = dict(pair_statistics(member, course))
    member, course = k_core(member, course)
    train, test = holdout(member, course, 0.2, seed)
    ndcg = popularity_ndcg(train, test, segments)
    pop = ndcg.pop("global")
    stats["ndcg_pop"] = pop
    stats["ease_vs_pop"] = ease_ndcg(train, test) / pop
    for name, value in ndcg.items():
        stats[f"lift_{name}"] = value / pop
    if ndcg:
        name = max(ndcg, key=lambda n: ndcg[n])
        stats["best_segment"] = name
        stats["segment_lift"] = ndcg[name] / pop
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    parser.add_argument("--presets", default="calibrated,sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    columns: dict[str, dict[str, object]] = {}
    for preset in args.presets.split(","):
        t0 = time.perf_counter()
        platform = synthesize(preset, seed=args.seed)
        member, course, segments = platform_pairs(platform)
        stats = measure(member, course, segments, args.seed)
        stats["compulsory_share"] = compulsory_pair_share(platform)
        columns[f"sim:{preset}"] = stats
        print(f"[sim:{preset}] {time.perf_counter() - t0:.1f}s")

    courses = args.data / "mooccubex-courses" / "train.txt"
    if courses.exists():
        member, course = read_lines(courses)
        columns["mooccubex-courses"] = measure(member, course, {}, args.seed)
    k97 = args.data / "mooccubex-enrolments-97k"
    if (k97 / "train.txt").exists():
        member, course = read_lines(k97 / "train.txt")
        gender = np.full(int(member.max()) + 1, "unknown", dtype=object)
        rows = np.loadtxt(k97 / "user_list.txt", dtype=str, skiprows=1)
        gender[rows[:, 1].astype(np.int64)] = rows[:, 2]
        columns["97k"] = measure(member, course, {"gender": gender.astype(str)}, args.seed)

    lift_rows = sorted({k for c in columns.values() for k in c if k.startswith("lift_")})
    names = list(columns)
    print("| statistic | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key, fmt in (*ROWS, *((k, "{:.3f}x") for k in lift_rows)):
        cells = [fmt.format(c[key]) if key in c else "-" for c in columns.values()]
        print(f"| {key} | " + " | ".join(cells) + " |")
    first = columns[names[0]]
    print(
        "RESULT "
        + " ".join(
            f"{k}={first[k]:.3f}" if isinstance(first[k], float) else f"{k}={first[k]}"
            for k in ("top10_share", "item_gini", "slope", "member_gini", "segment_lift")
            if k in first
        )
        + f" ease_vs_pop={first['ease_vs_pop']:.2f}"
    )


if __name__ == "__main__":
    main()
