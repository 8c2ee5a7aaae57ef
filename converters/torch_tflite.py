"""PyTorch program -> TFLite file, the edge ``torch -> tflite`` (litert-torch, no TensorFlow).

The input is a ``torch.export`` program file (``.pt2``, written by :func:`export_program`
from a module or by the ``onnx -> torch`` edge), so the conversion can run in the isolated
litert-torch environment (:mod:`converters.litert_env`) while the host keeps its own
packages. Precisions:

- ``fp32``: the same function; checked here against PyTorch on the example input.
- ``int8``: PT2E static quantization: int8 symmetric per-channel weights, int8 activations
  calibrated on real samples, int8 input and output (scale and zero point in the file).
  Accuracy is not judged here but by the optimizer's validation on held-out samples.

Image inputs are taken in NHWC (``nhwc_inputs``), the layout LiteRT and its delegates want;
the manifest records it so the agent feeds frames that way. Feature-map outputs (a
detector's raw heads) can be given in NHWC too (``nhwc_outputs``), which saves the
transposes back to NCHW at the end of the model.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.deps import import_torch
from converters.errors import ConversionError
from converters.litert_env import run_worker

#: Largest ``max|tflite - torch| / max(1, max|torch|)`` accepted as the same model (fp32).
RELATIVE_TOLERANCE = 1e-3
_WORKER = Path(__file__).with_name("litert_worker.py")


def _torch() -> Any:
    return import_torch("converting a PyTorch model to TFLite")


def export_program(module: Any, example_inputs: Sequence[np.ndarray], dst: Path) -> Path:
    """``torch.export`` the module (eval mode) at the example inputs' shapes and save it to ``dst``."""
    torch = _torch()
    args = tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in example_inputs)
    try:
        program = torch.export.export(module.eval(), args)
    except Exception as exc:  # torch.export raises many types; wrap with what was exported
        raise ConversionError(f"torch.export failed on {type(module).__name__} with inputs "
                              f"{[tuple(a.shape) for a in args]}: {type(exc).__name__}: {exc}") from exc
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, str(dst))
    return dst


def _check_fp32(src: Path, dst: Path, nhwc_inputs: Sequence[int], nhwc_outputs: Sequence[int]) -> float:
    """Run the program in PyTorch and the TFLite file in LiteRT on the example input; the relative error."""
    torch = _torch()
    from ai_edge_litert.interpreter import Interpreter

    program = torch.export.load(str(src))
    args = program.example_inputs[0]
    expected = program.module()(*args)
    expected = [t.detach().numpy() for t in (expected if isinstance(expected, (tuple, list)) else [expected])]
    expected = [np.moveaxis(e, 1, -1) if i in nhwc_outputs else e for i, e in enumerate(expected)]
    interpreter = Interpreter(model_path=str(dst))
    interpreter.allocate_tensors()
    for i, (detail, arg) in enumerate(zip(interpreter.get_input_details(), args, strict=True)):
        x = arg.numpy()
        interpreter.set_tensor(detail["index"], np.ascontiguousarray(np.moveaxis(x, 1, -1) if i in nhwc_inputs else x))
    interpreter.invoke()
    got = [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]
    if len(got) != len(expected):
        raise ConversionError(f"{dst.name} has {len(got)} outputs, the PyTorch program {len(expected)}")
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        if e.shape != g.shape:
            raise ConversionError(f"{dst.name}: output shape {list(g.shape)}, PyTorch gives {list(e.shape)}")
        worst = max(worst, float(np.abs(e - g).max()) / max(1.0, float(np.abs(e).max())))
    if worst > RELATIVE_TOLERANCE:
        raise ConversionError(f"{dst.name} differs from the PyTorch program by {worst:.3g} (relative); "
                              f"at most {RELATIVE_TOLERANCE} is the same model")
    return worst


@register_pass("torch->tflite")
def torch_to_tflite(
    src: Path | Any,
    dst: Path,
    /,
    *,
    example_input: Sequence[np.ndarray] | None = None,
    precision: str = "fp32",
    calibration: np.ndarray | None = None,
    nhwc_inputs: Sequence[int] = (0,),
    nhwc_outputs: Sequence[int] = (),
    float_layers: Sequence[str] = (),
    log: Callable[[str], None] | None = None,
) -> PassReport:
    """Convert ``src`` to ``dst`` (``.tflite``) at ``precision`` (fp32 or int8).

    ``src`` is a ``torch.export`` program file (``.pt2``) or a ``torch.nn.Module``, which is then
    exported at the shapes of ``example_input`` (a list of arrays, one per model input).
    ``float_layers`` (int8 only) names the weight attributes of layers to keep in float (mixed
    precision); for a program from the ``onnx -> torch`` edge see :func:`converters.onnx_torch.weight_attributes`."""
    if precision not in ("fp32", "int8"):
        raise ConversionError(f"torch->tflite: precision {precision!r} is not supported; expected 'fp32' or 'int8' "
                              "(fp16 weights come from the tflite->tflite quantizer)")
    if precision == "int8" and (calibration is None or len(calibration) == 0):
        raise ConversionError("torch->tflite int8 needs calibration samples (an array [N, ...] of real inputs)")
    with timed() as elapsed, tempfile.TemporaryDirectory(prefix="edgekit-tflite-") as tmp:
        if not isinstance(src, (str, Path)):
            if example_input is None:
                raise ConversionError("torch->tflite from a module needs example_input (one array per model input)")
            src = export_program(src, example_input, Path(tmp) / "model.pt2")
        src = Path(src)
        if not src.is_file():
            raise ConversionError(f"torch->tflite: {str(src)!r} does not exist; expected a .pt2 program or a module")
        request: dict[str, Any] = {"program": str(src), "output": str(dst), "precision": precision,
                                   "calibration": None, "nhwc_inputs": list(nhwc_inputs),
                                   "nhwc_outputs": list(nhwc_outputs), "per_channel": True,
                                   "float_layers": list(float_layers) if precision == "int8" else []}
        if calibration is not None and precision == "int8":
            request["calibration"] = str(Path(tmp) / "calibration.npy")
            np.save(request["calibration"], np.asarray(calibration, dtype=np.float32))
        dst.parent.mkdir(parents=True, exist_ok=True)
        summary = run_worker(_WORKER, request, log=log,
                             what=f"litert-torch converting {str(src)!r} ({precision})")
        details: dict[str, Any] = {"precision": precision, "calibrated": summary["calibrated"],
                                   "converter_seconds": summary["seconds"], "nhwc_inputs": list(nhwc_inputs),
                                   "nhwc_outputs": list(nhwc_outputs)}
        if float_layers and precision == "int8":
            details["float_layers"] = len(float_layers)
        if precision == "fp32":
            details["max_relative_error"] = _check_fp32(src, dst, nhwc_inputs, nhwc_outputs)
        return PassReport("torch->tflite", src, dst, elapsed(), details)
