"""The import graph keeps the layers: flashspeech -> suites -> bench -> reports, no cycles.

Each package imports only the ones to its left (bench's CLI, the composition root, may import any);
`flashspeech.foundation`, the bottom layer, imports nothing else of the project; no module imports itself
back through others, counting imports inside functions too (a lazy import is still an arrow).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("flashspeech", "suites", "bench", "reports")
COMPOSITION_ROOT = "bench.cli"  # may import every layer
BOTTOM = "flashspeech.foundation"


def _modules() -> dict[str, Path]:
    out = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `module` imports anywhere in its file (`from pkg import mod` counts as pkg.mod)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
            names = submodules if len(submodules) == len(node.names) else [base, *submodules]
        else:
            continue
        for name in names:
            while name and name not in modules:  # `import a.b.c` of an attribute path: the longest module
                name = name.rpartition(".")[0]
            if name and name != module:
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in graph.items():
        for target in sorted(targets):
            if module.startswith(BOTTOM) and not target.startswith(BOTTOM):
                bad.append(f"{module} -> {target}: the foundation imports nothing above it")
            elif _layer(target) > _layer(module) and not (module + ".").startswith(COMPOSITION_ROOT + "."):
                bad.append(f"{module} -> {target}: {module.split('.')[0]} may not import {target.split('.')[0]}")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_every_import_points_down_the_layers():
    assert layer_violations(_graph()) == []


def test_no_import_cycles_between_files():
    assert cycles(_graph()) == []


def test_no_import_cycles_between_subpackages():
    """With each sub-package (flashspeech.codecs, bench.systems, ...) collapsed to one node, there is no cycle
    either: no two sub-packages lean on each other."""
    graph = _graph()

    def unit(module: str) -> str:
        parts = module.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 and _is_package(parts[:2]) else module

    collapsed: dict[str, set[str]] = {}
    for module, targets in graph.items():
        collapsed.setdefault(unit(module), set()).update(unit(t) for t in targets if unit(t) != unit(module))
    assert cycles(collapsed) == []


def _is_package(parts: list[str]) -> bool:
    return (ROOT.joinpath(*parts) / "__init__.py").is_file()


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"suites.base": {"bench.runner"}, "bench.runner": set()}, ["suites.base -> bench.runner"]),
        ({"flashspeech.foundation.audio": {"flashspeech.model"}, "flashspeech.model": set()}, ["foundation"]),
        ({"bench.cli.commands": {"reports.html"}, "reports.html": set()}, []),
        ({"bench.runner": {"reports.html"}, "reports.html": set()}, ["bench may not import reports"]),
    ],
)
def test_the_check_catches_an_arrow_back_up(graph, expected):
    found = layer_violations(graph)
    assert len(found) == len(expected)
    for message, fragment in zip(found, expected, strict=True):
        assert fragment in message


def test_the_check_catches_a_cycle():
    graph = {"bench.a": {"bench.b"}, "bench.b": {"bench.c"}, "bench.c": {"bench.a"}, "bench.d": {"bench.a"}}
    assert cycles(graph) == [["bench.a", "bench.b", "bench.c"]]
