"""The checks that need the model loaded: ``model-load``, ``model-io``, ``golden-format``, ``golden-mismatch``.

They live beside the bundle checks, not in the agent's loop, so that ``edgekit-agent verify``,
``check-config``, ``run`` and the host's ``write_bundle`` run the very same code: a bundle that
``verify`` accepts is one that ``run`` starts, and a bundle ``run`` refuses is refused by
``verify`` with the same check name.

The golden self-test runs the input that ``edgekit optimize`` recorded (one real photo,
preprocessed) and compares the outputs with the ones recorded on the build machine. It catches
what a sha256 cannot: a runtime on this device that computes something else (a broken
delegate, a kernel bug, a `/sys` the runtime needs and cannot read).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from device_agent.bundle.manifest import TensorSpec
from device_agent.errors import BundleError, RuntimeLoadError
from device_agent.pipeline.preprocess import quantize
from device_agent.runtimes import Runtime, TensorInfo, create_runtime

if TYPE_CHECKING:
    from device_agent.bundle.verify import Bundle

GOLDEN = "golden.npz"
GOLDEN_TOLERANCE = 1e-2
"""Largest error allowed, relative to the largest recorded output: room for another CPU's float
rounding and int8 kernels, far below what a wrong model or a broken runtime gives."""


def load_model(bundle: Bundle, *, threads: int = 0, providers: Sequence[str] = ()) -> Runtime:
    """Load the bundle's model with its runtime; the runtime's refusal becomes check ``model-load``."""
    try:
        return create_runtime(bundle.manifest.target.runtime, bundle.model_path, threads=threads, providers=providers)
    except RuntimeLoadError as exc:
        raise BundleError("model-load", str(exc)) from exc


def verify_model_io(bundle: Bundle, runtime: Runtime | None = None) -> Runtime:
    """Check the model's real inputs and outputs against the manifest (check ``model-io``)."""
    runtime = load_model(bundle) if runtime is None else runtime
    _match("input", bundle.manifest.inputs, runtime.inputs)
    _match("output", bundle.manifest.outputs, runtime.outputs)
    return runtime


def self_test(bundle: Bundle, runtime: Runtime) -> None:
    """Run the bundle's golden input and compare with the outputs recorded when it was built.

    The bundle checks have already required ``golden.npz`` (check ``golden-missing``); a file that
    is there but is no readable archive of ``input`` and one ``output_<i>`` per model output is
    ``golden-format``, outputs that differ are ``golden-mismatch``.
    """
    golden_path = bundle.root / GOLDEN
    try:
        with np.load(golden_path, allow_pickle=False) as golden:
            arrays = {name: golden[name] for name in golden.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise BundleError("golden-format",
                          f"{GOLDEN} is not a readable numpy archive: {type(exc).__name__}: {exc}") from exc
    expected_names = ["input", *(f"output_{i}" for i in range(len(runtime.outputs)))]
    if sorted(arrays) != sorted(expected_names):
        raise BundleError("golden-format", f"{GOLDEN} holds {sorted(arrays)}; expected {expected_names} for a model "
                          f"with {len(runtime.outputs)} output(s)")
    try:
        feed = quantize(arrays["input"].astype(np.float32), bundle.manifest.inputs[0])
        outputs = runtime.run([feed])
    except (RuntimeLoadError, ValueError, TypeError, IndexError) as exc:
        raise BundleError("golden-format", f"the golden input does not fit the model: {exc}") from exc
    for i, out in enumerate(outputs):
        expected = arrays[f"output_{i}"]
        if np.shape(out) != np.shape(expected) or expected.dtype.kind not in "fiub":
            raise BundleError("golden-mismatch", f"output {i}: the model gives shape {list(np.shape(out))}, the golden "
                              f"file records shape {list(expected.shape)} of {expected.dtype}")
        reference = expected.astype(np.float64)
        scale = float(np.abs(reference).max(initial=0.0)) or 1.0
        error = float(np.abs(out.astype(np.float64) - reference).max(initial=0.0)) / scale
        if not error <= GOLDEN_TOLERANCE:  # written so that NaN (in either) fails instead of passing
            raise BundleError("golden-mismatch", f"output {i} differs from the recorded golden output by {error:.3g} "
                              f"(relative; at most {GOLDEN_TOLERANCE} allowed)")


def verify_model(bundle: Bundle, *, threads: int = 0, providers: Sequence[str] = ()) -> Runtime:
    """``model-load``, ``model-io`` and the golden self-test; returns the loaded, tested runtime."""
    runtime = verify_model_io(bundle, load_model(bundle, threads=threads, providers=providers))
    self_test(bundle, runtime)
    return runtime


def _match(kind: str, declared: list[TensorSpec], actual: tuple[TensorInfo, ...]) -> None:
    if len(declared) != len(actual):
        raise BundleError("model-io", f"the manifest lists {len(declared)} {kind}s, the model has {len(actual)}")
    for spec, info in zip(declared, actual):
        if spec.name != info.name:
            raise BundleError("model-io", f"{kind} name: manifest {spec.name!r}, model {info.name!r}")
        shape_ok = len(spec.shape) == len(info.shape) and all(
            m == -1 or m == s for s, m in zip(spec.shape, info.shape)
        )
        if not shape_ok:
            raise BundleError("model-io",
                              f"{kind} {spec.name!r} shape: manifest {spec.shape}, model {list(info.shape)}")
        if spec.dtype != info.dtype:
            raise BundleError("model-io", f"{kind} {spec.name!r} dtype: manifest {spec.dtype}, model {info.dtype}")
