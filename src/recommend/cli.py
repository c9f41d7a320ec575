"""The ``recommend`` command line: verbs that mirror the Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pandas as pd

from recommend.errors import ConfigError, DataError, RecommendError

if TYPE_CHECKING:
    from recommend.data.dataset import Dataset
    from recommend.data.splits import Splitter
    from recommend.data.synthetic import Platform
    from recommend.evaluation import EvaluationResult
    from recommend.models.base import Recommender

    # What add_subparsers returns: argparse has no public name for its type.
    Verbs: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["main"]

log = logging.getLogger("recommend")

TABLE_NAMES = ("events", "courses", "members", "orgs", "searches")
DEFAULT_SAMPLE = Path("data/sample")


def _table_of(path: Path, given: str | None) -> str:
    if given:
        return given
    stem = path.name.split(".")[0].lower()
    for name in TABLE_NAMES:
        if stem == name or stem.startswith(name) or stem.endswith(name):
            return name
    raise DataError(
        f"{path}: cannot tell which table this is from its name; name it after the table "
        f"({', '.join(TABLE_NAMES)}) or pass --table"
    )


# ---------------------------------------------------------------------------- data verbs
def cmd_data_synth(args: argparse.Namespace) -> int:
    from recommend.data.synthetic import PRESETS, synthesize

    config = PRESETS[args.preset]
    overrides = {
        k: v for k, v in (("n_members", args.members), ("n_courses", args.courses)) if v is not None
    }
    if overrides:
        from dataclasses import replace

        config = replace(config, **overrides)
    start = time.perf_counter()
    platform = synthesize(config, seed=args.seed)
    platform.write(args.out)
    took = time.perf_counter() - start
    print(
        f"wrote {len(platform.members):,} members, {len(platform.courses):,} courses, "
        f"{len(platform.events):,} events, {len(platform.searches):,} searches "
        f"to {args.out} in {took:.1f} s"
    )
    return 0


def cmd_data_validate(args: argparse.Namespace) -> int:
    from recommend.data.loaders import read_table
    from recommend.data.validation import check_references, find_problems

    clean: dict[str, pd.DataFrame] = {}
    failed = False
    report: list[dict[str, Any]] = []
    for raw in args.files:
        path = Path(raw)
        try:
            table = _table_of(path, args.table)
            frame = read_table(path, table)
            cleaned, problems = find_problems(table, frame)
        except DataError as err:
            failed = True
            report.append({"file": str(path), "ok": False, "problems": [str(err)]})
            continue
        if problems:
            failed = True
            report.append(
                {
                    "file": str(path),
                    "table": table,
                    "ok": False,
                    "rows": len(frame),
                    "problems": [str(p) for p in problems],
                }
            )
        else:
            clean[table] = cleaned
            report.append(
                {
                    "file": str(path),
                    "table": table,
                    "ok": True,
                    "rows": len(frame),
                    "columns": list(frame.columns),
                }
            )
    if "events" in clean and ({"courses", "members"} & set(clean)):
        try:
            check_references(
                clean["events"], courses=clean.get("courses"), members=clean.get("members")
            )
        except DataError as err:
            failed = True
            report.append({"file": "(cross-table)", "ok": False, "problems": [str(err)]})
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        for entry in report:
            mark = "ok  " if entry["ok"] else "FAIL"
            rows = f"{entry['rows']:,} rows" if "rows" in entry else ""
            print(f"{mark} {entry['file']} {entry.get('table', '')} {rows}".rstrip())
            for problem in entry.get("problems", []):
                print("     - " + str(problem).replace("\n", "\n       "))
        print("all tables valid" if not failed else "problems found")
    return 1 if failed else 0


# ---------------------------------------------------------------------------- models
def _parse_params(items: Sequence[str] | None) -> dict[str, object]:
    """``key=value`` strings to a dict, with ints, floats, booleans and None recognised."""
    from recommend.errors import ConfigError

    params: dict[str, object] = {}
    for item in items or ():
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}; expected KEY=VALUE, e.g. --param factors=64")
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


def _read_events(path: str, fmt: str | None) -> pd.DataFrame:
    from recommend.data.loaders import read_lines, read_table

    if fmt == "lines":
        return read_lines(path)
    return read_table(path, "events", format=fmt)


def _train_test(args: argparse.Namespace) -> tuple[Dataset, Dataset, bool]:
    """Train and test datasets over one universe of members and courses."""
    from recommend.data.dataset import Dataset
    from recommend.data.idmap import IdMap
    from recommend.schema import Columns as Col

    train_ev = _read_events(args.train, args.format)
    test_ev = _read_events(args.test, args.format)
    # One universe for both, so test courses unseen in training count as misses.
    members = IdMap.from_values(pd.concat([train_ev[Col.MEMBER], test_ev[Col.MEMBER]]))
    courses = IdMap.from_values(pd.concat([train_ev[Col.COURSE], test_ev[Col.COURSE]]))
    train = Dataset.from_frames(train_ev, member_ids=members, course_ids=courses)
    test = Dataset.from_frames(test_ev, member_ids=members, course_ids=courses, now=train.now)
    timed = args.format != "lines"
    return train, test, timed


def _choose_model(args: argparse.Namespace, train: Dataset, timed: bool) -> tuple[str, dict]:
    """Model name and parameters: given, tuned on validation from TRAIN, or the best."""
    from recommend.data.splits import RandomHoldout, TimeSplit
    from recommend.models import MODEL_NAMES, get_model_class
    from recommend.tuning import tune

    params = _parse_params(args.param)
    metric = f"ndcg@{max(_parse_ks(args.k))}"
    validation = TimeSplit(test_fraction=0.2) if timed else RandomHoldout(0.2, seed=0)
    candidates = list(MODEL_NAMES) if args.model == "best" else [args.model]
    if args.model == "best" or args.tune:
        trials = args.tune or 10
        results = []
        for name in candidates:
            print(
                f"tuning {name} on a validation split of TRAIN ({trials} trials)", file=sys.stderr
            )
            # With `best`, each --param goes to the models that have it.
            accepted = set(get_model_class(name).param_names())
            fixed = {k: v for k, v in params.items() if k in accepted or args.model != "best"}
            results.append(
                tune(
                    name, train, n_trials=trials, fixed=fixed, metric=metric, validation=validation
                )
            )
        best = max(results, key=lambda r: r.best_score)
        return best.model, best.best_params
    return args.model, params


def cmd_evaluate(args: argparse.Namespace) -> int:
    from recommend.evaluation import evaluate
    from recommend.models import make_model

    ks = _parse_ks(args.k)
    train, test, timed = _train_test(args)
    name, params = _choose_model(args, train, timed)
    result = evaluate(make_model(name, **params), train, test, ks=ks, n_boot=200)
    if args.json:
        out = {"model": name, "params": params, "metrics": result.metrics}
        print(json.dumps(out, ensure_ascii=False, default=str))
        return 0
    print(f"model   {name}")
    print(f"params  {params}")
    table = pd.Series(result.metrics).rename("value").to_frame()
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    return 0


def _load_data(data: str, fmt: str | None) -> dict[str, pd.DataFrame]:
    """Tables for training: the sample, a platform folder, or one events file."""
    path = Path(data)
    if data == "sample":
        platform = _load_sample(DEFAULT_SAMPLE)
        return {name: getattr(platform, name) for name in ("events", "courses", "members", "orgs")}
    if path.is_dir():
        from recommend.data.loaders import read_table

        tables: dict[str, pd.DataFrame] = {}
        for name in ("events", "courses", "members", "orgs"):
            for suffix in (".parquet", ".csv"):
                if (path / f"{name}{suffix}").exists():
                    tables[name] = read_table(path / f"{name}{suffix}", name)
                    break
        if "events" not in tables:
            raise DataError(f"{path}: no events.parquet or events.csv in this folder")
        return tables
    return {"events": _read_events(data, fmt)}


def cmd_train(args: argparse.Namespace) -> int:
    from recommend.artifact import save
    from recommend.data.dataset import Dataset
    from recommend.models import make_model

    tables = _load_data(args.data, args.format)
    ds = Dataset.from_frames(
        tables["events"],
        courses=tables.get("courses"),
        members=tables.get("members"),
        orgs=tables.get("orgs"),
        on_unknown="drop",
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


def cmd_menu(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.menu import member_menu

    model = load(args.model)
    menu = member_menu(
        model,
        [args.member],
        n=args.n,
        channel=args.channel,
        max_minutes=args.max_minutes,
        diversity=args.diversity,
    )
    courses = model.dataset_.courses
    if courses is not None and "title" in courses.columns:
        info = courses.set_index("course_id")
        cols = [c for c in ("title", "category", "duration_seconds") if c in info.columns]
        menu = menu.join(info[cols], on="course_id")
        if "duration_seconds" in menu.columns:
            menu["minutes"] = (menu.pop("duration_seconds") / 60).round(0).astype("Int64")
    if args.json:
        print(menu.to_json(orient="records", force_ascii=False))
    else:
        print(menu.drop(columns=["member_id"]).to_string(index=False))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.search import search

    model = load(args.model)
    result = search(
        model,
        args.member,
        args.query,
        n=args.n,
        channel=args.channel,
        max_minutes=args.max_minutes,
    )
    if args.json:
        print(result.to_json(orient="records", force_ascii=False))
        return 0
    for note in result.attrs.get("notes", []):
        print(f"note: {note}")
    if result.empty:
        print(f"no course found for {result.attrs.get('query', args.query)!r}")
        return 0
    courses = model.dataset_.courses
    titles = {}
    if courses is not None and "title" in courses.columns:
        titles = dict(zip(courses["course_id"], courses["title"], strict=True))
    print(f"{result.attrs.get('query')!r} for {args.member} ({result.attrs.get('route')}):")
    for row in result.itertuples(index=False):
        print(f"{row.rank:3d}. {row.course_id}  {titles.get(row.course_id, '')}")
        print(
            f"     score {row.score:.3f} (text {row.text_score:.2f}, "
            f"preference {row.pref_score:.2f}) - {row.reason}"
        )
    return 0


def _routes_text(routes: dict[str, int]) -> str:
    """Members per route of a batch job, e.g. ``cold_segment 357, personal 2,643``."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(routes.items()))


