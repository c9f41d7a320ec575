"""``recommend data synth|validate`` and the table loading the other verbs share."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from recommend.errors import DataError

if TYPE_CHECKING:
    from recommend.data.synthetic import Platform

__all__ = [
    "DEFAULT_SAMPLE",
    "TABLE_NAMES",
    "add_own_data_options",
    "cmd_data_synth",
    "cmd_data_validate",
    "load_data",
    "load_sample",
    "own_data",
    "read_events",
]

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


def cmd_data_synth(args: argparse.Namespace) -> int:
    from recommend.data.synthetic import PRESETS, synthesize
    from recommend.errors import ConfigError

    if args.preset not in PRESETS:
        raise ConfigError(
            f"--preset {args.preset!r}: unknown preset; expected one of {', '.join(PRESETS)}"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a folder for the tables")
    existing = [f"{n}.parquet" for n in TABLE_NAMES if (out / f"{n}.parquet").exists()]
    if existing and not args.overwrite:
        raise ConfigError(
            f"--out {out} already holds {', '.join(existing)}; pass --overwrite to replace "
            "them, or choose another folder"
        )
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
    from recommend.data.validation import check_references, check_table

    clean: dict[str, pd.DataFrame] = {}
    failed = False
    report: list[dict[str, Any]] = []
    for raw in args.files:
        path = Path(raw)
        try:
            table = _table_of(path, args.table)
            own = own_data(args)
            if table != "events":  # --columns and --event describe the events file
                own = {"encoding": own["encoding"]}
            frame = read_table(path, table, **own)
            checked = check_table(table, frame)
        except DataError as err:
            failed = True
            report.append({"file": str(path), "ok": False, "problems": [str(err)]})
            continue
        entry: dict[str, Any] = {
            "file": str(path),
            "table": table,
            "ok": checked.ok,
            "rows": len(frame),
        }
        if checked.ok:
            clean[table] = checked.frame
            entry["columns"] = list(frame.columns)
        else:
            failed = True
            entry["problems"] = [str(p) for p in checked.problems]
        entry["notes"] = [str(n) for n in checked.notes]
        report.append(entry)
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
            for note in entry.get("notes", []):
                print("     note: " + str(note))
        print("all tables valid" if not failed else "problems found")
    return 1 if failed else 0


def add_own_data_options(parser: argparse.ArgumentParser) -> None:
    """``--columns``, ``--event`` and ``--encoding``: reading a platform's own events file."""
    parser.add_argument(
        "--columns",
        metavar="FROM=TO,...",
        help="map the events file's columns onto ours, e.g. "
        "user_id=member_id,item_id=course_id,ts=timestamp,action=event",
    )
    parser.add_argument(
        "--event",
        metavar="NAME",
        help="for an events file without an event column: the event of every row, e.g. view",
    )
    parser.add_argument("--encoding", help="text encoding of CSV files, e.g. gbk (default: UTF-8)")


def own_data(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``read_table`` that ``add_own_data_options`` collected."""
    from recommend.data.mapping import parse_mapping

    return {
        "columns": parse_mapping(getattr(args, "columns", None)) or None,
        "event": getattr(args, "event", None),
        "encoding": getattr(args, "encoding", None),
    }


def read_events(path: str, fmt: str | None, **own: Any) -> pd.DataFrame:
    """The events file ``path``: Parquet or CSV, or ``member course course ...`` lines;
    ``own`` is ``columns``, ``event`` and ``encoding`` as ``read_table`` takes them."""
    from recommend.data.loaders import read_lines, read_table

    if fmt == "lines":
        return read_lines(path)
    return read_table(path, "events", format=fmt, **own)


def load_data(data: str, fmt: str | None, **own: Any) -> dict[str, pd.DataFrame]:
    """Tables for training: the sample, a platform folder, or one events file (``own``:
    ``columns``, ``event`` and ``encoding`` of the events file)."""
    path = Path(data)
    if data == "sample":
        platform = load_sample(DEFAULT_SAMPLE)
        return {name: getattr(platform, name) for name in ("events", "courses", "members", "orgs")}
    if not path.exists():
        raise DataError(f"--data {data}: no such file or folder")
    if path.is_dir():
        from recommend.data.loaders import read_table

        tables: dict[str, pd.DataFrame] = {}
        for name in ("events", "courses", "members", "orgs"):
            for suffix in (".parquet", ".csv"):
                if (path / f"{name}{suffix}").exists():
                    extra = own if name == "events" else {"encoding": own.get("encoding")}
                    tables[name] = read_table(path / f"{name}{suffix}", name, **extra)
                    break
        if "events" not in tables:
            raise DataError(f"{path}: no events.parquet or events.csv in this folder")
        return tables
    return {"events": read_events(data, fmt, **own)}


def load_sample(path: Path) -> Platform:
    """The sample platform in ``path``, generated and written there if it is not."""
    from recommend.data.synthetic import read_platform, synthesize

    if (path / "events.parquet").exists():
        print(f"loading the sample platform from {path}")
        return read_platform(path)
    print(f"no sample at {path}: generating the 'sample' preset (seed 0)")
    platform = synthesize("sample", seed=0)
    platform.write(path)
    return platform
