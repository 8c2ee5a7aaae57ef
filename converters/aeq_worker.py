"""Runs inside the isolated LiteRT environment (see :mod:`converters.litert_env`): quantizes a
TFLite model with ai-edge-quantizer.

Standalone on purpose: it imports only numpy, ai_edge_litert, ai_edge_quantizer and worker_cli, never
EdgeKit. It reads one JSON request:

    {"model": "model.tflite", "output": "out.tflite", "mode": "fp16" | "int8-dynamic" | "int8",
     "calibration": "calib.npy" | null}

- ``fp16``: weights stored as float16 (float casting); compute stays float (XNNPACK runs it in
  fp16 on ARM cores with FP16 arithmetic).
- ``int8-dynamic``: int8 per-channel weights, activations quantized at run time.
- ``int8``: static int8 weights and activations calibrated on the samples (in the model's own
  input layout), int8 input and output.

It prints one JSON line with what it did. Errors exit 1 with the message on stderr.

    python aeq_worker.py REQUEST_JSON
"""

import time
from typing import Any


def quantize(request: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import qtyping, quantizer, recipe
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    started = time.perf_counter()
    mode = request["mode"]
    q = quantizer.Quantizer(request["model"])
    if mode == "fp16":
        q.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                 algorithm_key=AlgorithmName.FLOAT_CASTING)
    elif mode == "int8-dynamic":
        q.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif mode == "int8":
        q.load_quantization_recipe(recipe.static_wi8_ai8())
    else:
        raise ValueError(f"mode {mode!r} is not one of fp16, int8-dynamic, int8")
    calibration = None
    samples = 0
    if q.need_calibration:
        if not request.get("calibration"):
            raise ValueError(f"{mode} needs calibration samples")
        signatures = Interpreter(model_path=request["model"]).get_signature_list()
        if len(signatures) != 1 or len(next(iter(signatures.values()))["inputs"]) != 1:
            raise ValueError(f"calibration takes a model with one signature and one input; this one has {signatures}")
        key, signature = next(iter(signatures.items()))
        batch = np.load(request["calibration"])
        samples = len(batch)
        calibration = q.calibrate({key: [{signature["inputs"][0]: batch[i:i + 1]} for i in range(samples)]})
    q.quantize(calibration, enable_progress_report=False).export_model(request["output"], overwrite=True)
    return {"output": request["output"], "mode": mode, "calibrated": samples,
            "seconds": round(time.perf_counter() - started, 2)}


if __name__ == "__main__":
    # beside this script (sys.path[0]); see worker_cli. mypy checks converters.worker_cli itself.
    from worker_cli import serve  # type: ignore[import-not-found]

    raise SystemExit(serve(quantize))
