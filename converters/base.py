"""Passes: model file in, model file out, report back.

A pass is a small callable registered under a key. Chains of passes are explicit in
the orchestrator (``edgekit.optimize``); nothing here calls another pass behind the
caller's back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class PassReport:
    """What one pass did: its key, the files, how long it took, and pass-specific facts."""

    name: str
    src: Path
    dst: Path
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


class Pass(Protocol):
    def __call__(self, src: Path, dst: Path, /, **options: Any) -> PassReport: ...


PASSES: dict[str, Pass] = {}


def register_pass(key: str) -> Callable[[Pass], Pass]:
    """Register a pass under ``key`` (e.g. ``onnx-int8-static``)."""

    def decorate(fn: Pass) -> Pass:
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
