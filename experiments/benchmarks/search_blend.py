"""Learned search blend vs text-only, preference-only and hand-set, on simulator search logs.

The simulator (``recommend.data.synthetic``) logs searches: a member searches for a course
they want, sees up to 20 text matches ranked by relevance, popularity and noise, and clicks
with a position bias (``1 / log2(position + 2)``) times the appeal of the course to them.
Time windows keep the evaluation honest:

- the model (ALS) is fitted on events before 60 % of the period (so it never saw the
  clicks it is asked about);
- the blend is fitted on the searches in [60 %, 80 %) of the period;
- every method ranks the BM25 candidates of the searches after 80 % (held out), and MRR,
  NDCG@10 and hit@10 of the clicked courses are reported.

Target: learned >= 1.10 x text-only MRR. Run::

    python experiments/benchmarks/search_blend.py [--preset sample] [--seed 0]

The last line reads ``RESULT mrr_text=... mrr_pref=... mrr_hand=... mrr_learned=...
ndcg10_text=... ndcg10_learned=... gain_mrr=...``.
"""

from __future__ import annotations

import argparse
import logging
import time

import recommend as rc
from recommend.search import evaluate_search, fit_blend, standard_methods


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="sample")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experiment", help="also log the fit to this MLflow experiment")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    start = time.perf_counter()
    platform = rc.synthesize(args.preset, seed=args.seed)
    lo, hi = platform.period
    fit_from, test_from = lo + (hi - lo) * 0.6, lo + (hi - lo) * 0.8
    events = platform.events[platform.events["timestamp"] < fit_from]
    ds = rc.Dataset.from_frames(
        events,
        courses=platform.courses,
        members=platform.members,
        orgs=platform.orgs,
        on_unknown="drop",
    )
    model = rc.ALS(n_factors=32, iterations=10, random_state=args.seed).fit(ds)
    s = platform.searches
    fit_on = s[(s["timestamp"] >= fit_from) & (s["timestamp"] < test_from)]
    test_on = s[s["timestamp"] >= test_from]
    fit = fit_blend(model, fit_on, experiment=args.experiment)
    table = evaluate_search(model, test_on, standard_methods(fit.weights))
    print(
        f"{args.preset} (seed {args.seed}): {len(s)} searches; blend fitted on {fit.searches} "
        f"searches ({fit.pairs} pairs, pair accuracy {fit.pair_accuracy:.3f}); "
        f"{int(table['searches'].iloc[0])} held-out searches with a click "
        f"({time.perf_counter() - start:.1f} s)"
    )
    print("learned weights:", {k: round(v, 3) for k, v in fit.weights.to_dict().items()})
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    gain = table.loc["learned", "mrr"] / table.loc["text_only", "mrr"]
    print(f"learned / text-only MRR: {gain:.3f}")
    print(
        f"RESULT mrr_text={table.loc['text_only', 'mrr']:.4f} "
        f"mrr_pref={table.loc['preference_only', 'mrr']:.4f} "
        f"mrr_hand={table.loc['hand_set', 'mrr']:.4f} "
        f"mrr_learned={table.loc['learned', 'mrr']:.4f} "
        f"ndcg10_text={table.loc['text_only', 'ndcg@10']:.4f} "
        f"ndcg10_learned={table.loc['learned', 'ndcg@10']:.4f} gain_mrr={gain:.3f}"
    )


if __name__ == "__main__":
    main()
