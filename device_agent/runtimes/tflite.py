"""LiteRT (TFLite): ``ai_edge_litert`` where it installs (numpy 2), else ``tflite_runtime``.

XNNPACK is LiteRT's default CPU delegate; int8 models run their integer kernels. Threads
come from the bundle's target profile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.errors import MissingDependencyError, RuntimeLoadError
from device_agent.runtimes.base import Runtime, TensorInfo, register_runtime


def _interpreter_class() -> tuple[Any, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # the older package, for numpy < 2 boards

        return Interpreter, "tflite_runtime"
    except ImportError as exc:
        raise MissingDependencyError("ai_edge_litert", "tflite", "running a TFLite model") from exc


def _info(detail: dict[str, Any]) -> TensorInfo:
    shape = tuple(int(d) for d in detail.get("shape_signature", detail["shape"]))
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantization = (float(scale), int(zero_point)) if dtype.kind in "iu" and scale else None
    return TensorInfo(detail["name"], tuple(d if d >= 0 else -1 for d in shape), dtype.name, quantization)


@register_runtime("tflite")
class TfliteRuntime(Runtime):
    key = "tflite"

    def __init__(
        self, model_path: Path, *, threads: int = 0, providers: Sequence[str] = (), profile: bool = False
    ) -> None:
        interpreter_class, self.package = _interpreter_class()
        try:
            self._interpreter = interpreter_class(model_path=str(model_path), num_threads=threads or None)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RuntimeLoadError(f"{self.package} could not load {str(model_path)!r}: {exc}") from exc
        self._in = self._interpreter.get_input_details()
        self._out = self._interpreter.get_output_details()
        self._inputs = tuple(_info(d) for d in self._in)
        self._outputs = tuple(_info(d) for d in self._out)

    @property
    def providers(self) -> tuple[str, ...]:
        return (f"{self.package}/XNNPACK",)

    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(feeds) != len(self._in):
            raise RuntimeLoadError(f"model takes {len(self._in)} inputs, got {len(feeds)}")
        try:
            for detail, value in zip(self._in, feeds):
                self._interpreter.set_tensor(detail["index"], value)
            self._interpreter.invoke()
        except ValueError as exc:  # wrong shape or dtype: say what was fed and what is expected
            shapes = [(f.shape, str(f.dtype)) for f in feeds]
            expected = [(i.shape, i.dtype) for i in self._inputs]
            raise RuntimeLoadError(f"LiteRT failed on inputs {shapes} (model expects {expected}): {exc}") from exc
        return [self._interpreter.get_tensor(d["index"]).copy() for d in self._out]
