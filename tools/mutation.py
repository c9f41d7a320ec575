"""Mutation testing of the core modules with mutmut, one target at a time.

Each target in ``pyproject.toml`` (``[tool.mutmut.targets.NAME]``) names the modules to
mutate (``mutate``: globs under ``src/``), the test files that cover them (``tests``) and,
optionally, the functions to mutate (``functions``: mutmut mutant-name globs, e.g.
``recommend.batch.x__finished_chunks*``) and more pytest arguments (``pytest_args``). A
target runs in its own work folder, ``build/mutation/NAME``, whose ``pyproject.toml`` is
the project's with ``[tool.mutmut]`` narrowed to that target: mutmut then collects its test
statistics from those test files only, and runs each mutant against the tests among them
that reach the mutated function.
Results are kept there, so a second run only re-tests mutants whose function changed.

Usage (``make mutation`` runs every target)::

    python tools/mutation.py                 # every target
    python tools/mutation.py topk engine-pins
    python tools/mutation.py --list          # the targets
    python tools/mutation.py --max-children 2 topk
    python tools/mutation.py search-blend --functions "recommend.search.rank.x__minmax*"

The summary table (mutants, killed, survived, timeouts, kill rate per target) is printed
at the end and written to ``build/mutation/summary.json``; ``--survivors`` lists the
surviving mutants, and ``cd build/mutation/NAME && mutmut show MUTANT`` shows one's diff.
The kill rate is killed / (killed + survived + timeouts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
MUTMUT = Path(sys.executable).with_name("mutmut")

# mutmut's exit codes per mutant (mutmut.stats.status_by_exit_code), grouped for the report.
KILLED = {1, 3, 37}
SURVIVED = {0}
TIMEOUT = {36, -24, 24, 152, 255}
NO_TESTS = {5, 33}


def _settings() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The shared ``[tool.mutmut]`` settings and the targets."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["mutmut"]
    shared = {k: v for k, v in config.items() if k != "targets"}
    targets = config.get("targets", {})
    for name, target in targets.items():
        for key in ("mutate", "tests"):
            if not target.get(key):
                sys.exit(f"[tool.mutmut.targets.{name}] needs a non-empty {key!r} list")
        for test in target["tests"]:
            if not (ROOT / test.split("::")[0]).exists():
                sys.exit(f"[tool.mutmut.targets.{name}]: test file {test!r} does not exist")
    return shared, targets


def _toml_value(value: Any) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML.
    return json.dumps(value, ensure_ascii=False)


def _project_without_mutmut() -> str:
    """The project's pyproject.toml text without its ``[tool.mutmut...]`` tables."""
    out, skipping = [], False
    for line in (ROOT / "pyproject.toml").read_text("utf-8").splitlines():
        header = re.match(r"\s*\[\[?([^\]]+)\]", line)
        if header:
            skipping = header.group(1).strip().startswith("tool.mutmut")
        if not skipping:
            out.append(line)
    return "\n".join(out) + "\n"


def _prepare(name: str, shared: dict[str, Any], target: dict[str, Any]) -> Path:
    """The target's work folder: ``src`` and ``tests`` linked, its own mutmut config."""
    work = WORK / name
    work.mkdir(parents=True, exist_ok=True)
    for part in ("src", "tests"):
        link = work / part
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(ROOT / part, work))
    config = dict(shared)
    config["source_paths"] = ["src"]
    config["only_mutate"] = list(target["mutate"])
    config["pytest_add_cli_args_test_selection"] = list(target["tests"])
    config["pytest_add_cli_args"] = list(shared.get("pytest_add_cli_args", [])) + list(
        target.get("pytest_args", [])
    )
    lines = ["[tool.mutmut]"] + [f"{k} = {_toml_value(v)}" for k, v in config.items()]
    text = _project_without_mutmut() + "\n" + "\n".join(lines) + "\n"
    path = work / "pyproject.toml"
    if not path.exists() or path.read_text("utf-8") != text:
        path.write_text(text, "utf-8")
        # Copied once by mutmut: refresh the copy so a changed config is seen.
        (work / "mutants" / "pyproject.toml").unlink(missing_ok=True)
    # mutmut copies the tests once; copy them afresh so new tests are run.
    shutil.rmtree(work / "mutants" / "tests", ignore_errors=True)
    return work


