"""The shape of the code base: what the import contract cannot see.

``make test`` runs the import contract (``lint-imports``: layers, no cycles, private
modules) and the type checker; these tests add the rules about names: no module imports
or uses another module's underscore names, and modules stay small enough to read.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "recommend"
MAX_LINES = 1000


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = _package(module, path).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def private_imports(module: str, path: Path, tree: ast.AST) -> list[str]:
    """``from recommend.x import _y`` in ``module`` where x is another module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, path, node)
            if not source.startswith("recommend") or source == module:
                continue
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"{module}:{node.lineno} imports {alias.name} from {source}")
    return found


def _defined_private_names(tree: ast.AST) -> set[str]:
    """Underscore names a module defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if _private(n)}


def private_attribute_uses(
    module: str, tree: ast.AST, library_private: dict[str, set[str]]
) -> list[str]:
    """``obj._name`` in ``module`` where ``_name`` belongs to another library module."""
    own = library_private[module]
    others = set().union(*(names for m, names in library_private.items() if m != module))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and _private(node.attr)
            and node.attr not in own
            and node.attr in others
        ):
            found.append(f"{module}:{node.lineno} uses .{node.attr}")
    return found


@pytest.fixture(scope="module")
def trees() -> dict[str, tuple[Path, ast.AST]]:
    return {m: (p, ast.parse(p.read_text(encoding="utf-8"))) for m, p in _modules()}


def test_no_module_imports_another_modules_private_names(
    trees: dict[str, tuple[Path, ast.AST]],
) -> None:
    found = [f for m, (p, t) in trees.items() for f in private_imports(m, p, t)]
    assert found == []


def test_no_module_uses_another_modules_private_attributes(
    trees: dict[str, tuple[Path, ast.AST]],
) -> None:
    private = {m: _defined_private_names(t) for m, (_, t) in trees.items()}
    found = [f for m, (_, t) in trees.items() for f in private_attribute_uses(m, t, private)]
    assert found == []


def test_modules_stay_readable_in_size() -> None:
    sizes = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in _modules()}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


# ---------------------------------------------------------------- the checks themselves


def _check(source: str, module: str = "recommend.a") -> tuple[list[str], list[str]]:
    path = SRC / "a.py"
    tree = ast.parse(source)
    other = ast.parse("class B:\n    def _hidden(self):\n        self._lock = 1\n")
    private = {module: _defined_private_names(tree), "recommend.b": _defined_private_names(other)}
    return private_imports(module, path, tree), private_attribute_uses(module, tree, private)


def test_the_checks_catch_private_imports_and_attribute_uses() -> None:
    imports, uses = _check("from recommend.b import _hidden, public\nx = model._lock\n")
    assert imports == ["recommend.a:1 imports _hidden from recommend.b"]
    assert uses == ["recommend.a:2 uses ._lock"]
    # Relative imports resolve to the library module they name.
    assert _check("from .b import _hidden\n")[0] == [
        "recommend.a:1 imports _hidden from recommend.b"
    ]


def test_the_checks_allow_a_modules_own_private_names() -> None:
    own = "class A:\n    def _lock(self):\n        return other._lock\n"
    assert _check(own) == ([], [])
    assert _check("from recommend.b import public\nimport numpy as np\nnp._x\n") == ([], [])
