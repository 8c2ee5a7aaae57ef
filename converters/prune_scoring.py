"""How ``onnx-prune`` ranks a group's channels: sampling calibration activations, then ordering.

Split from :mod:`converters.onnx_prune` (the pass: budget and orchestration) because ranking
is its own piece of numerics, read and tested apart from how many channels go and how the
graph is cut (:mod:`converters.prune_groups`) or re-fitted (:mod:`converters.prune_recovery`).

With recovery, a pointwise consumer's channels are ordered by the Optimal Brain Surgeon cost
(:func:`obs_order`, which sees redundancy between channels); otherwise, or for a consumer
with a spatial kernel, by the energy a channel feeds the consumer (:func:`importance`).
Activations are sampled at positions that depend only on the seed, the sample and the
tensor's name, so the original and the pruned model are compared at the same places.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from converters.onnx_bias_correction import probe_session
from converters.prune_groups import ChannelGroup, Graph

#: Ridge strength relative to the mean diagonal of X^T X: enough to keep an underdetermined
#: fit (few rows, many channels) at the original weights, too little to bias a well-posed one.
RIDGE = 1e-3


class Layer:
    """A consumer's geometry: how its weight reads the group's channels and where rows are sampled."""

    def __init__(self, g: Graph, name: str) -> None:
        node = g.nodes[name]
        weight = g.const(node.input[1])
        assert weight is not None
        self.gemm = node.op_type == "Gemm"
        transposed = bool(g.attr(node, "transB", 0)) if self.gemm else True
        self.weight = weight if transposed else weight.T  # [out, in(, kh, kw)]
        self.bias_name = node.input[2] if len(node.input) > 2 and node.input[2] else ""
        bias = g.const(self.bias_name) if self.bias_name else None
        self.bias = np.zeros(self.weight.shape[0], np.float32) if bias is None else bias.reshape(-1)
        self.pointwise = self.gemm or self.weight.shape[2:] == (1, 1)
        self.stride = 1 if self.gemm else int((g.attr(node, "strides", [1, 1]) or [1])[0])
        self.pads = [] if self.gemm else list(g.attr(node, "pads", []) or [])
        self.output = node.output[0]

    @property
    def refittable(self) -> bool:
        return self.pointwise and not any(self.pads)


def _rows(x: np.ndarray, y: np.ndarray | None, layer: Layer, count: int, rng: np.random.Generator
          ) -> tuple[np.ndarray, np.ndarray | None]:
    """``count`` sampled rows (positions) of the consumer's input ``x`` [1, C(, H, W)] and output ``y``."""
    if x.ndim == 2:
        return x.astype(np.float32), None if y is None else y.astype(np.float32)
    if y is None or not layer.refittable:  # statistics only: any positions
        flat = x[0].reshape(x.shape[1], -1)
        pick = rng.choice(flat.shape[1], size=min(count, flat.shape[1]), replace=False)
        return flat[:, pick].T.astype(np.float32), None
    ho, wo = y.shape[2], y.shape[3]
    pick = rng.choice(ho * wo, size=min(count, ho * wo), replace=False)
    i, j = np.divmod(pick, wo)
    s = layer.stride
    return x[0][:, i * s, j * s].T.astype(np.float32), y[0][:, i, j].T.astype(np.float32)


def collect(onnx: Any, ort: Any, model: Any, input_name: str, samples: np.ndarray,
             wanted: Sequence[tuple[str, str | None]], layers: Sequence[Layer], rows_per_sample: int,
             seed: int) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Sampled rows of each ``(input tensor, output tensor or None)`` over ``samples``. The positions depend
    only on the seed, the sample and the output tensor's name, so the original and the pruned model are
    compared at the same places."""
    names = sorted({n for pair in wanted for n in pair if n})
    session = probe_session(onnx, ort, model, names)
    got: list[list[tuple[np.ndarray, np.ndarray | None]]] = [[] for _ in wanted]
    for index in range(len(samples)):
        values = dict(zip(names, session.run(names, {input_name: samples[index : index + 1]})))
        for k, ((x_name, y_name), layer) in enumerate(zip(wanted, layers)):
            rng = np.random.default_rng([seed, index, zlib.crc32((y_name or x_name).encode())])
            got[k].append(_rows(values[x_name], values[y_name] if y_name else None, layer, rows_per_sample, rng))
    return [(np.concatenate([r[0] for r in rows]),
             None if rows[0][1] is None else np.concatenate([r[1] for r in rows if r[1] is not None])) for rows in got]


def probe(group: ChannelGroup, layer: Layer) -> tuple[str, str | None]:
    """What to sample for a group: the consumer's input and output, or, for a Gemm after a global
    mean, the tensor before the mean alone (its targets are computed from it)."""
    return (group.pooled_input, None) if group.pooled_input else (group.consumer_input, layer.output)


def obs_order(x: np.ndarray, layer: Layer, count: int) -> np.ndarray:
    """The order to remove a pointwise consumer's input channels in, cheapest first, by the
    Optimal Brain Surgeon cost (Hassibi & Stork, 1993) taken per channel: with inputs ``x`` and
    weights ``W``, dropping channel ``k`` and re-fitting the others optimally raises the squared
    output error by ``|W[:, k]|^2 / H[k, k]``, ``H`` the inverse input covariance. Unlike a
    variance or a norm alone it sees redundancy: a channel the others can stand in for is cheap.
    Channels are removed one at a time, the weights and ``H`` updated after each; the first
    ``count`` are ordered so, the rest by their cost at that point."""
    xc = x.astype(np.float64) - x.mean(axis=0)
    gram = xc.T @ xc
    gram += RIDGE * max(float(np.trace(gram)) / len(gram), 1e-12) * np.eye(len(gram))
    h = np.linalg.inv(gram)
    w = layer.weight.reshape(layer.weight.shape[0], -1).astype(np.float64).copy()
    alive = np.ones(len(gram), dtype=bool)
    order = []
    for _ in range(min(count, len(gram) - 1)):
        cost = np.where(alive, (w**2).sum(axis=0) / np.maximum(np.diag(h), 1e-30), np.inf)
        k = int(np.argmin(cost))
        w -= np.outer(w[:, k], h[k]) / h[k, k]
        h -= np.outer(h[:, k], h[k]) / h[k, k]
        alive[k], h[k, :], h[:, k], w[:, k] = False, 0.0, 0.0, 0.0
        h[k, k] = 1.0  # keeps the diagonal finite; k is out of the race
        order.append(k)
    rest = np.where(alive)[0]
    rest = rest[np.argsort((w[:, rest] ** 2).sum(axis=0) / np.diag(h)[rest])]
    return np.concatenate([np.asarray(order, dtype=np.int64), rest])


def importance(x: np.ndarray, layer: Layer) -> np.ndarray:
    """Each input channel's share of the consumer's output variance (the error of removing it)."""
    w = layer.weight.reshape(layer.weight.shape[0], layer.weight.shape[1], -1)
    contribution = x.var(axis=0) * (w**2).sum(axis=(0, 2))
    return contribution / max(float(contribution.sum()), 1e-12)