def cmd_batch(args: argparse.Namespace) -> int:
    from recommend.batch import run_batch

    result = run_batch(
        args.model,
        args.out,
        n=args.n,
        members=args.members,
        chunk_size=args.chunk_size,
        format=args.format,
        sql=args.sql,
        table=args.table,
        with_reasons=args.with_reasons,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    routes = _routes_text(result.routes)
    print(
        f"wrote menus of {result.members:,} members ({result.rows:,} rows, {routes}) to "
        f"{result.path} in {len(result.files)} file(s), {result.seconds:.1f} s"
        + (
            f", {result.resumed_chunks} chunk(s) kept from an earlier run"
            if result.resumed_chunks
            else ""
        )
    )
    if result.sql_rows is not None:
        print(f"loaded {result.sql_rows:,} rows into SQL table {args.table}")
    return 0


def _parse_pairs(items: Sequence[str] | None, option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def cmd_order(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.data.loaders import read_table
    from recommend.group import order_for_group

    model = load(args.model)
    table = read_table(args.members_table, "members") if args.members_table else None
    if args.branch is not None:
        members: object = args.branch
    elif args.members is not None:
        lines = Path(args.members).read_text(encoding="utf-8").splitlines()
        members = [line.strip() for line in lines if line.strip()]
    else:
        where = _parse_pairs(args.where, "--where")
        members = {k: v.split(",") if "," in v else v for k, v in where.items()}
        known = set(table.columns) if table is not None else {"member_id", "org_id"}
        missing = [k for k in where if k not in known and k != "age_band"]
        if table is None and (missing or "age_band" in where):
            raise ConfigError(
                f"--where {sorted(where)}: a loaded model keeps only member_id and org_id; "
                "give the member attributes with --members-table FILE"
            )
    quotas = {}
    for channel, count in _parse_pairs(args.quota, "--quota").items():
        try:
            quotas[channel] = int(count)
        except ValueError:
            raise ConfigError(f"--quota {channel}={count!r}: expected an integer") from None
    result = order_for_group(
        model,
        members,
        n=args.n,
        strategy=args.strategy,
        budget_minutes=args.budget_minutes,
        quotas=quotas,
        member_table=table,
        max_pins=args.max_pins,
        lecturers=args.lecturers,
    )
    satisfaction = result.members["satisfaction"]
    summary = {
        "members": len(result.members),
        "unknown_members": int(result.unknown.size),
        "coverage": round(result.coverage, 4),
        "mean_satisfaction": round(float(satisfaction.mean()), 4),
        "p10_satisfaction": round(float(satisfaction.quantile(0.1)), 4),
        "total_minutes": round(result.total_minutes, 1),
        "notes": list(result.notes),
    }
    if args.json:
        # Through pandas' JSON writer: missing values become null, not NaN.
        out = {"summary": summary, "menu": json.loads(result.menu.to_json(orient="records"))}
        if result.lecturers is not None:
            out["lecturers"] = json.loads(result.lecturers.to_json(orient="records"))
        print(json.dumps(out, ensure_ascii=False))
        return 0
    print(result.menu.to_string(index=False))
    if result.lecturers is not None:
        print("\nlecturers for the group")
        print(result.lecturers.to_string(index=False))
    print()
    for key, value in summary.items():
        if key != "notes":
            print(f"{key:<18} {value}")
    for note in result.notes:
        print(f"note: {note}")
    return 0


# ---------------------------------------------------------------------------- demo
def _load_sample(path: Path) -> Platform:
    from recommend.data.synthetic import read_platform, synthesize

    if (path / "events.parquet").exists():
        print(f"loading the sample platform from {path}")
        return read_platform(path)
    print(f"no sample at {path}: generating the 'sample' preset (seed 0)")
    platform = synthesize("sample", seed=0)
    platform.write(path)
    return platform


def cmd_demo(args: argparse.Namespace) -> int:
    from recommend.data.dataset import Dataset
    from recommend.data.validation import validate

    start = time.perf_counter()
    platform = _load_sample(Path(args.data))
    frames = {name: getattr(platform, name) for name in TABLE_NAMES}
    print("\n== 1. validate the tables")
    for name, frame in frames.items():
        validate(name, frame)
        print(f"   {name:<9} {len(frame):>9,} rows  ok")
    print("\n== 2. build the dataset (confidence matrix + features)")
    ds = Dataset.from_frames(
        frames["events"],
        courses=frames["courses"],
        members=frames["members"],
        orgs=frames["orgs"],
    )
    summary = ds.summary()
    for key in (
        "members",
        "courses",
        "events",
        "interactions",
        "density",
        "members_with_events",
        "first_event",
        "last_event",
    ):
        value = summary[key]
        shown = (
            f"{value:.4%}"
            if key == "density"
            else (f"{value:,}" if isinstance(value, int) else value)
        )
        print(f"   {key:<20} {shown}")
    mf, cf = ds.member_features, ds.course_features
    print(f"   member features      {len(mf) if mf else 0}")
    print(f"   course features      {len(cf) if cf else 0}")
    print(f"   fingerprint          {ds.fingerprint()[:16]}")
    print("\n== 3. what members study, by channel")
    courses = _sample_table(ds.courses, "courses")
    ev = ds.events.merge(courses[["course_id", "category"]], on="course_id")
    by_channel = (
        ev.groupby("category")
        .agg(events=("event", "size"), members=("member_id", "nunique"))
        .sort_values("events", ascending=False)
    )
    print(by_channel.to_string())
    models = _demo_models(ds)
    _demo_menus(models.best, ds, frames["members"])
    _demo_group(models.best, ds)
    _demo_batch(models.best, Path(args.batch_out))
    if not args.no_tracking:
        _demo_tracking(models, args.tracking_uri, Path(args.model_out))
    print(f"\ndone in {time.perf_counter() - start:.1f} s")
    return 0


def _sample_table(table: pd.DataFrame | None, name: str) -> pd.DataFrame:
    """A table of the demo's dataset (the sample has them all)."""
    if table is None:
        raise DataError(f"the demo needs the sample's {name} table; expected it in the data")
    return table


def _demo_group(model: Recommender, ds: Dataset) -> None:
    """A group menu for the branch with the most members: 2 hours, 2 theory courses."""
    from recommend.group import GroupMenu, order_for_group

    members = _sample_table(ds.members, "members")
    branch = str(members["org_id"].value_counts().index[0])

    def order(pin_compulsory: bool) -> GroupMenu:
        return order_for_group(
            model,
            branch,
            n=8,
            budget_minutes=120,
            quotas={"理论学习": 2},
            max_pins=2,
            pin_compulsory=pin_compulsory,
        )

    try:
        result = order(pin_compulsory=True)
    except ConfigError as err:
        # Long compulsory courses can leave no room for the quota: say so, order without.
        print(f"\n   note: {err}; ordering without compulsory pins")
        result = order(pin_compulsory=False)
    titles = _sample_table(ds.courses, "courses").set_index("course_id")["title"]
    menu = result.menu.join(titles, on="course_id")
    print(f"\n== 6. group menu for branch {branch} ({len(result.members)} members, coverage)")
    print(menu[["rank", "title", "channel", "minutes", "served", "pinned"]].to_string(index=False))
    sat = result.members["satisfaction"]
    print(
        f"   {result.total_minutes:.0f} minutes; {result.coverage:.0%} of members get a course "
        f"from their own top 20; satisfaction mean {sat.mean():.2f}, p10 {sat.quantile(0.1):.2f}"
    )


@dataclass(frozen=True)
class _DemoModels:
    """The demo's comparison: the best model refitted on all data, the table, the results
    per model, and the training part of the split that produced them."""

    best: Recommender
    table: pd.DataFrame
    results: dict[str, EvaluationResult]
    train: Dataset
    split: Splitter


def _demo_models(ds: Dataset) -> _DemoModels:
    """Train the main models on a time split, print the comparison, refit the best on all."""
    from recommend.data.splits import TimeSplit
    from recommend.evaluation import compare
    from recommend.models import make_model

    print("\n== 4. train and compare models (time split: last 20% of events held out)")
    train, test = ds.split(TimeSplit(test_fraction=0.2))
    candidates = {
        "popularity": make_model("popularity", segment="auto"),
        "als": make_model("als", n_factors=32, regularization=0.02, alpha=1.0, iterations=10),
        "ease": make_model("ease", l2=200.0),
        "lightfm": make_model("lightfm", n_factors=32, epochs=20),
    }
    table, results = compare(
        candidates,
        train,
        test,
        ks=(10, 20),
        n_boot=0,
        segments=False,
        progress=lambda name: print(f"   fitting {name} ...", flush=True),
    )
    cols = [
        "ndcg@10",
        "recall@10",
        "ndcg@20",
        "recall@20",
        "coverage@20",
        "novelty@20",
        "diversity@20",
        "fit_seconds",
    ]
    print(
        table[[c for c in cols if c in table.columns]].to_string(float_format=lambda v: f"{v:.4f}")
    )
    best = str(table.index[0])
    print(f"\n   serving the best by ndcg@20, {best}: refitting it on all events")
    return _DemoModels(
        best=candidates[best].clone().fit(ds),
        table=table,
        results=results,
        train=train,
        split=TimeSplit(test_fraction=0.2),
    )


def _demo_tracking(models: _DemoModels, uri: str | None, out: Path) -> None:
    """Log the comparison to MLflow and register the refitted best model as the champion."""
    from recommend.artifact import save
    from recommend.registry import register_artifact
    from recommend.tracking import log_comparison, tracking_uri

    print("\n== 8. track in MLflow and register the champion")
    store = tracking_uri(uri)
    run_id = log_comparison(
        models.table,
        models.results,
        train=models.train,
        split=models.split,
        experiment="demo",
        run_name="demo-comparison",
        uri=store,
    )
    print(f"   comparison logged: experiment 'demo', run {run_id}")
    folder = save(models.best, out, overwrite=True)
    reg = register_artifact(folder, "menus", experiment="demo", uri=store)
    print(f"   champion: {reg.uri} (version {reg.version}), files in {reg.source}")
    print(f"   local copy of the model: {folder}")
    print("\n   open the MLflow UI:")
    print(f"     mlflow ui --backend-store-uri {store}")
    print("   serve the champion:")
    print(f"     MLFLOW_TRACKING_URI={store} mlflow models serve -m {reg.uri} --env-manager local")


def _demo_menus(model: Recommender, ds: Dataset, members: pd.DataFrame) -> None:
    """Menus with reasons for a mobile member, a retired member and a brand-new member."""
    from recommend.menu import member_menu

    history = ds.interactions.getnnz(axis=1)
    active = members.set_index("member_id").loc[ds.member_ids.external_ids]
    active = active[history > 0]
    mobile = active["mobile"].astype(bool)
    retired = active["occupation"] == "retired"
    picks = [
        ("a mobile member", active.index[mobile & ~retired][0], None),
        ("a retired member", active.index[retired & ~mobile][0], None),
        (
            "a brand-new member (retired, no history)",
            "new-member-001",
            pd.DataFrame(
                {"member_id": ["new-member-001"], "occupation": ["retired"], "birth_year": [1955]}
            ),
        ),
    ]
    titles = _sample_table(ds.courses, "courses").set_index("course_id")
    for label, member, attributes in picks:
        menu = member_menu(model, [member], n=8, member_attributes=attributes)
        menu = menu.join(titles[["title", "category"]], on="course_id")
        print(f"\n== 5. menu for {label}: {member}")
        print(menu[["rank", "title", "category", "route", "reason"]].to_string(index=False))


def _demo_batch(model: Recommender, out: Path) -> None:
    """Precompute every member's menu, as a platform does nightly, and show where it went."""
    from recommend.batch import run_batch

    print("\n== 7. batch job: every member's menu to Parquet")
    result = run_batch(model, out, n=10, with_reasons=True, overwrite=True, progress=False)
    routes = _routes_text(result.routes)
    kept = (
        f" ({result.resumed_chunks} of {result.chunks} chunk(s) kept from the last run)"
        if result.resumed_chunks
        else ""
    )
    print(
        f"   {result.members:,} members, {result.rows:,} rows ({routes}) in "
        f"{result.seconds:.1f} s{kept}"
    )
    print(f"   files: {out}/part-*.parquet, manifest {out}/_manifest.json")
    rows = pd.read_parquet(result.files[0])
    first = rows.loc[rows["route"] == "personal", "member_id"].iloc[0]
    print(rows[rows["member_id"] == first].head(5).to_string(index=False))


def cmd_report(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.data.dataset import Dataset
    from recommend.insights.report import build_report

    model = load(args.model)
    tables = _load_data(args.data, None)
    if "members" not in tables:
        raise ConfigError(f"--data {args.data}: the report needs a members table")
    ds = Dataset.from_frames(
        tables["events"],
        courses=tables.get("courses"),
        members=tables.get("members"),
        orgs=tables.get("orgs"),
        on_unknown="drop",
    )
    by = [part.strip() for part in args.by.split(",") if part.strip()]
    out = build_report(model, ds, args.out, org=args.org, by=by, min_size=args.min_size, k=args.k)
    print(f"wrote the report for {args.org or 'the platform'} to {out}")
    return 0


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """The ``recommend`` parser: global options, then one sub-parser per verb."""
    parser = argparse.ArgumentParser(
        prog="recommend",
        description="Course recommendations from party members' learning behaviour.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_data_verbs(verbs)
    _add_evaluate_verb(verbs)
    _add_train_verb(verbs)
    _add_menu_verb(verbs)
    _add_order_verb(verbs)
    _add_search_verb(verbs)
    _add_batch_verb(verbs)
    _add_spark_verbs(verbs)
    _add_report_verb(verbs)
    _add_demo_verb(verbs)
    _add_experiment_verbs(verbs)
    _add_register_verb(verbs)
    return parser


def _add_data_verbs(verbs: Verbs) -> None:
    """``recommend data synth|validate``."""
    data = verbs.add_parser("data", help="generate and check data").add_subparsers(
        dest="data_verb", required=True
    )
    synth = data.add_parser("synth", help="generate a simulated platform as Parquet files")
    synth.add_argument("--preset", default="sample", help="sample (default), small or city")
    synth.add_argument("--members", type=int, help="override the preset's member count")
    synth.add_argument("--courses", type=int, help="override the preset's course count")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True, help="output folder")
    synth.set_defaults(func=cmd_data_synth)

    val = data.add_parser("validate", help="check tables against the schema")
    val.add_argument("files", nargs="+", help="CSV/Parquet files named after their table")
    val.add_argument("--table", choices=TABLE_NAMES, help="table of all files")
    val.add_argument("--json", action="store_true", help="print a JSON report")
    val.set_defaults(func=cmd_data_validate)


def _add_evaluate_verb(verbs: Verbs) -> None:
    """``recommend evaluate``: fit on a train file, metrics on a test file."""
    ev = verbs.add_parser("evaluate", help="fit on TRAIN, report metrics on TEST")
    ev.add_argument("--train", required=True, help="training events file")
    ev.add_argument("--test", required=True, help="test events file")
    ev.add_argument("--format", choices=("parquet", "csv", "lines"), help="file format")
    ev.add_argument("--model", required=True, help="model name, or 'best'")
    ev.add_argument("--param", action="append", help="KEY=VALUE hyper-parameter (repeatable)")
    ev.add_argument("--tune", type=int, default=0, help="tune with N random-search trials")
    ev.add_argument("--k", default="10,20", help="cut-offs, e.g. 10,20")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_evaluate)


def _add_train_verb(verbs: Verbs) -> None:
    """``recommend train``: fit (or tune) a model and save its artifact."""
    tr = verbs.add_parser("train", help="fit a model and save it as an artifact")
    tr.add_argument("--data", default="sample", help="'sample', a folder of tables, or a file")
    tr.add_argument("--format", choices=("parquet", "csv", "lines"), help="file format")
    tr.add_argument("--model", required=True, help="model name, or 'best'")
    tr.add_argument("--param", action="append", help="KEY=VALUE hyper-parameter (repeatable)")
    tr.add_argument("--tune", type=int, default=0, help="tune with N random-search trials")
    tr.add_argument("--k", default="20", help="cut-off of the tuning metric (ndcg@K)")
    tr.add_argument("--out", required=True, help="artifact folder to write")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing artifact")
    tr.set_defaults(func=cmd_train)


def _add_menu_verb(verbs: Verbs) -> None:
    """``recommend menu``: one member's menu from a saved model."""
    mn = verbs.add_parser("menu", help="a member's personal menu from a saved model")
    mn.add_argument("--model", required=True, help="artifact folder")
    mn.add_argument("--member", required=True, help="member id")
    mn.add_argument("--n", type=int, default=10)
    mn.add_argument("--max-minutes", type=float, help="only courses that fit this many minutes")
    mn.add_argument("--channel", help="only this channel, e.g. 理论学习")
    mn.add_argument("--diversity", type=float, default=0.0, help="MMR weight in [0, 1]")
    mn.add_argument("--json", action="store_true", help="print JSON records")
    mn.set_defaults(func=cmd_menu)


def _add_order_verb(verbs: Verbs) -> None:
    """``recommend order``: a group menu for a branch or a target group."""
    od = verbs.add_parser("order", help="a group menu for a branch or a target group")
    od.add_argument("--model", required=True, help="artifact folder")
    who = od.add_mutually_exclusive_group(required=True)
    who.add_argument("--branch", help="org id: its members and those of its sub-branches")
    who.add_argument("--members", help="file of member ids, one per line")
    who.add_argument(
        "--where",
        action="append",
        help="attribute filter column=value[,value...], e.g. occupation=retired (repeatable)",
    )
    od.add_argument("--members-table", help="members table (CSV/Parquet) for --where filters")
    od.add_argument("--n", type=int, default=10)
    od.add_argument("--budget-minutes", type=float, help="total duration of the menu")
    od.add_argument(
        "--quota", action="append", help="channel=count: at least count courses (repeatable)"
    )
    od.add_argument("--strategy", default="coverage", help="coverage|average|least_misery|...")
    od.add_argument("--max-pins", type=int, help="at most this many compulsory courses")
    od.add_argument("--lecturers", type=int, default=0, help="also rank this many lecturers")
    od.add_argument("--json", action="store_true", help="print JSON")
    od.set_defaults(func=cmd_order)


def _add_search_verb(verbs: Verbs) -> None:
    """``recommend search``: courses for a query, ranked for a member."""
    se = verbs.add_parser("search", help="red search: courses for a query, ranked for a member")
    se.add_argument("--model", required=True, help="artifact folder")
    se.add_argument("--member", required=True, help="member id")
    se.add_argument("query", help='the query, e.g. "三会一课 怎么开"')
    se.add_argument("--n", type=int, default=10)
    se.add_argument("--max-minutes", type=float, help="only courses that fit this many minutes")
    se.add_argument("--channel", help="only this channel, e.g. 理论学习")
    se.add_argument("--json", action="store_true", help="print JSON records")
    se.set_defaults(func=cmd_search)


def _add_batch_verb(verbs: Verbs) -> None:
    """``recommend batch``: every member's menu to files (and SQL)."""
    bt = verbs.add_parser("batch", help="every member's menu to Parquet/CSV (and SQL)")
    bt.add_argument(
        "--model", required=True, help="artifact folder or registry URI (models:/NAME@champion)"
    )
    bt.add_argument("--out", required=True, help="output folder (partitioned files + manifest)")
    bt.add_argument("--n", type=int, default=20, help="courses per member")
    bt.add_argument("--members", help="file of member ids (one per line, or a member_id column)")
    bt.add_argument("--chunk-size", type=int, default=20_000, help="members per output file")
    bt.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    bt.add_argument("--sql", help="SQLAlchemy URL, e.g. sqlite:///menus.db (with --table)")
    bt.add_argument("--table", help="SQL table to replace with the menus")
    bt.add_argument("--with-reasons", action="store_true", help="fill the reason column")
    bt.add_argument("--overwrite", action="store_true", help="replace another job's output")
    bt.add_argument("--quiet", action="store_true", help="no progress bar")
    bt.set_defaults(func=cmd_batch)


def _add_report_verb(verbs: Verbs) -> None:
    """``recommend report``: the HTML report for organisers."""
    rp = verbs.add_parser("report", help="HTML report for organisers: portraits and demand")
    rp.add_argument("--model", required=True, help="artifact folder")
    rp.add_argument("--out", required=True, help="HTML file to write")
    rp.add_argument("--data", default="sample", help="'sample' or a folder of tables")
    rp.add_argument("--org", help="org id (with its sub-orgs); default the whole platform")
    rp.add_argument("--by", default="occupation,age_band", help="member attributes, e.g. mobile")
    rp.add_argument("--min-size", type=int, default=20, help="hide groups smaller than this")
    rp.add_argument("--k", type=int, default=20, help="predicted list size for demand")
    rp.set_defaults(func=cmd_report)


def _add_demo_verb(verbs: Verbs) -> None:
    """``recommend demo``: the main job end to end on the sample."""
    demo = verbs.add_parser("demo", help="run the main job end to end on the sample")
    demo.add_argument("--data", default=str(DEFAULT_SAMPLE), help="sample folder")
    demo.add_argument("--batch-out", default="out/menus", help="batch job output folder")
    demo.add_argument("--model-out", default="out/model", help="where the champion is saved")
    demo.add_argument("--tracking-uri", help="MLflow store (default: sqlite:///mlruns.db)")
    demo.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    demo.set_defaults(func=cmd_demo)


def _add_experiment_verbs(verbs: Verbs) -> None:
    """``recommend experiment run``: an experiment file end to end."""
    ex = verbs.add_parser("experiment", help="run experiments described by TOML files")
    ex_run = ex.add_subparsers(dest="experiment_verb", required=True).add_parser(
        "run", help="run experiments/NAME.toml end to end and log it to MLflow"
    )
    ex_run.add_argument("path", help="experiment file (TOML)")
    ex_run.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")
    ex_run.add_argument("--json", action="store_true", help="print one JSON object")
    ex_run.add_argument(
        "--register",
        metavar="NAME",
        help="register the best model under NAME and point the alias 'champion' at it",
    )
    ex_run.set_defaults(func=cmd_experiment_run)


def _add_register_verb(verbs: Verbs) -> None:
    """``recommend register``: a saved model into the MLflow registry."""
    rg = verbs.add_parser(
        "register", help="register a saved model in the MLflow registry as NAME@champion"
    )
    rg.add_argument("--model", required=True, help="model artifact directory")
    rg.add_argument("--name", required=True, help="registered model name")
    rg.add_argument("--alias", default="champion", help="alias to move (default: champion)")
    rg.add_argument("--experiment", default="registry", help="MLflow experiment of the run")
    rg.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")
    rg.set_defaults(func=cmd_register)


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


def cmd_register(args: argparse.Namespace) -> int:
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
    print(f"serve it: MLFLOW_TRACKING_URI={tracking_uri(args.tracking_uri)} ", end="")
    print(f"mlflow models serve -m {reg.uri} --env-manager local")
    return 0


# ---------------------------------------------------------------------------- spark verbs
def _add_spark_verbs(verbs: Verbs) -> None:
    """``recommend spark train|batch`` (pyspark is imported only when they run)."""
    spark = verbs.add_parser("spark", help="train and batch-score on Apache Spark").add_subparsers(
        dest="spark_verb", required=True
    )
    st = spark.add_parser("train", help="ALS on Spark MLlib, saved as a standard artifact")
    st.add_argument("--events", required=True, help="events Parquet (file or partitioned folder)")
    st.add_argument("--courses", help="courses table (CSV/Parquet)")
    st.add_argument("--members", help="members table (Parquet; member_id and org_id are read)")
    st.add_argument("--orgs", help="orgs table (CSV/Parquet)")
    st.add_argument("--out", required=True, help="artifact folder to write")
    st.add_argument("--factors", type=int, default=64, help="rank of the factorisation")
    st.add_argument("--regularization", type=float, default=0.05)
    st.add_argument("--alpha", type=float, default=1.0)
    st.add_argument("--iterations", type=int, default=15)
    st.add_argument("--seed", type=int, default=0)
    st.add_argument("--on-unknown", choices=("raise", "drop"), default="raise")
    st.add_argument("--overwrite", action="store_true", help="replace an existing artifact")
    sb = spark.add_parser("batch", help="every member's menu to Parquet, scored on Spark")
    sb.add_argument("--model", required=True, help="artifact folder (ALS or BPR)")
    sb.add_argument("--out", required=True, help="output folder (or hdfs://, s3a:// URI)")
    sb.add_argument("--n", type=int, default=20, help="courses per member")
    sb.add_argument("--members", help="file of member ids (one per line, or a member_id column)")
    sb.add_argument("--partitions", type=int, help="partitions of the member table")
    sb.add_argument("--overwrite", action="store_true", help="replace an earlier output")
    for sub in (st, sb):
        sub.add_argument("--master", default="local[*]", help="Spark master URL")
        sub.add_argument("--driver-memory", help="spark.driver.memory, e.g. 8g")
        sub.add_argument("--shuffle-partitions", type=int, help="spark.sql.shuffle.partitions")
    st.set_defaults(func=_spark_command)
    sb.set_defaults(func=_spark_command)


def _spark_command(args: argparse.Namespace) -> int:
    # Without pyspark this import raises SparkUnavailableError with the install command.
    from recommend.spark import require_pyspark, spark_session

    existing = require_pyspark().sql.SparkSession.getActiveSession()
    spark = spark_session(
        args.master,
        driver_memory=args.driver_memory,
        shuffle_partitions=args.shuffle_partitions,
        progress=bool(getattr(args, "verbose", False)),
    )
    try:
        if args.spark_verb == "train":
            return _spark_train(spark, args)
        return _spark_batch(spark, args)
    finally:
        if existing is None:  # a session this command started
            spark.stop()


def _spark_train(spark: Any, args: argparse.Namespace) -> int:
    from recommend.data.loaders import read_table
    from recommend.spark.als import SparkALS
    from recommend.spark.data import interactions, read_events

    start = time.perf_counter()
    events = read_events(spark, args.events)
    courses = read_table(args.courses, "courses") if args.courses else None
    orgs = read_table(args.orgs, "orgs") if args.orgs else None
    members = spark.read.parquet(args.members) if args.members else None
    data = interactions(
        events, courses=courses, members=members, orgs=orgs, on_unknown=args.on_unknown
    )
    model = SparkALS(
        n_factors=args.factors,
        regularization=args.regularization,
        alpha=args.alpha,
        iterations=args.iterations,
        random_state=args.seed,
    ).fit(data)
    path = model.save(args.out, overwrite=args.overwrite)
    print(
        f"trained ALS on Spark: {data.n_members:,} members x {data.n_courses:,} courses, "
        f"{data.report.events_out:,} events; fit {model.fit_seconds_:.1f} s, "
        f"total {time.perf_counter() - start:.1f} s; saved to {path}"
    )
    if data.report.dropped:
        print(f"dropped {data.report.dropped:,} events with unknown ids")
    return 0


def _spark_batch(spark: Any, args: argparse.Namespace) -> int:
    from recommend.spark.batch import spark_batch

    result = spark_batch(
        spark,
        args.model,
        args.out,
        n=args.n,
        members=args.members,
        partitions=args.partitions,
        overwrite=args.overwrite,
    )
    routes = _routes_text(result.routes)
    print(
        f"{result.members:,} members, {result.rows:,} rows ({routes}) to {result.path} in "
        f"{result.seconds:.1f} s ({result.personal_members:,} members scored on "
        f"{result.partitions} partitions); model_version {result.model_version}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recommend`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except RecommendError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
