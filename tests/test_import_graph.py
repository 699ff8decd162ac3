"""The import graph of every package: the core imports nothing above it, packages import only
downwards, nothing imports in a cycle (imports inside functions included).

Layers, lowest first (a package may import its own modules and any lower layer):

    0  theory                                         (numpy, jax, jaxtyping, sympy only)
    1  render, constructions, interop, proofs
    2  pretrained, experiments
    3  cli
"""

import ast
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {
    "theory": 0,
    "render": 1,
    "constructions": 1,
    "interop": 1,
    "proofs": 1,
    "pretrained": 2,
    "experiments": 2,
    "cli": 3,
}
CORE_THIRD_PARTY = {"numpy", "jax", "jaxlib", "jaxtyping", "sympy"}


def project_modules(root: Path) -> dict[str, Path]:
    """``{dotted module name: file}`` for every module of the layered packages under ``root``."""
    modules = {}
    for package in LAYERS:
        base = root / package
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict) -> set[str]:
    """Every module ``name`` imports (anywhere in the file), resolved to project modules where
    possible; third-party and standard-library imports are kept as their top-level name."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in modules else source)
    resolved = set()
    for target in found:
        while target not in modules and "." in target:
            target = target.rpartition(".")[0]
        resolved.add(target)
    return resolved - {name}


def import_graph(root: Path) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def upward_imports(graph) -> list[str]:
    """Imports that go to a package of the same or a higher layer (other than one's own)."""
    bad = []
    for source, targets in sorted(graph.items()):
        source_package = source.split(".")[0]
        for target in sorted(targets):
            package = target.split(".")[0]
            if package in LAYERS and package != source_package:
                if LAYERS[package] >= LAYERS[source_package]:
                    bad.append(f"{source} imports {target}")
    return bad


def core_third_party(graph) -> list[str]:
    allowed = CORE_THIRD_PARTY | set(sys.stdlib_module_names) | {"theory"}
    return [
        f"{source} imports {target}"
        for source, targets in sorted(graph.items())
        if source.split(".")[0] == "theory"
        for target in sorted(targets)
        if target.split(".")[0] not in allowed
    ]


def cycles(graph) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_core_imports_only_numpy_jax_sympy_and_itself():
    assert core_third_party(import_graph(ROOT)) == []


def test_no_package_imports_upwards():
    assert upward_imports(import_graph(ROOT)) == []


def test_no_import_cycles():
    assert cycles(import_graph(ROOT)) == []


@pytest.fixture
def planted_tree(tmp_path):
    for package in LAYERS:
        if (ROOT / package).is_dir():
            shutil.copytree(ROOT / package, tmp_path / package)
    return tmp_path


def test_a_planted_upward_import_is_caught(planted_tree):
    registry = planted_tree / "theory" / "registry.py"
    registry.write_text(registry.read_text() + "\n\ndef _planted():\n    import cli.main\n")
    graph = import_graph(planted_tree)
    assert "theory.registry imports cli.main" in upward_imports(graph)


def test_a_planted_cycle_and_a_heavy_core_import_are_caught(planted_tree):
    errors = planted_tree / "theory" / "errors.py"
    errors.write_text(errors.read_text() + "\n\ndef _planted():\n    from theory import verify\n")
    hooks = planted_tree / "theory" / "hooks.py"
    hooks.write_text(hooks.read_text() + "\nimport matplotlib  # noqa\n")
    graph = import_graph(planted_tree)
    assert any("theory.errors" in c and "theory.verify" in c for c in cycles(graph))
    assert "theory.hooks imports matplotlib" in core_third_party(graph)
