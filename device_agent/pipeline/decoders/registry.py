"""The decoder registry: each decoder module registers itself under the key a manifest names.

A manifest's ``task.decoder`` is looked up here; an unknown key is a :class:`DecodeError`
that lists the keys this agent knows, so a bundle built for a newer agent fails clearly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from device_agent.bundle.manifest import TaskSpec
from device_agent.errors import DecodeError
from device_agent.pipeline.decoders.types import DecodeResult
from device_agent.pipeline.preprocess import FrameTransform
from device_agent.registry import Registry


class Decoder(Protocol):
    """Model outputs (one array per output, batch of one) -> a :class:`DecodeResult`."""

    def __call__(
        self, outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
    ) -> DecodeResult: ...


DECODERS: Registry[Decoder] = Registry("decoder")


def register_decoder(key: str) -> Callable[[Decoder], Decoder]:
    """Class or function decorator: make a decoder available under ``key``."""
    return DECODERS.register(key)


def get_decoder(key: str) -> Decoder:
    """The decoder registered under ``key``; :class:`DecodeError` naming the known keys if none."""
    return DECODERS.lookup(key, DecodeError)


def decode(
    outputs: Sequence[np.ndarray], task: TaskSpec, transform: FrameTransform | None = None
) -> DecodeResult:
    """Decode with the decoder the task names (``task.decoder``)."""
    return get_decoder(task.decoder)(outputs, task, transform)


def first_output(outputs: Sequence[np.ndarray], decoder: str, expected: str) -> np.ndarray:
    """The first output as float32; the decoders here read one output tensor."""
    if len(outputs) == 0:
        raise DecodeError(f"decoder {decoder!r} got no outputs; expected one of shape {expected}")
    return np.asarray(outputs[0], dtype=np.float32)


def shape_error(decoder: str, shape: tuple[int, ...] | tuple[tuple[int, ...], ...], expected: str,
                why: str = "") -> DecodeError:
    """The one message format for a misfit output: decoder, shape received, shape expected."""
    tail = f" ({why})" if why else ""
    return DecodeError(f"decoder {decoder!r} got an output of shape {list(shape)}; expected {expected}{tail}")
