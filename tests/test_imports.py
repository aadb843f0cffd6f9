"""Imports inside app/ point one way: no cycles, and the records layer keeps to its rooms.

Read from the source, not by importing: ``import app.audit`` runs
``app/__init__`` first, which imports nearly everything, so the order in
which a fresh interpreter meets the modules says little. Imports inside
functions count too (a lazy import is still a dependency), except those under
``if TYPE_CHECKING:``.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for file in sorted((ROOT / "app").rglob("*.py")):
        parts = list(file.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (file, is_package)
    return found


MODULES = _modules()


def imports_of(name: str, *, lazy: bool) -> set[str]:
    """Return the modules of app/ that ``name`` imports (at the top only, unless ``lazy``)."""
    file, is_package = MODULES[name]
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue  # for annotations only: never run
            if isinstance(child, ast.Import) and (top or lazy):
                found.update(alias.name for alias in child.names if alias.name in MODULES)
            elif isinstance(child, ast.ImportFrom) and (top or lazy):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join(parts + ([child.module] if child.module else []))
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES else base)
            in_function = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top and not in_function)

    visit(ast.parse(file.read_text()), True)
    return {m for m in found if m in MODULES and m != name}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return the strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            connect(v)
    return found


def test_no_module_of_app_imports_itself_back_at_import_time():
    graph = {name: imports_of(name, lazy=False) for name in MODULES}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


# What each module of the records layer may import from app/, lazily or not.
# The trail and the folder know nothing of the state file or of each other;
# records is the only module that sees all of them.
RECORDS_LAYER = {
    "app.audit": set(),
    "app.folder": {"app.errors"},
    "app.state": {"app.audit"},
    "app.records": {"app.audit", "app.errors", "app.folder", "app.state"},
}


@pytest.mark.parametrize("name", sorted(RECORDS_LAYER))
def test_the_records_layer_imports_only_downwards(name):
    assert imports_of(name, lazy=True) <= RECORDS_LAYER[name]
    assert imports_of(name, lazy=False) <= RECORDS_LAYER[name]
