"""The core is sans-I/O: no module imports asyncio, sockets, clocks, threads, pydantic or the adapters."""

import ast
from pathlib import Path

import syncd.core

FORBIDDEN = (
    "asyncio",
    "socket",
    "time",
    "pydantic",
    "sqlite3",
    "os",
    "threading",
    "syncd.adapters",
    "syncd.rows",
    "syncd.daemon",
)
CORE = Path(syncd.core.__file__).parent


def _is_forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def forbidden_imports(source: str) -> list[str]:
    """Return the forbidden modules ``source`` imports (``import x``, ``import x.y``, ``from x import y``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names if _is_forbidden(alias.name))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if _is_forbidden(node.module):
                found.append(node.module)
            else:
                # ``from syncd import adapters`` imports the package syncd.adapters.
                found.extend(
                    f"{node.module}.{alias.name}"
                    for alias in node.names
                    if _is_forbidden(f"{node.module}.{alias.name}")
                )
    return found


def test_checker_finds_forbidden_imports() -> None:
    """The checker itself reports every import form it must catch, and nothing else."""
    source = "\n".join(
        [
            "import asyncio",
            "import os.path as p",
            "from time import monotonic",
            "from syncd import adapters",
            "from syncd.daemon import Daemon",
            "import json, timeit",
            "from syncd.core import engine",
            "from . import sibling",
        ]
    )
    assert forbidden_imports(source) == ["asyncio", "os.path", "time", "syncd.adapters", "syncd.daemon"]


def test_core_modules_are_pure() -> None:
    """No module of syncd/core imports anything that does I/O, reads a clock or leaves the core."""
    modules = sorted(CORE.glob("*.py"))
    assert len(modules) > 10
    offenders = {path.name: bad for path in modules if (bad := forbidden_imports(path.read_text()))}
    assert offenders == {}
