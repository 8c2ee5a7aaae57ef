"""Model transformations: one module per format edge or optimization pass.

Pure functions, model file in, model file out. Imports nothing from ``edgekit``.
Importing this package registers the built-in passes (their heavy dependencies are
imported only when a pass runs).
"""

from converters import (  # noqa: F401  (register passes)
    onnx_bias_correction,
    onnx_extract,
    onnx_fp16,
    onnx_int8,
    onnx_nncf,
    onnx_prepare,
    onnx_prune,
    onnx_sparsity,
    onnx_torch,
    tflite_quantize,
    torch_onnx,
    torch_tflite,
)
from converters.base import PASSES, Pass, PassReport, register_pass
from converters.errors import (
    ConversionError,
    MissingDependencyError,
    PassOptionsError,
    UnsupportedModelError,
)

__all__ = [
    "PASSES",
    "ConversionError",
    "MissingDependencyError",
    "Pass",
    "PassOptionsError",
    "PassReport",
    "UnsupportedModelError",
    "register_pass",
]
