"""ONNX Runtime: CPU everywhere, CUDA and TensorRT execution providers where installed (Jetson)."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device_agent.errors import MissingDependencyError, RuntimeLoadError
from device_agent.runtimes.base import Runtime, TensorInfo, register_runtime

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}


def _shape(dims: Sequence[object]) -> tuple[int, ...]:
    return tuple(d if isinstance(d, int) and d >= 0 else -1 for d in dims)


@register_runtime("onnxruntime")
class OnnxRuntime(Runtime):
    key = "onnxruntime"

    def __init__(
        self, model_path: Path, *, threads: int = 0, providers: Sequence[str] = (), profile: bool = False
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise MissingDependencyError("onnxruntime", "onnx", "running an ONNX model") from exc
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._profile_dir: str | None = None
        if profile:
            self._profile_dir = tempfile.mkdtemp(prefix="edgekit-ort-profile-")
            options.enable_profiling = True
            options.profile_file_prefix = str(Path(self._profile_dir) / "ort")
        available = set(ort.get_available_providers())
        wanted = [p for p in providers if p in available] or ["CPUExecutionProvider"]
        if "CPUExecutionProvider" not in wanted:
            wanted.append("CPUExecutionProvider")
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=options, providers=wanted)
        except Exception as exc:  # onnxruntime raises its own untyped errors: wrap, keep the cause
            raise RuntimeLoadError(f"onnxruntime could not load {str(model_path)!r}: {exc}") from exc
        self._inputs = tuple(
            TensorInfo(i.name, _shape(i.shape), _ORT_TYPES.get(i.type, i.type)) for i in self._session.get_inputs()
        )
        self._outputs = tuple(
            TensorInfo(o.name, _shape(o.shape), _ORT_TYPES.get(o.type, o.type)) for o in self._session.get_outputs()
        )
        self._input_names = [i.name for i in self._inputs]

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(self._session.get_providers())

    @property
    def session(self) -> object:
        """The underlying ``onnxruntime.InferenceSession`` (for profiling)."""
        return self._session

    def end_profiling(self) -> Path | None:
        if self._profile_dir is None:
            return None
        return Path(self._session.end_profiling())

    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(feeds) != len(self._input_names):
            raise RuntimeLoadError(f"model takes {len(self._input_names)} inputs, got {len(feeds)}")
        try:
            outputs: list[np.ndarray] = self._session.run(None, dict(zip(self._input_names, feeds)))
            return outputs
        except Exception as exc:  # wrap ORT's InvalidArgument etc. with what was fed
            shapes = [(f.shape, str(f.dtype)) for f in feeds]
            expected = [(i.shape, i.dtype) for i in self._inputs]
            raise RuntimeLoadError(f"onnxruntime failed on inputs {shapes} (model expects {expected}): {exc}") from exc
