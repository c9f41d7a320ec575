"""The README and the task guides under docs/ as a newcomer uses them: every relative link
resolves (anchors included), and every shell and Python example runs, in document order,
in a fresh folder holding the repository's data/ and experiments/ (so `data/sample` is the
shipped sample).

An example that cannot run here (it starts a server, needs Java or a cluster, is a
synopsis of options) is marked by an HTML comment on the line before its fence:
``<!-- docs-test: skip (the reason) -->``. Blocks of other languages (toml, json, plain
output) are not run.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUNNABLE = ("bash", "python")
SKIP = re.compile(r"<!--\s*docs-test:\s*skip\s*\((?P<why>[^)]+)\)\s*-->")
FENCE = re.compile(r"^```(?P<lang>[\w+-]*)\s*$")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\((?P<target>[^)\s]+)\)")
#: Seconds one document's examples may take.
TIMEOUT = 900


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    skip: str | None


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with their skip markers."""
    out: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        before = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        marker = SKIP.search(before)
        out.append(
            Block(m["lang"], "\n".join(body) + "\n", start + 1, marker["why"] if marker else None)
        )
        i += 1
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    # headings outside code blocks only
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return {slug(m[1]) for m in re.finditer(r"(?m)^#+ (.+)$", text)}


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_guides_are_linked_from_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for guide in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{guide.name})" in readme, f"{guide.name} is not linked from the README"


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_every_link_resolves(doc: Path) -> None:
    text = re.sub(r"(?ms)^```.*?^```", "", doc.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    broken = []
    for m in LINK.finditer(text):
        target = m["target"]
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{_name(doc)}: " + "; ".join(broken)


def test_every_runnable_block_is_run_or_says_why_not() -> None:
    """A shell or Python block is run unless it is marked; the marked ones say why."""
    kinds = {b.lang for doc in DOCS for b in blocks(doc)}
    assert {"bash", "python"} <= kinds
    for doc in DOCS:
        for b in blocks(doc):
            if b.lang in RUNNABLE and b.skip is not None:
                assert len(b.skip.strip()) > 5, f"{_name(doc)}:{b.line}: say why it is skipped"


_RUNNER = textwrap.dedent(
    """
    import json, subprocess, sys
    namespace = {"__name__": "__docs__"}
    for lang, code, where in json.load(open(sys.argv[1], encoding="utf-8")):
        print(f"--- {where}", flush=True)
        if lang == "python":
            exec(compile(code, where, "exec"), namespace)
        else:
            done = subprocess.run(["bash", "-eo", "pipefail", "-c", code])
            if done.returncode:
                sys.exit(f"{where}: exit code {done.returncode}")
    """
)


def _examples(doc: Path) -> list[Block]:
    return [b for b in blocks(doc) if b.lang in RUNNABLE and b.skip is None]


@pytest.mark.slow
@pytest.mark.parametrize("doc", [d for d in DOCS if _examples(d)], ids=_name)
def test_examples_run(doc: Path, tmp_path: Path) -> None:
    for name in ("data", "experiments"):
        (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    bin_dir = Path(sys.executable).parent
    todo = [
        (b.lang, b.code.replace(".venv/bin/", f"{bin_dir}/"), f"{_name(doc)}:{b.line}")
        for b in _examples(doc)
    ]
    (tmp_path / "_blocks.json").write_text(json.dumps(todo), encoding="utf-8")
    (tmp_path / "_run.py").write_text(_RUNNER, encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p
        ),
        "MPLBACKEND": "Agg",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "_run.py", "_blocks.json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
