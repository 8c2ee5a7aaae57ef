"""Commands a device accepts on ``<root>/<device_id>/cmd/<name>``: an explicit allow-list.

Each command registers its schema under its name (:func:`command`). A payload is validated
once, here, at the edge: strict JSON types (``"5"`` is not a number, ``true`` is not 1),
unknown keys refused, and an error that names the command, the key and the value. Nothing
else is ever executed: an unknown name is an error that lists the allowed ones.

The reply to a command goes to ``<root>/<device_id>/reply/<request_id>``, so ``request_id``
is a single topic level of safe characters. :func:`request_id_of` recovers it from a
payload that fails validation, so that even a bad command gets its error reply.

Any bytes at all may arrive on a command topic, and a retained one arrives again at every
start, so nothing here may raise anything but :class:`CommandError`. ``json.loads`` recurses
once per nesting level: 50 KB of ``[[[[`` raised ``RecursionError`` out of the parser and
took the agent down (at every restart, when retained). So the payload is first decoded as
UTF-8 (the JSON wire encoding) and its nesting measured by a flat scan (:func:`_shape`,
no recursion, ~30 ms for the largest accepted payload); only payloads at most
:data:`MAX_DEPTH` deep reach ``json.loads``. The same scan reads a top-level
``request_id`` without parsing, so even a too-deep command gets its error reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from device_agent.bench.options import DurationS, Runs, Threads, WarmupRuns
from device_agent.errors import CommandError
from device_agent.registry import Registry
from device_agent.service.config_errors import explain

REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
MAX_PAYLOAD_BYTES = 64 * 1024
"""A command is a few hundred bytes; anything much larger is refused before it is parsed."""
MAX_DEPTH = 32
"""Deepest nesting of arrays/objects accepted; every command is flat (depth 1, a list value 2)."""

_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}:,]', re.DOTALL)
"""A JSON string, or one structural character: enough to follow nesting without parsing."""


class Command(BaseModel):
    """Fields every command carries. Subclasses register with :func:`command`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    name: ClassVar[str] = ""

    v: Literal[1] = Field(description="version of the command schema; this agent speaks 1")
    request_id: str = Field(pattern=REQUEST_ID_PATTERN,
                            description="caller's id, 1-64 of A-Z a-z 0-9 _ . -; the reply goes to reply/<request_id>")


COMMANDS: Registry[type[Command]] = Registry("command")
"""The allow-list: command name -> schema."""

_C = TypeVar("_C", bound=type[Command])


def command(name: str) -> Callable[[_C], _C]:
    """Class decorator: allow the command ``name`` with this schema."""

    def register(cls: _C) -> _C:
        COMMANDS.register(name, cls)
        cls.name = name
        return cls

    return register


@command("bench")
class BenchCommand(Command):
    """Benchmark the device's active bundle in a fresh process while inference pauses."""

    # the options' own constraints (BenchOptions), with caps on what one command may ask
    runs: Runs | None = Field(default=None, le=100_000, description="timed runs (excludes duration_s)")
    duration_s: DurationS | None = Field(default=None, le=300,
                                         description="time the model for this long, in seconds (excludes runs)")
    warmup: WarmupRuns | None = Field(default=None, le=100_000,
                                      description="warm-up runs; absent: until the latency is stable")
    threads: Threads | None = Field(default=None, le=1024,
                                    description="inference threads (0: runtime default; absent: the agent's threads)")
    profile: bool = Field(default=True, description="add the per-operator profile (a few more runs)")
    samples: bool = Field(default=False, description="include every timed run's latency in the reply")
    model_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$",
                                     description="refuse unless the active bundle's model has this sha256")

    @field_validator("duration_s")
    @classmethod
    def _runs_or_duration(cls, duration_s: float | None, info: ValidationInfo) -> float | None:
        # a field validator (not a model validator) so that the error names the key
        if duration_s is not None and info.data.get("runs") is not None:
            raise ValueError(f"give runs or duration_s, not both (runs is {info.data['runs']})")
        return duration_s


@dataclass(frozen=True)
class _Read:
    """A payload as far as it could be read: ``data`` when ``problem`` is None."""

    data: Any
    problem: str | None
    request_id: str | None


def _usable(request_id: object) -> str | None:
    return request_id if isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id) else None


def _shape(text: str) -> tuple[int, str | None]:
    """The deepest nesting in ``text`` and the string value of its top-level ``request_id`` key, by a flat scan.

    For text that ``json.loads`` accepts, the scan sees exactly the parser's strings, so the
    parser never nests deeper than the depth returned; for other text it may count more,
    never fewer, up to the point where the parser fails.
    """
    depth = deepest = 0
    in_object = text.lstrip().startswith("{")  # only a top-level object has a top-level key
    key: str | None = None
    after_colon = False
    request_id: str | None = None
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
            after_colon = False
        elif token in "]}":
            depth -= 1
        elif depth == 1 and token == ":":
            after_colon = True
        elif depth == 1 and token == ",":
            key, after_colon = None, False
        elif depth == 1 and in_object and token.startswith('"'):
            if after_colon and key == '"request_id"':
                request_id = token[1:-1]  # unescaped: a usable id has no escapes
            elif not after_colon:
                key = token
            after_colon = False
    return deepest, request_id


def _read(payload: bytes) -> _Read:
    """Decode one payload without ever raising: size, UTF-8, nesting depth, then JSON."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _Read(None, f"payload is {len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} are accepted", None)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return _Read(None, f"payload is not JSON: not UTF-8 ({exc.reason} at byte {exc.start})", None)
    depth, scanned_id = _shape(text)
    if depth > MAX_DEPTH:
        return _Read(None, f"payload is nested {depth} levels deep; at most {MAX_DEPTH} are accepted",
                     _usable(scanned_id))
    try:
        data = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and int() past its digit limit
        return _Read(None, f"payload is not JSON: {exc}", None)
    except RecursionError:  # the depth check rules this out; kept so it can never escape unnamed
        return _Read(None, "payload is nested too deeply to parse", _usable(scanned_id))
    return _Read(data, None, _usable(data.get("request_id")) if isinstance(data, dict) else None)


def request_id_of(payload: bytes) -> str | None:
    """The payload's ``request_id`` if it is readable and usable as a topic level, else None; never raises."""
    return _read(payload).request_id


def parse_command(name: str, payload: bytes) -> Command:
    """Validate one command; raise :class:`CommandError` naming the command, the key and the value.

    Whatever the bytes, :class:`CommandError` is the only exception (the fuzz tests hold this).
    """
    schema = COMMANDS.get(name)
    read = _read(payload)
    if schema is None:
        allowed = ", ".join(COMMANDS.names())
        raise CommandError(name, f"unknown command; the allowed commands are: {allowed}", request_id=read.request_id)
    if read.problem is not None:
        raise CommandError(name, read.problem, request_id=read.request_id)
    data = read.data
    if not isinstance(data, dict):
        raise CommandError(name, f"payload must be a JSON object, got {type(data).__name__} {payload[:40]!r}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise CommandError(name, explain(exc), request_id=read.request_id) from None
    except RecursionError:  # depth is bounded above; never let it escape unnamed
        raise CommandError(name, "payload is nested too deeply to validate", request_id=read.request_id) from None
