"""How ``onnx-prune`` recovers a pruned model without labels or training: re-fitting each consumer.

Split from :mod:`converters.onnx_prune` (the pass: budget and orchestration) because recovery
is the part with its own maths and its own graph edits (new weights and biases), in the
spirit of ThiNet (Luo et al., 2017) and channel pruning (He et al., 2017): layer by layer in
graph order, the consumer's weights and bias are re-fitted by ridge least squares so that,
fed the *pruned* model's activations, it reproduces the *original* model's outputs on the
calibration data; the ridge pulls towards the original weights where data is scarce (a
classifier's last layer sees one row per image). A consumer whose output is added to a skip
connection is fitted so that the *sum* matches. A consumer with a spatial kernel gets only
the removed channels' mean folded into its bias.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from converters.prune_groups import ChannelGroup, Graph
from converters.prune_scoring import RIDGE, Layer, collect, probe


def skip_connection(graph: Graph, layer: Layer) -> tuple[str, str] | None:
    """For a refittable consumer whose output is added to a skip connection: the skip tensor and the sum."""
    add = graph.sole_consumer(layer.output)
    if not layer.refittable or layer.gemm or add is None or add.op_type != "Add" or len(add.input) != 2:
        return None
    skip = add.input[1] if add.input[0] == layer.output else add.input[0]
    if skip in graph.inits or graph.shapes.get(skip) != graph.shapes.get(layer.output):
        return None  # a bias-like constant or a broadcast: not a skip connection
    return skip, add.output[0]


def residual_target(onnx: Any, ort: Any, pruned: Any, layer_input: str, layer: Layer, skip: tuple[str, str],
                     total_orig: np.ndarray, input_name: str, samples: np.ndarray, rows_per_sample: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """For a consumer whose output is added to a skip connection: its inputs, and the target that makes
    the *sum* match the original's (``total_orig``, sampled at the same positions),
    ``original sum - skip as the pruned model now has it``. The skip carries the error of every
    pruned block before; this is where it can be taken out."""
    skip_name, total = skip
    (x_now, _), (skip_now, _) = collect(onnx, ort, pruned, input_name, samples,
                                         [(layer_input, total), (skip_name, total)], [layer, layer],
                                         rows_per_sample, seed)
    return x_now, total_orig - skip_now


def fit_consumer(layer: Layer, rows: np.ndarray, keep: np.ndarray, x: np.ndarray, y: np.ndarray | None,
                 x_orig: np.ndarray, refit: bool) -> tuple[np.ndarray, np.ndarray]:
    """The consumer's weight [out, kept...] and bias with only ``keep`` input channels left.

    ``refit`` (and a pointwise consumer with sampled outputs ``y``): ridge least squares from the
    activations it now gets (``x``, kept channels only) to the original outputs. Otherwise the
    removed channels' mean (``x_orig``, all channels) is folded into the bias."""
    w = layer.weight.reshape(layer.weight.shape[0], layer.weight.shape[1], -1)[rows]
    if refit and layer.refittable and y is not None:
        return _ridge(x, y[:, rows], w[:, keep, 0])
    gone = np.setdiff1d(np.arange(w.shape[1]), keep)
    bias = layer.bias[rows] + w[:, gone].sum(axis=2) @ x_orig[:, gone].mean(axis=0)
    return w[:, keep].reshape(len(rows), -1), bias.astype(np.float32)


def _ridge(x: np.ndarray, y: np.ndarray, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """min |[x 1] [W b]^T - y|^2 + lam |W - w0|^2: the consumer's new weight [out, in] and bias."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    mean_x, mean_y = x64.mean(axis=0), y64.mean(axis=0)
    xc, yc = x64 - mean_x, y64 - mean_y  # the bias is free: fit on centred data, then place it
    gram = xc.T @ xc
    lam = RIDGE * max(float(np.trace(gram)) / len(gram), 1e-12)
    w = np.linalg.solve(gram + lam * np.eye(len(gram)), xc.T @ yc + lam * w0.T.astype(np.float64)).T
    return w.astype(np.float32), (mean_y - w @ mean_x).astype(np.float32)


def set_weights(onnx: Any, model: Any, layer: str, weight: np.ndarray, bias: np.ndarray) -> None:
    """Write a layer's new weight (in the layout it had) and bias (added if it had none)."""
    from onnx import numpy_helper

    node = next(n for n in model.graph.node if n.name == layer)
    inits = {i.name: i for i in model.graph.initializer}
    old = numpy_helper.to_array(inits[node.input[1]])
    if node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute):
        weight = weight.T
    inits[node.input[1]].CopyFrom(numpy_helper.from_array(weight.reshape(old.shape).astype(old.dtype), node.input[1]))
    if len(node.input) > 2 and node.input[2]:
        old_bias = numpy_helper.to_array(inits[node.input[2]])
        inits[node.input[2]].CopyFrom(numpy_helper.from_array(bias.reshape(old_bias.shape).astype(old_bias.dtype),
                                                              node.input[2]))
    else:
        name = f"{layer}_pruned_bias"
        model.graph.initializer.append(numpy_helper.from_array(bias.astype(old.dtype), name))
        del node.input[2:]  # an empty bias slot, if any, is replaced
        node.input.append(name)


def recover_consumers(onnx: Any, ort: Any, model: Any, pruned: Any, *, groups: Sequence[ChannelGroup],
                      layers: Sequence[Layer], kept: Sequence[np.ndarray], removed: Sequence[int],
                      original: Sequence[tuple[np.ndarray, np.ndarray | None]],
                      skips: Sequence[tuple[str, str] | None], totals: Sequence[np.ndarray | None], recover: bool,
                      input_name: str, fit: np.ndarray, rows_per_sample: int, seed: int) -> int:
    """Give every consumer of a pruned group in ``pruned`` its new weights; the number re-fitted.

    ``original`` holds each group's sampled consumer input and output in the original ``model``,
    ``skips``/``totals`` the skip connection after it and the original sum there (or None)."""
    outputs_kept = {g.producer: keep for g, keep, count in zip(groups, kept, removed) if count}
    consumers = {g.consumer: k for k, (g, count) in enumerate(zip(groups, removed)) if count}
    refitted = 0
    for node in model.graph.node:  # graph order: every fit sees the layers before it already fitted
        if node.name in consumers:
            k = consumers[node.name]
            group, layer, keep = groups[k], layers[k], kept[k]
            x_orig, y_orig = original[k]
            # the consumer may itself have lost output channels, as the producer of a later group
            outs = outputs_kept.get(group.consumer, np.arange(layer.weight.shape[0]))
            x_now = x_orig[:, keep]
            if recover and layer.refittable:  # fed what the pruned model now computes
                skip, total_orig = skips[k], totals[k]
                if skip is not None and total_orig is not None:
                    x_now, y_orig = residual_target(onnx, ort, pruned, group.consumer_input, layer, skip,
                                                    total_orig, input_name, fit, rows_per_sample, seed)
                else:
                    ((x_now, _),) = collect(onnx, ort, pruned, input_name, fit, [probe(group, layer)], [layer],
                                            rows_per_sample, seed)
                refitted += 1
            weight, bias = fit_consumer(layer, outs, keep, x_now, y_orig, x_orig, recover)
            set_weights(onnx, pruned, group.consumer, weight, bias)
    return refitted
