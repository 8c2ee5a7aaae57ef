"""MQTT publisher that drains the durable outbox (paho-mqtt 2.x).

The outbox is the only source of truth. A row is deleted only when the broker's PUBACK
carries a success reason code. On every (re)connect paho's own queue of unacknowledged
messages is dropped and every pending row is sent again from the outbox, in seq order: rows
in flight at the drop may arrive twice (the consumer dedups on ``(device, seq)``), none is
lost.

Threads: paho's network thread only runs callbacks, which never block and never touch the
database: they post events to a queue. One sender thread owns the ``mid -> seq`` map, reads
the outbox, publishes and acknowledges. (paho calls ``on_publish`` while holding its own
message lock, so taking another lock there against a thread that calls ``publish()`` would
deadlock.)

Commands: on connect the client subscribes to ``<root>/<device_id>/cmd/+``; what arrives goes
to :class:`~device_agent.transport.inbox.CommandInbox` (:attr:`Publisher.commands` for the agent,
``busy`` replies from the sender thread when it is full). How the connection is set up
(settings, credentials, TLS, last will, keepalive) is :mod:`device_agent.transport.connection`.

Trouble is visible (:mod:`device_agent.transport.link`): every failed connect, every disconnect and
every PUBACK/SUBACK refusal is logged once per change with its cause in words, counted for
:meth:`Publisher.stats` (the metrics), and handed to ``on_event`` as an ``mqtt`` event (an
outage's event is built when the link is back). The publisher moves messages; what the
device says is the agent's, so the messages themselves are written by the agent's
committer, never by the publisher; what the publisher has to say is built through the
contract's models (:mod:`device_agent.protocol`) and handed over in its wire form. A row the
broker refuses (PUBACK reason >= 0x80, e.g. 0x87 "Not authorized") stays in the outbox and
is retried with a capped exponential backoff (2 s doubling to 5 min, kept across
reconnects), not every 2 s forever.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from device_agent.errors import AgentError, PublisherAuthError, PublisherError
from device_agent.protocol.base import Body, body_of
from device_agent.protocol.messages import Status
from device_agent.protocol.results import ModelRef
from device_agent.protocol.topics import TOPIC_ROOT, Topics
from device_agent.transport.connection import AUTH_FAILURES, MqttSettings, new_client, paho_keepalive_s
from device_agent.transport.inbox import MAX_BUSY_REPLIES, MAX_PENDING_COMMANDS, CommandInbox
from device_agent.transport.link import (
    LinkMonitor,
    closed_before_connack_cause,
    connect_error_cause,
    disconnect_cause,
    reason_words,
)
from device_agent.transport.outbox import Outbox

_RETRY_FAILED_S = 2.0
_RETRY_FAILED_MAX_S = 300.0
__all__ = ["MAX_BUSY_REPLIES", "MAX_PENDING_COMMANDS", "Identity", "MqttSettings", "Publisher", "PublisherAuthError",
           "PublisherError", "paho_keepalive_s"]  # the settings and limits are re-exported: callers import them here

log = logging.getLogger("edgekit.agent")


@dataclass(frozen=True)
class Identity:
    """What the retained ``status`` says about this agent, besides online/offline."""

    agent: str
    model: ModelRef
    measured_fps: float | None = None
    """The bundle's inference rate on its build machine, for hubs (omitted from the status when None)."""


