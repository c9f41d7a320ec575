"""``recommend demo``: the main job end to end on the sample platform."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from recommend.cli.data import TABLE_NAMES, load_sample
from recommend.cli.menus import routes_text
from recommend.errors import ConfigError, DataError

if TYPE_CHECKING:
    from recommend.data.dataset import Dataset
    from recommend.data.splits import Splitter
    from recommend.evaluation import EvaluationResult
    from recommend.models.base import Recommender

__all__ = ["cmd_demo"]


def cmd_demo(args: argparse.Namespace) -> int:
    from recommend.data.dataset import Dataset
    from recommend.data.validation import validate

    start = time.perf_counter()
    platform = load_sample(Path(args.data))
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
    ui, serve = mlflow_commands(store, reg.uri)
    print("\n   open the MLflow UI:")
    print(f"     {ui}")
    print("   serve the champion over HTTP (then see docs/serving.md for requests):")
    print(f"     {serve_command(store, reg.uri)}")
    print("   or through MLflow's own scoring server:")
    print(f"     {serve}")


def serve_command(store: str, uri: str) -> str:
    """The shell command that serves ``uri`` with ``recommend serve``, working as printed
    from any shell (this environment's ``recommend`` by its full path)."""
    import shlex
    import sys

    recommend = shlex.quote(str(Path(sys.executable).parent / "recommend"))
    return (
        f"MLFLOW_TRACKING_URI={shlex.quote(store)} {recommend} serve "
        f"--model {shlex.quote(uri)} --port 8000"
    )


def mlflow_commands(store: str, uri: str) -> tuple[str, str]:
    """Shell commands that open the MLflow UI and serve ``uri``, working as printed from
    any shell: ``mlflow`` of this Python's environment by its full path, and that
    environment's ``bin`` first on ``PATH`` (``mlflow models serve`` starts ``uvicorn``
    from ``PATH``)."""
    import shlex
    import sys

    bin_dir = Path(sys.executable).parent
    mlflow = shlex.quote(str(bin_dir / "mlflow"))
    ui = f"{mlflow} ui --backend-store-uri {shlex.quote(store)}"
    serve = (
        f'PATH={shlex.quote(str(bin_dir))}:"$PATH" MLFLOW_TRACKING_URI={shlex.quote(store)} '
        f"{mlflow} models serve -m {shlex.quote(uri)} --env-manager local --port 5001"
    )
    return ui, serve


def _demo_menus(model: Recommender, ds: Dataset, members: pd.DataFrame) -> None:
    """Menus with reasons for a mobile member, a retired member and a brand-new member."""
    from recommend.menu import compulsory_courses, member_menu
    from recommend.messages import join_list, render

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
        # The menu pins at most two compulsory courses; the branch's list is shown apart.
        listed = compulsory_courses(model, [member], member_attributes=attributes)
        if len(listed):
            names = join_list(titles.loc[listed["course_id"], "title"].astype(str).tolist())
            print(f"   {render('reason.compulsory')} ({len(listed)}): {names}")


def _demo_batch(model: Recommender, out: Path) -> None:
    """Precompute every member's menu, as a platform does nightly, and show where it went."""
    from recommend.batch import run_batch

    print("\n== 7. batch job: every member's menu to Parquet")
    result = run_batch(model, out, n=10, with_reasons=True, overwrite=True, progress=False)
    routes = routes_text(result.routes)
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
