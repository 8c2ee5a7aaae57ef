"""The publisher's command intake: bounded queues, ``busy`` replies and flood accounting.

Split from :mod:`device_agent.transport.publisher` because taking commands in is its own
concern with its own threading rules, apart from draining the outbox.

On connect the publisher subscribes to ``<root>/<device_id>/cmd/+`` (QoS 1; with MQTT 5,
retain-as-published, so that a retained command is recognised as one even when it arrives
live). paho's ``on_message`` only calls :meth:`CommandInbox.receive`, which puts
``(name, payload, retained)`` on :attr:`CommandInbox.commands`, a bounded queue the agent
drains between frames. When it is full (the agent is busy, e.g. running a bench), the
command is answered ``busy`` on ``reply/<request_id>``, from the sender thread
(:meth:`CommandInbox.answer_busy`), not from paho's thread and not from the agent's loop:
paho's thread must not touch the database or parse 64 KB of JSON, and a reply published
from it directly would carry no ``seq`` (every device message does) and be lost with the
link; the agent's loop is the one that is busy, so it would answer only after the bench.
The sender thread is free: it hands the reply to ``on_event`` (the agent's group committer,
a queue), so it travels through the outbox like any other message. A second bounded queue
(:data:`MAX_BUSY_REPLIES`) holds the overflow; beyond it commands are counted and dropped,
with one warning per burst.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable

from device_agent.protocol.base import Body
from device_agent.protocol.commands import request_id_of
from device_agent.protocol.events import CommandEvent
from device_agent.protocol.messages import Reply

MAX_PENDING_COMMANDS = 32
MAX_BUSY_REPLIES = 256
"""Commands beyond the full queue that still get a ``busy`` reply; past this a flood is dropped."""

log = logging.getLogger("edgekit.agent")


class CommandInbox:
    """Received commands for the agent, and the overflow that gets a ``busy`` reply."""

    def __init__(self) -> None:
        self.commands: queue.Queue[tuple[str, bytes, bool]] = queue.Queue(maxsize=MAX_PENDING_COMMANDS)
        """Received commands, ``(name, payload, retained)``, for the agent to validate and run."""
        self._busy: queue.Queue[tuple[str, bytes]] = queue.Queue(maxsize=MAX_BUSY_REPLIES)
        self._flooded = False  # the busy queue overflowed: warned once, until it drains
        self.busy = 0
        """Commands answered ``busy`` so far."""
        self.dropped = 0
        """Commands dropped without a reply in a flood so far."""

    def receive(self, name: str, payload: bytes, retained: bool) -> bool:
        """Take one command in (paho's thread: never blocks); True when it waits for a ``busy`` reply."""
        try:
            self.commands.put_nowait((name, payload, retained))
            return False
        except queue.Full:
            pass
        try:  # the sender thread answers "busy" (see the module docstring)
            self._busy.put_nowait((name, payload))
            return True
        except queue.Full:
            self.dropped += 1
            if not self._flooded:
                self._flooded = True
                log.warning("command flood: %d commands wait and %d busy replies are queued; further commands are "
                            "dropped without a reply (counted in metrics mqtt.commands_dropped)",
                            self.commands.qsize(), self._busy.qsize())
            return False

    def answer_busy(self, tell: Callable[[str, Body], None]) -> None:
        """Answer every command waiting for a ``busy`` reply through ``tell(topic_suffix, message)`` (sender thread)."""
        while True:
            try:
                name, payload = self._busy.get_nowait()
            except queue.Empty:
                self._flooded = False
                return
            self.busy += 1
            rid = request_id_of(payload)
            reason = (f"{MAX_PENDING_COMMANDS} commands are already waiting while the agent is busy; "
                      "nothing was run: send it again later (the same request_id is fine)")
            log.warning("command %r (request %s) answered busy: %s", name, rid or "unknown", reason)
            if rid is not None:
                tell(f"reply/{rid}", Reply(request_id=rid, state="busy", command=name, reason=reason))
            tell("events", CommandEvent(state="busy", command=name, request_id=rid, reason=reason))
