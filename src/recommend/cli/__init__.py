"""The ``recommend`` command line: verbs that mirror the Python API.

This module builds the parser (every verb, its options and help) and runs the verb; the
verbs' work is done by theme in :mod:`recommend.cli.data`, :mod:`recommend.cli.models`,
:mod:`recommend.cli.menus`, :mod:`recommend.cli.spark` and :mod:`recommend.cli.demo`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

from recommend.cli.data import (
    DEFAULT_SAMPLE,
    TABLE_NAMES,
    add_own_data_options,
    cmd_data_synth,
    cmd_data_validate,
)
from recommend.cli.demo import cmd_demo
from recommend.cli.menus import (
    cmd_batch,
    cmd_lecturers,
    cmd_menu,
    cmd_order,
    cmd_report,
    cmd_search,
    cmd_similar,
    cmd_suggest,
)
from recommend.cli.models import (
    add_ingest_verb,
    cmd_evaluate,
    cmd_experiment_analyse,
    cmd_experiment_run,
    cmd_register,
    cmd_train,
)
from recommend.cli.serve import add_serve_verb
from recommend.cli.spark import cmd_spark
from recommend.cli.volunteer import add_volunteer_verbs
from recommend.engine.options import DEFAULT_MAX_PINS
from recommend.errors import RecommendError
from recommend.messages import DEFAULT_LANG, LANGS, load_messages
from recommend.version import __version__

if TYPE_CHECKING:
    # What add_subparsers returns: argparse has no public name for its type.
    Verbs: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["build_parser", "main"]

log = logging.getLogger("recommend")


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default (when it has a meaningful one)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and action.option_strings
            and not any(default is x for x in (None, False, argparse.SUPPRESS))
            and not isinstance(default, list)
        ):
            text += " (default: %(default)s)"
        return text


def _verbose(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="log progress and details"
    )


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """``parser`` and every sub-parser below it."""
    found = [parser]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += _all_parsers(sub)
    return found


def build_parser() -> argparse.ArgumentParser:
    """The ``recommend`` parser: global options, then one sub-parser per verb."""
    parser = argparse.ArgumentParser(
        prog="recommend",
        description="Course recommendations from party members' learning behaviour.",
        epilog="exit codes: 0 success; 1 data validate found problems; 2 an error of the "
        "library (bad input, option, artifact, store) or a usage error; 3 the system "
        "refused (disk full, permission denied); 130 interrupted",
        formatter_class=_HelpFormatter,
    )
    _verbose(parser, False)
    parser.add_argument("--version", action="version", version=f"recommend {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    _add_data_verbs(verbs)
    _add_evaluate_verb(verbs)
    _add_train_verb(verbs)
    add_ingest_verb(verbs)
    _add_menu_verb(verbs)
    _add_similar_verb(verbs)
    _add_order_verb(verbs)
    _add_search_verb(verbs)
    _add_batch_verb(verbs)
    _add_spark_verbs(verbs)
    _add_report_verb(verbs)
    _add_demo_verb(verbs)
    _add_experiment_verbs(verbs)
    _add_register_verb(verbs)
    add_volunteer_verbs(verbs)
    _add_lecturers_verb(verbs)
    add_serve_verb(verbs)
    for sub in _all_parsers(parser)[1:]:
        # -v after the verb too; SUPPRESS keeps the global one's value when not given.
        sub.formatter_class = _HelpFormatter
        if "-v" not in sub._option_string_actions:
            _verbose(sub, argparse.SUPPRESS)
    return parser


def _add_lang(parser: argparse.ArgumentParser) -> None:
    """``--lang`` and ``--messages``: the language of what members and organisers read."""
    parser.add_argument(
        "--lang",
        choices=LANGS,
        default=DEFAULT_LANG,
        help="language of reasons, notes and reports: zh (Simplified Chinese, default) or en",
    )
    parser.add_argument(
        "--messages",
        metavar="TOML",
        help="the platform's own wording: a TOML file of [zh]/[en] templates (see "
        "recommend.messages)",
    )


def _add_data_verbs(verbs: Verbs) -> None:
    """``recommend data synth|validate``."""
    data = verbs.add_parser("data", help="generate and check data").add_subparsers(
        dest="data_verb", required=True
    )
    synth = data.add_parser("synth", help="generate a simulated platform as Parquet files")
    synth.add_argument(
        "--preset",
        default="calibrated",
        help="calibrated (default: statistics like real enrolments, weak segments), or "
        "sample, small, city (strong planted segment structure)",
    )
    synth.add_argument("--members", type=int, help="override the preset's member count")
    synth.add_argument("--courses", type=int, help="override the preset's course count")
    synth.add_argument("--seed", type=int, default=0, help="random seed")
    synth.add_argument("--out", required=True, help="output folder")
    synth.add_argument(
        "--overwrite", action="store_true", help="replace the tables a folder holds already"
    )
    synth.set_defaults(func=cmd_data_synth)

    val = data.add_parser("validate", help="check tables against the schema")
    val.add_argument("files", nargs="+", help="CSV/Parquet files named after their table")
    val.add_argument("--table", choices=TABLE_NAMES, help="table of all files")
    val.add_argument("--json", action="store_true", help="print a JSON report")
    add_own_data_options(val)
    val.set_defaults(func=cmd_data_validate)


def _add_evaluate_verb(verbs: Verbs) -> None:
    """``recommend evaluate``: fit on a train file, metrics on a test file."""
    ev = verbs.add_parser("evaluate", help="fit on TRAIN, report metrics on TEST")
    ev.add_argument("--train", required=True, help="training events file")
    ev.add_argument("--test", required=True, help="test events file")
    ev.add_argument("--format", choices=("parquet", "csv", "lines"), help="file format")
    ev.add_argument("--model", required=True, help="model name, or 'best'")
    ev.add_argument("--param", action="append", help="KEY=VALUE hyper-parameter (repeatable)")
    _add_tuning(ev)
    ev.add_argument("--k", default="10,20", help="cut-offs, e.g. 10,20")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    add_own_data_options(ev)
    _add_on_future(ev)
    ev.set_defaults(func=cmd_evaluate)


def _add_tuning(parser: argparse.ArgumentParser) -> None:
    """``--tune N``, ``--tune-minutes M`` and ``--sampler``: search on a validation split of
    the training data."""
    parser.add_argument("--tune", type=int, default=0, help="tune with at most N trials per model")
    parser.add_argument(
        "--tune-minutes",
        type=float,
        default=None,
        help="time budget per model in minutes: no trial starts after it",
    )
    parser.add_argument(
        "--sampler",
        choices=("tpe", "random"),
        default="tpe",
        help="tuning sampler: Optuna TPE with pruning of weak trials (default) or random",
    )


def _add_on_future(parser: argparse.ArgumentParser) -> None:
    """``--on-future``: what to do with events dated after the data's reference time."""
    parser.add_argument(
        "--on-future",
        choices=("raise", "drop", "keep"),
        default="raise",
        help="events dated after the data's now: refuse them with their rows named "
        "(raise), drop and count them, or keep them",
    )


