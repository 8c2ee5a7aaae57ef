"""Modules over 400 lines and functions over 60 lines in the shipped packages: a ratchet.

The code that is already too long is listed in :data:`KNOWN` with its size today; splitting it
is its own work (issue 15). The test fails when anything new goes over a limit, or when a
listed one grows: the list can only shrink. When a listed one is split or shortened, lower or
remove its entry (the test says so, so the list never keeps slack).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edgekit", "converters", "device_agent")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60

KNOWN: dict[str, int] = {
    "device_agent/transport/publisher.py": 456,
    "converters/onnx_prune.py": 447,
    "device_agent/service/agent.py": 442,
    "device_agent/transport/outbox.py": 409,
    "converters/onnx_prune.py::prune_onnx": 107,
    "edgekit/content/zoo/yolo.py::yolov8n": 104,
    "converters/torch_onnx.py::export_torch_to_onnx": 90,
    "converters/onnx_torch.py::_build": 83,
    "converters/onnx_int8.py::quantize_int8_static": 75,
    "device_agent/service/agent.py::run": 65,
    "converters/onnx_torch.py::convert_onnx_to_torch": 64,
    "device_agent/transport/publisher.py::__init__": 62,
}
"""Oversized today (``path`` for a module, ``path::function``), with its length in lines."""


def oversized() -> dict[str, int]:
    """Every module over :data:`MAX_MODULE_LINES` and function over :data:`MAX_FUNCTION_LINES`."""
    found: dict[str, int] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            where = path.relative_to(ROOT).as_posix()
            lines = len(source.splitlines())
            if lines > MAX_MODULE_LINES:
                found[where] = lines
            for node in ast.walk(ast.parse(source, filename=where)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    assert node.end_lineno is not None
                    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                    length = node.end_lineno - first + 1
                    if length > MAX_FUNCTION_LINES:
                        key = f"{where}::{node.name}"
                        found[key] = max(found.get(key, 0), length)
    return found


def test_no_module_or_function_grows_past_the_limits() -> None:
    found = oversized()
    new = {k: n for k, n in found.items() if k not in KNOWN}
    grown = {k: (KNOWN[k], n) for k, n in found.items() if k in KNOWN and n > KNOWN[k]}
    assert not new, f"over {MAX_MODULE_LINES} lines (module) or {MAX_FUNCTION_LINES} (function): {new}; split it"
    assert not grown, f"grew past its recorded size (recorded, now): {grown}; split it rather than raise the number"


def test_the_list_of_known_oversized_code_keeps_no_slack() -> None:
    found = oversized()
    shrunk = {k: (n, found.get(k)) for k, n in KNOWN.items() if found.get(k, 0) < n}
    assert not shrunk, f"smaller now (recorded, now; None: within the limits): {shrunk}; lower or remove in KNOWN"
