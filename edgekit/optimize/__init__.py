"""``edgekit optimize``: a model in, a validated, measured bundle out.

``from edgekit.optimize import optimize, OptimizeOptions``. The pipeline (:mod:`.pipeline`) takes
its options as data (:mod:`.options`, checked before any work), imports the model
(:mod:`.model_source`), builds candidates (:mod:`.candidates`), calibrates (:mod:`.calibration`),
checks agreement (:mod:`.validation`), keeps sensitive layers in float (:mod:`.sensitivity`),
measures (:mod:`.measure`), picks the winner (:mod:`.selection`), reports (:mod:`.report`) and
writes the bundle (:mod:`.bundle_writer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.errors import OptionsError
    from edgekit.optimize.options import AdvancedOptions, OptimizeOptions
    from edgekit.optimize.pipeline import optimize
    from edgekit.optimize.report import OptimizeReport, OptimizeResult

_HOMES = {
    "optimize": "pipeline",
    "OptimizeOptions": "options",
    "AdvancedOptions": "options",
    "OptionsError": "options",
    "OptimizeReport": "report",
    "OptimizeResult": "report",
}
__all__ = ["AdvancedOptions", "OptimizeOptions", "OptimizeReport", "OptimizeResult", "OptionsError", "optimize"]


def __getattr__(name: str) -> Any:
    # lazy: importing one step (edgekit.optimize.calibration) must not load the whole pipeline
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"edgekit.optimize.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'edgekit.optimize' has no attribute {name!r}")
