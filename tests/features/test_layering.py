"""Module layering of the features stage: no import cycle (lazy imports included), no fusion import."""

from __future__ import annotations

import ast
from pathlib import Path

FEATURES = Path(__file__).resolve().parents[2] / "src" / "fusionrec" / "features"


def _imports(path: Path) -> set[str]:
    """Every fusionrec module a file imports, at top level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("fusionrec.")}


def _graph() -> dict[str, set[str]]:
    modules = {f"fusionrec.features.{p.stem}": p for p in FEATURES.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) & set(modules) for name, path in modules.items()}


def test_no_import_cycle_among_features_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            assert state.get(target) != 1, f"import cycle: {' -> '.join([*trail, node, target])}"
            if target not in state:
                visit(target, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_features_never_imports_fusion() -> None:
    offenders = {
        p.name: sorted(m for m in _imports(p) if m.startswith("fusionrec.fusion"))
        for p in FEATURES.glob("*.py")
    }
    assert {name: mods for name, mods in offenders.items() if mods} == {}
