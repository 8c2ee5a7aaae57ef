"""Modules over 400 lines and functions over 60 lines in the shipped packages.

A report, not yet a gate: splitting the modules it names is its own work, so the test is
an expected failure (``strict=False``) that lists them. Run it with ``-rx`` (or ``-s``) to
see the list; once the list is empty it passes, and the xfail marker can go.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgekit", "converters", "device_agent")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def oversized() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """``(modules, functions)``: each ``(name, lines)``, longest first."""
    modules: list[tuple[str, int]] = []
    functions: list[tuple[str, int]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            where = path.relative_to(ROOT).as_posix()
            lines = len(source.splitlines())
            if lines > MAX_MODULE_LINES:
                modules.append((where, lines))
            for node in ast.walk(ast.parse(source, filename=where)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    length = node.end_lineno - first + 1
                    if length > MAX_FUNCTION_LINES:
                        functions.append((f"{where}:{node.lineno} {node.name}", length))
    return sorted(modules, key=lambda m: -m[1]), sorted(functions, key=lambda f: -f[1])


@pytest.mark.xfail(strict=False, reason="reports the modules and functions to split; not a gate yet")
def test_modules_and_functions_stay_small() -> None:
    modules, functions = oversized()
    report = [f"modules over {MAX_MODULE_LINES} lines:", *(f"  {n} lines  {m}" for m, n in modules),
              f"functions over {MAX_FUNCTION_LINES} lines:", *(f"  {n} lines  {f}" for f, n in functions)]
    print("\n".join(report))
    assert not modules and not functions, "\n".join(report)