def _add_train_verb(verbs: Verbs) -> None:
    """``recommend train``: fit (or tune) a model and save its artifact."""
    tr = verbs.add_parser("train", help="fit a model and save it as an artifact")
    tr.add_argument("--data", default="sample", help="'sample', a folder of tables, or a file")
    tr.add_argument("--format", choices=("parquet", "csv", "lines"), help="file format")
    tr.add_argument("--model", required=True, help="model name, or 'best'")
    tr.add_argument("--param", action="append", help="KEY=VALUE hyper-parameter (repeatable)")
    _add_tuning(tr)
    tr.add_argument("--k", default="20", help="cut-off of the tuning metric (ndcg@K)")
    tr.add_argument("--out", required=True, help="artifact folder to write")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing artifact")
    add_own_data_options(tr)
    _add_on_future(tr)
    tr.set_defaults(func=cmd_train)


def _add_menu_verb(verbs: Verbs) -> None:
    """``recommend menu``: one member's menu from a saved model."""
    mn = verbs.add_parser("menu", help="a member's personal menu from a saved model")
    mn.add_argument("--model", required=True, help="artifact folder")
    mn.add_argument("--member", required=True, help="member id")
    mn.add_argument("--n", type=int, default=10, help="courses on the menu")
    mn.add_argument(
        "--max-minutes",
        type=_minutes,
        help='only courses that fit this many minutes ("auto": the member\'s usual session)',
    )
    mn.add_argument("--now", help="the request's time (publication, --max-minutes auto)")
    mn.add_argument(
        "--no-continue",
        action="store_true",
        help="no continue-learning (继续学习) or next-lecture (下一讲) entries",
    )
    mn.add_argument("--channel", help="only this channel, e.g. 理论学习")
    mn.add_argument("--diversity", type=float, default=0.0, help="MMR weight in [0, 1]")
    mn.add_argument(
        "--max-pins",
        type=int,
        default=DEFAULT_MAX_PINS,
        help="at most this many compulsory courses on the menu (default %(default)s)",
    )
    mn.add_argument(
        "--compulsory",
        action="store_true",
        help="list the branch's compulsory courses still to study (本支部必学) instead",
    )
    mn.add_argument("--json", action="store_true", help="print JSON records")
    _add_lang(mn)
    mn.set_defaults(func=cmd_menu)


