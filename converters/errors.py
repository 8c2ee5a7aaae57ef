"""Exception tree of the converters: every error a converter or pass raises on purpose is defined here.

The host CLI catches :class:`ConversionError` (with the roots of ``edgekit`` and
``device_agent``), prints ``Type: message`` and exits with the class's :attr:`exit_code`.
A pass that cannot take its input is the caller's input problem, so the whole tree exits 2.

    ConversionError              exit 2: a pass could not turn its input into its output
    ├── PassOptionsError         a pass was given an option it does not take or a value it refuses
    ├── UnsupportedModelError    the input is not a model this pass accepts (wrong format, dynamic shape)
    └── MissingDependencyError   a pass needs an optional package (names the module and the extra)

:class:`MissingDependencyError` is the agent's
:class:`device_agent.errors.MissingDependencyError` (one message, one exit code for the
three packages) made a :class:`ConversionError` as well, so ``except ConversionError`` and
``except device_agent.errors.MissingDependencyError`` both catch it; see
:mod:`device_agent.errors` for why it is a subclass and not a re-export.
"""

from __future__ import annotations

from typing import ClassVar

from device_agent.errors import MissingDependencyError as _AnyMissingDependency


class ConversionError(Exception):
    """Root of every error a converter or pass raises on purpose."""

    exit_code: ClassVar[int] = 2
    """The CLI's exit status for this error: 1 the work failed, 2 bad usage or bad input."""


class PassOptionsError(ConversionError):
    """A pass was given options it does not take, or values its options model refuses.

    Raised before the pass runs; the message names the pass, each bad option and the valid ones.
    """


class UnsupportedModelError(ConversionError):
    """The input model is not one this pass can take."""


class MissingDependencyError(_AnyMissingDependency, ConversionError):
    """An optional dependency a pass needs is not installed; the message names the module and the extra."""
