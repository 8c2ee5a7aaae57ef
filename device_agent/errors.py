"""Exception tree of the device agent: every error the agent raises on purpose is defined here.

Everything derives from :class:`AgentError`, so a caller (the CLI, the supervisor) catches one
type, prints ``Type: message`` and exits with the class's :attr:`~AgentError.exit_code`:
1 the work failed, 2 bad usage or bad input (the user has to change something first). No
module of the agent defines an exception class of its own; ``tests/test_errors.py`` holds
that line and lists the two private control-flow signals that never leave their module.

    AgentError                      exit 1 unless stated
    ├── MissingDependencyError      exit 2: an optional package is not installed (names the extra)
    ├── BundleError                 exit 2: a bundle failed verification (names the check)
    ├── ConfigError                 exit 2: the config file is missing, unreadable or invalid (names the key)
    ├── BenchInputError             exit 2: a benchmark was asked something it cannot do (missing file, wrong runtime)
    │   └── BenchOptionsError       benchmark options that fail validation (each problem by field)
    ├── RuntimeLoadError            a model could not be loaded or run by a runtime
    ├── PreprocessError             a frame or a preprocessing spec is unusable
    ├── DecodeError                 a model output does not fit its declared decoder
    ├── CostError                   a model's MACs/parameters could not be counted
    ├── BenchFailed                 the benchmark process crashed or raised
    ├── InstallError                installing the service failed (names the step and the command)
    ├── ProtocolError               a message or topic does not fit the MQTT contract
    ├── CommandError                a command was refused before it ran (unknown, not JSON, not its schema)
    ├── SourceError                 a camera source cannot be used
    │   ├── SourceStateError        a state change the source's state machine refuses (a bug)
    │   └── SourceStoppedError      a source stopped for good before the end of a finite stream
    ├── PublisherError              the publisher cannot do what was asked
    │   └── PublisherAuthError      exit 2: the broker refused our credentials
    ├── OutboxError                 the outbox database cannot be opened or written
    ├── UnknownKeyError             exit 2: a registry has no entry under that key (also a KeyError)
    └── DuplicateKeyError           a second entry under a registry key that is taken (also a ValueError)

**One MissingDependencyError for three packages.** ``device_agent`` is the base package:
``converters`` and ``edgekit`` may import it, never the reverse, so the class that builds the
"install edgekit[extra]" message lives here. ``converters.errors`` and ``edgekit.errors`` each
define a subclass of the same name that also derives from their own root
(``class MissingDependencyError(device_agent.errors.MissingDependencyError, EdgeKitError)``).
An ``except`` clause matches on the class's MRO only (``__subclasscheck__`` and ABC
registration are ignored there), so only real inheritance makes ``except EdgeKitError`` catch
a missing dependency raised by the host toolkit, while ``except
device_agent.errors.MissingDependencyError`` still catches all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar


class AgentError(Exception):
    """Root of every error the agent raises on purpose."""

    exit_code: ClassVar[int] = 1
    """The CLI's exit status for this error: 1 the work failed, 2 bad usage or bad input."""


class MissingDependencyError(AgentError):
    """An optional dependency is needed for what was asked; the message names the module and the extra.

    Exit 2: nothing will work until the user installs the extra, so it is a usage problem, not a
    failure of the work. ``converters`` and ``edgekit`` subclass it under their own roots.
    """

    exit_code = 2

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the Python module '{module}', which is not installed; "
            f"install it with: pip install 'edgekit[{extra}]'"
        )
        self.module = module
        self.extra = extra


class BundleError(AgentError):
    """A bundle was refused. ``check`` names the check that failed."""

    exit_code = 2

    def __init__(self, check: str, message: str) -> None:
        super().__init__(f"bundle check '{check}' failed: {message}")
        self.check = check


class ConfigError(AgentError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class BenchInputError(AgentError):
    """The benchmark was asked something it cannot do: a missing file, the wrong runtime, a bad option."""

    exit_code = 2


@dataclass(frozen=True)
class OptionProblem:
    """One bad option: ``template`` names fields as ``{field}``, filled in by :meth:`render`."""

    field: str
    template: str

    def render(self, names: Mapping[str, str]) -> str:
        text = self.template
        for field, name in {**names, self.field: names.get(self.field, self.field)}.items():
            text = text.replace("{" + field + "}", name)
        return text


class BenchOptionsError(BenchInputError):
    """Options that cannot be measured with. ``problems`` keeps each by field
    (:class:`OptionProblem`); the message names the fields as
    ``names`` does (the command-line flags by default), :meth:`render` names them otherwise."""

    def __init__(self, problems: tuple[OptionProblem, ...], names: Mapping[str, str] | None = None) -> None:
        self.problems = problems
        super().__init__(self.render(names or {}))

    def render(self, names: Mapping[str, str]) -> str:
        return "; ".join(p.render(names) for p in self.problems)


class RuntimeLoadError(AgentError):
    """A runtime could not load or run a model."""


class PreprocessError(AgentError):
    """A frame or a preprocessing specification cannot be used."""


class DecodeError(AgentError):
    """A model's outputs do not match what its decoder expects."""


class CostError(AgentError):
    """A model's cost (MACs, parameters) could not be counted; the message names the file and why."""


class BenchFailed(AgentError):
    """The benchmark process failed: the runtime crashed or raised."""


class InstallError(AgentError):
    """Installing or removing the service failed; the message names the step, the command and its output."""


class ProtocolError(AgentError):
    """A message or topic does not fit the MQTT contract; the message says which topic and what was wrong."""

    def __init__(self, topic: str, problem: str) -> None:
        super().__init__(f"{topic}: {problem}")
        self.topic = topic
        self.problem = problem


class CommandError(AgentError):
    """A command was refused before it ran: unknown name, not JSON, or not its schema.

    ``command`` is the name from the topic; ``request_id`` is the one the payload carried, when it
    could be read, so the caller can still reply.
    """

    def __init__(self, command: str, message: str, *, request_id: str | None = None) -> None:
        super().__init__(f"command {command!r}: {message}")
        self.command = command
        self.request_id = request_id


class SourceError(AgentError):
    """A camera source cannot be used: unknown URI, missing file or folder, failed open or read."""


class SourceStateError(SourceError):
    """A state change that the source's state machine does not allow (a bug in the caller)."""


class SourceStoppedError(SourceError):
    """A source stopped for good without reaching the end of a finite stream (its supervisor died).

    The agent raises it so it exits non-zero and its service manager restarts it: exit 0 would
    tell systemd (``Restart=on-failure``) that the agent is done.
    """


class PublisherError(AgentError):
    """The publisher cannot do what was asked."""


class PublisherAuthError(PublisherError):
    """The broker refused our credentials; the publisher stopped reconnecting.

    Exit 2: retrying with the same credentials cannot help; the config has to change.
    """

    exit_code = 2


class OutboxError(AgentError):
    """The outbox database cannot be opened or written (not corruption: that is recovered)."""


class UnknownKeyError(AgentError, KeyError):
    """A registry has nothing under the key asked for; the message names the kind and the known keys.

    A :class:`KeyError`, so ``registry.get(key)``, ``key in registry`` and callers that caught the
    plain dict's ``KeyError`` behave as before; ``str()`` gives the message without KeyError's quotes.
    """

    exit_code = 2

    def __init__(self, message: str, *, kind: str = "", key: str = "", known: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.key = key
        self.known = known

    def __str__(self) -> str:
        return self.message


class DuplicateKeyError(AgentError, ValueError):
    """A second, different entry was registered under a key that is taken."""