def _counts(work: Path, target: dict[str, Any]) -> tuple[dict[str, int], list[str]]:
    """Mutants per outcome from mutmut's result files, and the surviving mutants' names."""
    patterns = [re.compile(_glob_regex(p)) for p in target.get("functions", [])]
    statuses: Counter[str] = Counter()
    survivors = []
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text("utf-8")).get("exit_code_by_key", {})
        for key, code in codes.items():
            if patterns and not any(p.fullmatch(key) for p in patterns):
                continue
            if code in KILLED:
                statuses["killed"] += 1
            elif code in SURVIVED:
                statuses["survived"] += 1
                survivors.append(key)
            elif code in TIMEOUT:
                statuses["timeouts"] += 1
            elif code in NO_TESTS:
                statuses["no_tests"] += 1
            elif code is None:
                statuses["not_checked"] += 1
            else:
                statuses["other"] += 1
    statuses["mutants"] = sum(statuses.values())
    tried = statuses["killed"] + statuses["survived"] + statuses["timeouts"]
    counts = dict(statuses)
    counts["kill_rate_pct"] = round(100.0 * statuses["killed"] / tried, 1) if tried else 0
    return counts, survivors


def _glob_regex(pattern: str) -> str:
    return ".*".join(re.escape(part) for part in pattern.split("*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    parser.add_argument(
        "--max-children", type=int, default=1, help="mutants tested at once (default 1)"
    )
    parser.add_argument(
        "--functions",
        nargs="+",
        metavar="GLOB",
        help="mutate only these functions (mutant-name globs) instead of the target's",
    )
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants")
    parser.add_argument(
        "--report-only", action="store_true", help="summarise earlier runs, run nothing"
    )
    args = parser.parse_args(argv)
    if not MUTMUT.exists():
        sys.exit(f"mutmut is not installed next to {sys.executable}: run `make install`")
    shared, targets = _settings()
    if args.list:
        for name, target in targets.items():
            print(f"{name}: {' '.join(target['mutate'])} <- {' '.join(target['tests'])}")
        return 0
    unknown = [t for t in args.targets if t not in targets]
    if unknown:
        sys.exit(f"unknown target(s) {unknown}; expected some of {sorted(targets)}")
    chosen = args.targets or list(targets)
    summary: dict[str, dict[str, int]] = {}
    failed = []
    for name in chosen:
        target = targets[name]
        if args.functions:
            target = {**target, "functions": args.functions}
        work = WORK / name
        if not args.report_only:
            work = _prepare(name, shared, target)
            print(f"== {name}: mutating {target['mutate']} against {target['tests']}", flush=True)
            cmd = [str(MUTMUT), "run", "--max-children", str(args.max_children)]
            cmd += target.get("functions", [])
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            # mutmut stops a mutant after a budget of CPU seconds; BLAS and OpenMP threads
            # spinning on a busy machine burn it without progress (false timeouts).
            for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
                env.setdefault(var, "1")
            if subprocess.run(cmd, cwd=work, env=env).returncode != 0:
                failed.append(name)
        counts, survivors = _counts(work, target)
        summary[name] = counts
        if args.survivors:
            for key in survivors:
                print(f"  survived: {key}")
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
    columns = ("mutants", "killed", "survived", "timeouts", "no_tests", "kill_rate_pct")
    print("\n" + f"{'target':<20}" + "".join(f"{c:>15}" for c in columns))
    for name, counts in summary.items():
        print(f"{name:<20}" + "".join(f"{counts.get(c, 0):>15}" for c in columns))
    if failed:
        print(f"mutmut failed for {failed}: see its output above", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
