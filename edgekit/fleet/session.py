"""One MQTT session for the host side: broker address, paho client, connect, subscribe, loop, shutdown.

Exists so that every fleet tool (``edgekit monitor``, remote commands, the hub) sets up its
broker connection one way: the same ``HOST:PORT`` parsing and error messages, MQTT 5, a
subscription renewed on every (re)connect, paho's network loop in its own thread, and a clean
DISCONNECT before that thread is joined. What a tool does with the messages stays in the tool:
it passes callbacks that get plain values (topic and payload, reason strings), never paho's
objects, and that run in paho's thread, so they must not block.

A long-running tool (the hub) asks for more, all opt-in through :class:`Persistence` and
:meth:`MqttSession.start` ``(background=True)``: a persistent session (``clean_start=False``, a
session expiry, a stable client id), a Receive Maximum, acknowledgements it sends itself
(:meth:`MqttSession.ack`, once a message is safe), a list of brokers tried in order on every
(re)connect, and a first connect retried in the background instead of raised.

paho-mqtt is imported when a session is made, not with this module, so the CLI starts (and
says what to install) on a host without it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from edgekit.errors import EdgeKitError, MissingDependencyError, UsageError

KEEPALIVE_S = 30
"""Seconds between pings on an idle link."""
RECONNECT_MAX_S = 10
"""A background session retries the brokers with backoff from 1 s up to this."""


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; :class:`UsageError` naming the value otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--broker {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def parse_brokers(text: str) -> list[tuple[str, int]]:
    """``HOST:PORT[,HOST:PORT...]`` as a list, in order; :class:`UsageError` naming the value otherwise."""
    parts = [part.strip() for part in text.split(",")]
    if not all(parts):
        raise UsageError(f"--broker {text!r}: expected HOST:PORT[,HOST:PORT...], e.g. 127.0.0.1:1883")
    try:
        return [parse_broker(part) for part in parts]
    except UsageError as exc:
        if len(parts) == 1:
            raise
        raise UsageError(f"--broker {text!r}: {exc}") from exc


@dataclass(frozen=True)
class Persistence:
    """A session the broker keeps while the client is away, and acknowledgements the client sends itself."""

    session_expiry_s: int = 86400
    """How long the broker keeps the session (and queues messages for it) after a disconnect."""
    receive_maximum: int = 1000
    """How many unacknowledged QoS 1 messages the broker may have in flight to us (MQTT 5 CONNECT property)."""


@dataclass(frozen=True)
class Delivery:
    """One message as delivered: ``mid``/``qos`` to acknowledge it, ``link`` the connection it came on."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool
    link: int


def _ignore(*_args: Any) -> None:
    pass


