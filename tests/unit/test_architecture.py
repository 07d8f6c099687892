"""The layers of the tree, read from its imports (lazy ones included): shared imports only
shared, the workers never import each other, nothing imports the command or the tests, and
no module is part of an import circle."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "training", "airparadis")


def modules() -> dict[str, Path]:
    found = {}
    for package in (*PACKAGES, "scripts"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported_names(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the first-party modules (or tests' modules) it imports anywhere."""
    known = modules()

    def owner(name: str) -> str | None:
        while name:
            if name in known or name.split(".")[0] == "tests":
                return name if name in known else "tests"
            name = name.rpartition(".")[0]
        return None

    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = {owner(name) for name in imported_names(path)}
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_module_is_part_of_an_import_circle(graph: dict[str, set[str]]) -> None:
    assert circles(graph) == []


def test_circles_are_found() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_shared_imports_only_shared(graph: dict[str, set[str]]) -> None:
    outside = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith("shared")
        for target in targets
        if not target.startswith("shared")
    }
    assert outside == set()


def test_workers_never_import_each_other(graph: dict[str, set[str]]) -> None:
    def worker(module: str) -> str | None:
        parts = module.split(".")
        return parts[1] if parts[0] == "services" and len(parts) > 1 else None

    crossing = {
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if worker(module) and worker(target) and worker(module) != worker(target)
    }
    assert crossing == set()


def test_services_and_training_do_not_import_the_command(graph: dict[str, set[str]]) -> None:
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.split(".")[0] in ("shared", "services", "training")
        for target in targets
        if target.startswith("airparadis")
    }
    assert upward == set()


def test_nothing_outside_the_tests_imports_them(graph: dict[str, set[str]]) -> None:
    assert {module for module, targets in graph.items() if "tests" in targets} == set()
