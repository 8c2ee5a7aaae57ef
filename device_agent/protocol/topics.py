"""The topic tree of contract v1, built and parsed in one place.

``<root>/<device_id>/status|results|events|metrics|cmd/<name>|reply/<request_id>`` with
``root`` = ``edgekit/v1`` unless the agent config says otherwise (``mqtt.topic_root``). A
device_id and a request_id are single topic levels (``[A-Za-z0-9_.-]{1,64}``), so splitting
on ``/`` is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

TOPIC_ROOT = "edgekit/v1"
"""The default root; its last level is the contract version."""

TopicKind = Literal["status", "results", "events", "metrics", "cmd", "reply"]
TOPIC_KINDS: tuple[str, ...] = get_args(TopicKind)
NAMED_KINDS = frozenset({"cmd", "reply"})
"""Kinds with one more level: the command's name, the request_id the reply answers."""


@dataclass(frozen=True)
class Topic:
    """One parsed topic: whose, which kind, and the command name or request_id for ``cmd``/``reply``."""

    device_id: str
    kind: TopicKind
    name: str | None = None


@dataclass(frozen=True)
class Topics:
    """The topics of one device; the agent and the host build every topic through this."""

    device_id: str
    root: str = TOPIC_ROOT

    @property
    def base(self) -> str:
        return f"{self.root}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def results(self) -> str:
        return f"{self.base}/results"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def metrics(self) -> str:
        return f"{self.base}/metrics"

    def cmd(self, name: str) -> str:
        """Where command ``name`` is sent (``+`` subscribes to every command)."""
        return f"{self.base}/cmd/{name}"

    def reply(self, request_id: str) -> str:
        """Where the replies to ``request_id`` go (``+`` subscribes to every reply)."""
        return f"{self.base}/reply/{request_id}"

    def of(self, kind: str, name: str | None = None) -> str:
        """The topic of ``kind`` (``reply`` and ``cmd`` need ``name``)."""
        if kind not in TOPIC_KINDS:
            raise ValueError(f"unknown topic kind {kind!r}; expected one of {', '.join(TOPIC_KINDS)}")
        if (kind in NAMED_KINDS) != (name is not None):
            raise ValueError(f"topic kind {kind!r} {'needs' if kind in NAMED_KINDS else 'takes no'} name")
        return f"{self.base}/{kind}" + (f"/{name}" if name is not None else "")

    def suffix(self, suffix: str) -> str:
        """The full topic of ``events``, ``reply/<id>``, ...: the suffixes the publisher hands to its owner."""
        kind, _, name = suffix.partition("/")
        return self.of(kind, name or None)


def subscription(device_id: str | None = None, root: str = TOPIC_ROOT) -> str:
    """The filter for everything one device (or, with None, every device) publishes and receives."""
    return f"{root}/{device_id or '+'}/#"


def parse_topic(topic: str, root: str = TOPIC_ROOT) -> Topic | None:
    """``Topic`` for a topic of the contract under ``root``; None for anything else (a foreign topic)."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix):].split("/")
    if len(parts) < 2 or not parts[0] or parts[1] not in TOPIC_KINDS:
        return None
    kind = parts[1]
    if kind in NAMED_KINDS:
        return Topic(parts[0], kind, parts[2]) if len(parts) == 3 and parts[2] else None  # type: ignore[arg-type]
    return Topic(parts[0], kind) if len(parts) == 2 else None  # type: ignore[arg-type]
