"""``onnx-prune``: post-training structured channel pruning, with least-squares recovery.

For a model whose owner has no training code. Zeros in dense kernels save no time, so whole
channels go: a producer's output channels, everything they pass through, and the consumer's
matching input channels (:mod:`converters.prune_groups`), so the pruned model is a smaller
dense model that runs faster on any runtime.

1. **Order within a group**, on calibration data: with recovery, the Optimal Brain Surgeon
   cost of each channel at its consumer (:func:`_obs_order`, which sees redundancy between
   channels); without it, or for a consumer with a spatial kernel, the energy a channel
   feeds the consumer, ``Var(x_k) * |W[:, k]|^2``.
2. **How much each group loses**, global: each group is pruned alone to a quarter, a half,
   three quarters and all of what it may lose, recovered, and the damage to the *model's*
   outputs measured on held-back calibration samples (local error misleads: early layers'
   errors are amplified). Channels are then removed in blocks of ``multiple`` (8: SIMD
   kernels run whole vectors, and 61 channels cost what 64 do), least damage per MAC saved
   first, until ``ratio`` of the model's MACs are gone; each group keeps at least
   ``min_keep`` of its channels.
3. **Recovery** (``recover=True``), without labels or training, in the spirit of ThiNet
   (Luo et al., 2017) and channel pruning (He et al., 2017): layer by layer in graph order,
   the consumer's weights and bias are re-fitted by ridge least squares so that, fed the
   *pruned* model's activations, it reproduces the *original* model's outputs on the
   calibration data; the ridge pulls towards the original weights where data is scarce
   (a classifier's last layer sees one row per image). A consumer with a spatial kernel gets
   only the removed channels' mean folded into its bias.
"""

from __future__ import annotations

import heapq
import tempfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError
from converters.onnx_bias_correction import probe_session
from converters.prune_groups import ChannelGroup, Graph, find_groups, remove_channels

#: Ridge strength relative to the mean diagonal of X^T X: enough to keep an underdetermined
#: fit (few rows, many channels) at the original weights, too little to bias a well-posed one.
RIDGE = 1e-3


def _modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnx", "host", "pruning an ONNX model") from exc
    return onnx, ort


class _Layer:
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


