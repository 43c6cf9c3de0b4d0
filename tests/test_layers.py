"""The layering of the packages, read from the source (no import runs): a lower layer never
imports a higher one. Today: ``analytics/`` and ``connectors/`` import nothing from ``app/``,
so the formulas and the CRM layer can be read, tested and reused without the service."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the top-level packages it may not import
FORBIDDEN = {
    "analytics": {"app"},
    "connectors": {"app"},
}


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import in the tree, inside functions and
    ``TYPE_CHECKING`` blocks too: a deferred import is still an arrow between layers."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str, forbidden: set[str]) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in imported_modules(tree):
            if name.split(".", 1)[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_import_nothing_from_higher_ones(package: str) -> None:
    assert violations(package, FORBIDDEN[package]) == []


def test_the_walk_sees_deferred_and_from_imports() -> None:
    tree = ast.parse(
        "import app.core.db\n"
        "from app.demo import generator\n"
        "from . import sibling\n"
        "def f():\n"
        "    from app.core.config import Settings\n"
    )
    assert [m for _, m in imported_modules(tree)] == ["app.core.db", "app.demo", "app.core.config"]
