"""Runs inside the isolated litert-torch environment (see :mod:`converters.litert_env`).

Standalone on purpose: it imports only torch, numpy, litert_torch and worker_cli, never EdgeKit, because
that environment does not have EdgeKit installed. It reads one JSON request:

    {"program": "model.pt2", "output": "model.tflite", "precision": "fp32" | "int8",
     "calibration": "calib.npy" | null, "nhwc_inputs": [0], "nhwc_outputs": [], "per_channel": true,
     "float_layers": []}

converts the ``torch.export`` program (optionally PT2E static INT8: int8 symmetric weights,
per channel, int8 activations calibrated on real samples; the layers whose weight attribute
is named in ``float_layers`` stay float), with the listed inputs taken in NHWC, and prints
one JSON line with what it did. Errors exit 1 with the message on stderr.

    python litert_worker.py REQUEST_JSON
"""

import time
from typing import Any


def _restore_source_fn(module: Any) -> int:
    """Give element-wise nodes the ``source_fn_stack`` that litert-torch's annotators look for.

    torch 2.13's export records ``torch_fn`` (e.g. ``('add_1', 'method_descriptor.add')``) but
    no longer ``source_fn_stack``, so litert-torch 0.10 finds no add/mul/cat/pool to quantize and
    leaves every residual addition in float (a DEQUANTIZE/ADD/QUANTIZE sandwich that an int8
    NPU hands back to the CPU). Returns how many nodes were restored.
    """
    import operator

    import torch
    import torch.nn.functional as F

    known = {"add": operator.add, "iadd": operator.iadd, "mul": operator.mul, "cat": torch.cat,
             "adaptive_avg_pool2d": F.adaptive_avg_pool2d, "max_pool2d": F.max_pool2d}
    restored = 0
    for node in module.graph.nodes:
        if "source_fn_stack" in node.meta or "torch_fn" not in node.meta:
            continue
        name, fn = node.meta["torch_fn"]
        target = known.get(str(fn).rsplit(".", 1)[-1])
        if target is not None:
            node.meta["source_fn_stack"] = [(name, target)]
            restored += 1
    return restored


def _keep_float(module: Any, weight_names: set[str]) -> list[str]:
    """Mark the layers whose weight is one of ``weight_names`` as annotated with nothing.

    litert-torch's annotators skip a pattern any of whose nodes is already annotated, so these
    layers get no observer: their weights, and their outputs up to the next quantized
    consumer, stay float. Returns the names found (a name not found is the caller's error).
    """
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    found = []
    for node in module.graph.nodes:
        if node.op != "call_function" or len(node.args) < 2:
            continue
        weight = node.args[1]
        if getattr(weight, "op", None) == "get_attr" and weight.target in weight_names:
            for part in (node, *[a for a in node.args[1:3] if getattr(a, "op", None) == "get_attr"]):
                part.meta["quantization_annotation"] = QuantizationAnnotation(_annotated=True)
            found.append(weight.target)
    return found


def convert(request: dict[str, Any]) -> dict[str, Any]:
    import litert_torch
    import numpy as np
    import torch

    started = time.perf_counter()
    program = torch.export.load(request["program"])
    module = program.module()
    sample = tuple(arg for arg in program.example_inputs[0])
    quant_config = None
    calibrated = 0
    if request["precision"] == "int8":
        from litert_torch.quantize import pt2e_quantizer
        from litert_torch.quantize.quant_config import QuantConfig
        from torchao.quantization.pt2e import quantize_pt2e

        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=bool(request.get("per_channel", True))))
        _restore_source_fn(module)
        wanted = set(request.get("float_layers") or [])
        kept = _keep_float(module, wanted)
        if len(kept) != len(wanted):
            raise ValueError(f"float_layers not found in the program: {sorted(wanted - set(kept))}")
        module = quantize_pt2e.prepare_pt2e(module, quantizer)
        batch = np.load(request["calibration"])
        for row in batch:  # one sample at a time: the program was exported at batch 1
            module(torch.from_numpy(np.ascontiguousarray(row[None] if row.ndim == sample[0].ndim - 1 else row)))
            calibrated += 1
        module = quantize_pt2e.convert_pt2e(module, fold_quantize=False)
        quant_config = QuantConfig(pt2e_quantizer=quantizer)
    nhwc = [int(i) for i in request.get("nhwc_inputs", [])]
    nhwc_out = [int(i) for i in request.get("nhwc_outputs", [])]
    if nhwc or nhwc_out:
        module = litert_torch.to_channel_last_io(module, args=nhwc or None, outputs=nhwc_out or None)
        sample = tuple(x.permute(0, *range(2, x.ndim), 1) if i in nhwc else x for i, x in enumerate(sample))
    edge_model = litert_torch.convert(module, sample, quant_config=quant_config)
    edge_model.export(request["output"])
    return {"output": request["output"], "precision": request["precision"], "calibrated": calibrated,
            "seconds": round(time.perf_counter() - started, 2)}


if __name__ == "__main__":
    # beside this script (sys.path[0]); see worker_cli. mypy checks converters.worker_cli itself.
    from worker_cli import serve  # type: ignore[import-not-found]

    raise SystemExit(serve(convert))
