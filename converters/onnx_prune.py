"""``onnx-prune``: post-training structured channel pruning, with least-squares recovery.

For a model whose owner has no training code. Zeros in dense kernels save no time, so whole
channels go: a producer's output channels, everything they pass through, and the consumer's
matching input channels (:mod:`converters.prune_groups`), so the pruned model is a smaller
dense model that runs faster on any runtime.

The pass itself and the budget live here; ranking channels is :mod:`converters.prune_scoring`,
recovery :mod:`converters.prune_recovery`, finding and cutting channel groups
:mod:`converters.prune_groups`.

1. **Order within a group**, on calibration data: with recovery, the Optimal Brain Surgeon
   cost of each channel at its consumer (:func:`obs_order`, which sees redundancy between
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.errors import ConversionError, MissingDependencyError
from converters.onnx_bias_correction import probe_session
from converters.prune_groups import ChannelGroup, Graph, find_groups, remove_channels
from converters.prune_recovery import fit_consumer, recover_consumers, set_weights, skip_connection
from converters.prune_scoring import Layer, collect, importance, obs_order, probe


def _modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError("onnx", "host", "pruning an ONNX model") from exc
    return onnx, ort


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
            layers: Sequence[Layer], original: Sequence[tuple[np.ndarray, np.ndarray | None]],
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
            weight, bias = fit_consumer(layer, np.arange(layer.weight.shape[0]), keep, x[:, keep], y, x, refit)
            set_weights(onnx, trial, group.consumer, weight, bias)
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


def _check_ratio(ratio: float) -> None:
    if not 0.0 < ratio < 1.0:
        raise ConversionError(f"onnx-prune: ratio {ratio} is out of range; expected the fraction of MACs to remove, "
                              "between 0 and 1 (exclusive), e.g. 0.3")


def _orders(original: Sequence[tuple[np.ndarray, np.ndarray | None]], groups: Sequence[ChannelGroup],
            layers: Sequence[Layer], *, recover: bool, multiple: int, min_keep: float) -> list[np.ndarray]:
    """Each group's channels, cheapest to remove first (:mod:`converters.prune_scoring`)."""
    return [obs_order(x, layer, group.channels - _floor(group, multiple, min_keep))
            if recover and layer.refittable else np.argsort(importance(x, layer))
            for (x, _), group, layer in zip(original, groups, layers)]


def _load(onnx: Any, src: Path, calibration: np.ndarray, max_samples: int) -> tuple[Any, str, np.ndarray]:
    """The model, its one input's name and the calibration samples to use, or a :class:`ConversionError`."""
    model = onnx.load(str(src))
    if len(model.graph.input) != 1:
        raise ConversionError(f"onnx-prune: {src.name} has {len(model.graph.input)} inputs; expected one")
    samples = np.asarray(calibration, dtype=np.float32)[:max_samples]
    if len(samples) < 8:
        raise ConversionError(f"onnx-prune: {len(samples)} calibration samples; "
                              "at least 8 are needed to rank channels")
    return model, model.graph.input[0].name, samples


def _prunable(groups: Sequence[ChannelGroup], src: Path) -> list[ChannelGroup]:
    prunable = [g for g in groups if g.prunable]
    if not prunable:
        reasons = sorted({g.skipped for g in groups})
        raise ConversionError(f"onnx-prune: {src.name} has no channel group that can be pruned alone "
                              f"({len(groups)} dense convolutions: {'; '.join(reasons[:4]) or 'none'})")
    return prunable


def _sample_original(onnx: Any, ort: Any, model: Any, graph: Graph, prunable: Sequence[ChannelGroup],
                     layers: Sequence[Layer], input_name: str, fit: np.ndarray, per_sample: int, seed: int,
                     recover: bool) -> tuple[list[tuple[np.ndarray, np.ndarray | None]],
                                             list[tuple[str, str] | None], list[np.ndarray | None]]:
    """Each group's consumer input and output in the original model; with recovery also each skip
    connection after a consumer and the original's sum there (sampled in the same run), for the re-fits."""
    skips = [skip_connection(graph, layer) if recover else None for layer in layers]
    residual_layers = [layer for layer, skip in zip(layers, skips) if skip]
    collected = collect(onnx, ort, model, input_name, fit,
                        [*(probe(g, layer) for g, layer in zip(prunable, layers)), *(s for s in skips if s)],
                        [*layers, *residual_layers], per_sample, seed)
    original, sums = collected[: len(prunable)], iter(collected[len(prunable) :])
    totals = [next(sums)[1] if skip else None for skip in skips]
    # a Gemm after a global mean is fitted per position (the mean is linear): many more rows than images
    original = [(x, x @ layer.weight.T + layer.bias if g.pooled_input else y)
                for (x, y), g, layer in zip(original, prunable, layers)]
    return original, skips, totals


def _skipped(groups: Sequence[ChannelGroup]) -> dict[str, int]:
    """How many groups were left whole, per reason (without the tensor names)."""
    skipped: dict[str, int] = {}
    for g in groups:
        if g.skipped:
            reason = g.skipped.split(" '")[0].split(" shared")[0]
            skipped[reason] = skipped.get(reason, 0) + 1
    return skipped


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

    _check_ratio(ratio)
    onnx, ort = _modules()
    with timed() as elapsed:
        model, input_name, samples = _load(onnx, src, calibration, max_samples)
        before = model_cost(src)
        graph = Graph(model)
        groups = find_groups(graph)
        prunable = _prunable(groups, src)
        layers = [Layer(graph, g.consumer) for g in prunable]
        fit, check = samples[: len(samples) * 2 // 3], samples[len(samples) * 2 // 3 :]
        per_sample = max(1, rows // len(fit))
        original, skips, totals = _sample_original(onnx, ort, model, graph, prunable, layers, input_name, fit,
                                                   per_sample, seed, recover)
        orders = _orders(original, prunable, layers, recover=recover, multiple=multiple, min_keep=min_keep)
        curves = _curves(onnx, ort, model, input_name, check, prunable, layers, original, orders, multiple=multiple,
                         min_keep=min_keep, refit=recover, progress=progress)
        pruned, removed, kept = _prune_to(onnx, model, prunable, orders, curves, ratio, before.macs, multiple=multiple,
                                          name=src.name, groups_total=len(groups))
        refitted = recover_consumers(onnx, ort, model, pruned, groups=prunable, layers=layers, kept=kept,
                                     removed=removed, original=original, skips=skips, totals=totals, recover=recover,
                                     input_name=input_name, fit=fit, rows_per_sample=per_sample, seed=seed)
        onnx.checker.check_model(pruned)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(pruned, str(dst))
        after = model_cost(dst)
    return PassReport("onnx-prune", src, dst, elapsed(), {
        "ratio_asked": ratio, "macs_before": before.macs, "macs_after": after.macs,
        "macs_removed": round(1 - after.macs / before.macs, 4),
        "params_before": before.params, "params_after": after.params,
        "groups": len(groups), "groups_prunable": len(prunable), "groups_pruned": sum(1 for c in removed if c),
        "skipped": _skipped(groups), "recovered": recover, "refitted_layers": refitted,
        "samples": len(samples),
        "channels": {g.producer: [int(g.channels - c), g.channels] for g, c in zip(prunable, removed) if c},
    })
