"""Cutting a detector before its decode tail, for integer-only models.

A YOLOv8 export ends in float arithmetic that INT8 cannot carry: the DFL softmax, anchor
offsets, and one concatenation of pixel boxes (0-640) with 0-1 scores, which no single int8
scale represents (the TFLite converter refuses it outright). For an INT8 TFLite model the
detector is therefore cut at its raw heads; the agent's ``yolov8-heads`` decoder runs the
tail in numpy. The cut is found in the graph, not assumed, and proved: the decoder applied
to the cut model's outputs must reproduce the original output on a real sample.

``SPLITTERS`` maps a decoder key to the function that cuts models of that decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters import PASSES
from converters.errors import ConversionError
from device_agent.bundle.manifest import TaskSpec
from device_agent.pipeline.decoders.yolov8_heads import KEY as HEADS_DECODER
from device_agent.pipeline.decoders.yolov8_heads import predictions
from edgekit.optimize.measure import run_all

#: Largest ``max|decoded heads - original| / max(1, max|original|)`` accepted as the same detector.
RELATIVE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class HeadSplit:
    """The cut model, the task that decodes it, and how to turn its outputs into the original's."""

    path: Path
    task: TaskSpec
    heads: list[str]
    max_relative_error: float
    to_reference: Callable[[list[np.ndarray]], list[np.ndarray]]

    def details(self) -> dict[str, Any]:
        return {"heads": self.heads, "decoder": self.task.decoder, "strides": self.task.strides,
                "max_relative_error": self.max_relative_error}


def _shapes(model: Any) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    values = [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}


def find_yolov8_heads(model: Any) -> list[tuple[str, list[int]]]:
    """The head tensors ``[1, C, H, W]`` that the export flattens to ``[1, C, H*W]`` before its tail.

    Their grids must cover the output's ``N`` candidates exactly (one grid per stride)."""
    shapes = _shapes(model)
    out = shapes.get(model.graph.output[0].name, [])
    if len(out) != 3:
        raise ConversionError(f"a YOLOv8 export has one output [1, 4+nc, N]; this one is {out}")
    anchors = max(out[1:])
    found = []
    for node in model.graph.node:
        if node.op_type not in ("Reshape", "Flatten"):
            continue
        src, dst = shapes.get(node.input[0], []), shapes.get(node.output[0], [])
        if len(src) == 4 and src[0] == 1 and dst == [1, src[1], src[2] * src[3]]:
            found.append((node.input[0], src))
    grids = {(s[2], s[3]) for _, s in found}
    if not found or sum(h * w for h, w in grids) != anchors:
        raise ConversionError(f"found no YOLOv8 heads whose grids cover the output's {anchors} candidates "
                              f"(flattened feature maps: {[s for _, s in found] or 'none'})")
    return found


def split_yolov8(reference: Path, task: TaskSpec, dst: Path, sample: np.ndarray) -> HeadSplit:
    """Cut ``reference`` at its heads into ``dst`` and prove the decoder reproduces its output on ``sample``."""
    import onnx

    model = onnx.load(str(reference))
    heads = find_yolov8_heads(model)
    PASSES["onnx-extract"](reference, dst, outputs=[name for name, _ in heads])
    input_h = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim][2]
    grids = sorted({s[2] for _, s in heads}, reverse=True)
    heads_task = task.model_copy(update={"decoder": HEADS_DECODER, "strides": [input_h / h for h in grids]})
    expected = run_all(reference, [sample[:1]])[0][0]

    def to_reference(outputs: list[np.ndarray]) -> list[np.ndarray]:
        full = predictions(outputs, heads_task)
        return [full if full.shape == expected.shape else full.transpose(0, 2, 1)]

    got = to_reference(run_all(dst, [sample[:1]])[0])[0]
    error = float(np.abs(got - expected).max()) / max(1.0, float(np.abs(expected).max()))
    if error > RELATIVE_TOLERANCE:
        raise ConversionError(f"the graph after the heads {[n for n, _ in heads]} is not the YOLOv8 decode tail: "
                              f"decoding them differs from the model's output by {error:.3g} (relative; at most "
                              f"{RELATIVE_TOLERANCE} is the same detector)")
    return HeadSplit(dst, heads_task, [n for n, _ in heads], error, to_reference)


#: decoder key -> the function that cuts a model of that decoder before its tail
SPLITTERS: dict[str, Callable[[Path, TaskSpec, Path, np.ndarray], HeadSplit]] = {"yolov8": split_yolov8}
