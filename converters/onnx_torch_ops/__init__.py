"""The ONNX ops ``onnx -> torch`` knows: an explicit registry, one small function per op.

- :mod:`.registry`: ``OPS``, the ``@op`` decorator, :class:`Node` and the helpers ops share;
  how an op function is called is documented there.
- :mod:`.elementwise`: math, comparisons, logic and activations.
- :mod:`.conv_pool`: convolution, linear (Gemm, MatMul, Einsum), normalization, pooling.
- :mod:`.reductions`: ReduceMean and friends, ArgMax/ArgMin, TopK.
- :mod:`.shape`: shape arithmetic, constants, casts and indexing (Reshape, Slice, Gather, Pad, ...).
- :mod:`.resize`: Resize.
- :mod:`.module`: :class:`OnnxModule`, the graph as an ``nn.Module``.

Importing this package registers every op. It needs torch at import time;
``converters.onnx_torch`` (the pass) imports it only when a conversion runs.
"""

from __future__ import annotations

from converters.onnx_torch_ops import (  # noqa: F401  (register every op)
    conv_pool,
    elementwise,
    reductions,
    resize,
    shape,
)
from converters.onnx_torch_ops.module import OnnxModule, Ref, Step
from converters.onnx_torch_ops.registry import (
    ALWAYS_CONSTANT,
    DTYPES,
    OPS,
    PREPARE,
    Node,
    OpFn,
    Prepare,
    op,
)

__all__ = ["ALWAYS_CONSTANT", "DTYPES", "OPS", "PREPARE", "Node", "OnnxModule", "OpFn", "Prepare", "Ref", "Step", "op"]
