"""Tiny ONNX models built with onnx.helper, for tests that need a real model but not a big one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_classifier(path: Path, *, size: int = 32, classes: int = 10, batch: int | str = 1,
                    height: int | str | None = None, seed: int = 0) -> Path:
    """Conv-ReLU-Conv-ReLU-GlobalAveragePool-Flatten-Gemm, NCHW float32 input ``[batch, 3, size, size]``."""
    rng = np.random.default_rng(seed)
    h = size if height is None else height
    w = size if height is None else height
    weights = {
        "w1": rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32),
        "b1": rng.normal(0, 0.1, 16).astype(np.float32),
        "w2": rng.normal(0, 0.2, (32, 16, 3, 3)).astype(np.float32),
        "b2": rng.normal(0, 0.1, 32).astype(np.float32),
        "wf": rng.normal(0, 0.3, (classes, 32)).astype(np.float32),
        "bf": rng.normal(0, 0.1, classes).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wf", "bf"], ["logits"], transB=1, name="fc"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, h, w])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path
