"""``edgekit optimize``: a model in, a validated, measured bundle out.

``from edgekit.optimize import optimize``. The pipeline (:mod:`.pipeline`) imports the model
(:mod:`.model_source`), builds candidates (:mod:`.candidates`), calibrates (:mod:`.calibration`),
checks agreement (:mod:`.validation`), keeps sensitive layers in float (:mod:`.sensitivity`),
measures (:mod:`.measure`) and writes the bundle (:mod:`.bundle_writer`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgekit.optimize.pipeline import OptimizeResult, optimize

__all__ = ["OptimizeResult", "optimize"]


def __getattr__(name: str) -> Any:
    # lazy: importing one step (edgekit.optimize.calibration) must not load the whole pipeline
    if name in __all__:
        from edgekit.optimize import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'edgekit.optimize' has no attribute {name!r}")