class MqttSession:
    """A paho client (MQTT 5) that subscribes to its topic filters on every connect; use as a context manager.

    Nothing touches the network until :meth:`start` (or ``with``). Callbacks, all optional:
    ``on_refused(reason)`` when the broker refuses the connection (CONNACK), ``on_message(topic,
    payload)``, ``on_subscribed(refusals)`` with the refused reason codes (empty when granted),
    ``on_published(mid, failed, reason)`` per PUBACK, ``on_disconnected(reason)``; and for a
    long-running client ``on_connected(address, session_present)``, ``on_unreachable(address,
    reason)`` per failed connect attempt, ``on_delivery(Delivery)`` instead of ``on_message``.
    """

    def __init__(self, broker: str, *, topic: str | Sequence[str], purpose: str, client_id: str = "",
                 error: type[EdgeKitError] = EdgeKitError,
                 persistence: Persistence | None = None,
                 on_refused: Callable[[str], None] = _ignore,
                 on_message: Callable[[str, bytes], None] = _ignore,
                 on_delivery: Callable[[Delivery], None] | None = None,
                 on_subscribed: Callable[[list[str]], None] = _ignore,
                 on_published: Callable[[int, bool, str], None] = _ignore,
                 on_disconnected: Callable[[str], None] = _ignore,
                 on_connected: Callable[[str, bool], None] = _ignore,
                 on_unreachable: Callable[[str, str], None] = _ignore) -> None:
        """``broker`` is ``HOST:PORT`` or a comma-separated list tried in order; ``purpose`` names the tool in
        the "install paho-mqtt" error (``"edgekit monitor"``); ``error`` is raised when the broker cannot be
        reached. With ``persistence`` (needs a ``client_id``) messages are acknowledged only by :meth:`ack`."""
        try:
            import paho.mqtt.client as mqtt
        except ImportError as exc:
            raise MissingDependencyError("paho.mqtt", "agent", purpose) from exc
        self.brokers = parse_brokers(broker)
        self.host, self.port = self.brokers[0]
        self.topics = (topic,) if isinstance(topic, str) else tuple(topic)
        self.persistence = persistence
        self._error = error
        self._lock = threading.Lock()
        self._links = 0
        self._subscribing: tuple[int, int] | None = None  # (SUBSCRIBE mid, link) awaiting its SUBACK
        self._subscribed_link: int | None = None
        self._live: int | None = None  # the link acknowledgements may be sent on; None while disconnected
        self._attempt = 0
        if persistence is not None and not client_id:
            raise ValueError("a persistent session needs a client id")
        self._on_refused, self._on_message, self._on_delivery = on_refused, on_message, on_delivery
        self._on_subscribed = on_subscribed
        self._on_connected, self._on_disconnected, self._on_unreachable = on_connected, on_disconnected, on_unreachable
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5, manual_ack=persistence is not None)
        client.on_connect = self._connected
        client.on_message = self._message
        client.on_subscribe = self._subscribed_cb
        client.on_publish = lambda _c, _u, mid, reason, _p: on_published(mid, reason.is_failure, str(reason))
        client.on_disconnect = self._disconnected
        client.on_pre_connect = self._pre_connect
        client.on_connect_fail = self._connect_failed
        client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
        self._client = client

    # paho's callbacks, in paho's thread

    def _connected(self, client: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._on_refused(str(reason))
            return
        with self._lock:
            self._links += 1
            self._live = self._links
            self._attempt = 0
        _rc, mid = client.subscribe([(name, 1) for name in self.topics])  # one SUBSCRIBE, one SUBACK for all
        with self._lock:
            self._subscribing = (mid, self._links)
        self._on_connected(self.address, bool(getattr(flags, "session_present", False)))

    def _subscribed_cb(self, _c: Any, _u: Any, mid: int, codes: Any, _p: Any) -> None:
        with self._lock:
            if self._subscribing is not None and self._subscribing[0] == mid:
                self._subscribed_link = self._subscribing[1]
        self._on_subscribed([str(r) for r in codes if r.is_failure])

    def _disconnected(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self._live = None
        self._on_disconnected(str(reason))

    def _pre_connect(self, client: Any, _u: Any) -> None:
        """paho's (re)connect, the old socket closed: pick the next broker of the list (the first after a success)."""
        with self._lock:
            self._live = None
            self.host, self.port = self.brokers[self._attempt % len(self.brokers)]
            self._attempt += 1
        # paho's public host/port setters refuse in the CONNECTING state reconnect() has just set, though the
        # socket is closed: write the two fields connect_async() writes (paho 2.x; the range pins <3)
        client._host, client._port = self.host, self.port

    def _connect_failed(self, _c: Any, _u: Any) -> None:
        # paho calls this inside its ``except OSError``: the exception being handled is the reason
        exc = sys.exc_info()[1]
        self._on_unreachable(self.address, f"{type(exc).__name__}: {exc}" if exc else "connection failed")

    def _message(self, _c: Any, _u: Any, msg: Any) -> None:
        if self._on_delivery is None:
            self._on_message(msg.topic, bytes(msg.payload))
            return
        self._on_delivery(Delivery(msg.topic, bytes(msg.payload), msg.mid, msg.qos, bool(msg.retain),
                                   self._live or 0))

    @property
    def address(self) -> str:
        """``host:port`` of the broker in use (or last tried), for messages."""
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._live is not None

    @property
    def subscribed(self) -> bool:
        """Connected, and the broker acknowledged this connection's subscriptions: from here on every message
        matching them is delivered (or, for a persistent session, queued while away). Between the CONNACK and
        the SUBACK of a first connection a message published meanwhile matches no subscription yet."""
        with self._lock:
            return self._live is not None and self._subscribed_link == self._live

    def _connect_options(self) -> dict[str, Any]:
        if self.persistence is None:
            return {}
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.persistence.session_expiry_s
        properties.ReceiveMaximum = self.persistence.receive_maximum
        return {"clean_start": False, "properties": properties}

    def start(self, *, background: bool = False) -> MqttSession:
        """Connect and start paho's network thread. By default the first connect blocks (up to the socket
        timeout) and raises ``error`` when it fails; ``background=True`` returns at once and keeps trying
        every broker in turn (``on_unreachable`` per failed attempt) until :meth:`close`."""
        if background:
            self._client.connect_async(self.host, self.port, keepalive=KEEPALIVE_S, **self._connect_options())
            self._client.loop_start()
            return self
        try:
            self._client.connect(self.host, self.port, keepalive=KEEPALIVE_S, **self._connect_options())
        except OSError as exc:
            raise self._error(f"cannot reach the broker at {self.address}: {exc}") from exc
        self._client.loop_start()
        return self

    def ack(self, delivery: Delivery) -> bool:
        """Acknowledge ``delivery`` (persistent sessions: the broker forgets it). False, and nothing sent, when
        the connection it came on is gone: a mid names a message only on its own connection, and the broker
        sends the message again on the next one."""
        with self._lock:  # against on_disconnect / on_pre_connect, so no PUBACK reaches a newer connection
            if delivery.link != self._live or delivery.qos == 0:
                return False
            self._client.ack(delivery.mid, delivery.qos)
            return True

    def publish(self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False) -> Any:
        """Publish through the session; paho's ``MQTTMessageInfo`` (its ``mid`` matches ``on_published``)."""
        return self._client.publish(topic, payload, qos=qos, retain=retain)

    def close(self) -> None:
        """Send DISCONNECT and join paho's network thread."""
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttSession:
        return self.start()

    def __exit__(self, _type: type[BaseException] | None, _exc: BaseException | None,
                 _tb: TracebackType | None) -> None:
        self.close()
