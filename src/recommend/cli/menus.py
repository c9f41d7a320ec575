"""``recommend menu|order|search|batch|report``: answers from a saved model."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from recommend.cli.data import load_data
from recommend.errors import ConfigError

__all__ = [
    "cmd_batch",
    "cmd_lecturers",
    "cmd_menu",
    "cmd_order",
    "cmd_report",
    "cmd_search",
    "cmd_suggest",
    "routes_text",
]


def cmd_menu(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.menu import compulsory_courses, member_menu

    model = load(args.model)
    if args.compulsory:
        menu = compulsory_courses(model, [args.member], lang=args.lang)
    else:
        menu = member_menu(
            model,
            [args.member],
            n=args.n,
            channel=args.channel,
            max_minutes=args.max_minutes,
            diversity=args.diversity,
            max_pins=args.max_pins,
            lang=args.lang,
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
    elif menu.empty:
        print(f"no course for {args.member}: {_filters_text(args)}")
    else:
        print(menu.drop(columns=["member_id"]).to_string(index=False))
    return 0


def _filters_text(args: argparse.Namespace) -> str:
    """Why a menu may be empty: the filters asked for, or that nothing is left to study."""
    if getattr(args, "compulsory", False):
        return "no compulsory course of the member's branch is left to study"
    asked = []
    if args.max_minutes is not None:
        asked.append(f"none fits --max-minutes {args.max_minutes:g}")
    if args.channel is not None:
        asked.append(f"--channel {args.channel}")
    if not asked:
        return "every course is filtered out (studied, unpublished)"
    return "; ".join(asked) + " (loosen the filters)"


def cmd_lecturers(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.menu import lecturer_menu

    model = load(args.model)
    ranked = lecturer_menu(
        model,
        args.member,
        n=args.n,
        top=args.top,
        channel=args.channel,
        max_minutes=args.max_minutes,
    )
    if args.json:
        print(ranked.to_json(orient="records", force_ascii=False))
    elif ranked.empty:
        print(
            f"no lecturer for {args.member}: the model's courses name no lecturer_id or "
            "none passes the filters"
        )
    else:
        print(ranked.to_string(index=False))
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
        lang=args.lang,
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
    typed = result.attrs.get("typed") or result.attrs.get("query")
    print(f"{typed!r} for {args.member} ({result.attrs.get('route')}):")
    for row in result.itertuples(index=False):
        print(f"{row.rank:3d}. {row.course_id}  {titles.get(row.course_id, '')}")
        print(
            f"     score {row.score:.3f} (text {row.text_score:.2f}, "
            f"preference {row.pref_score:.2f}) - {row.reason}"
        )
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.search import suggest

    model = load(args.model)
    result = suggest(model, args.member, args.prefix, n=args.n)
    if args.json:
        print(result.to_json(orient="records", force_ascii=False))
        return 0
    if result.empty:
        print(f"no suggestion for {args.prefix!r}")
        return 0
    for row in result.itertuples(index=False):
        print(f"{row.rank:2d}. {row.text}  ({row.kind})")
    return 0


def routes_text(routes: dict[str, int]) -> str:
    """Members per route of a batch job, e.g. ``cold_segment 357, personal 2,643``."""
    return ", ".join(f"{k} {v:,}" for k, v in sorted(routes.items()))


def cmd_batch(args: argparse.Namespace) -> int:
    from recommend.batch import run_batch

    members: object = args.members
    if args.members is not None and args.encoding:
        from recommend.data.loaders import read_member_ids

        members = read_member_ids(args.members, encoding=args.encoding).tolist()
    result = run_batch(
        args.model,
        args.out,
        n=args.n,
        members=members,
        compulsory=args.compulsory,
        chunk_size=args.chunk_size,
        format=args.format,
        sql=args.sql,
        table=args.table,
        with_reasons=args.with_reasons,
        lang=args.lang,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    routes = routes_text(result.routes)
    print(
        f"wrote menus of {result.members:,} members ({result.rows:,} rows, {routes}) to "
        f"{result.path} in {len(result.files)} file(s), {result.seconds:.1f} s"
        + (
            f", {result.resumed_chunks} chunk(s) kept from an earlier run"
            if result.resumed_chunks
            else ""
        )
    )
    if result.compulsory_path is not None:
        print(
            f"wrote {result.compulsory_rows:,} compulsory courses still to study "
            f"(本支部必学) to {result.compulsory_path}"
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
    from recommend.data.loaders import read_member_ids, read_table
    from recommend.group import order_for_group

    model = load(args.model)
    table = (
        read_table(args.members_table, "members", encoding=args.encoding)
        if args.members_table
        else None
    )
    if args.branch is not None:
        members: object = args.branch
    elif args.members is not None:
        members = read_member_ids(args.members, encoding=args.encoding).tolist()
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
        lang=args.lang,
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


def cmd_report(args: argparse.Namespace) -> int:
    from recommend.artifact import load
    from recommend.data.dataset import Dataset
    from recommend.insights.report import build_report

    model = load(args.model)
    tables = load_data(args.data, None)
    if "members" not in tables:
        raise ConfigError(f"--data {args.data}: the report needs a members table")
    ds = Dataset.from_frames(
        tables["events"],
        courses=tables.get("courses"),
        members=tables.get("members"),
        orgs=tables.get("orgs"),
        on_unknown="drop",
        on_future=args.on_future,
    )
    by = [part.strip() for part in args.by.split(",") if part.strip()]
    out = build_report(
        model,
        ds,
        args.out,
        org=args.org,
        by=by,
        min_size=args.min_size,
        k=args.k,
        lang=args.lang,
        searches=tables.get("searches"),  # the section on what members search for
    )
    print(f"wrote the report for {args.org or 'the platform'} to {out}")
    return 0
