"""What tracking a run costs, next to the work it tracks.

A generated platform with 20k courses and 50k members (``menu_latency.make_dataset``), an
ALS model with 64 factors, evaluated on a time split. Measured side by side in one run:

* ``eval``: fitting and evaluating the model (the work being tracked; the reference);
* ``save``: writing the model artifact to a local folder (``recommend.save``);
* ``log``: ``log_evaluation`` with the model — params, data fingerprint and size, metrics
  per k and per segment, tables, the metric@k plot and ``model.json`` — into a SQLite store
  that already exists (a new store costs its one-off schema creation, shown separately);
* ``pyfunc``: logging the whole servable model as a pyfunc model (what registering adds).

Target: ``log`` < 2 s for a 20k-course model. Run::

    python experiments/benchmarks/tracking.py [--courses 20000] [--members 50000]

The last line reads ``RESULT log_seconds=... pyfunc_seconds=... eval_seconds=...
ratio_log_to_eval=... store_create_seconds=...``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

# The benchmarks share one generated catalogue (this folder is on sys.path when run).
from menu_latency import make_dataset

from recommend.artifact import save
from recommend.data.splits import TimeSplit
from recommend.evaluation import evaluate
from recommend.models import ALS
from recommend.serving import log_pyfunc
from recommend.tracking import ensure_experiment, log_evaluation, mlflow_client, tracked_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--courses", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=50_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    ds = make_dataset(args.courses, args.members, args.seed)
    train, test = ds.split(TimeSplit(test_fraction=0.2))
    print(
        f"data: {ds.n_members:,} members x {ds.n_courses:,} courses, {ds.interactions.nnz:,} pairs"
    )
    model = ALS(n_factors=args.factors, iterations=3)
    start = time.perf_counter()
    result = evaluate(model, train, test, ks=(10, 20))
    eval_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlruns.db'}"
        start = time.perf_counter()
        client = mlflow_client(uri)
        ensure_experiment(client, "bench")
        create_s = time.perf_counter() - start

        save_times, log_times, pyfunc_times = [], [], []
        for i in range(args.repeats):
            start = time.perf_counter()
            save(model, Path(tmp) / f"model{i}")
            save_times.append(time.perf_counter() - start)

            start = time.perf_counter()
            log_evaluation(result, train=train, experiment="bench", model=model, uri=uri)
            log_times.append(time.perf_counter() - start)

            start = time.perf_counter()
            with tracked_run(client, ensure_experiment(client, "bench")) as run_id:
                log_pyfunc(client, run_id, model)
            pyfunc_times.append(time.perf_counter() - start)
        size_mb = sum(f.stat().st_size for f in (Path(tmp) / "model0").rglob("*")) / 2**20

    save_s, log_s, pyfunc_s = (
        sorted(t)[len(t) // 2] for t in (save_times, log_times, pyfunc_times)
    )
    print(f"artifact size          {size_mb:8.1f} MiB")
    print(f"fit + evaluate (ref)   {eval_s:8.2f} s")
    print(f"save artifact          {save_s:8.2f} s")
    print(f"log_evaluation         {log_s:8.2f} s   ({log_s / eval_s:.2%} of fit + evaluate)")
    print(f"log pyfunc model       {pyfunc_s:8.2f} s   ({pyfunc_s / save_s:.1f}x a local save)")
    print(f"new store (once)       {create_s:8.2f} s")
    print(f"target: log_evaluation < 2 s -> {'met' if log_s < 2 else 'NOT met'}")
    print(
        f"RESULT log_seconds={log_s:.3f} pyfunc_seconds={pyfunc_s:.3f} eval_seconds={eval_s:.2f} "
        f"ratio_log_to_eval={log_s / eval_s:.4f} save_seconds={save_s:.3f} "
        f"store_create_seconds={create_s:.2f} artifact_mb={size_mb:.1f}"
    )


if __name__ == "__main__":
    main()
