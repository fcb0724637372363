"""The worker package's import graph.

No cycle (function-local imports included) and no private name imported from another module.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qembed_worker"


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between qembed_worker modules, and the private names imported across modules."""
    edges: dict[str, set[str]] = {}
    private: list[str] = []
    for file in sorted(PACKAGE.glob("*.py")):
        module = file.stem
        edges.setdefault(module, set())
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "qembed_worker":
                    targets = [alias.name for alias in node.names]
                elif node.module.startswith("qembed_worker."):
                    targets = [node.module.split(".")[1]]
                    for alias in node.names:
                        if alias.name.startswith("_"):
                            private.append(f"{module} imports {alias.name} from {node.module}")
                else:
                    continue
            elif isinstance(node, ast.Import):
                targets = [
                    a.name.split(".")[1] for a in node.names if a.name.startswith("qembed_worker.")
                ]
            else:
                continue
            edges[module].update(
                t for t in targets if t != module and (PACKAGE / f"{t}.py").exists()
            )
    return edges, private


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """The first cycle found (first node repeated at the end), or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        if state.get(node) == "done":
            return None
        if state.get(node) == "visiting":
            return [*stack[stack.index(node) :], node]
        state[node] = "visiting"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        cycle = visit(node)
        if cycle:
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle() -> None:
    edges, _ = import_graph()
    assert len(edges) > 20
    assert find_cycle(edges) is None


def test_no_module_imports_a_private_name_of_another() -> None:
    _, private = import_graph()
    assert private == []
