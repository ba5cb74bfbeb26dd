"""The code keeps its shape: no class in syncd/ over 450 lines, no function over 60, one error tree."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import syncd
from syncd.errors import SyncdError

ROOT = Path(syncd.__file__).parent
MAX_CLASS_LINES = 450
MAX_FUNCTION_LINES = 60


def _spans(tree: ast.AST) -> list[tuple[str, str, int]]:
    """Every class and function with its kind and length in lines (decorators and docstring included)."""
    found: list[tuple[str, str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            end = node.end_lineno if node.end_lineno is not None else node.lineno
            found.append((kind, node.name, end - node.lineno + 1))
    return found


def oversized(source: str) -> list[str]:
    """The classes and functions of ``source`` that are over the limits."""
    limits = {"class": MAX_CLASS_LINES, "function": MAX_FUNCTION_LINES}
    return [f"{kind} {name}: {n} lines" for kind, name, n in _spans(ast.parse(source)) if n > limits[kind]]


def test_checker_measures_whole_definitions() -> None:
    """The size checker counts a function from its def to its last line."""
    body = "\n".join(f"    x = {i}" for i in range(60))
    assert oversized(f"def f():\n{body}\n") == ["function f: 61 lines"]
    assert oversized("def g():\n    return 1\n") == []


def test_no_class_or_function_is_too_long() -> None:
    """Every class in syncd/ fits in 450 lines and every function in 60."""
    offenders = {
        str(path.relative_to(ROOT)): bad
        for path in sorted(ROOT.rglob("*.py"))
        if (bad := oversized(path.read_text()))
    }
    assert offenders == {}


def test_every_exception_is_a_syncd_error() -> None:
    """Every exception class that syncd defines descends from SyncdError."""
    strays: list[str] = []
    for info in pkgutil.walk_packages(syncd.__path__, "syncd."):
        if info.name.endswith("__main__"):
            continue  # running it would run the command line
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not issubclass(value, SyncdError)
            ):
                strays.append(f"{module.__name__}.{name}")
    assert strays == []
