"""The layering of the packages, read from the source (no import runs).

Bottom up (README, "Development"):

0. ``analytics/`` (the formulas) and ``connectors/`` (the CRMs): nothing from ``app/``;
1. ``app/core/``: settings, database, errors, base schemas, versions ...;
2. each record domain's models, schemas and services (``app/reps``, ``app/performance`` ...);
3. ``app/pipeline/`` (CRM -> sync -> ingest -> compute -> alerts, jobs, the scheduler) and
   ``app/demo/``;
4. the HTTP side: every domain's ``router``, ``app/http/`` and the dashboard;
5. the entry points: the application factory that mounts the routers and the CLI.

A module never imports one of a higher layer, and the packages of one layer import each
other without a cycle. Imports inside functions and ``TYPE_CHECKING`` blocks count: a
deferred import is still an arrow between layers.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("analytics", "connectors", "app")
ENTRY_POINTS = {"app.http.main", "app.http.api", "app.cli"}
LAYER_NAMES = ("formulas and CRMs", "core", "records", "pipeline", "http", "entry points")


def layer(module: str) -> int:
    parts = module.split(".")
    if parts[0] in ("analytics", "connectors"):
        return 0
    if module in ENTRY_POINTS:
        return 5
    if len(parts) < 2 or parts[1] == "core":
        return 1
    if parts[-1] == "router" or parts[1] in ("http", "dashboard"):
        return 4
    if parts[1] in ("pipeline", "demo"):
        return 3
    return 2


def node(module: str) -> tuple[str, int]:
    """A package at a layer: ``app.alerts`` at 2 (its services) and at 4 (its router) are
    two nodes, as they are two places in the layering."""
    parts = module.split(".")
    return (".".join(parts[:2]) if parts[0] == "app" else parts[0], layer(module))


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in the tree, inside functions and
    ``TYPE_CHECKING`` blocks too; ``from a import b`` names ``a.b`` (b may be a module)."""
    found: list[tuple[int, str]] = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            found += [(n.lineno, alias.name) for alias in n.names]
        elif isinstance(n, ast.ImportFrom) and n.level == 0 and n.module:
            found += [(n.lineno, f"{n.module}.{alias.name}") for alias in n.names]
    return found


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name refers to (``app.core.db.Base`` -> app.core.db)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def arrows() -> list[tuple[str, str, str]]:
    """(importer, imported, where) for every import between project modules."""
    out = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in imported_modules(tree):
            target = _resolve(name)
            if target and target != module:
                out.append((module, target, f"{path.relative_to(ROOT)}:{line}"))
    return out


ARROWS = arrows()


def test_no_module_imports_a_higher_layer() -> None:
    upward = [
        f"{where} ({LAYER_NAMES[layer(a)]}) imports {b} ({LAYER_NAMES[layer(b)]})"
        for a, b, where in ARROWS
        if layer(b) > layer(a)
    ]
    assert upward == []


@pytest.mark.parametrize("package", ["analytics", "connectors"])
def test_the_formulas_and_the_crms_import_nothing_from_the_service(package: str) -> None:
    assert [w for a, b, w in ARROWS if a.startswith(package) and b.startswith("app")] == []


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_packages_import_each_other_without_a_cycle() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    where: dict[tuple[str, str], str] = {}
    for a, b, w in ARROWS:
        na, nb = (f"{p}@{LAYER_NAMES[n]}" for p, n in (node(a), node(b)))
        if na != nb:
            edges[na].add(nb)
            where.setdefault((na, nb), w)
    found = [
        [f"{a} -> {b} ({where[a, b]})" for a in c for b in c if (a, b) in where]
        for c in cycles(edges)
    ]
    assert found == []


def test_nothing_imports_the_entry_points() -> None:
    assert [w for a, b, w in ARROWS if b in {"app.http.main", "app.cli"} and a != "app.cli"] == []


def test_the_walk_sees_deferred_and_from_imports() -> None:
    tree = ast.parse(
        "import app.core.db\n"
        "from app.demo import generator\n"
        "from . import sibling\n"
        "def f():\n"
        "    from app.core.config import Settings\n"
    )
    assert [m for _, m in imported_modules(tree)] == [
        "app.core.db",
        "app.demo.generator",
        "app.core.config.Settings",
    ]
    assert _resolve("app.core.config.Settings") == "app.core.config"
    assert layer("app.alerts.router") == 4 and layer("app.alerts.service") == 2


def test_a_cycle_and_an_upward_arrow_are_seen() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layer("app.core.db") < layer("app.reps.service") < layer("app.pipeline.sync")
    assert layer("app.pipeline.sync") < layer("app.http.deps") < layer("app.http.main")