def _rows(x: np.ndarray, y: np.ndarray | None, layer: _Layer, count: int, rng: np.random.Generator
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


def _collect(onnx: Any, ort: Any, model: Any, input_name: str, samples: np.ndarray,
             wanted: Sequence[tuple[str, str | None]], layers: Sequence[_Layer], rows_per_sample: int,
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


def _obs_order(x: np.ndarray, layer: _Layer, count: int) -> np.ndarray:
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


def _skip(graph: Graph, layer: _Layer) -> tuple[str, str] | None:
    """For a refittable consumer whose output is added to a skip connection: the skip tensor and the sum."""
    add = graph.sole_consumer(layer.output)
    if not layer.refittable or layer.gemm or add is None or add.op_type != "Add" or len(add.input) != 2:
        return None
    skip = add.input[1] if add.input[0] == layer.output else add.input[0]
    if skip in graph.inits or graph.shapes.get(skip) != graph.shapes.get(layer.output):
        return None  # a bias-like constant or a broadcast: not a skip connection
    return skip, add.output[0]


def _residual_target(onnx: Any, ort: Any, pruned: Any, layer_input: str, layer: _Layer, skip: tuple[str, str],
                     total_orig: np.ndarray, input_name: str, samples: np.ndarray, rows_per_sample: int, seed: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """For a consumer whose output is added to a skip connection: its inputs, and the target that makes
    the *sum* match the original's (``total_orig``, sampled at the same positions),
    ``original sum - skip as the pruned model now has it``. The skip carries the error of every
    pruned block before; this is where it can be taken out."""
    skip_name, total = skip
    (x_now, _), (skip_now, _) = _collect(onnx, ort, pruned, input_name, samples,
                                         [(layer_input, total), (skip_name, total)], [layer, layer],
                                         rows_per_sample, seed)
    return x_now, total_orig - skip_now


def _probe(group: ChannelGroup, layer: _Layer) -> tuple[str, str | None]:
    """What to sample for a group: the consumer's input and output, or, for a Gemm after a global
    mean, the tensor before the mean alone (its targets are computed from it)."""
    return (group.pooled_input, None) if group.pooled_input else (group.consumer_input, layer.output)


def _importance(x: np.ndarray, layer: _Layer) -> np.ndarray:
    """Each input channel's share of the consumer's output variance (the error of removing it)."""
    w = layer.weight.reshape(layer.weight.shape[0], layer.weight.shape[1], -1)
    contribution = x.var(axis=0) * (w**2).sum(axis=(0, 2))
    return contribution / max(float(contribution.sum()), 1e-12)


def _select(groups: Sequence[ChannelGroup], curves: Sequence[Curve], target_macs: int, *,
            multiple: int) -> tuple[list[int], int]:
    """How many channels each group loses to remove ``target_macs``: blocks of ``multiple`` channels,
    the least output damage per MAC saved first, each group within its measured curve."""
    removed, saved = [0] * len(groups), 0
    heap: list[tuple[float, int, int]] = []  # (damage per MAC saved, group, channels)

    def push(k: int) -> None:
        left = groups[k].channels - removed[k]
        size = left % multiple or multiple
        if removed[k] + size <= curves[k].limit:
            cost = curves[k](removed[k] + size) - curves[k](removed[k])
            heapq.heappush(heap, (max(cost, 0.0) / (size * groups[k].macs_per_channel), k, size))

    for k in range(len(groups)):
        push(k)
    while saved < target_macs and heap:
        _, k, size = heapq.heappop(heap)
        removed[k] += size
        saved += size * groups[k].macs_per_channel
        push(k)
    return removed, saved


class Curve:
    """A group's measured output damage against the number of channels removed (linear in between)."""

    def __init__(self, counts: Sequence[int], damage: Sequence[float]) -> None:
        self.counts, self.damage = [0, *counts], [0.0, *np.maximum.accumulate(np.asarray(damage, dtype=np.float64))]
        self.limit = self.counts[-1]

    def __call__(self, count: int) -> float:
        return float(np.interp(count, self.counts, self.damage))


def _fit(layer: _Layer, rows: np.ndarray, keep: np.ndarray, x: np.ndarray, y: np.ndarray | None, x_orig: np.ndarray,
         refit: bool) -> tuple[np.ndarray, np.ndarray]:
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


def _set_weights(onnx: Any, model: Any, layer: str, weight: np.ndarray, bias: np.ndarray) -> None:
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


def _floor(group: ChannelGroup, multiple: int, min_keep: float) -> int:
    """The fewest channels a group keeps: ``min_keep`` of them, a whole number of ``multiple``."""
    return max(multiple, int(np.ceil(min_keep * group.channels / multiple)) * multiple)


def _copy(onnx: Any, model: Any) -> Any:
    clone = onnx.ModelProto()
    clone.CopyFrom(model)
    del clone.graph.value_info[:]  # shapes change with the cut weights; they are inferred again
    return clone


def _outputs(onnx: Any, ort: Any, model: Any, input_name: str, samples: np.ndarray) -> list[np.ndarray]:
    session = probe_session(onnx, ort, model, [])
    runs = (session.run(None, {input_name: samples[i : i + 1]}) for i in range(len(samples)))
    return [np.concatenate(o) for o in zip(*runs)]


def _damage(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> float:
    """Squared error of the model's outputs relative to their variance (0: the same outputs)."""
    return float(sum(((g - r) ** 2).sum() / max(((r - r.mean()) ** 2).sum(), 1e-12) for r, g in zip(reference, got)))


def _curves(onnx: Any, ort: Any, model: Any, input_name: str, check: np.ndarray, groups: Sequence[ChannelGroup],
            layers: Sequence[_Layer], original: Sequence[tuple[np.ndarray, np.ndarray | None]],
            orders: Sequence[np.ndarray], *, multiple: int, min_keep: float, refit: bool,
            progress: Callable[[int, int], None] | None) -> list[Curve]:
    """Each group pruned alone to a quarter, a half, three quarters and all of what it may lose,
    its consumer recovered, and the damage to the model's outputs measured on ``check``."""
    reference = _outputs(onnx, ort, model, input_name, check)
    curves = []
    for k, (group, layer, (x, y), order) in enumerate(zip(groups, layers, original, orders)):
        most = max(0, group.channels - _floor(group, multiple, min_keep))
        counts = sorted({min(most, int(np.ceil(most * f / multiple)) * multiple) for f in (0.25, 0.5, 0.75, 1.0)} - {0})
        damage = []
        for count in counts:
            keep = np.sort(order[count:])
            trial = _copy(onnx, model)
            remove_channels(trial, group, keep)
            weight, bias = _fit(layer, np.arange(layer.weight.shape[0]), keep, x[:, keep], y, x, refit)
            _set_weights(onnx, trial, group.consumer, weight, bias)
            damage.append(_damage(reference, _outputs(onnx, ort, trial, input_name, check)))
        curves.append(Curve(counts, damage))
        if progress:
            progress(k + 1, len(groups))
    return curves


def _prune_to(onnx: Any, model: Any, groups: Sequence[ChannelGroup], orders: Sequence[np.ndarray],
              curves: Sequence[Curve], ratio: float, macs: int, *, multiple: int, name: str, groups_total: int
              ) -> tuple[Any, list[int], list[np.ndarray]]:
    """``model`` with the least important channels removed until ``ratio`` of ``macs`` are gone.

    Per-channel savings overlap where a layer is both a consumer and a producer, so the
    selection is measured on the cut model and repeated, aiming higher by the shortfall."""
    from device_agent.bench.cost import model_cost

    target = ratio * macs
    for _ in range(4):
        removed, saved = _select(groups, curves, int(target), multiple=multiple)
        pruned = _copy(onnx, model)
        kept = [np.sort(order[count:]) for order, count in zip(orders, removed)]
        for group, keep, count in zip(groups, kept, removed):
            if count:
                remove_channels(pruned, group, keep)
        with tempfile.TemporaryDirectory(prefix="edgekit-prune-") as tmp:
            onnx.save(pruned, f"{tmp}/trial.onnx")
            achieved = 1 - model_cost(f"{tmp}/trial.onnx").macs / macs
        if achieved >= ratio * 0.99 or saved < target:  # met, or nothing more can go
            break
        target += (ratio - achieved) * macs
    if achieved < ratio * 0.99:
        raise ConversionError(
            f"onnx-prune: at most {achieved:.1%} of {name}'s MACs can be removed by whole channels "
            f"({len(groups)} of {groups_total} channel groups can be pruned alone); asked for {ratio:.0%}")
    return pruned, removed, kept


@register_pass("onnx-prune")
def prune_onnx(
    src: Path,
    dst: Path,
    /,
    *,
    ratio: float,
    calibration: np.ndarray,
    recover: bool = True,
    multiple: int = 8,
    min_keep: float = 0.25,
    max_samples: int = 128,
    rows: int = 16384,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> PassReport:
    """Remove ``ratio`` (0-1) of ``src``'s MACs as whole channels; write ``dst``.

    ``calibration`` is an array [N, ...] of real inputs for the model's single input (the
    first ``max_samples`` are used; ``rows`` positions in all are sampled per layer).
    ``recover=False`` only folds the removed channels' means into the next layer's bias.
    ``progress(done, total)`` follows the measurement of each group's damage curve.
    """
    from device_agent.bench.cost import model_cost

    if not 0.0 < ratio < 1.0:
        raise ConversionError(f"onnx-prune: ratio {ratio} is out of range; expected the fraction of MACs to remove, "
                              "between 0 and 1 (exclusive), e.g. 0.3")
    onnx, ort = _modules()
    with timed() as elapsed:
        model = onnx.load(str(src))
        if len(model.graph.input) != 1:
            raise ConversionError(f"onnx-prune: {src.name} has {len(model.graph.input)} inputs; expected one")
        input_name = model.graph.input[0].name
        samples = np.asarray(calibration, dtype=np.float32)[:max_samples]
        if len(samples) < 8:
            raise ConversionError(f"onnx-prune: {len(samples)} calibration samples; "
                                  "at least 8 are needed to rank channels")
        before = model_cost(src)
        graph = Graph(model)
        groups = find_groups(graph)
        prunable = [g for g in groups if g.prunable]
        if not prunable:
            reasons = sorted({g.skipped for g in groups})
            raise ConversionError(f"onnx-prune: {src.name} has no channel group that can be pruned alone "
                                  f"({len(groups)} dense convolutions: {'; '.join(reasons[:4]) or 'none'})")
        layers = [_Layer(graph, g.consumer) for g in prunable]
        fit, check = samples[: len(samples) * 2 // 3], samples[len(samples) * 2 // 3 :]
        per_sample = max(1, rows // len(fit))
        # the original's sums after residual consumers are sampled in the same run, for the re-fits' targets
        skips = [_skip(graph, layer) if recover else None for layer in layers]
        residual_layers = [layer for layer, skip in zip(layers, skips) if skip]
        collected = _collect(onnx, ort, model, input_name, fit,
                             [*(_probe(g, layer) for g, layer in zip(prunable, layers)), *(s for s in skips if s)],
                             [*layers, *residual_layers], per_sample, seed)
        original, sums = collected[: len(prunable)], iter(collected[len(prunable) :])
        totals = [next(sums)[1] if skip else None for skip in skips]
        # a Gemm after a global mean is fitted per position (the mean is linear): many more rows than images
        original = [(x, x @ layer.weight.T + layer.bias if g.pooled_input else y)
                    for (x, y), g, layer in zip(original, prunable, layers)]
        orders = [_obs_order(x, layer, group.channels - _floor(group, multiple, min_keep))
                  if recover and layer.refittable else np.argsort(_importance(x, layer))
                  for (x, _), group, layer in zip(original, prunable, layers)]
        curves = _curves(onnx, ort, model, input_name, check, prunable, layers, original, orders, multiple=multiple,
                         min_keep=min_keep, refit=recover, progress=progress)
        pruned, removed, kept = _prune_to(onnx, model, prunable, orders, curves, ratio, before.macs, multiple=multiple,
                                          name=src.name, groups_total=len(groups))
        outputs_kept = {g.producer: keep for g, keep, count in zip(prunable, kept, removed) if count}
        consumers = {g.consumer: k for k, (g, count) in enumerate(zip(prunable, removed)) if count}
        refitted = 0
        for node in model.graph.node:  # graph order: every fit sees the layers before it already fitted
            if node.name in consumers:
                k = consumers[node.name]
                group, layer, keep = prunable[k], layers[k], kept[k]
                x_orig, y_orig = original[k]
                # the consumer may itself have lost output channels, as the producer of a later group
                outs = outputs_kept.get(group.consumer, np.arange(layer.weight.shape[0]))
                x_now = x_orig[:, keep]
                if recover and layer.refittable:  # fed what the pruned model now computes
                    skip, total_orig = skips[k], totals[k]
                    if skip is not None and total_orig is not None:
                        x_now, y_orig = _residual_target(onnx, ort, pruned, group.consumer_input, layer, skip,
                                                         total_orig, input_name, fit, per_sample, seed)
                    else:
                        ((x_now, _),) = _collect(onnx, ort, pruned, input_name, fit, [_probe(group, layer)], [layer],
                                                 per_sample, seed)
                    refitted += 1
                weight, bias = _fit(layer, outs, keep, x_now, y_orig, x_orig, recover)
                _set_weights(onnx, pruned, group.consumer, weight, bias)
        onnx.checker.check_model(pruned)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(pruned, str(dst))
        after = model_cost(dst)
    skipped: dict[str, int] = {}
    for g in groups:
        if g.skipped:
            reason = g.skipped.split(" '")[0].split(" shared")[0]
            skipped[reason] = skipped.get(reason, 0) + 1
    return PassReport("onnx-prune", src, dst, elapsed(), {
        "ratio_asked": ratio, "macs_before": before.macs, "macs_after": after.macs,
        "macs_removed": round(1 - after.macs / before.macs, 4),
        "params_before": before.params, "params_after": after.params,
        "groups": len(groups), "groups_prunable": len(prunable), "groups_pruned": sum(1 for c in removed if c),
        "skipped": skipped, "recovered": recover, "refitted_layers": refitted,
        "samples": len(samples),
        "channels": {g.producer: [int(g.channels - c), g.channels] for g, c in zip(prunable, removed) if c},
    })
