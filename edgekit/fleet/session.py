"""One MQTT session for the host side: broker address, paho client, connect, subscribe, loop, shutdown.

Exists so that every fleet tool (``edgekit monitor``, remote commands, and next the hub and
rollouts) sets up its broker connection one way: the same ``HOST:PORT`` parsing and error
messages, MQTT 5, a subscription renewed on every (re)connect, paho's network loop in its own
thread, and a clean DISCONNECT before that thread is joined. What a tool does with the
messages stays in the tool: it passes callbacks that get plain values (topic and payload,
reason strings), never paho's objects, and that run in paho's thread, so they must not block.

paho-mqtt is imported when a session is made, not with this module, so the CLI starts (and
says what to install) on a host without it.
"""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

from edgekit.errors import EdgeKitError, MissingDependencyError, UsageError

KEEPALIVE_S = 30
"""Seconds between pings on an idle link."""


def parse_broker(text: str) -> tuple[str, int]:
    """``HOST:PORT`` as ``(host, port)``; :class:`UsageError` naming the value otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--broker {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1883")
    return host, int(port)


def _ignore(*_args: Any) -> None:
    pass


class MqttSession:
    """A paho client (MQTT 5) that subscribes to one topic filter on every connect; use as a context manager.

    Nothing touches the network until :meth:`start` (or ``with``). Callbacks, all optional:
    ``on_refused(reason)`` when the broker refuses the connection (CONNACK), ``on_message(topic,
    payload)``, ``on_subscribed(refusals)`` with the refused reason codes (empty when granted),
    ``on_published(mid, failed, reason)`` per PUBACK, ``on_disconnected(reason)``.
    """

    def __init__(self, broker: str, *, topic: str, purpose: str, client_id: str = "",
                 error: type[EdgeKitError] = EdgeKitError,
                 on_refused: Callable[[str], None] = _ignore,
                 on_message: Callable[[str, bytes], None] = _ignore,
                 on_subscribed: Callable[[list[str]], None] = _ignore,
                 on_published: Callable[[int, bool, str], None] = _ignore,
                 on_disconnected: Callable[[str], None] = _ignore) -> None:
        """``broker`` is ``HOST:PORT``; ``purpose`` names the tool in the "install paho-mqtt" error
        (``"edgekit monitor"``); ``error`` is raised when the broker cannot be reached."""
        try:
            import paho.mqtt.client as mqtt
        except ImportError as exc:
            raise MissingDependencyError("paho.mqtt", "agent", purpose) from exc
        self.host, self.port = parse_broker(broker)
        self.topic = topic
        self._error = error
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=mqtt.MQTTv5)

        def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
            if reason.is_failure:
                on_refused(str(reason))
            else:
                c.subscribe(self.topic, qos=1)

        client.on_connect = on_connect
        client.on_message = lambda _c, _u, msg: on_message(msg.topic, bytes(msg.payload))
        client.on_subscribe = lambda _c, _u, _mid, codes, _p: on_subscribed([str(r) for r in codes if r.is_failure])
        client.on_publish = lambda _c, _u, mid, reason, _p: on_published(mid, reason.is_failure, str(reason))
        client.on_disconnect = lambda _c, _u, _f, reason, _p: on_disconnected(str(reason))
        self._client = client

    @property
    def address(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    def start(self) -> MqttSession:
        """Connect (blocking, up to the socket timeout) and start paho's network thread."""
        try:
            self._client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            raise self._error(f"cannot reach the broker at {self.address}: {exc}") from exc
        self._client.loop_start()
        return self

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
