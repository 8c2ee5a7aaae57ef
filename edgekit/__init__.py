"""EdgeKit host toolkit: optimize, bundle and benchmark vision models for edge devices.

The Python API: :func:`edgekit.optimize.optimize` (``from edgekit.optimize import optimize``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
