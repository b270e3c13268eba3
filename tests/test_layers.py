"""The package's floors: a module imports only its own unit and the floors below it.

In the spirit of import-linter's "layers" contract: an import counts wherever it is written (at
the top, inside a function, under ``TYPE_CHECKING``), so a lazy import cannot hide an arrow that
runs back up. Units on one floor are independent of each other unless the floor lists them in
order. A second test finds import cycles between the modules of one package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pipeline" / "imagenet_captions"

#: Bottom up. A unit is a top-level module or package of imagenet_captions. Units on one floor may
#: not import each other.
FLOORS: list[set[str]] = [
    {"__init__", "errors"},
    # the ground: shared names, formats and helpers every stage may use
    {"outcomes", "fsio", "classes", "schema", "options", "dates", "layout", "trace", "data"},
    {"locks", "records", "beam_args", "manifest"},
    {"text", "images"},
    {"dask_runner"},
    {"runners"},
    {"flickr"},
    {"sources"},
    {"shards"},
    {"build", "match"},
    {"release"},
    {"train"},
    {"eval"},
    {"testing", "sample"},
    {"demo"},
    {"cli"},
]


def _floor(unit: str) -> int:
    for i, floor in enumerate(FLOORS):
        if unit in floor:
            return i
    raise AssertionError(f"imagenet_captions.{unit} is on no floor: add it to FLOORS in {__file__}")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every imagenet_captions module ``path`` imports, resolved to full names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return {m for m in found if m == "imagenet_captions" or m.startswith("imagenet_captions.")}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


MODULES = sorted(PACKAGE.rglob("*.py"))


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").exists() or (PACKAGE / rel / "__init__.py").exists()


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_only_downwards(path):
    unit = _unit(_module_name(path))
    mine = _floor(unit)
    up = sorted(
        m for m in _imports(path) if _is_module(m) and _unit(m) != unit and _floor(_unit(m)) >= mine
    )
    assert not up, f"{path.relative_to(PACKAGE)} (floor {mine}) imports a floor at or above its own: {up}"


def test_no_import_cycles_inside_a_package():
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        name = _module_name(path)
        graph[name] = {m for m in _imports(path) if _is_module(m) and _unit(m) == _unit(name) and m != name}
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ importing its own modules is how a package exposes them, not a cycle
            if nxt == node.rsplit(".", 1)[0] and nxt in graph and node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, f"import cycles: {cycles}"
