"""Dispatch against nearest-available and random dispatch, on the simulator's truth.

The simulated requests (``simulate_volunteering``) are dispatched week by week by each
policy; after each week the truth decides who accepts (the same draw for the same volunteer
and request under every policy) and the history the next week learns from grows. Printed
per policy and seed: fill rate, acceptance (mean true probability of the dispatched
volunteers), mean distance, Gini of hours over all volunteers (their last 28 days),
continuity of 弱势群体帮扶 (served by someone who helped the same person before). Run::

    python experiments/benchmarks/volunteer_policies.py [--volunteers 3000] [--requests 1200]

The last line reads ``RESULT fill_rate=... acceptance=... hours_gini=... continuity=...``
for dispatch, means over the seeds, followed by the nearest-available reference
(``ref_...``) and the ratios.
"""

from __future__ import annotations

import argparse

import pandas as pd

from recommend.volunteer import simulate_volunteering
from recommend.volunteer.evaluation import compare_policies

COLUMNS = ["fill_rate", "acceptance", "mean_km", "hours_gini", "continuity"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--volunteers", type=int, default=3_000)
    parser.add_argument("--requests", type=int, default=1_200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    tables = []
    for seed in range(args.seeds):
        world = simulate_volunteering(args.volunteers, args.requests, seed=seed)
        table = compare_policies(world, rounds=args.rounds, seed=seed)
        print(f"seed {seed}: {args.volunteers:,} volunteers, {args.requests:,} requests")
        print(table[COLUMNS].round(3).to_string())
        tables.append(table[COLUMNS])
    mean = pd.concat(tables).groupby(level=0).mean()
    best, ref = mean.loc["optimal"], mean.loc["nearest"]
    print(f"\nmean over {args.seeds} seed(s)")
    print(mean.round(3).to_string())
    print(
        f"RESULT fill_rate={best['fill_rate']:.4f} acceptance={best['acceptance']:.3f} "
        f"hours_gini={best['hours_gini']:.3f} continuity={best['continuity']:.3f} "
        f"mean_km={best['mean_km']:.2f} ref_fill_rate={ref['fill_rate']:.4f} "
        f"ref_acceptance={ref['acceptance']:.3f} ref_hours_gini={ref['hours_gini']:.3f} "
        f"ref_continuity={ref['continuity']:.3f} ref_mean_km={ref['mean_km']:.2f} "
        f"ratio_acceptance={best['acceptance'] / ref['acceptance']:.2f} "
        f"ratio_hours_gini={best['hours_gini'] / ref['hours_gini']:.2f}"
    )


if __name__ == "__main__":
    main()
