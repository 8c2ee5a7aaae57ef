"""Which layers to keep in float when INT8 misses the budget.

Two facts, measured on EfficientNet-Lite0 (see the closing note of issue 2), shape this:

- ONNX Runtime's ``nodes_to_exclude`` keeps a layer's *weights* in float, but the
  activations around it stay quantized as long as a neighbour is quantized. Excluding
  single layers therefore barely helps. What helps is a *chain* of layers (Conv -> act ->
  Conv -> ...) kept in float together, so the activations inside it are float too.
- Local per-layer error misleads: noise added early is amplified by every later layer,
  so the stem and first block matter most although their own error looks small.

So each candidate chain is scored by its effect where it counts, on the model's output:
the model is re-quantized with that chain in float (calibration ranges cached, so this is
cheap) and the output's signal-to-noise ratio against the float model is measured on
calibration samples. The chains that raise it most are the ones to keep in float.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.onnx_int8 import COMPUTE_OPS
from edgekit.optimize.measure import run_all
from edgekit.optimize.validation import snr_db

_PASS_THROUGH = ("Relu", "Clip", "LeakyRelu", "HardSwish", "HardSigmoid", "Sigmoid", "Swish", "BatchNormalization")
MAX_CHAIN = 3


@dataclass(frozen=True)
class ChainSensitivity:
    """A chain of compute layers and the output SNR when it alone is kept in float."""

    nodes: tuple[str, ...]
    snr_db: float
    gain_db: float  # over the fully quantized model


def float_chains(model: Any, *, max_len: int = MAX_CHAIN) -> list[tuple[str, ...]]:
    """Compute layers grouped into chains whose inner activations have a single consumer.

    Keeping a whole chain in float removes the quantization of the activations inside it.
    Chains longer than ``max_len`` are cut into pieces.
    """
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def next_compute(node: Any) -> Any | None:
        current = node
        while True:
            users = consumers.get(current.output[0], [])
            if len(users) != 1:
                return None
            user = users[0]
            if user.op_type in COMPUTE_OPS:
                return user
            if user.op_type not in _PASS_THROUGH:
                return None
            current = user

    compute = [n for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name]
    successor = {n.name: next_compute(n) for n in compute}
    has_predecessor = {s.name for s in successor.values() if s is not None}
    chains: list[tuple[str, ...]] = []
    for node in compute:
        if node.name in has_predecessor:
            continue
        chain, cursor = [], node
        while cursor is not None:
            chain.append(cursor.name)
            cursor = successor.get(cursor.name)
        chains += [tuple(chain[i : i + max_len]) for i in range(0, len(chain), max_len)]
    return chains


def candidate_chains(chains: Sequence[tuple[str, ...]], *, limit: int = 24) -> list[tuple[str, ...]]:
    """At most ``limit`` chains to score, each costing one re-quantization: the earliest
    two thirds (early noise is amplified the most) and the last third (next to the outputs)."""
    if len(chains) <= limit:
        return list(chains)
    head = limit * 2 // 3
    return list(chains[:head]) + list(chains[len(chains) - (limit - head) :])


def rank_chains(
    reference: Path,
    full_int8: Path,
    chains: Sequence[tuple[str, ...]],
    samples: Sequence[np.ndarray],
    *,
    quantize: Callable[[tuple[str, ...], Path], Path],
    work_dir: Path,
    max_samples: int = 16,
    progress: Callable[[int, int], None] | None = None,
) -> list[ChainSensitivity]:
    """Score every chain by the output SNR with it in float; best first.

    ``quantize(excluded_nodes, dst)`` re-quantizes the reference with those nodes excluded
    (and cached calibration ranges) and returns ``dst``.
    """
    subset = [arr[:max_samples] for arr in samples]
    float_out = run_all(reference, subset)
    base = snr_db(float_out, run_all(full_int8, subset))
    scored = []
    for index, chain in enumerate(chains):
        trial = quantize(chain, work_dir / "sensitivity-trial.onnx")
        value = snr_db(float_out, run_all(trial, subset))
        scored.append(ChainSensitivity(chain, value, value - base))
        trial.unlink(missing_ok=True)
        if progress is not None:
            progress(index + 1, len(chains))
    return sorted(scored, key=lambda c: c.gain_db, reverse=True)


def exclusion_steps(chain_count: int) -> list[int]:
    """How many of the best chains to keep in float on the first fallback tries: 1, 2, 4, ...
    up to half the chains (past that the model is mostly float and INT8 is given up).
    Between the last miss and the first pass, :func:`refine` bisects."""
    limit = max(1, chain_count // 2)
    steps, k = [], 1
    while k < limit:
        steps.append(k)
        k *= 2
    return [*steps, limit]


def refine(missed: int, passed: int) -> int | None:
    """The next count to try between a count that missed and a larger one that passed."""
    return None if passed - missed <= 1 else (missed + passed) // 2


def describe(chains: Sequence[ChainSensitivity], top: int = 5) -> list[dict[str, Any]]:
    return [{"nodes": list(c.nodes), "output_snr_db": round(c.snr_db, 2), "gain_db": round(c.gain_db, 2)}
            for c in chains[:top]]
