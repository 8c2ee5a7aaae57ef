"""Bringing the user's model in: an ONNX or TFLite path as is, a PyTorch module exported to ONNX."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device_agent.bundle.verify import sha256_file
from edgekit.errors import ModelInputError, UsageError


@dataclass(frozen=True)
class SourceModel:
    name: str
    path: Path
    file_name: str
    sha256: str
    format: str
    details: dict[str, Any] = field(default_factory=dict)


def _is_torch_module(model: Any) -> bool:
    return any(cls.__module__.startswith("torch.nn") and cls.__name__ == "Module" for cls in type(model).__mro__)


def bring_model(model: Any, work: Path, *, example_input: Any = None) -> SourceModel:
    """A model file for ``model``: an .onnx or .tflite path as it is, or a ``torch.nn.Module`` exported to ONNX."""
    if _is_torch_module(model):
        if example_input is None:
            raise UsageError("a PyTorch model needs example_input= (a tensor of the input shape) to be exported")
        from converters import PASSES

        dst = work / "source.onnx"
        report = PASSES["torch->onnx"](model, dst, example_input=example_input)
        name = type(model).__name__.lower()
        return SourceModel(name, dst, f"{type(model).__name__} (PyTorch)", sha256_file(dst), "pytorch", report.details)
    if not isinstance(model, (str, Path)):
        raise ModelInputError(
            f"cannot optimize a {type(model).__name__}; expected the path of an .onnx file or a torch.nn.Module"
        )
    path = Path(model)
    if not path.exists():
        raise ModelInputError(f"model file {str(path)!r} does not exist")
    if path.is_dir():
        raise ModelInputError(f"model {str(path)!r} is a directory; expected an .onnx file")
    suffix = path.suffix.lower()
    if suffix in (".pt", ".pth", ".ckpt"):
        raise ModelInputError(
            f"{path.name} is a PyTorch checkpoint; load it into its nn.Module and call "
            "edgekit.optimize.optimize(module, example_input=...) from Python, or export it to ONNX first"
        )
    if suffix == ".tflite":
        with path.open("rb") as f:
            magic = f.read(8)[4:8]
        if magic != b"TFL3":
            raise ModelInputError(f"{path.name} is not a TFLite flatbuffer "
                                  f"(file identifier {magic!r}, expected b'TFL3')")
        return SourceModel(path.stem, path, path.name, sha256_file(path), "tflite")
    return SourceModel(path.stem, path, path.name, sha256_file(path), "onnx")
