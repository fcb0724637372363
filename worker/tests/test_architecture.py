"""The worker package's shape: its import graph, what it reads, how large its modules grow.

No cycle (function-local imports included), no private name imported from another module, no
path outside the package but the shared contracts, and no module over ~400 lines but the ones
named in :data:`LONG_MODULES` with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "qembed_worker"


def module_name(file: Path) -> str:
    """``bundle.manifest`` for ``qembed_worker/bundle/manifest.py``."""
    parts = file.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "qembed_worker"


def import_graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between qembed_worker modules, and the private names imported across modules.

    ``from qembed_worker.a import b`` is an edge to the module ``a.b`` when there is one, else to
    the module (or package) ``a``.
    """
    modules = {module_name(file): file for file in sorted(PACKAGE.rglob("*.py"))}
    edges: dict[str, set[str]] = {}
    private: list[str] = []
    for module, file in modules.items():
        edges.setdefault(module, set())
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module != "qembed_worker" and not node.module.startswith("qembed_worker."):
                    continue
                source = node.module.removeprefix("qembed_worker").lstrip(".")
                for alias in node.names:
                    submodule = f"{source}.{alias.name}".lstrip(".")
                    if submodule in modules:
                        edges[module].add(submodule)
                    elif source in modules:
                        edges[module].add(source)
                        if alias.name.startswith("_"):
                            private.append(f"{module} imports {alias.name} from {source}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("qembed_worker."):
                        edges[module].add(alias.name.removeprefix("qembed_worker."))
    for module in edges:
        edges[module].discard(module)
        edges[module] &= set(modules)
    return edges, private


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The same edges between subpackages (``bundle``, ``qat``, ...)."""
    packages: dict[str, set[str]] = {}
    for module, targets in edges.items():
        top = module.split(".")[0]
        packages.setdefault(top, set()).update(t.split(".")[0] for t in targets)
    for top in packages:
        packages[top].discard(top)
    return packages


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


def test_the_subpackages_have_no_import_cycle() -> None:
    edges, _ = import_graph()
    packages = package_graph(edges)
    assert {"bundle", "cli", "qat", "training", "weights"} <= set(packages)
    assert find_cycle(packages) is None


def test_the_graph_sees_imports_of_submodules() -> None:
    edges, _ = import_graph()
    assert "cli.weights" in edges["cli.main"]
    assert "bundle.manifest" in edges["calibration.ranges"]


# Both trainers take their crops, batches, losses and teacher embeddings from one kit.
TRAINING_KIT = {"training.crops", "training.batches", "training.losses"}


def test_head_qat_and_weight_qat_share_the_training_kit() -> None:
    edges, _ = import_graph()
    head = set().union(*(t for m, t in edges.items() if m.startswith("qat.")))
    weights = set().union(*(t for m, t in edges.items() if m.startswith("weights.")))
    assert head | weights >= TRAINING_KIT
    for kit in ("training.crops", "training.batches", "training.losses"):
        assert kit in head and kit in weights, kit


# Modules allowed past MAX_LINES, each with the reason it stays one module.
MAX_LINES = 400
LONG_MODULES = {
    "eval.evaluate": "every precision's ranking and trec metrics of one evaluation, one table",
    "export.exporter": "the model -> ONNX graph -> bundle export, one pipeline in order",
    "data.datasets": "the BEIR and pairs readers share their line-level error reporting",
    "weights.int8_graph": "the int8 rewrite: graph surgery whose parts only make sense together",
}


def test_no_module_grows_past_the_limit_unless_named() -> None:
    sizes = {
        module_name(file): len(file.read_text(encoding="utf-8").splitlines())
        for file in PACKAGE.rglob("*.py")
    }
    too_long = {m: n for m, n in sizes.items() if n > MAX_LINES and m not in LONG_MODULES}
    assert too_long == {}
    assert set(LONG_MODULES) <= set(sizes)  # an exception for a module that is gone is stale


def test_no_module_imports_a_private_name_of_another() -> None:
    _, private = import_graph()
    assert private == []


def _code_strings(tree: ast.AST) -> list[str]:
    """String constants of a module, docstrings left out."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def repository_reach() -> list[str]:
    """Places where the package reaches into the repository around it instead of its arguments.

    A path built from ``__file__`` that climbs out of the package, or a string naming the
    repository's data, fixtures or TypeScript tools.
    """
    found = []
    outside = ("shared/datasets", "test/fixtures", "bench/", "npx")
    for file in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        name = module_name(file)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("parent", "parents")
                and "__file__" in ast.unparse(node)
            ):
                found.append(f"{name}: {ast.unparse(node)}")
        found += [
            f"{name}: {text!r}" for text in _code_strings(tree) if any(o in text for o in outside)
        ]
    return found


def test_the_package_reads_only_the_paths_it_is_given() -> None:
    # The one exception: the JSON Schemas the service validates against too (contracts/).
    assert repository_reach() == ["contracts: Path(__file__).resolve().parents"]


def test_the_reach_check_sees_a_climbing_path_and_a_repository_string() -> None:
    bad = ast.parse(
        '"""Doc naming test/fixtures is fine."""\nROOT = Path(__file__).parents[2]\n'
        'X = "../shared/datasets/msmarco-5k"\n'
    )
    assert [s for s in _code_strings(bad) if "shared" in s] == ["../shared/datasets/msmarco-5k"]
    assert any(
        isinstance(n, ast.Attribute) and n.attr == "parents" and "__file__" in ast.unparse(n)
        for n in ast.walk(bad)
    )
