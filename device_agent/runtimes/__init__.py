"""Inference runtimes behind one interface; importing this package registers the built-ins."""

from device_agent.runtimes import onnx as _onnx  # noqa: F401  (registers "onnxruntime")
from device_agent.runtimes import tflite as _tflite  # noqa: F401  (registers "tflite"; LiteRT imported on use)
from device_agent.runtimes.base import RUNTIMES, Runtime, TensorInfo, create_runtime, register_runtime, runtime_for_file

__all__ = ["RUNTIMES", "Runtime", "TensorInfo", "create_runtime", "register_runtime", "runtime_for_file"]
