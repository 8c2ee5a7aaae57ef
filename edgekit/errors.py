"""Exception tree of the host toolkit: every error ``edgekit`` raises on purpose is defined here.

The CLI catches :class:`EdgeKitError` (and the roots of ``converters`` and
``device_agent``), prints ``Type: message`` and exits with the class's :attr:`exit_code`:
1 the work failed, 2 bad usage or bad input. No module of ``edgekit`` defines an exception
class of its own (``tests/test_errors.py`` holds that line).

    EdgeKitError                    exit 1 unless stated
    ├── UsageError                  exit 2: a bad argument or input from the user
    │   ├── ModelInputError         the model file is missing, unreadable or not a model we take
    │   ├── TargetError             unknown target or an invalid target profile
    │   ├── CalibrationError        calibration data missing, empty or unreadable
    │   └── OptionsError            optimize options that cannot be used (every problem, by field)
    ├── MissingDependencyError      exit 2: an optional package is not installed (names the module and the extra)
    ├── OptimizeFailed              exit 1: no candidate met the accuracy budget
    ├── StoreError                  exit 1: the hub's database failed (unreachable, corrupt, schema from a newer hub)
    └── RemoteError                 exit 1: a device over MQTT refused, failed or did not answer

:class:`MissingDependencyError` is the agent's :class:`device_agent.errors.MissingDependencyError`
(one message, one exit code for the three packages) made an :class:`EdgeKitError` as well:
``except`` matches on the MRO only, so a subclass, not a re-export, is what lets
``except EdgeKitError`` catch it (see :mod:`device_agent.errors`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from device_agent.errors import MissingDependencyError as _AnyMissingDependency


class EdgeKitError(Exception):
    """Root of every error the host toolkit raises on purpose."""

    exit_code: ClassVar[int] = 1
    """The CLI's exit status for this error: 1 the work failed, 2 bad usage or bad input."""


class UsageError(EdgeKitError):
    """The user gave a value we cannot use; the message names it and what was expected."""

    exit_code = 2


class ModelInputError(UsageError):
    """The model given is missing, unreadable, or not a format we take."""


class TargetError(UsageError):
    """The target is unknown or its profile is invalid."""


class CalibrationError(UsageError):
    """The calibration data is missing, empty or unreadable."""


class MissingDependencyError(_AnyMissingDependency, EdgeKitError):
    """An optional dependency the host toolkit needs is not installed; the message names the module and the extra."""


class OptimizeFailed(EdgeKitError):
    """Optimization ran, but no candidate met the accuracy budget.

    ``candidates`` holds the summary of every candidate tried, for the report.
    """

    exit_code = 1

    def __init__(self, message: str, *, candidates: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.candidates = candidates or []


class RemoteError(EdgeKitError):
    """A device asked over MQTT refused or failed the command, or no answer came in time.

    The message names the device, the broker or topic, and the device's own error when it sent one.
    """

    exit_code = 1


class OptionsError(UsageError):
    """Options that cannot be used. ``problems`` holds ``(field, text)`` pairs, shown as
    ``field text`` and joined with ``"; "``: every problem found is reported at once."""

    def __init__(self, problems: Sequence[tuple[str, str]], names: Mapping[str, str] | None = None) -> None:
        self.problems = tuple(problems)
        shown = names or {}
        super().__init__("; ".join(f"{shown.get(field, field)} {text}" for field, text in self.problems))

    def renamed(self, names: Mapping[str, str]) -> OptionsError:
        """The same error with each field shown by its name in ``names`` (e.g. ``max_drop`` -> ``--max-drop``)."""
        return OptionsError(self.problems, names)


class StoreError(EdgeKitError):
    """The hub's store failed: the database cannot be reached or opened, or its schema is newer than this hub's.

    The message names the store (its URL without the password) and the database's own error.
    """

    exit_code = 1
