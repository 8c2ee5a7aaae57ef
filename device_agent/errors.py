"""Exception tree of the device agent.

Everything the agent raises on purpose derives from :class:`AgentError`, so a caller
(the CLI, the supervisor) catches one type and prints ``Type: message``.

    AgentError
    ├── MissingDependencyError   an optional runtime is not installed (names the extra)
    ├── BundleError              a bundle failed verification (names the check)
    ├── RuntimeLoadError         a model could not be loaded or run by a runtime
    ├── PreprocessError          a frame or a preprocessing spec is unusable
    ├── DecodeError              a model output does not fit its declared decoder
    ├── CostError                a model's MACs/parameters could not be counted
    ├── BenchInputError          a benchmark was asked something it cannot do (missing file, wrong runtime)
    └── InstallError             installing the service failed (names the step and the command)
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""


class MissingDependencyError(AgentError):
    """An optional dependency is needed for what was asked; the message names the extra."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed; "
            f"install it with: pip install 'edgekit[{extra}]'"
        )
        self.module = module
        self.extra = extra


class BundleError(AgentError):
    """A bundle was refused. ``check`` names the check that failed."""

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"bundle check '{check}' failed: {message}")
        self.check = check


class RuntimeLoadError(AgentError):
    """A runtime could not load or run a model."""


class PreprocessError(AgentError):
    """A frame or a preprocessing specification cannot be used."""


class DecodeError(AgentError):
    """A model's outputs do not match what its decoder expects."""


class CostError(AgentError):
    """A model's cost (MACs, parameters) could not be counted; the message names the file and why."""


class BenchInputError(AgentError):
    """The benchmark was asked something it cannot do: a missing file, the wrong runtime, a bad option."""


class InstallError(AgentError):
    """Installing or removing the service failed; the message names the step, the command and its output."""
