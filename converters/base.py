"""Passes: model file in, model file out, report back.

A pass is a small function registered under a key with :func:`register_pass`; it is called
one way, ``PASSES[key](src, dst, **options)`` (the decorated name is the same object), and
its options are checked by a pydantic model built from its signature before it runs. Chains
of passes are explicit in the orchestrator (``edgekit.optimize.pipeline``); nothing here calls
another pass behind the caller's back.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast, get_type_hints

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from converters.errors import PassOptionsError
from device_agent.registry import Registry


@dataclass(frozen=True)
class PassReport:
    """What one pass did: its key, the files, how long it took, and pass-specific facts."""

    name: str
    src: Path
    dst: Path
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


class Pass:
    """A registered pass: ``pass_(src, dst, /, **options)`` validates ``options`` with :attr:`options`, then runs.

    The options model is built from the pass function's keyword parameters (their annotations
    and defaults), with ``extra="forbid"``: a misspelt option, a missing required one or a value
    of the wrong type is a :class:`PassOptionsError` before any work is done, and the function
    receives the validated values. The two leading positional-only parameters (``src``,
    ``dst``) are the files, not options.
    """

    def __init__(self, key: str, fn: Callable[..., PassReport]) -> None:
        self.key = key
        self.fn = fn
        self.options = _options_model(key, fn)
        functools.update_wrapper(self, fn)

    def validate(self, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` checked and converted by :attr:`options`; :class:`PassOptionsError` if refused."""
        try:
            model = self.options.model_validate(options)
        except ValidationError as exc:
            raise PassOptionsError(self._explain(exc)) from None
        return {name: getattr(model, name) for name in self.options.model_fields if name in model.model_fields_set}

    def __call__(self, src: Any, dst: Path, /, **options: Any) -> PassReport:
        return self.fn(src, dst, **self.validate(options))

    def __repr__(self) -> str:
        return f"<pass {self.key!r} ({self.fn.__module__}.{self.fn.__qualname__})>"

    def _explain(self, exc: ValidationError) -> str:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            if error["type"] == "extra_forbidden":
                problems.append(f"unknown option {where!r}")
            elif error["type"] == "missing":
                problems.append(f"missing option {where!r}")
            else:
                problems.append(f"option {where!r}: {error['msg']} (got {_shown(error.get('input'))})")
        valid = ", ".join(self.options.model_fields) or "none"
        return f"pass {self.key!r}: {'; '.join(problems)}; valid options: {valid}"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _options_model(key: str, fn: Callable[..., Any]) -> type[BaseModel]:
    """The pydantic model of ``fn``'s options: every parameter after the positional-only ones."""
    hints = get_type_hints(fn)
    fields: dict[str, Any] = {}
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.POSITIONAL_ONLY, param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = ... if param.default is param.empty else param.default
        fields[param.name] = (hints.get(param.name, Any), default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, validate_default=False)
    return create_model(f"PassOptions[{key}]", __config__=config, **fields)


PASSES: Registry[Pass] = Registry("pass", plural="passes")
_P = TypeVar("_P", bound=Callable[..., PassReport])


def register_pass(key: str) -> Callable[[_P], _P]:
    """Register a pass under ``key`` (e.g. ``onnx-int8-static``); the name it is defined under is the :class:`Pass`.

    The decorated name keeps the function's signature for type checkers; calling it directly
    or through ``PASSES[key]`` is the same object, so options are validated either way.
    """

    def decorate(fn: _P) -> _P:
        return cast(_P, PASSES.register(key, Pass(key, fn)))

    return decorate


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    """``with timed() as elapsed: ...; elapsed()`` gives seconds since entry."""
    start = time.perf_counter()
    yield lambda: time.perf_counter() - start
