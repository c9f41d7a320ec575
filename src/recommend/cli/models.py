"""``recommend evaluate|train|experiment run|register``: fit, compare and register models."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recommend.cli.data import load_data, own_data, read_events
from recommend.errors import DataError

if TYPE_CHECKING:
    from recommend.data.dataset import Dataset

__all__ = [
    "cmd_evaluate",
    "cmd_experiment_analyse",
    "cmd_experiment_run",
    "cmd_register",
    "cmd_train",
]


def _parse_params(items: Sequence[str] | None) -> dict[str, object]:
    """``key=value`` strings to a dict, with ints, floats, booleans and None recognised."""
    from recommend.errors import ConfigError

    params: dict[str, object] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}; expected KEY=VALUE, e.g. --param n_factors=64")
        value: object = raw
        lowered = raw.lower()
        if lowered in ("true", "false"):
            value = lowered == "true"
        elif lowered in ("none", "null"):
            value = None
        else:
            for cast in (int, float):
                try:
                    value = cast(raw)
                    break
                except ValueError:
                    continue
        params[key.strip()] = value
    return params


def _parse_ks(text: str) -> tuple[int, ...]:
    from recommend.errors import ConfigError

    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise ConfigError(f"--k {text!r}; expected comma-separated integers, e.g. 10,20") from None
    if not ks or ks[0] < 1:
        raise ConfigError(f"--k {text!r}; expected positive cut-offs")
    return ks


def _train_test(args: argparse.Namespace) -> tuple[Dataset, Dataset, bool]:
    """Train and test datasets over one universe of members and courses."""
    from recommend.data.dataset import Dataset
    from recommend.data.idmap import IdMap
    from recommend.schema import Columns as Col

    train_ev = read_events(args.train, args.format, **own_data(args))
    test_ev = read_events(args.test, args.format, **own_data(args))
    # One universe for both, so test courses unseen in training count as misses.
    members = IdMap.from_values(pd.concat([train_ev[Col.MEMBER], test_ev[Col.MEMBER]]))
    courses = IdMap.from_values(pd.concat([train_ev[Col.COURSE], test_ev[Col.COURSE]]))
    train = Dataset.from_frames(
        train_ev, member_ids=members, course_ids=courses, on_future=args.on_future
    )
    # The test part lies after the training part's now on purpose.
    test = Dataset.from_frames(
        test_ev, member_ids=members, course_ids=courses, now=train.now, on_future="keep"
    )
    timed = args.format != "lines"
    return train, test, timed


def _choose_model(args: argparse.Namespace, train: Dataset, timed: bool) -> tuple[str, dict]:
    """Model name and parameters: given, tuned on validation from TRAIN, or the best.

    With ``best`` every model is tuned on the same validation split of TRAIN, then the
    fusion of the tuned EASE, RP3beta, EDLAE and GF-CF is scored there too; the best validation
    score wins (and is refitted on all of TRAIN by the caller)."""
    from recommend.data.splits import RandomHoldout, TimeSplit
    from recommend.models import MODEL_NAMES, get_model_class
    from recommend.tuning import FUSION_PARTS, tune, tune_fusion

    params = _parse_params(args.param)
    metric = f"ndcg@{max(_parse_ks(args.k))}"
    validation = TimeSplit(test_fraction=0.2) if timed else RandomHoldout(0.2, seed=0)
    best_of_all = args.model == "best"
    candidates = [m for m in MODEL_NAMES if m != "fusion"] if best_of_all else [args.model]
    minutes = getattr(args, "tune_minutes", None)
    sampler = getattr(args, "sampler", "tpe")
    if best_of_all or args.tune or minutes:
        trials = args.tune or (10_000 if minutes else 10)
        results = []
        for name in candidates:
            budget = f", {minutes:g} min at most" if minutes else ""
            print(
                f"tuning {name} on a validation split of TRAIN ({trials} {sampler} trials{budget})",
                file=sys.stderr,
            )
            # With `best`, each --param goes to the models that have it.
            accepted = set(get_model_class(name).param_names())
            fixed = {k: v for k, v in params.items() if k in accepted or not best_of_all}
            results.append(
                tune(
                    name,
                    train,
                    n_trials=trials,
                    fixed=fixed,
                    metric=metric,
                    validation=validation,
                    sampler=sampler,
                    minutes=minutes,
                )
            )
        if best_of_all and all(p in candidates for p in FUSION_PARTS):
            print("scoring the fusion of the tuned linear models", file=sys.stderr)
            results.append(tune_fusion(results, train, metric=metric, validation=validation))
        best = max(results, key=lambda r: r.best_score)
        return best.model, best.best_params
    return args.model, params


def _member_counts(metrics: dict[str, float]) -> dict[str, int]:
    """Who an evaluation covered: members evaluated, members with test courses, and those
    left out for lack of training history."""
    return {
        "evaluated": int(metrics["n_evaluated"]),
        "with_test_courses": int(metrics["n_test_members"]),
        "left_out_no_history": int(metrics["n_left_out"]),
    }


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recommend.evaluation import evaluate
    from recommend.models import make_model

    ks = _parse_ks(args.k)
    train, test, timed = _train_test(args)
    name, params = _choose_model(args, train, timed)
    result = evaluate(make_model(name, **params), train, test, ks=ks, n_boot=200)
    counts = _member_counts(result.metrics)
    if args.json:
        out = {"model": name, "params": params, "members": counts, "metrics": result.metrics}
        print(json.dumps(out, ensure_ascii=False, default=str))
        return 0
    print(f"model   {name}")
    print(f"params  {params}")
    print(
        f"members evaluated {counts['evaluated']:,} of {counts['with_test_courses']:,} with "
        f"test courses; {counts['left_out_no_history']:,} left out: no training history "
        "(cold members are served by the cold-start routes)"
    )
    table = pd.Series(result.metrics).rename("value").to_frame()
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from recommend.artifact import save
    from recommend.data.dataset import Dataset
    from recommend.models import make_model

    tables = load_data(args.data, args.format, **own_data(args))
    ds = Dataset.from_frames(
        tables["events"],
        courses=tables.get("courses"),
        members=tables.get("members"),
        orgs=tables.get("orgs"),
        on_unknown="drop",
        on_future=args.on_future,
    )
    timed = args.format != "lines"
    name, params = _choose_model(args, ds, timed)
    start = time.perf_counter()
    model = make_model(name, **params).fit(ds)
    out = save(model, args.out, overwrite=args.overwrite)
    print(
        f"trained {name} {params} on {ds.n_members:,} members x {ds.n_courses:,} courses "
        f"in {time.perf_counter() - start:.1f} s"
    )
    print(f"saved the model to {out}")
    return 0


def cmd_experiment_run(args: argparse.Namespace) -> int:
    from recommend.experiment import load_config, run_experiment

    config = load_config(args.path)  # fails on a bad key before any data is read
    result = run_experiment(config, uri=args.tracking_uri, register=args.register)
    reg = result.registration
    if args.json:
        table = json.loads(result.table.to_json(orient="index"))
        out = {"name": result.name, "run_id": result.run_id, "params": result.params}
        if reg is not None:
            out["registered"] = {"uri": reg.uri, "version": reg.version, "model": result.best}
        print(json.dumps({**out, "metrics": table}, ensure_ascii=False, default=str))
        return 0
    ks = config.evaluation.ks
    cols = [f"{m}@{k}" for k in ks for m in ("ndcg", "recall")] + [f"coverage@{max(ks)}"]
    print(f"experiment {result.name}: run {result.run_id}")
    shown = result.table[[c for c in [*cols, "fit_seconds"] if c in result.table.columns]]
    print(shown.to_string(float_format=lambda v: f"{v:.4f}"))
    for label, params in result.params.items():
        print(f"{label:<12} {params}")
    if reg is not None:
        print(f"registered {result.best} as {reg.uri} (version {reg.version})")
    return 0


def cmd_experiment_analyse(args: argparse.Namespace) -> int:
    from recommend.insights.online import analyse_experiment, log_experiment

    exposures, outcomes = _frame(args.exposures), _frame(args.outcomes)
    got = analyse_experiment(exposures, outcomes, control=args.control, confidence=args.confidence)
    run_id = log_experiment(got, args.log, uri=args.tracking_uri) if args.log else None
    if args.json:
        out = {
            "control": got.control,
            "srm_p_value": got.srm_p_value,
            "srm": got.srm,
            "arms": json.loads(got.arms.to_json(orient="records")),
            "tests": json.loads(got.tests.to_json(orient="records")),
            "run_id": run_id,
        }
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(got.arms.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(got.tests.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    flag = "MISMATCH" if got.srm else "ok"
    print(f"sample ratio: p={got.srm_p_value:.4g} ({flag})")
    if run_id:
        print(f"logged to MLflow run {run_id}")
    return 0


def _frame(path: str) -> pd.DataFrame:
    file = Path(path)
    if not file.exists():
        raise DataError(f"{file}: no such file")
    if file.suffix.lower() == ".csv":
        return pd.read_csv(file)
    if file.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(file)
    raise DataError(f"{file}: expected a .csv or .parquet file")


def cmd_register(args: argparse.Namespace) -> int:
    from recommend.cli.demo import mlflow_commands
    from recommend.registry import register_artifact
    from recommend.tracking import tracking_uri

    reg = register_artifact(
        args.model,
        args.name,
        alias=args.alias,
        experiment=args.experiment,
        uri=args.tracking_uri,
    )
    print(f"registered {args.model} as {reg.uri} (version {reg.version})")
    print(f"serve it: {mlflow_commands(tracking_uri(args.tracking_uri), reg.uri)[1]}")
    return 0


def add_ingest_verb(verbs: Any) -> None:
    """``recommend ingest``: fold new events into a saved model, as a new artifact."""
    ig = verbs.add_parser("ingest", help="fold a batch of new events into a saved model (no refit)")
    ig.add_argument("--model", required=True, help="artifact folder to read")
    ig.add_argument("--events", help="events file (Parquet or CSV)")
    ig.add_argument(
        "--courses",
        help="new catalogue rows (courses file, Parquet or CSV): offered from this version on",
    )
    ig.add_argument("--format", choices=("parquet", "csv"), help="file format")
    ig.add_argument("--out", help="artifact folder to write (default: replace --model, atomically)")
    ig.set_defaults(func=cmd_ingest)


def cmd_ingest(args: argparse.Namespace) -> int:
    """Load, ingest, and write the new version in one atomic step (temp folder + rename):
    a failure leaves the artifact as it was."""
    from recommend.artifact import load, save
    from recommend.data.loaders import read_table
    from recommend.models.ingest import ingest, ingest_arrays

    if args.events is None and args.courses is None:
        raise DataError("recommend ingest: expected --events, --courses or both")
    model = load(args.model)
    courses = None
    if args.courses is not None:
        courses = read_table(args.courses, "courses", format=args.format)
    if args.events is None:  # catalogue rows alone: offered before anyone studies them
        result = ingest_arrays(model, [], [], [], [], courses=courses)
    else:
        result = ingest(model, read_events(args.events, args.format), courses=courses)
    out = args.out or args.model
    save(model, out, overwrite=True)
    summary = {
        "out": str(out),
        "version": result.version,
        "events": result.events,
        "members": result.members,
        "new_members": result.new_members,
        "new_courses": list(result.new_courses),
        "added_courses": list(result.added_courses),
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0
