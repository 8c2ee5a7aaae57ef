"""EdgeKit host toolkit: optimize, bundle and benchmark vision models for edge devices."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edgekit.optimize import OptimizeResult


def optimize(model: Any, **options: Any) -> OptimizeResult:
    """Optimize ``model`` for a target and write a bundle; see :func:`edgekit.optimize.optimize`."""
    from edgekit.optimize import optimize as _optimize

    return _optimize(model, **options)


__all__ = ["__version__", "optimize"]
