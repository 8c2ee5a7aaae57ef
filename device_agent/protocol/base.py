"""What every message shares: the envelope, the building base class, and the one protocol error.

Building and parsing are two sides with two rules:

- **Building is exact.** A device builds a message body through a subclass of :class:`Body`
  (strict types, unknown fields refused): a misspelt or unknown field is a bug in the agent and
  fails where it is written, not on a consumer's screen. The envelope (``v``, ``device``, ``seq``,
  ``boot``, ``ts``) is not the builder's business: the outbox adds it in the same transaction
  that hands out the ``seq`` (:meth:`device_agent.transport.outbox.Outbox._insert_locked`).
- **Parsing is tolerant.** The host parses with the *wire* model of each message
  (:mod:`device_agent.protocol.wire`): the body's fields plus the envelope, unknown fields
  kept. A fleet never upgrades at once; a newer agent may add a field, and an older monitor or
  hub must still read what it knows instead of dropping the message. A field that is missing or
  has the wrong type is still an error (:class:`ProtocolError`).

One class serves both sides, nested records included: the models say ``extra="forbid"``, and
:func:`device_agent.protocol.wire.parse` validates with ``extra="allow"`` (pydantic applies a
validation-time ``extra`` to nested models too). Two classes per record, one forbidding and one
allowing, would double the contract and let the two drift apart; a Python validator per
record that looked at a context flag costs ~15 us per result on the hot path (measured).

Optional fields come in two flavours, because the JSON on the wire has both and consumers may
rely on either: a *nullable* field is always present and may be ``null`` (``request_id`` of a
command event whose payload had none); an *omitted* field (:func:`omitted`) is left out when
it is None (``error`` only in a failed bench's event). :func:`body_of` writes exactly that.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

PROTOCOL_VERSION = 1
"""The ``v`` every message carries and the ``v1`` in every topic."""

ENVELOPE_FIELDS = ("v", "device", "seq", "boot", "ts")
"""Keys the outbox adds to every body it commits; they override same-named body keys."""


def _is_none(value: object) -> bool:
    return value is None


def omitted(description: str, **kwargs: Any) -> Any:
    """A field that defaults to None and is left out of the JSON when None (not written as ``null``)."""
    return Field(default=None, exclude_if=_is_none, description=description, **kwargs)


class Record(BaseModel):
    """Base of every body and nested record: exact when built, tolerant when parsed (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_by_name=True,
                              validate_by_alias=True, serialize_by_alias=True)


class Body(Record):
    """Base of every message body a device builds; ``topic_kind`` names the topic it goes to."""

    topic_kind: ClassVar[str] = ""


class Envelope(BaseModel):
    """The header the outbox adds to every message it commits (everything but ``status``)."""

    model_config = ConfigDict(extra="allow")

    v: Literal[1] = Field(description="contract version; a v1 consumer reads v1 messages only")
    device: str = Field(description="device_id of the agent that sent it (also in the topic)")
    seq: int = Field(ge=1, description="per-device sequence number: strictly increasing, never reused across "
                     "restarts; (device, seq) identifies a message, so consumers drop duplicates and see gaps")
    boot: str = Field(description="id of the agent process run that committed it (a new one at every start)")
    ts: float = Field(description="wall-clock time the message was committed to the outbox, Unix seconds")


def body_of(message: Body) -> dict[str, Any]:
    """The JSON-ready dict of a built body, exactly as it goes on the wire (before the envelope)."""
    return message.model_dump(mode="json")
