"""Which layers suffer most from INT8: per-layer error on the calibration data.

Both the float model and its QDQ-quantized copy are run with every compute layer's input
and output exposed. For each layer the signal-to-noise ratio (float vs quantized) of its
input and of its output are measured; the layer's own damage is how much SNR it loses,
``snr_in_db - snr_out_db``. Error that was already in the input is not charged to it,
so the ranking points at the layers to keep in float, not merely at the deepest ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.onnx_int8 import COMPUTE_OPS
from device_agent.runtimes import create_runtime

_SNR_CAP_DB = 120.0


@dataclass(frozen=True)
class LayerSensitivity:
    node: str
    op_type: str
    snr_in_db: float
    snr_out_db: float

    @property
    def damage_db(self) -> float:
        return self.snr_in_db - self.snr_out_db


def _with_outputs(model_path: Path, tensors: Sequence[str], dst: Path) -> Path:
    import onnx

    model = onnx.load(str(model_path))
    present = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    onnx.save(model, str(dst))
    return dst


def _snr_db(reference: list[np.ndarray], candidate: list[np.ndarray]) -> float:
    signal = sum(float(np.square(r.astype(np.float64)).sum()) for r in reference)
    noise = sum(float(np.square(r.astype(np.float64) - c.astype(np.float64)).sum()) for r, c in zip(reference, candidate))
    if noise <= 0.0:
        return _SNR_CAP_DB
    if signal <= 0.0:
        return -_SNR_CAP_DB
    return float(min(_SNR_CAP_DB, 10.0 * np.log10(signal / noise)))


def rank_layers(
    float_path: Path,
    int8_path: Path,
    inputs: Sequence[np.ndarray],
    *,
    work_dir: Path,
    max_samples: int = 16,
) -> list[LayerSensitivity]:
    """Compute layers of ``float_path``, most damaged by quantization first."""
    import onnx

    model = onnx.load(str(float_path), load_external_data=False)
    quantized = onnx.load(str(int8_path), load_external_data=False)
    in_both = {t for n in quantized.graph.node for t in n.output}  # the quantizer may rename or fuse a few
    layers = [n for n in model.graph.node if n.op_type in COMPUTE_OPS and n.name and n.output[0] in in_both]
    tensors = sorted({t for n in layers for t in (n.input[0], n.output[0]) if t in in_both})
    float_aug = _with_outputs(float_path, tensors, work_dir / "sensitivity-float.onnx")
    int8_aug = _with_outputs(int8_path, tensors, work_dir / "sensitivity-int8.onnx")
    acts = {}
    count = min(max_samples, len(inputs[0]))
    for key, path in (("float", float_aug), ("int8", int8_aug)):
        session = create_runtime("onnxruntime", path)
        names = [o.name for o in session.outputs]
        per_tensor: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
        for i in range(count):
            outs = dict(zip(names, session.run([arr[i : i + 1] for arr in inputs])))
            for t in tensors:
                per_tensor[t].append(outs[t])
        acts[key] = per_tensor
    snr: dict[str, float] = {t: _snr_db(acts["float"][t], acts["int8"][t]) for t in tensors}
    ranked = [
        LayerSensitivity(n.name, n.op_type, snr.get(n.input[0], _SNR_CAP_DB), snr[n.output[0]]) for n in layers
    ]
    for path in (float_aug, int8_aug):
        path.unlink(missing_ok=True)
    return sorted(ranked, key=lambda layer: layer.damage_db, reverse=True)


def exclusion_steps(layer_count: int) -> list[int]:
    """How many layers to keep in float on each fallback try: 1, 2, 4, ... up to a quarter."""
    steps, k = [], 1
    limit = max(1, layer_count // 4)
    while k <= limit:
        steps.append(k)
        k *= 2
    if steps and steps[-1] != limit:
        steps.append(limit)
    return steps


def describe(layers: Sequence[LayerSensitivity], top: int = 5) -> list[dict[str, Any]]:
    return [
        {"node": l.node, "op": l.op_type, "damage_db": round(l.damage_db, 2), "snr_out_db": round(l.snr_out_db, 2)}
        for l in layers[:top]
    ]
