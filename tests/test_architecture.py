"""The layers point one way: the imports among the relay's modules, read from the code.

Every import counts, wherever it is written (module level, inside a function, under
TYPE_CHECKING): a lazy import is still a dependency. docs/architecture.md draws the layers
these rules keep.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "relay"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_names(path: Path) -> Iterator[str]:
    """Every module name an import statement in `path` names (relative ones resolved)."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def dependencies(module: str) -> set[str]:
    """The relay modules `module` imports (`from pkg import sub` is an edge to pkg.sub)."""
    found = set()
    for name in imported_names(MODULES[module]):
        if name in MODULES and name != module:
            found.add(name)
    return found


GRAPH = {module: dependencies(module) for module in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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


def test_the_walk_sees_imports_everywhere():
    """The walker itself: it finds the lazy imports (cli imports its commands in functions)."""
    assert "relay.cli.check" in GRAPH["relay.cli"]
    assert "relay.sources.base" in GRAPH["relay.sources"]


def test_no_import_cycle_among_the_relays_modules():
    assert cycles(GRAPH) == []


def reachable(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        for nxt in GRAPH[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


SOURCE_MODULES = [m for m in MODULES if m.startswith("relay.sources.")]
# What a build system's module may lean on: the schema and the data, the signature checks,
# the secrets it reads for its API, and its fellow source modules.
SOURCE_MAY_IMPORT = {
    "relay.config",
    "relay.errors",
    "relay.models",
    "relay.signatures",
    "relay.jsontext",
}
SOURCE_MAY_IMPORT |= {"relay.logs", "relay.secrets", "relay.sources", *SOURCE_MODULES}
SOURCE_MAY_IMPORT |= {"relay.http_deadline"}  # their API calls' wall-clock bound


@pytest.mark.parametrize("module", SOURCE_MODULES)
def test_sources_turn_bytes_into_events_and_never_call_the_pipeline(module):
    assert GRAPH[module] <= SOURCE_MAY_IMPORT, GRAPH[module] - SOURCE_MAY_IMPORT


def test_the_config_schema_imports_no_plugin():
    assert reachable("relay.config") <= {"relay.errors", "relay.models"}


def test_the_runtime_never_imports_the_operator_tools():
    runtime = reachable("relay.app") | {"relay.app"}
    tools = {m for m in MODULES if m.startswith(("relay.cli", "relay.sandbox"))}
    assert runtime & tools == set()


# The pure steps: data in, data out. None of them may reach an I/O library.
PURE = [
    "relay.answers",
    "relay.jsontext",
    "relay.verdicts.check",
    "relay.errors",
    "relay.models",
    "relay.routing",
    "relay.signatures",
    "relay.revyl.sansio",
    "relay.sources.payload",
    "relay.text",
    "relay.reports._common",
]
IO_LIBRARIES = ("requests", "urllib3", "google", "flask", "socket", "http", "functions_framework")


@pytest.mark.parametrize("module", PURE)
def test_the_pure_steps_do_no_io(module):
    for name in [module, *reachable(module)]:
        io = [n for n in imported_names(MODULES[name]) if n.split(".")[0] in IO_LIBRARIES]
        assert io == [], f"{name} (reached from {module}) imports {io}"


REPORT_MODULES = [m for m in MODULES if m.startswith("relay.reports")]
# The engine and the edges that assemble it: a report target (a plugin) sits below them all.
ABOVE_THE_REPORTS = ("relay.verdicts.follower", "relay.pipeline", "relay.wiring", "relay.app")
ABOVE_THE_REPORTS += ("relay.chatops", "relay.sources", "relay.stores", "relay.cli")


@pytest.mark.parametrize("module", REPORT_MODULES)
def test_report_targets_are_plugins_below_the_follower(module):
    above = {m for m in reachable(module) if m.startswith(ABOVE_THE_REPORTS)}
    assert above == set(), f"{module} reaches {sorted(above)}"
