"""No module of kdbudget imports, directly or through others, a module that imports it back.

Why: a cycle (the demo's world once imported its grammar and books, which import the world)
only works while every import of it stays late, inside a function; a reader cannot read such
modules leaf first, and moving one import to the top breaks them.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports anywhere (function bodies too). Importing
    ``a.b.c`` also runs ``a`` and ``a.b``, except where they are the importer's own parents,
    which always run before it (no cycle)."""
    files = {}
    for path in (src / package).rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        own_package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        parents = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = own_package.split(".")[: own_package.count(".") + 2 - node.level]
                    base = ".".join(anchor + ([base] if base else []))
                targets |= {base} | {f"{base}.{alias.name}" for alias in node.names}
        edges = set()
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                name = ".".join(parts[:i])
                if name in files and name != module and name not in parents:
                    edges.add(name)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def _toy(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")


def test_the_scan_finds_a_cycle_through_a_late_import(tmp_path: Path) -> None:
    """The demo's old shape: world imports grammar and books inside a function; both import world."""
    _toy(tmp_path, {
        "toy/__init__.py": "",
        "toy/demo/__init__.py": "from toy.demo.world import World\n",
        "toy/demo/world.py": "def reserved():\n    from toy.demo import books, grammar\n",
        "toy/demo/grammar.py": "from toy.demo.world import World\n",
        "toy/demo/books.py": "from toy.demo.grammar import x\nfrom toy.demo.world import World\n",
        "toy/other.py": "from . import helper\n",
        "toy/helper.py": "from .other import y\n",
        "toy/leaf.py": "import toy.demo.world\n",
    })
    assert cycles(import_graph(tmp_path, "toy")) == [
        ["toy.demo.books", "toy.demo.grammar", "toy.demo.world"], ["toy.helper", "toy.other"]]


def test_the_scan_counts_parent_packages_but_not_the_importers_own(tmp_path: Path) -> None:
    """`import a.b.c` runs a/b/__init__: a cycle through it counts; a submodule's import of its
    own package's __init__ does not (the parent always runs first)."""
    _toy(tmp_path, {
        "toy/__init__.py": "",
        "toy/pkg/__init__.py": "from toy.pkg.inner import f\nfrom toy.user import g\n",
        "toy/pkg/inner.py": "from toy.pkg import other\n",
        "toy/pkg/other.py": "",
        "toy/user.py": "import toy.pkg.other\n",
    })
    assert cycles(import_graph(tmp_path, "toy")) == [["toy.pkg", "toy.user"]]


def test_kdbudget_has_no_import_cycle() -> None:
    graph = import_graph(SRC, "kdbudget")
    assert "kdbudget.demo.world" in graph and "kdbudget.demo.glue.write" in graph
    assert cycles(graph) == []
