"""The house's shape: no import cycles, each layer importing only layers below it, and built-in
plugins importing only the plugin surface.

Imports are read from the source with ``ast``, function bodies included: an import hidden in a
function is still a dependency, only a later one. The layers, lowest first (README, Layout):

0 foundation: the package itself, errors, limits
1 runtime:    devices, threads, memory, caches, distributed groups
2 arrays:     streaming (the image arrays, in memory or streamed, that specs carry)
3 contract:   specs, synthetic sets, file formats, hook specifications
4 data:       image folders, augmentation, ZCA
5 engines:    the training loop, the iteration loop, trajectory and fresh-network matching,
              the trained-network caches, class shards
6 host:       the plugin manager, the plugin surface, the Python facade
7 run:        suites, the runner, tracking, interchange, the evaluation protocol
8 results:    records, boards, pages, plots, reports
9 cli:        commands, check-plugin, the pytest plugin
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "dd_bench": 0,
    "dd_bench.errors": 0,
    "dd_bench.limits": 0,
    "dd_bench.runtime": 1,
    "dd_bench.distributed": 1,
    "dd_bench.streaming": 2,
    "dd_bench.specs": 3,
    "dd_bench.synthetic": 3,
    "dd_bench.hookspecs": 3,
    "dd_bench.formats": 3,
    "dd_bench.images": 4,
    "dd_bench.augment": 4,
    "dd_bench.zca": 4,
    "dd_bench.training": 5,
    "dd_bench.loop": 5,
    "dd_bench.matching": 5,
    "dd_bench.fresh": 5,
    "dd_bench.teachers": 5,
    "dd_bench.shards": 5,
    "dd_bench.plugins": 6,
    "dd_bench.plugin": 6,
    "dd_bench.api": 6,
    "dd_bench.suite": 7,
    "dd_bench.cells": 7,
    "dd_bench.runner": 7,
    "dd_bench.tracked_cell": 7,
    "dd_bench.tracking": 7,
    "dd_bench.interchange": 7,
    "dd_bench.evaluate": 7,
    "dd_bench.results": 8,
    "dd_bench.leaderboard": 8,
    "dd_bench.report": 8,
    "dd_bench.cli": 9,
    "dd_bench.conformance": 9,
    "dd_bench.testing": 9,
}
PLUGIN_SURFACE = {"dd_bench", "dd_bench.plugin"}


def _module_name(path: Path) -> str:
    base = ROOT / "plugins" if path.is_relative_to(ROOT / "plugins") else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    _module_name(p): p for p in sorted([*(ROOT / "dd_bench").rglob("*.py"), *(ROOT / "plugins").glob("*/**/*.py")])
}


def _imports(name: str) -> list[tuple[str, int]]:
    """The modules of this tree that ``name`` imports (anywhere in the file), with line numbers."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.append((target, node.lineno))
                break
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _layer(name: str) -> int:
    while name not in LAYERS:
        assert "." in name, f"{name} has no layer: add it to LAYERS in tests/test_layers.py and the README's Layout"
        name = name.rpartition(".")[0]
    return LAYERS[name]


def test_every_host_module_has_a_layer():
    for name in MODULES:
        if name.startswith("dd_bench.") or name == "dd_bench":
            _layer(name)


def test_no_module_imports_a_higher_layer():
    wrong = [
        f"{name}:{line} imports {target} (layer {_layer(target)} above {_layer(name)})"
        for name, imports in GRAPH.items()
        if name == "dd_bench" or name.startswith("dd_bench.")
        for target, line in imports
        if (target == "dd_bench" or target.startswith("dd_bench.")) and _layer(target) > _layer(name)
    ]
    assert not wrong, "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    # A package's __init__ re-exporting its submodules is not a cycle of dependencies.
    edges = {name: {t for t, _ in imports if not name.startswith(f"{t}.")} for name, imports in GRAPH.items()}
    assert not _cycles(edges)


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("dd_bench_")))
def test_builtin_plugins_import_only_the_plugin_surface(name):
    package = name.split(".")[0]
    outside = [
        f"{name}:{line} imports {target}"
        for target, line in GRAPH[name]
        if target.split(".")[0] != package and target not in PLUGIN_SURFACE
    ]
    assert not outside, "built-in plugins import dd_bench.plugin only:\n" + "\n".join(outside)


def test_the_plugin_surface_exports_and_documents_every_name():
    import dd_bench
    import dd_bench.plugin as surface

    for name in surface.__all__:
        assert hasattr(surface, name), name
        assert f"``{name}``" in surface.__doc__, f"dd_bench.plugin's docstring does not say what {name} is for"
    assert surface.hookimpl is dd_bench.hookimpl


def test_the_example_plugin_imports_only_the_plugin_surface():
    for path in (ROOT / "examples").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dd_bench"):
                assert node.module in PLUGIN_SURFACE, f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}"