class Publisher:
    """Publishes outbox rows with QoS 1, at most ``max_inflight`` unacknowledged at a time."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        *,
        device_id: str,
        status_body: Identity | dict[str, Any],
        topic_root: str = TOPIC_ROOT,
        max_inflight: int = 100,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """``on_event(topic_suffix, body)`` publishes a message the publisher has to say (``events``:
        kind ``mqtt`` and ``command`` busy; ``reply/<request_id>``: busy); it is called from the
        sender thread only, never from paho's. Without it those are only logged and counted.

        ``status_body`` is the agent's :class:`Identity`, built into a
        :class:`~device_agent.protocol.messages.Status`; a plain dict is merged into the status
        as given (for tools and tests that publish no model)."""
        self.settings = settings
        self._on_event = on_event
        self.outbox = outbox
        self.device_id = device_id
        self.topics = Topics(device_id, topic_root)
        self.status_topic = self.topics.status
        self.command_topic = self.topics.cmd("+")
        self.inbox = CommandInbox()
        self.commands = self.inbox.commands
        """Received commands, ``(name, payload, retained)``, for the agent to validate and run."""
        self._reply_root = self.topics.reply("").rstrip("/")
        self.max_inflight = max_inflight
        self.last_error: str | None = None
        self.link = LinkMonitor(self._where())
        self._refusals: dict[int, int] = {}  # refused seq -> refusals in a row (sender thread only)
        self._session_up = False  # a CONNACK arrived on the current connection
        self._attempt_open = False  # a connection attempt is under way and has not failed yet
        self._status_body = status_body if isinstance(status_body, Identity) else dict(status_body)
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._connected = threading.Event()
        self._auth_failed = threading.Event()
        self._stopping = threading.Event()
        self._sender: threading.Thread | None = None
        self._client = new_client(settings, will_topic=self.status_topic, will_payload=self._status_payload("offline"),
                                  max_inflight=max_inflight)
        self._client.on_pre_connect = self._on_pre_connect
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _where(self) -> str:
        return self.settings.where()

    def _status_payload(self, state: Literal["online", "offline"]) -> bytes:
        if isinstance(self._status_body, Identity):
            body = body_of(Status(device=self.device_id, state=state, ts=time.time(), agent=self._status_body.agent,
                                  model=self._status_body.model, measured_fps=self._status_body.measured_fps))
        else:
            body = {**self._status_body, "v": 1, "device": self.device_id, "state": state, "ts": time.time()}
        return json.dumps(body, separators=(",", ":")).encode()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start sending; returns at once."""
        if self._sender is not None:
            raise PublisherError("publisher already started")
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()
        self._client.connect_async(self.settings.host, self.settings.port,
                                   keepalive=paho_keepalive_s(self.settings.keepalive))
        self._client.loop_start()

    def check(self) -> None:
        """Raise :class:`PublisherAuthError` if the broker refused our credentials (no silent retry loop)."""
        if self._auth_failed.is_set():
            raise PublisherAuthError(self.last_error or f"authentication failed at {self._where()}")

    def wait_connected(self, timeout: float) -> bool:
        """True once connected, False on timeout; raises :class:`PublisherAuthError` if refused."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._auth_failed.is_set():
                raise PublisherAuthError(self.last_error or f"authentication failed at {self._where()}")
            if self._connected.wait(0.05):
                return True
        if self._auth_failed.is_set():
            raise PublisherAuthError(self.last_error or f"authentication failed at {self._where()}")
        return False

    def stats(self) -> dict[str, Any]:
        """The ``mqtt`` block of the metrics heartbeat: link state, last error, counters."""
        return {**self.link.stats(), "commands_busy": self.inbox.busy, "commands_dropped": self.inbox.dropped}

    def notify(self) -> None:
        """Wake the sender: call after ``outbox.add``."""
        self._events.put(("wake",))

    def stop(self, timeout: float = 5.0) -> None:
        """Publish the retained offline status, disconnect cleanly (no last will), stop threads."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._events.put(("stop",))
        if self._sender is not None:
            self._sender.join(max(0.0, deadline - time.monotonic()))
        if self._connected.is_set():
            info = self._client.publish(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):  # the connection went away meanwhile: the will covers it
                pass
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()

    # -- paho callbacks (network thread: never block, never touch the database) -------------

    def _on_pre_connect(self, _client: mqtt.Client, _ud: Any) -> None:
        self._attempt_open = True

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self._attempt_open = False
        if reason_code.is_failure:
            if reason_code.value in AUTH_FAILURES:
                self.last_error = (
                    f"MQTT {AUTH_FAILURES[reason_code.value]} at {self._where()}; "
                    "not reconnecting: fix the credentials in the agent config"
                )
                self._auth_failed.set()
                self.link.failed(self.last_error, retrying=False)
                client.disconnect()  # ends paho's reconnect loop
            else:
                self.last_error = f"connection to {self._where()} refused: {reason_words(reason_code)}"
                self.link.failed(f"the broker refused the connection: {reason_words(reason_code)}")
            return
        self._session_up = True
        outage = self.link.up()
        if outage is not None:
            self._events.put(("note", "events", outage))
        client.drop_out_messages()  # the outbox resends them, in seq order
        client.publish(self.status_topic, self._status_payload("online"), qos=1, retain=True)
        if self.settings.protocol == "5":  # see the retain flag as the sender set it, also on live delivery
            client.subscribe(self.command_topic, options=SubscribeOptions(qos=1, retainAsPublished=True))
        else:  # MQTT 3.1.1 marks retained only what is delivered on subscribing
            client.subscribe(self.command_topic, qos=1)
        self.last_error = None
        self._connected.set()
        self._events.put(("reset",))

    def _on_connect_fail(self, _client: mqtt.Client, _ud: Any) -> None:
        exc = sys.exc_info()[1]  # paho calls this from inside its except block
        self._attempt_open = False
        s = self.settings
        cause = connect_error_cause(exc, host=s.host, port=s.port, tls_ca=s.tls_ca)
        self.last_error = f"cannot connect to {self._where()}: {cause}"
        self.link.failed(cause)

    def _on_disconnect(self, _client: mqtt.Client, _ud: Any, flags: Any, reason_code: Any, _props: Any) -> None:
        self._connected.clear()
        session_up, self._session_up = self._session_up, False
        attempt_open, self._attempt_open = self._attempt_open, False
        if not self._stopping.is_set() and not self._auth_failed.is_set() and (session_up or attempt_open):
            if session_up:
                from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
                cause = disconnect_cause(reason_code, from_broker=from_broker,
                                         keepalive_s=paho_keepalive_s(self.settings.keepalive))
                self.link.lost(cause)
            else:  # no CONNACK on this connection: a failed attempt, e.g. plaintext to a TLS port
                cause = closed_before_connack_cause(port=self.settings.port, tls_ca=self.settings.tls_ca)
                self.link.failed(cause)
            self.last_error = f"disconnected from {self._where()}: {cause}"
        # else: paho reports one lost link up to three times (keepalive check, loop_misc, the loop's rc)
        self._events.put(("wake",))

    def _on_publish(self, _client: mqtt.Client, _ud: Any, mid: int, reason_code: Any, _props: Any) -> None:
        self._events.put(("ack", mid, not reason_code.is_failure, reason_code))

    def _on_subscribe(self, _client: mqtt.Client, _ud: Any, _mid: int, reason_codes: Any, _props: Any) -> None:
        for reason in reason_codes:
            if reason.is_failure:
                event = self.link.refusal("subscribe", self.command_topic, reason)
                if event is not None:
                    self._events.put(("note", "events", event))
            else:
                self.link.accepted("subscribe", self.command_topic)

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            name = msg.topic.rsplit("/", 1)[-1]
        except UnicodeDecodeError:  # brokers check topics are UTF-8; this thread must never raise anyway
            name = "(not UTF-8)"
        if self.inbox.receive(name, bytes(msg.payload), bool(msg.retain)):
            self._events.put(("busy",))

    # -- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        inflight: dict[int, tuple[int, str]] = {}  # mid -> (seq, topic), for this connection
        retry: dict[int, float] = {}  # refused seq -> monotonic time to retry it (kept across reconnects)
        cursor = 0  # highest seq handed to paho on this connection
        while True:
            try:  # block until something happens; the timeout covers retries and a missed notify()
                events = [self._events.get(timeout=0.5)]
            except queue.Empty:
                events = []
            while not self._events.empty():
                events.append(self._events.get_nowait())
            acked: list[int] = []
            for event in events:
                if event[0] == "stop":
                    self.outbox.ack_many(acked)
                    return
                if event[0] == "reset":
                    inflight.clear()
                    cursor = 0
                elif event[0] == "ack":
                    _, mid, ok, reason = event
                    seq, topic = inflight.pop(mid, (None, ""))
                    if seq is not None and ok:
                        acked.append(seq)
                        self._refusals.pop(seq, None)
                        self.link.accepted("publish", self._topic_key(topic))
                    elif seq is not None:
                        self._refused(seq, topic, reason, retry)
                elif event[0] == "note":
                    self._tell(event[1], event[2])
                elif event[0] == "busy":
                    self.inbox.answer_busy(self._tell)
            self.outbox.ack_many(acked)  # one transaction for every PUBACK that came in together
            if self._connected.is_set() and not self._stopping.is_set():
                cursor = self._send_some(inflight, retry, cursor)

    def _topic_key(self, topic: str) -> str:
        """Refusals are told once per topic; every reply/<request_id> counts as one topic."""
        return f"{self._reply_root}/+" if topic.startswith(self._reply_root + "/") else topic

    def _refused(self, seq: int, topic: str, reason: Any, retry: dict[int, float]) -> None:
        """Keep a refused row, retry it after 2 s, 4 s, 8 s ... at most 5 min; alarm once per topic."""
        self._refusals[seq] = self._refusals.get(seq, 0) + 1
        delay_s = min(_RETRY_FAILED_S * 2 ** (self._refusals[seq] - 1), _RETRY_FAILED_MAX_S)
        retry[seq] = time.monotonic() + delay_s
        self.last_error = f"broker refused seq {seq} on {topic}: {reason_words(reason)}; retrying in {delay_s:g} s"
        event = self.link.refusal("publish", self._topic_key(topic), reason, refused_seq=seq, retry_s=delay_s)
        if event is not None:
            self._tell("events", event)

    def _tell(self, suffix: str, message: Body) -> None:
        """Hand one message, in its wire form, to ``on_event``; its failure (a dead committer) is logged, never
        kills this thread."""
        if self._on_event is None:
            return
        try:
            self._on_event(suffix, body_of(message))
        except AgentError as exc:
            what = getattr(message, "kind", None) or getattr(message, "state", None)
            log.error("cannot queue the %s message %s: %s", suffix, what, exc)

    def _send_some(self, inflight: dict[int, tuple[int, str]], retry: dict[int, float], cursor: int) -> int:
        now = time.monotonic()
        for seq in sorted(s for s, t in retry.items() if t <= now):
            if len(inflight) >= self.max_inflight:
                return cursor
            del retry[seq]
            if seq > cursor:  # not sent on this connection yet: the cursor below sends it, once
                continue
            rows = self.outbox.pending(limit=1, after_seq=seq - 1)
            if not rows or rows[0].seq != seq:  # dropped by the outbox bounds meanwhile
                self._refusals.pop(seq, None)
            elif not self._publish(inflight, rows[0]):
                retry[seq] = now + _RETRY_FAILED_S
                return cursor
        while (room := self.max_inflight - len(inflight)) > 0:
            rows = self.outbox.pending(limit=room, after_seq=cursor)
            if not rows:
                break
            for row in rows:
                if row.seq not in retry and not self._publish(inflight, row):
                    return cursor  # not connected: the next reset resends from the start
                cursor = row.seq  # a refused row waiting for its retry is skipped: its backoff decides
        return cursor

    def _publish(self, inflight: dict[int, tuple[int, str]], row: Any) -> bool:
        info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.last_error = f"publish of seq {row.seq} failed: {mqtt.error_string(info.rc)}"
            return False
        inflight[info.mid] = (row.seq, row.topic)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
