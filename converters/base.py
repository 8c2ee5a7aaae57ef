"""Passes: model file in, model file out, report back.

A pass is a small callable registered under a key. Chains of passes are explicit in
the orchestrator (``edgekit.optimize.pipeline``); nothing here calls another pass behind the
caller's back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar


@dataclass(frozen=True)
class PassReport:
    """What one pass did: its key, the files, how long it took, and pass-specific facts."""

    name: str
    src: Path
    dst: Path
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


# A pass is called as ``fn(src, dst, /, **options)``; each pass names its own keyword-only
# options, which a Protocol with ``**options: Any`` would refuse, so the registry holds
# ``Callable[..., PassReport]`` and the decorator hands back the pass with its own signature.
Pass = Callable[..., PassReport]
_P = TypeVar("_P", bound=Pass)

PASSES: dict[str, Pass] = {}


def register_pass(key: str) -> Callable[[_P], _P]:
    """Register a pass under ``key`` (e.g. ``onnx-int8-static``)."""

    def decorate(fn: _P) -> _P:
        if key in PASSES:
            raise ValueError(f"pass {key!r} is registered twice")
        PASSES[key] = fn
        return fn

    return decorate


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """``with timed() as elapsed: ...; elapsed()`` gives seconds since entry."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start
