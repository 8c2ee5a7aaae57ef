"""Parsing what arrives on a topic of the contract into its typed message: the host's only way in.

:func:`parse` takes the topic and the raw payload and returns a :class:`Received`, or raises
:class:`~device_agent.protocol.base.ProtocolError` naming the topic and what was wrong (not
JSON, a missing or mistyped field, an unknown event kind). Unknown *fields* are kept, not
refused: a newer agent may add some (see :mod:`device_agent.protocol.base`).

The wire model of a message is its body model plus the :class:`Envelope` the outbox adds,
made once per body class here; ``status`` has its own header and is its own wire model.
Commands are parsed by :func:`device_agent.protocol.commands.parse_command`, which is
exact: a device does not guess at what it is told to do.
"""

from __future__ import annotations

import functools
import json
import operator
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any, cast

from pydantic import Field, TypeAdapter, ValidationError, create_model

from device_agent.errors import ProtocolError
from device_agent.protocol.base import Body, Envelope
from device_agent.protocol.events import EVENT_TYPES
from device_agent.protocol.messages import Metrics, Reply, Status
from device_agent.protocol.results import Result
from device_agent.protocol.topics import TOPIC_ROOT, Topic, parse_topic
from device_agent.service.config_errors import explain


@cache
def wire_model(body: type[Body]) -> type[Body]:
    """``body`` plus the envelope: the model of the message as it arrives (``Status`` is its own)."""
    if body is Status:
        return Status
    model = create_model(body.__name__, __base__=(body, Envelope), __module__=__name__,
                         __doc__=f"{(body.__doc__ or '').strip()} (with the outbox's envelope)")
    return cast("type[Body]", model)


def _events_union() -> Any:
    union = functools.reduce(operator.or_, (wire_model(t) for t in EVENT_TYPES))
    return Annotated[union, Field(discriminator="kind")]


@cache
def adapter(kind: str) -> TypeAdapter[Any]:
    """The TypeAdapter that validates a payload of topic ``kind`` (built once, reused)."""
    if kind == "events":
        return TypeAdapter(_events_union())
    models: dict[str, type[Body]] = {"status": Status, "results": Result, "metrics": Metrics, "reply": Reply}
    if kind not in models:
        raise ValueError(f"no device message is published on {kind!r}")
    return TypeAdapter(wire_model(models[kind]))


@dataclass(frozen=True)
class Received:
    """One message as the host received it: where from, and what it says.

    ``message`` is an instance of the body class (:class:`~device_agent.protocol.results.Result`,
    one of the event classes, ...) with the envelope's fields on it too; ``envelope`` is the same
    object seen as its envelope, None for ``status`` (which has no seq).
    """

    topic: Topic
    message: Body
    raw: bytes = b""

    @property
    def envelope(self) -> Envelope | None:
        return self.message if isinstance(self.message, Envelope) else None

    @property
    def device(self) -> str:
        return self.topic.device_id

    @property
    def kind(self) -> str:
        return self.topic.kind

    def payload(self) -> dict[str, Any]:
        """The payload as received, unknown fields included (also nested ones, which the models keep only
        at the top level when dumping)."""
        return json.loads(self.raw) if self.raw else self.message.model_dump(mode="json")


def parse(topic: str, payload: bytes, *, root: str = TOPIC_ROOT) -> Received:
    """The typed message a device published on ``topic``; :class:`ProtocolError` if it breaks the contract."""
    where = parse_topic(topic, root)
    if where is None:
        raise ProtocolError(topic, f"not a topic of the contract: expected {root}/<device>/"
                                   "status|results|events|metrics|reply/<request_id>")
    if where.kind == "cmd":
        raise ProtocolError(topic, "a command, not a device message: parse it with parse_command")
    try:
        message = adapter(where.kind).validate_json(payload, extra="allow")
    except ValidationError as exc:
        raise ProtocolError(topic, _problem(exc)) from None
    except (RecursionError, ValueError) as exc:  # a pathological payload: named, never escapes unnamed
        raise ProtocolError(topic, f"payload cannot be read: {type(exc).__name__}: {exc}") from None
    envelope = message if isinstance(message, Envelope) else None
    if envelope is not None and envelope.device != where.device_id:
        raise ProtocolError(topic, f"device {envelope.device!r} in the payload is not the topic's {where.device_id!r}")
    if isinstance(message, Reply) and message.request_id != where.name:
        raise ProtocolError(topic, f"request_id {message.request_id!r} in the payload is not the topic's "
                                   f"{where.name!r}")
    return Received(where, message, bytes(payload))


def _problem(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    if first["type"] in ("json_invalid", "json_type"):
        return f"payload is not JSON: {first['msg']}"
    return explain(exc)
