"""The import direction in design.md: device_agent stands alone, converters never imports edgekit,
and the fleet side (edgekit/fleet) needs no model toolchain (nothing from edgekit.optimize or converters)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imported_modules(package: str) -> list[tuple[str, str]]:
    found = []
    for file in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [(file.relative_to(ROOT).as_posix(), a.name) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from edgekit import optimize" imports edgekit.optimize: record both names
                found += [(file.relative_to(ROOT).as_posix(), name)
                          for name in (node.module, *(f"{node.module}.{a.name}" for a in node.names))]
    return found


@pytest.mark.parametrize(("package", "forbidden"),
                         [("device_agent", ("edgekit", "converters")), ("converters", ("edgekit",)),
                          ("edgekit/fleet", ("edgekit.optimize", "edgekit.bench", "converters", "torch", "onnx"))])
def test_no_import_against_the_direction(package: str, forbidden: tuple[str, ...]) -> None:
    bad = [(f, m) for f, m in _imported_modules(package) if any(m == x or m.startswith(x + ".") for x in forbidden)]
    assert bad == [], f"{package} must not import {forbidden}: {bad}"


def test_device_agent_loads_without_host_packages() -> None:
    """Import every agent module in a fresh interpreter and check no host module came along."""
    modules = sorted(
        "device_agent." + p.relative_to(ROOT / "device_agent").with_suffix("").as_posix().replace("/", ".")
        for p in (ROOT / "device_agent").rglob("*.py")
        if p.name != "__init__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('edgekit', 'converters', 'onnx', 'nncf', 'torch'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_fleet_loads_without_the_model_toolchain() -> None:
    """The fleet modules in a fresh interpreter bring no optimize, converters, torch or onnx along."""
    fleet = ROOT / "edgekit" / "fleet"
    modules = sorted("edgekit.fleet." + p.stem for p in fleet.glob("*.py") if p.stem != "__init__")
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('edgekit.optimize', 'edgekit.bench'))"
        " or m.split('.')[0] in ('converters', 'onnx', 'nncf', 'torch'))\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
