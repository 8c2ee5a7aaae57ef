"""``onnx-extract``: keep the part of an ONNX graph that computes the named tensors.

Used to cut a detector before its decode tail (see ``edgekit.optimize.heads``): the kept graph runs
on the accelerator, the tail on the CPU. Every named tensor must exist in the graph, and the
kept graph is fully checked before it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from converters.base import PassReport, register_pass, timed
from converters.deps import import_onnx
from converters.errors import ConversionError


@register_pass("onnx-extract")
def extract_outputs(src: Path, dst: Path, /, *, outputs: Sequence[str]) -> PassReport:
    """Write to ``dst`` the subgraph of ``src`` from its inputs to ``outputs`` (which become its outputs)."""
    onnx, _ = import_onnx("cutting an ONNX graph")
    from onnx.utils import Extractor

    if not outputs:
        raise ConversionError("onnx-extract needs at least one tensor name to keep")
    with timed() as elapsed:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(src)))
        produced = {name for node in model.graph.node for name in node.output}
        missing = [name for name in outputs if name not in produced]
        if missing:
            raise ConversionError(f"onnx-extract: {src.name} computes no tensor named {missing}; "
                                  f"expected outputs of its nodes")
        inputs = [i.name for i in model.graph.input if i.name not in {init.name for init in model.graph.initializer}]
        kept = Extractor(model).extract_model(inputs, list(outputs))
        onnx.checker.check_model(kept, full_check=True)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(kept, str(dst))
    return PassReport("onnx-extract", src, dst, elapsed(),
                      {"outputs": list(outputs), "nodes_kept": len(kept.graph.node), "nodes_dropped":
                       len(model.graph.node) - len(kept.graph.node)})
