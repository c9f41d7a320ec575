"""``recommend volunteer dispatch|shortlist|menu|simulate``: volunteer service matching."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from recommend import store
from recommend.errors import DataError

if TYPE_CHECKING:
    from recommend.cli import Verbs
    from recommend.volunteer import VolunteerPool

__all__ = ["add_volunteer_verbs"]


def add_volunteer_verbs(verbs: Verbs) -> None:
    """Register ``recommend volunteer ...`` on the top-level parser's verbs."""
    vol = verbs.add_parser(
        "volunteer", help="volunteer service matching (志愿服务供需速配): dispatch, not grab"
    ).add_subparsers(dest="volunteer_verb", required=True)

    dp = vol.add_parser("dispatch", help="assign volunteers to a batch of requests")
    _tables(dp)
    dp.add_argument("--out", required=True, help="assignments file (.parquet or .csv)")
    dp.add_argument("--unfilled", help="unfilled requests file (default: OUT_unfilled.EXT)")
    dp.add_argument("--report", help="also write the organiser's HTML section here")
    dp.add_argument(
        "--lang", choices=("zh", "en"), default="zh", help="language of the --report page"
    )
    dp.add_argument("--policy", default="optimal", choices=("optimal", "nearest", "random"))
    dp.add_argument("--time-limit", type=float, default=8.0, help="seconds for the optimiser")
    dp.add_argument("--json", action="store_true", help="print a JSON summary")
    dp.set_defaults(func=cmd_dispatch)

    sl = vol.add_parser("shortlist", help="ranked volunteers for one request, with reasons")
    _tables(sl)
    sl.add_argument("--request", required=True, help="request id")
    sl.add_argument("--n", type=int, default=10)
    sl.add_argument("--json", action="store_true", help="print JSON records")
    sl.set_defaults(func=cmd_shortlist)

    mn = vol.add_parser("menu", help="the requests a volunteer is best placed to take")
    _tables(mn)
    mn.add_argument("--volunteer", required=True, help="volunteer id")
    mn.add_argument("--n", type=int, default=5)
    mn.add_argument("--json", action="store_true", help="print JSON records")
    mn.set_defaults(func=cmd_menu)

    sim = vol.add_parser("simulate", help="simulated volunteers, requests and services")
    sim.add_argument("--out", required=True, help="folder for the three Parquet tables")
    sim.add_argument("--volunteers", type=int, default=3_000)
    sim.add_argument("--requests", type=int, default=600)
    sim.add_argument("--seed", type=int, default=0)
    sim.set_defaults(func=cmd_simulate)


def _tables(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", required=True, help="requests table (CSV/Parquet)")
    parser.add_argument("--volunteers", required=True, help="volunteers table (CSV/Parquet)")
    parser.add_argument("--services", help="past services table (CSV/Parquet)")
    parser.add_argument("--now", help="dispatch time (default: after the last service)")


def _read(path: str | None) -> pd.DataFrame | None:
    if path is None:
        return None
    file = Path(path)
    if not file.exists():
        raise DataError(f"{file}: no such file")
    if file.suffix.lower() == ".csv":
        return pd.read_csv(file)
    if file.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(file)
    raise DataError(f"{file}: expected a .csv or .parquet file")


def _write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with store.staged_file(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)


def _pool(args: argparse.Namespace) -> tuple[VolunteerPool, pd.DataFrame]:
    from recommend.volunteer import VolunteerPool

    volunteers = _read(args.volunteers)
    requests = _read(args.requests)
    assert volunteers is not None and requests is not None
    pool = VolunteerPool.build(volunteers, _read(args.services), now=args.now)
    return pool, requests


def cmd_dispatch(args: argparse.Namespace) -> int:
    from recommend.volunteer import DispatchOptions, RequestBatch, dispatch
    from recommend.volunteer.report import volunteer_page

    pool, requests = _pool(args)
    batch = RequestBatch.build(requests, pool)
    options = DispatchOptions(time_limit_s=args.time_limit)
    result = dispatch(pool, batch, options=options, policy=args.policy)
    out = Path(args.out)
    unfilled = (
        Path(args.unfilled) if args.unfilled else out.with_name(f"{out.stem}_unfilled{out.suffix}")
    )
    _write(result.assignments, out)
    _write(result.unfilled, unfilled)
    if args.report:
        services = _read(args.services)
        page = volunteer_page(
            batch.table,
            result.assignments,
            result.unfilled,
            services=services,
            volunteers=pool.table,
            lang=args.lang,
        )
        report = Path(args.report)
        report.parent.mkdir(parents=True, exist_ok=True)
        with store.staged_file(report) as tmp:
            tmp.write_text(page, encoding="utf-8")
    summary = {
        "assignments": len(result.assignments),
        "fill_rate": round(result.fill_rate, 4),
        "unfilled_requests": len(result.unfilled),
        "solver": result.solver,
        "seconds": round(result.seconds, 3),
        "out": str(out),
        "unfilled": str(unfilled),
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False))
    else:
        for key, value in summary.items():
            print(f"{key:<18} {value}")
        for row in result.unfilled.head(10).itertuples():
            print(f"  unfilled {row.request_id}: {row.why_text}")
    return 0


def cmd_shortlist(args: argparse.Namespace) -> int:
    from recommend.volunteer import shortlist

    pool, requests = _pool(args)
    rows = requests[requests["request_id"].astype(str) == str(args.request)]
    if rows.empty:
        raise DataError(f"request {args.request!r} is not in {args.requests}")
    result = shortlist(pool, rows, n=args.n)
    if args.json:
        print(result.to_json(orient="records", force_ascii=False))
        return 0
    if result.empty:
        print(f"no volunteer for {args.request}: {result.attrs['why_text']}")
        return 0
    print(result.to_string(index=False))
    if result.attrs.get("why_text"):
        print(f"note: {result.attrs['why_text']}")
    return 0


def cmd_menu(args: argparse.Namespace) -> int:
    from recommend.volunteer.menu import volunteer_menu

    pool, requests = _pool(args)
    ids = pool.table["volunteer_id"]
    wanted = int(args.volunteer) if pd.api.types.is_integer_dtype(ids) else args.volunteer
    result = volunteer_menu(pool, requests, [wanted], n=args.n)
    if args.json:
        print(result.to_json(orient="records", force_ascii=False))
    elif result.empty:
        print(f"no open request {args.volunteer} can take now")
    else:
        print(result.drop(columns=["volunteer_id"]).to_string(index=False))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from recommend.volunteer import simulate_volunteering

    world = simulate_volunteering(args.volunteers, args.requests, seed=args.seed)
    folder = Path(args.out)
    for name in ("volunteers", "requests", "services"):
        _write(getattr(world, name), folder / f"{name}.parquet")
    print(f"wrote volunteers, requests and services to {folder} (dispatch time {world.now})")
    return 0
