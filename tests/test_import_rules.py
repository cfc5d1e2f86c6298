"""The layering rules of docs/architecture.md, checked on every import in the package (lazy ones
inside functions included): dependencies point down the flow, and the leaf layers stay leaves."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import fusionrec

PACKAGE = Path(fusionrec.__file__).parent

# stage -> stages it must never import (a module of the stage importing one of these fails the test)
FORBIDDEN: dict[str, set[str]] = {
    "errors": {"*"},
    "ranking": {"*"},  # leaf: only fusionrec.errors and itself
    "config": {"rerank", "explain", "online", "data", "features", "fusion", "models", "training", "eval", "experiments", "cli", "serve"},
    "data": {"rerank", "explain", "online", "features", "fusion", "models", "training", "eval", "experiments", "cli", "serve", "distributed"},
    "features": {"rerank", "explain", "online", "fusion", "models", "training", "eval", "experiments", "cli", "serve", "distributed"},
    "fusion": {"rerank", "explain", "online", "models", "eval", "experiments", "cli", "serve", "distributed"},
    "training": {"rerank", "explain", "online", "models", "eval", "experiments", "cli", "serve", "distributed"},
    "models": {"rerank", "explain", "online", "eval", "coldstart", "experiments", "cli", "serve", "distributed"},
    "eval": {"rerank", "explain", "online", "models", "training", "fusion", "coldstart", "experiments", "cli", "serve", "distributed"},
    "coldstart": {"rerank", "explain", "online", "eval", "experiments", "cli", "serve", "distributed"},
    "experiments": {"cli", "serve", "distributed"},
    # Ray implementations of extraction / evaluation / grid search: may use experiments.runner
    "distributed": {"cli", "serve"},
    # post-processing: above models, below the server; none of them imports the evaluator
    "rerank": {"eval", "coldstart", "explain", "online", "experiments", "cli", "serve", "distributed"},
    "explain": {"eval", "rerank", "online", "experiments", "cli", "serve", "distributed"},
    "online": {"eval", "rerank", "explain", "experiments", "cli", "serve", "distributed"},
    # the server wires the stages below it (and holds no algorithm); only the CLI sits above it
    "serve": {"cli", "experiments", "distributed"},
}
ALWAYS_ALLOWED = {"errors"}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("fusionrec")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fusionrec") and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "fusionrec":
                found += [(node.lineno, f"fusionrec.{alias.name}") for alias in node.names]
    return found


def test_no_forbidden_import_edges() -> None:
    violations = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "fusionrec." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        stage = _stage(module.removesuffix(".__init__"))
        rules = FORBIDDEN.get(stage.removesuffix(".py"), set())
        for line, target in _imports(path):
            target_stage = _stage(target)
            if target_stage in ALWAYS_ALLOWED or target_stage == stage or not target_stage:
                continue
            if "*" in rules or target_stage in rules:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert not violations, "forbidden import edges:\n" + "\n".join(violations)


def test_no_import_cycle_inside_features() -> None:
    graph: dict[str, set[str]] = {}
    for path in (PACKAGE / "features").glob("*.py"):
        name = f"fusionrec.features.{path.stem}"
        graph[name] = {t for _, t in _imports(path) if t.startswith("fusionrec.features.") and t != name}
    seen: set[str] = set()
    stack: list[str] = []

    def visit(node: str) -> None:
        if node in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(node) :], node]))
        if node in seen:
            return
        stack.append(node)
        for nxt in graph.get(node, ()):
            visit(nxt)
        stack.pop()
        seen.add(node)

    for node in graph:
        visit(node)


def test_configs_and_registry_import_without_torch() -> None:
    code = (
        "import sys, fusionrec.config, fusionrec.models.registry, fusionrec.models.configs, fusionrec.ranking.keys;"
        "from fusionrec.models.registry import config_class;"
        "[config_class(n) for n in ('mostpop', 'itemknn', 'ease', 'bpr', 'lightgcn')];"
        "bad = [m for m in ('torch', 'onnxruntime', 'transformers') if m in sys.modules];"
        "assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
