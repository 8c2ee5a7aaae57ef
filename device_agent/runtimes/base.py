"""The one interface every inference runtime implements, and the registry that picks one.

A bundle's manifest names its runtime (``onnxruntime`` or ``tflite``); the agent and the
host's benchmark both create it through :func:`create_runtime`, so the code that is timed
is the code that runs on the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device_agent.errors import RuntimeLoadError
from device_agent.registry import Registry


@dataclass(frozen=True)
class TensorInfo:
    """Name, static shape (``-1`` where the model leaves a dimension open), numpy dtype, and for
    an integer tensor of a quantized model its ``(scale, zero_point)``: real = scale * (q - zero_point)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None = None


class Runtime(ABC):
    """A loaded model, ready to run. Subclasses set ``_inputs`` and ``_outputs`` when loading."""

    key: str = ""
    _inputs: tuple[TensorInfo, ...] = ()
    _outputs: tuple[TensorInfo, ...] = ()

    @property
    def inputs(self) -> tuple[TensorInfo, ...]:
        return self._inputs

    @property
    def outputs(self) -> tuple[TensorInfo, ...]:
        return self._outputs

    @abstractmethod
    def run(self, feeds: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run once on inputs given in the order of :attr:`inputs`."""

    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers or delegates actually in use."""
        return ()

    def end_profiling(self) -> Path | None:
        """Stop the operator profiler started with ``profile=True`` and return its trace file.

        ``None`` where the runtime has no profiler (LiteRT's Python API exposes none)."""
        return None


RuntimeFactory = Callable[..., Runtime]
RUNTIMES: Registry[RuntimeFactory] = Registry("runtime")


def register_runtime(key: str) -> Callable[[RuntimeFactory], RuntimeFactory]:
    """Decorator: make a runtime factory available under ``key``."""
    return RUNTIMES.register(key)


def create_runtime(
    key: str, model_path: Path | str, *, threads: int = 0, providers: Sequence[str] = (), profile: bool = False
) -> Runtime:
    """Load ``model_path`` with the runtime registered as ``key``.

    ``profile=True`` records per-operator times where the runtime can (see :meth:`Runtime.end_profiling`);
    it slows every run, so the benchmark profiles in a separate session from the one it times."""
    from device_agent import runtimes as _  # noqa: F401  (registers the built-in runtimes)

    factory = RUNTIMES.lookup(key, RuntimeLoadError)
    path = Path(model_path)
    if not path.is_file():
        raise RuntimeLoadError(f"model file {str(path)!r} does not exist")
    return factory(path, threads=threads, providers=tuple(providers), profile=profile)


def runtime_for_file(model_path: Path | str) -> str:
    """The runtime key that reads a model file, from its extension."""
    suffix = Path(model_path).suffix.lower()
    if suffix == ".onnx":
        return "onnxruntime"
    if suffix == ".tflite":
        return "tflite"
    raise RuntimeLoadError(f"cannot tell the runtime for {str(model_path)!r}: expected a .onnx or .tflite file")
