"""Optional dependencies of the passes, imported when a pass runs, with the extra to install named."""

from __future__ import annotations

from typing import Any

from converters.errors import MissingDependencyError


def import_torch(purpose: str) -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError(module="torch", extra="torch", purpose=purpose) from exc
    return torch


def import_onnx(purpose: str) -> tuple[Any, Any]:
    """``onnx`` and ``onnxruntime``."""
    try:
        import onnx
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(module=exc.name or "onnx", extra="host", purpose=purpose) from exc
    return onnx, onnxruntime