def _minutes(text: str) -> float | str:
    """``--max-minutes``: a number of minutes or ``auto``."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected minutes or 'auto', got {text!r}") from None


def _add_similar_verb(verbs: Verbs) -> None:
    """``recommend similar``: the courses most like one course (学了这门课的人还学了)."""
    sm = verbs.add_parser("similar", help="courses most like one course, from a saved model")
    sm.add_argument("--model", required=True, help="artifact folder")
    sm.add_argument("--course", required=True, help="course id")
    sm.add_argument("--n", type=int, default=10)
    sm.add_argument("--max-minutes", type=float, help="only courses that fit this many minutes")
    sm.add_argument("--channel", help="only this channel, e.g. 理论学习")
    sm.add_argument("--json", action="store_true", help="print JSON records")
    _add_lang(sm)
    sm.set_defaults(func=cmd_similar)


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
    od.add_argument("--n", type=int, default=10, help="courses on the group menu")
    od.add_argument("--budget-minutes", type=float, help="total duration of the menu")
    od.add_argument(
        "--quota", action="append", help="channel=count: at least count courses (repeatable)"
    )
    od.add_argument("--strategy", default="coverage", help="coverage|average|least_misery|...")
    od.add_argument("--max-pins", type=int, help="at most this many compulsory courses")
    od.add_argument("--lecturers", type=int, default=0, help="also rank this many lecturers")
    od.add_argument("--json", action="store_true", help="print JSON")
    od.add_argument("--encoding", help="text encoding of --members/--members-table, e.g. gbk")
    _add_lang(od)
    od.set_defaults(func=cmd_order)


def _add_search_verb(verbs: Verbs) -> None:
    """``recommend search``: courses for a query, ranked for a member."""
    se = verbs.add_parser("search", help="red search: courses for a query, ranked for a member")
    se.add_argument("--model", required=True, help="artifact folder")
    se.add_argument("--member", required=True, help="member id")
    se.add_argument("query", help='the query, e.g. "三会一课 怎么开"')
    se.add_argument("--n", type=int, default=10, help="courses in the result")
    se.add_argument("--max-minutes", type=float, help="only courses that fit this many minutes")
    se.add_argument("--channel", help="only this channel, e.g. 理论学习")
    se.add_argument("--json", action="store_true", help="print JSON records")
    _add_lang(se)
    se.set_defaults(func=cmd_search)
    sg = verbs.add_parser("suggest", help="completions of what a member is typing")
    sg.add_argument("--model", required=True, help="artifact folder")
    sg.add_argument("--member", required=True, help="member id")
    sg.add_argument("prefix", help='what was typed so far, e.g. "dangs" or "党史"')
    sg.add_argument("--n", type=int, default=8, help="completions to list")
    sg.add_argument("--json", action="store_true", help="print JSON records")
    sg.set_defaults(func=cmd_suggest)


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
    bt.add_argument("--table", type=_sql_table, help="SQL table to replace with the menus")
    bt.add_argument("--with-reasons", action="store_true", help="fill the reason column")
    bt.add_argument("--overwrite", action="store_true", help="replace another job's output")
    bt.add_argument("--quiet", action="store_true", help="no progress bar")
    bt.add_argument(
        "--compulsory",
        action="store_true",
        help="also write each member's compulsory courses still to study (本支部必学) to "
        "OUT/_compulsory.parquet|csv (and SQL table TABLE_compulsory)",
    )
    bt.add_argument("--encoding", help="text encoding of the --members file, e.g. gbk")
    _add_lang(bt)
    bt.set_defaults(func=cmd_batch)


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
    _add_on_future(st)
    st.set_defaults(func=cmd_spark)
    sb.set_defaults(func=cmd_spark)


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
    _add_lang(rp)
    _add_on_future(rp)
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


def _add_lecturers_verb(verbs: Verbs) -> None:
    """``recommend lecturers``: lecturers ranked for one member (师资点单)."""
    lc = verbs.add_parser("lecturers", help="lecturers a member would order (师资点单)")
    lc.add_argument("--model", required=True, help="artifact folder")
    lc.add_argument("--member", required=True, help="member id")
    lc.add_argument("--n", type=int, default=10, help="lecturers to list")
    lc.add_argument("--top", type=int, default=3, help="best courses per lecturer averaged")
    lc.add_argument("--channel", help="only courses of this channel, e.g. 理论学习")
    lc.add_argument("--max-minutes", type=float, help="only courses that fit this many minutes")
    lc.add_argument("--json", action="store_true", help="print JSON records")
    lc.set_defaults(func=cmd_lecturers)


def _add_experiment_verbs(verbs: Verbs) -> None:
    """``recommend experiment run``: an experiment file end to end."""
    ex = verbs.add_parser("experiment", help="run experiments described by TOML files")
    ex_verbs = ex.add_subparsers(dest="experiment_verb", required=True)
    ex_run = ex_verbs.add_parser(
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
    an = ex_verbs.add_parser(
        "analyse", help="an online experiment: per-arm CTR, starts, completions, minutes"
    )
    an.add_argument("--exposures", required=True, help="served rows with arm (CSV/Parquet)")
    an.add_argument("--outcomes", required=True, help="events after serving (CSV/Parquet)")
    an.add_argument("--control", help="the control arm (default: the first arm by name)")
    an.add_argument("--confidence", type=float, default=0.95)
    an.add_argument("--log", metavar="NAME", help="log the analysis to MLflow experiment NAME")
    an.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")
    an.add_argument("--json", action="store_true", help="print one JSON object")
    an.set_defaults(func=cmd_experiment_analyse)


def _add_register_verb(verbs: Verbs) -> None:
    """``recommend register``: a saved model into the MLflow registry."""
    rg = verbs.add_parser(
        "register", help="register a saved model in the MLflow registry as NAME@champion"
    )
    rg.add_argument("--model", required=True, help="model artifact directory")
    rg.add_argument("--name", required=True, help="registered model name")
    rg.add_argument("--alias", default="champion", help="alias to move")
    rg.add_argument("--experiment", default="registry", help="MLflow experiment of the run")
    rg.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI)")
    rg.set_defaults(func=cmd_register)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recommend`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # MLflow configures its own loggers at INFO when imported (database migrations,
        # signature checks): quiet unless asked for, and a user's own setting wins.
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    try:
        if getattr(args, "messages", None):
            load_messages(args.messages)
        return int(args.func(args))
    except RecommendError as err:
        # The library's messages are written for this (a data error lists its problems).
        print(f"error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, UnicodeDecodeError) as err:
        # A path or file given by the user that is not what the verb needs.
        log.debug("bad path", exc_info=True)
        print(f"error: {_path_problem(err)}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as err:
        # The system refused: disk full, permission denied, a file vanished.
        log.debug("system error", exc_info=True)
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return EXIT_SYSTEM
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if not isinstance(err, _store_error_types()):
            raise
        # A database the verb writes to or reads from (MLflow store, --sql target).
        log.debug("store error", exc_info=True)
        print(f"error: a database cannot be used: {_one_line(err)}", file=sys.stderr)
        return EXIT_ERROR


def _store_error_types() -> tuple[type[BaseException], ...]:
    """Errors of the databases verbs use (SQLite, SQLAlchemy, MLflow), among the modules
    already imported (a verb that never touched one cannot have raised its errors)."""
    import sqlite3

    found: list[type[BaseException]] = [sqlite3.Error]
    for module, name in (
        ("sqlalchemy.exc", "SQLAlchemyError"),
        ("mlflow.exceptions", "MlflowException"),
    ):
        kind = getattr(sys.modules.get(module), name, None)
        if isinstance(kind, type) and issubclass(kind, BaseException):
            found.append(kind)
    return tuple(found)


#: Exit codes of the ``recommend`` command (``data validate`` exits 1 when a table has
#: problems): 2 for an error of the library (bad input, option, artifact or store; also
#: argparse's usage errors), 3 when the system refused (disk full, permission denied),
#: 130 when interrupted.
EXIT_ERROR = 2
EXIT_SYSTEM = 3
EXIT_INTERRUPTED = 130


def _path_problem(err: OSError | UnicodeDecodeError) -> str:
    """A user's path that is not what a verb needs, in one line of the library's words."""
    if isinstance(err, UnicodeDecodeError):
        return (
            "a file is not UTF-8 text; if it was saved as GBK (Excel on Chinese Windows), "
            "pass --encoding gbk or save it as UTF-8"
        )
    name = err.filename if err.filename is not None else "a path"
    if isinstance(err, FileNotFoundError):
        return f"{name}: no such file or folder"
    if isinstance(err, IsADirectoryError):
        return f"{name}: is a folder; expected a file"
    return f"{name}: a part of this path is a file, not a folder"


def _one_line(err: BaseException) -> str:
    """The first line of an error's message (its type when it has none)."""
    lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def _sql_table(value: str) -> str:
    """``--table``: a plain SQL table name (letters, digits and _)."""
    name = value.strip()
    if not name.isidentifier():
        raise argparse.ArgumentTypeError(
            f"expected a SQL table name of letters, digits and _ (e.g. menus), got {value!r}"
        )
    return name
