"""The import rule of DESIGN.md: the core imports nothing of the shell, I/O, time or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hotstandby.core

CORE = Path(hotstandby.core.__file__).parent

# Modules the core may never import: the shell's parts and anything that
# touches the world, the clock or shared randomness.
FORBIDDEN_STDLIB = {
    "asyncio",
    "socket",
    "subprocess",
    "time",
    "random",
    "os",
    "threading",
    "select",
    "selectors",
    "signal",
    "datetime",
}
ALLOWED_INTERNAL = "hotstandby.core"


def imported_modules(source: str) -> list[tuple[int, str]]:
    """Every module an import statement names, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append((node.lineno, "." * node.level + (node.module or "")))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def violations(source: str) -> list[str]:
    """The imports in `source` that break the rule."""
    bad = []
    for line, module in imported_modules(source):
        top = module.split(".")[0]
        if module.startswith("."):
            continue  # relative imports stay inside the package
        outside_core = top == "hotstandby" and not (
            module == ALLOWED_INTERNAL or module.startswith(ALLOWED_INTERNAL + ".")
        )
        if top in FORBIDDEN_STDLIB or outside_core:
            bad.append(f"line {line}: {module}")
    return bad


@pytest.mark.parametrize("path", sorted(CORE.glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_nothing_of_the_shell(path: Path) -> None:
    assert violations(path.read_text()) == [], f"{path.name} breaks the core's import rule"


@pytest.mark.parametrize(
    "source",
    [
        "import asyncio",
        "from time import monotonic",
        "import random",
        "from hotstandby.agent import loop",
        "import hotstandby.sim.world",
        "import socket, json",
        "import subprocess as sp",
    ],
)
def test_rule_catches_forbidden_imports(source: str) -> None:
    assert violations(source), f"{source!r} should break the rule"


def test_rule_allows_the_core_and_pure_stdlib() -> None:
    source = "from dataclasses import dataclass\nfrom hotstandby.core.messages import Role\n"
    assert violations(source) == []
