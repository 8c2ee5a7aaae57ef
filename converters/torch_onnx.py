"""PyTorch module -> ONNX file, the edge ``torch -> onnx``.

The dynamo exporter is preferred because it is where PyTorch is going; the TorchScript
exporter is the fallback because it still handles some modules the dynamo one rejects.
The result is always one self-contained ``.onnx`` file with static shapes, checked with
``onnx.checker`` and compared against PyTorch on the example input, so a silently wrong
export fails here and not on a device.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.deps import import_onnx, import_torch
from converters.errors import ConversionError

#: Largest ``max|ort - torch| / max(1, max|torch|)`` accepted as the same model.
RELATIVE_TOLERANCE = 1e-3


def _import_torch() -> Any:
    return import_torch("exporting a PyTorch model")


def _import_onnx() -> tuple[Any, Any]:
    return import_onnx("checking an exported ONNX model")


def _export(
    torch: Any, module: Any, example: tuple[Any, ...], dst: Path, *, dynamo: bool, opset: int,
    input_names: list[str], output_names: list[str] | None,
) -> None:
    kwargs: dict[str, Any] = {
        "opset_version": opset,
        "input_names": input_names,
        "output_names": output_names,
        "dynamo": dynamo,
    }
    if dynamo:
        kwargs["external_data"] = False
        kwargs["verbose"] = False
    # The exporters print progress and deprecation chatter; the report carries what matters.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, example, str(dst), **kwargs)


def _internalize(onnx: Any, dst: Path) -> None:
    """Fold any external-data file back into ``dst`` and remove the files it came from."""
    from onnx.external_data_helper import load_external_data_for_model

    model = onnx.load(str(dst), load_external_data=False)
    locations = {
        entry.value
        for tensor in model.graph.initializer
        if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data
        if entry.key == "location"
    }
    if not locations:
        return
    load_external_data_for_model(model, str(dst.parent))
    onnx.save(model, str(dst), save_as_external_data=False)
    for location in locations:
        (dst.parent / location).unlink(missing_ok=True)


def _export_either(torch: Any, module: Any, example: tuple[Any, ...], dst: Path, *, opset: int,
                   input_names: list[str], output_names: list[str] | None) -> tuple[str, list[str]]:
    """Export with the dynamo exporter, else TorchScript; the one that worked and why the others did not."""
    exporter, failures = "", []
    for dynamo in (True, False):
        if dynamo:
            try:
                import onnxscript  # noqa: F401  (the dynamo exporter needs it)
            except ImportError:
                failures.append("dynamo: onnxscript is not installed (pip install 'edgekit[host]')")
                continue
        try:
            _export(torch, module, example, dst, dynamo=dynamo, opset=opset,
                    input_names=input_names, output_names=output_names)
            exporter = "dynamo" if dynamo else "torchscript"
            break
        except Exception as exc:  # noqa: BLE001 - both causes are reported together below
            failures.append(f"{'dynamo' if dynamo else 'torchscript'}: {type(exc).__name__}: {exc}")
    if not exporter:
        raise ConversionError("torch->onnx: both exporters failed; " + " | ".join(failures))
    return exporter, failures


def _check_against_torch(onnx: Any, ort: Any, dst: Path, example: tuple[Any, ...], expected: list[Any],
                         exporter: str) -> float:
    """The largest absolute difference between ONNX Runtime on ``dst`` and PyTorch's ``expected`` outputs;
    :class:`ConversionError` for an invalid file, another shape, or a relative difference past the tolerance."""
    try:
        onnx.checker.check_model(str(dst))
        session = ort.InferenceSession(str(dst), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ConversionError(f"torch->onnx: the exported file {dst} is not a valid model: {exc}") from exc
    feeds = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), example)}
    actual = session.run(None, feeds)
    max_abs_diff, max_rel = 0.0, 0.0
    for ref_t, got in zip(expected, actual):
        ref = ref_t.detach().cpu().numpy()
        if ref.shape != got.shape:
            raise ConversionError(f"torch->onnx: output shape {got.shape} differs from PyTorch's {ref.shape}")
        diff = float(np.max(np.abs(ref.astype(np.float64) - got))) if ref.size else 0.0
        max_abs_diff = max(max_abs_diff, diff)
        max_rel = max(max_rel, diff / max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0))
    if max_rel > RELATIVE_TOLERANCE:
        raise ConversionError(
            f"torch->onnx ({exporter}): ONNX Runtime output differs from PyTorch by {max_abs_diff:.3g} "
            f"(relative {max_rel:.3g} > {RELATIVE_TOLERANCE})"
        )
    return max_abs_diff


@register_pass("torch->onnx")
def export_torch_to_onnx(
    module: Any,
    dst: Path,
    /,
    *,
    example_input: Any,
    opset: int = 18,
    input_names: Sequence[str] = ("input",),
    output_names: Sequence[str] | None = None,
) -> PassReport:
    """Export ``module`` to the single ONNX file ``dst`` with the shapes of ``example_input``.

    ``example_input`` is a tensor (or tuple of tensors) that fixes every input shape; the
    file has no dynamic axes. Details: ``exporter`` ("dynamo" or "torchscript"), ``opset``,
    ``max_abs_diff`` against PyTorch, ``param_count``. Raises :class:`ConversionError` when
    neither exporter succeeds or the exported model disagrees with PyTorch.
    """
    torch = _import_torch()
    onnx, ort = _import_onnx()
    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"torch->onnx takes a torch.nn.Module, got {type(module).__name__}")
    example = tuple(example_input) if isinstance(example_input, (tuple, list)) else (example_input,)
    if not all(isinstance(t, torch.Tensor) for t in example):
        raise ConversionError("torch->onnx: example_input must be a tensor or a tuple of tensors")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    module = module.eval()
    names_in = list(input_names)
    names_out = list(output_names) if output_names is not None else None

    with timed() as elapsed:
        with torch.no_grad():
            expected = module(*example)
        expected_list = [expected] if isinstance(expected, torch.Tensor) else list(expected)

        exporter, failures = _export_either(torch, module, example, dst, opset=opset, input_names=names_in,
                                            output_names=names_out)
        _internalize(onnx, dst)
        max_abs_diff = _check_against_torch(onnx, ort, dst, example, expected_list, exporter)
        seconds = elapsed()

    return PassReport(
        name="torch->onnx",
        src=Path(f"<{type(module).__name__}>"),
        dst=dst,
        seconds=seconds,
        details={
            "exporter": exporter,
            "opset": opset,
            "max_abs_diff": max_abs_diff,
            "param_count": int(sum(p.numel() for p in module.parameters())),
            **({"fallback_reason": failures[0]} if failures else {}),
        },
    )
