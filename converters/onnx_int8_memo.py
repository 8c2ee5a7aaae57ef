"""Weight quantization done once per weight, however often ``onnx-int8-static`` re-quantizes a model.

``optimize`` quantizes the same float reference 20-odd times with different ``nodes_to_exclude``
(one trial per layer chain to rank, one per mixed-precision try). The activation ranges come
from the calibration cache, but ONNX Runtime recomputes every weight's per-channel scale and
quantized tensor each time, channel by channel in Python: with the ranges cached that is
most of a re-quantization (measured on EfficientNet-Lite0, see benchmarks/optimize_demo.py).

Both functions it calls for that are pure: the same weight and settings give the same result.
:func:`memoized_weight_quantization` swaps them, in ``onnxruntime.quantization.qdq_quantizer``
only and only while a ``quantize_static`` runs, for versions that remember results by a digest
of their arguments; the outputs are byte-identical. On an ONNX Runtime without these names it
does nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

_MAX_PARAMS = 200_000  # channels' scales remembered (a few MB); EfficientNet-Lite0 has ~20k
_MAX_TENSOR_BYTES = 512 << 20  # quantized weights remembered: a model of ~500M parameters
_params: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
_tensors: dict[bytes, bytes] = {}


def _digest(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(f"{part.dtype.str}{part.shape}".encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.digest()


def _flat(kwargs: dict[str, Any]) -> list[Any]:
    return [part for name in sorted(kwargs) for part in (name, kwargs[name])]


def _remember_params(key: bytes, value: tuple[np.ndarray, np.ndarray]) -> None:
    if len(_params) >= _MAX_PARAMS:
        _params.clear()
    _params[key] = value


def _remember_tensor(key: bytes, value: bytes) -> None:
    if sum(map(len, _tensors.values())) + len(value) > _MAX_TENSOR_BYTES:
        _tensors.clear()
    _tensors[key] = value


def _params_memo(compute: Callable[..., tuple[np.ndarray, np.ndarray]]) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    def compute_data_quant_params(data: Any, *args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(data, np.ndarray):
            return compute(data, *args, **kwargs)
        key = _digest(data, *args, *_flat(kwargs))
        if key not in _params:
            _remember_params(key, compute(data, *args, **kwargs))
        zero_point, scale = _params[key]
        return zero_point.copy(), scale.copy()

    return compute_data_quant_params


def _tensor_memo(quantize: Callable[..., Any]) -> Callable[..., Any]:
    def quantize_onnx_initializer(weight: Any, *args: Any, **kwargs: Any) -> Any:
        key = _digest(weight.SerializeToString(), *args, *_flat(kwargs))
        cached = _tensors.get(key)
        if cached is None:
            result = quantize(weight, *args, **kwargs)
            _remember_tensor(key, result.SerializeToString())
            return result
        result = type(weight)()
        result.ParseFromString(cached)
        return result

    return quantize_onnx_initializer


@contextmanager
def memoized_weight_quantization() -> Iterator[None]:
    """While inside, ONNX Runtime's QDQ quantizer quantizes each distinct weight once per process."""
    try:
        from onnxruntime.quantization import qdq_quantizer
    except ImportError:
        yield
        return
    names = {"compute_data_quant_params": _params_memo, "quantize_onnx_initializer": _tensor_memo}
    originals = {name: getattr(qdq_quantizer, name) for name in names if callable(getattr(qdq_quantizer, name, None))}
    for name, original in originals.items():
        setattr(qdq_quantizer, name, names[name](original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(qdq_quantizer, name, original)
