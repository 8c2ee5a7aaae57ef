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

Commands: on connect the client subscribes to ``<root>/<device_id>/cmd/+`` (QoS 1; with
MQTT 5, retain-as-published, so that a retained command is recognised as one even when it
arrives live). ``on_message`` only puts ``(name, payload, retained)`` on :attr:`Publisher.commands`,
a bounded queue the agent drains between frames; when it is full, further commands are
dropped with a warning rather than blocking paho's thread.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from device_agent.errors import AgentError
from device_agent.outbox import Outbox

_AUTH_FAILURES = {134: "bad user name or password", 135: "not authorized"}
_RETRY_FAILED_S = 2.0
MAX_PENDING_COMMANDS = 32

log = logging.getLogger("edgekit.agent")


class PublisherError(AgentError):
    """The publisher cannot do what was asked."""


class PublisherAuthError(PublisherError):
    """The broker refused our credentials; the publisher stopped reconnecting."""


@dataclass(frozen=True)
class MqttSettings:
    """Broker connection settings (validated by the agent config)."""

    host: str
    port: int = 1883
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    keepalive: int = 30
    protocol: str = "5"  # "5" or "3.1.1"


class Publisher:
    """Publishes outbox rows with QoS 1, at most ``max_inflight`` unacknowledged at a time."""

    def __init__(
        self,
        settings: MqttSettings,
        outbox: Outbox,
        *,
        device_id: str,
        status_body: dict[str, Any],
        topic_root: str = "edgekit/v1",
        max_inflight: int = 100,
    ) -> None:
        self.settings = settings
        self.outbox = outbox
        self.device_id = device_id
        self.status_topic = f"{topic_root}/{device_id}/status"
        self.command_topic = f"{topic_root}/{device_id}/cmd/+"
        self.commands: queue.Queue[tuple[str, bytes, bool]] = queue.Queue(maxsize=MAX_PENDING_COMMANDS)
        """Received commands, ``(name, payload, retained)``, for the agent to validate and run."""
        self.max_inflight = max_inflight
        self.last_error: str | None = None
        self._status_body = dict(status_body)
        self._events: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._connected = threading.Event()
        self._auth_failed = threading.Event()
        self._stopping = threading.Event()
        self._sender: threading.Thread | None = None
        protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=settings.client_id, protocol=protocol
        )
        self._client.max_inflight_messages_set(max_inflight + 10)  # room for status messages
        if settings.username is not None:
            self._client.username_pw_set(settings.username, settings.password)
        if settings.tls_ca:
            self._client.tls_set(ca_certs=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key)
        self._client.will_set(self.status_topic, self._status_payload("offline"), qos=1, retain=True)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _where(self) -> str:
        user = self.settings.username if self.settings.username is not None else "(anonymous)"
        return f"broker {self.settings.host}:{self.settings.port} as user {user!r}"

    def _status_payload(self, state: str) -> bytes:
        body = {**self._status_body, "v": 1, "device": self.device_id, "state": state, "ts": time.time()}
        return json.dumps(body, separators=(",", ":")).encode()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start sending; returns at once."""
        if self._sender is not None:
            raise PublisherError("publisher already started")
        self._sender = threading.Thread(target=self._send_loop, name="mqtt-sender", daemon=True)
        self._sender.start()
        self._client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keepalive)
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

    def _on_connect(self, client: mqtt.Client, _ud: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        if reason_code.is_failure:
            if reason_code.value in _AUTH_FAILURES:
                self.last_error = (
                    f"MQTT {_AUTH_FAILURES[reason_code.value]} at {self._where()}; "
                    "not reconnecting: fix the credentials in the agent config"
                )
                self._auth_failed.set()
                client.disconnect()  # ends paho's reconnect loop
            else:
                self.last_error = f"connection to {self._where()} refused: {reason_code}"
            return
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
        self.last_error = f"cannot connect to {self._where()}: {exc or 'connection failed'}"

    def _on_disconnect(self, _client: mqtt.Client, _ud: Any, _flags: Any, reason_code: Any, _props: Any) -> None:
        self._connected.clear()
        if not self._stopping.is_set() and not self._auth_failed.is_set():
            self.last_error = f"disconnected from {self._where()}: {reason_code}"
        self._events.put(("wake",))

    def _on_publish(self, _client: mqtt.Client, _ud: Any, mid: int, reason_code: Any, _props: Any) -> None:
        self._events.put(("ack", mid, not reason_code.is_failure, str(reason_code)))

    def _on_message(self, _client: mqtt.Client, _ud: Any, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.rsplit("/", 1)[-1]
        try:
            self.commands.put_nowait((name, bytes(msg.payload), bool(msg.retain)))
        except queue.Full:
            log.warning("command %r dropped: %d commands are already waiting", name, self.commands.qsize())

    # -- sender thread ---------------------------------------------------------------------

    def _send_loop(self) -> None:
        inflight: dict[int, int] = {}  # mid -> seq, for this connection
        retry: dict[int, float] = {}  # refused seq -> monotonic time to retry it
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
                    retry.clear()
                    cursor = 0
                elif event[0] == "ack":
                    _, mid, ok, reason = event
                    seq = inflight.pop(mid, None)
                    if seq is not None and ok:
                        acked.append(seq)
                    elif seq is not None:
                        self.last_error = f"broker refused seq {seq}: {reason}; retrying"
                        retry[seq] = time.monotonic() + _RETRY_FAILED_S
            self.outbox.ack_many(acked)  # one transaction for every PUBACK that came in together
            if self._connected.is_set() and not self._stopping.is_set():
                cursor = self._send_some(inflight, retry, cursor)

    def _send_some(self, inflight: dict[int, int], retry: dict[int, float], cursor: int) -> int:
        now = time.monotonic()
        for seq in sorted(s for s, t in retry.items() if t <= now):
            if len(inflight) >= self.max_inflight:
                return cursor
            rows = self.outbox.pending(limit=1, after_seq=seq - 1)
            del retry[seq]
            if rows and rows[0].seq == seq and not self._publish(inflight, rows[0]):
                retry[seq] = now + _RETRY_FAILED_S
                return cursor
        room = self.max_inflight - len(inflight)
        if room <= 0:
            return cursor
        for row in self.outbox.pending(limit=room, after_seq=cursor):
            if not self._publish(inflight, row):
                break  # not connected: the next reset resends from the start
            cursor = row.seq
        return cursor

    def _publish(self, inflight: dict[int, int], row: Any) -> bool:
        info = self._client.publish(row.topic, row.payload, qos=row.qos, retain=row.retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self.last_error = f"publish of seq {row.seq} failed: {mqtt.error_string(info.rc)}"
            return False
        inflight[info.mid] = row.seq
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
