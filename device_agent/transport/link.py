"""The MQTT link's state, told once per change: a log line, an event when the link is back, metrics.

paho retries a lost connection every 1-10 s for as long as it takes. Logging each attempt
buries the cause under hundreds of identical lines; logging none (as before) left an agent
that "just stopped publishing". So :class:`LinkMonitor` logs at WARNING when the state or
the cause changes (up -> down, a new cause while down, down -> up), counts the rest, and
hands back one ``mqtt`` event per outage, built when the link is back (the outbox holds it
until it is acknowledged, like any message). The same goes for refusals: the first PUBACK
or SUBACK refusal per topic is logged and raised as an event, the repeats are counted.

Everything here runs in paho's network thread: it only takes a lock and formats strings.
The causes are written for a person (:func:`connect_error_cause`, :func:`disconnect_cause`).
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from typing import Any

from device_agent.protocol.events import MqttEvent

log = logging.getLogger("edgekit.agent")


def connect_error_cause(exc: BaseException | None, *, host: str, port: int, tls_ca: str | None) -> str:
    """Why a connection attempt failed, in words that say what to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"TLS certificate verification failed: {exc.verify_message}; the broker's certificate is not "
                f"signed by the CA in mqtt.tls.ca ({tls_ca}), or does not name host {host!r}")
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {host}:{port} failed: {exc.reason or exc}; is port {port} a TLS listener?"
    if isinstance(exc, ConnectionResetError) and tls_ca:
        return (f"the broker reset the connection during the TLS handshake: port {port} looks like a plaintext "
                "listener (use the broker's TLS port, or remove mqtt.tls)")
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host {host!r}: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused: nothing listens on {host}:{port}"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"no answer from {host}:{port} (connection timed out)"
    if isinstance(exc, OSError):
        return f"cannot connect to {host}:{port}: {exc.strerror or exc}"
    return f"cannot connect to {host}:{port}: {exc!r}" if exc is not None else f"cannot connect to {host}:{port}"


def closed_before_connack_cause(*, port: int, tls_ca: str | None) -> str:
    """The broker closed the socket before answering CONNECT: with Mosquitto, typically plaintext to a TLS port."""
    hint = (f"a plaintext client on a TLS port gets this: if port {port} is a TLS listener, set mqtt.tls.ca"
            if not tls_ca else "check the broker's log for why it dropped the connection")
    return f"the broker closed the connection before answering CONNECT ({hint})"


def disconnect_cause(reason: Any, *, from_broker: bool, keepalive_s: float) -> str:
    """Why an established connection ended."""
    name = getattr(reason, "getName", lambda: str(reason))()
    if name == "Keep alive timeout":
        return (f"half-open connection: no answer to the keepalive ping within {keepalive_s:g} s "
                "(the broker or the network stopped responding)")
    if from_broker:
        code = getattr(reason, "value", None)
        return f"the broker closed the session: {name}" + (f" (0x{code:02X})" if isinstance(code, int) else "")
    return "connection lost: the broker went away or the network dropped"


def reason_words(reason: Any) -> str:
    """``Not authorized (0x87)`` from a paho ReasonCode."""
    code = getattr(reason, "value", None)
    return f"{reason} (0x{code:02X})" if isinstance(code, int) else str(reason)


class LinkMonitor:
    """Thread-safe state of one MQTT link; see the module docstring."""

    def __init__(self, where: str) -> None:
        self.where = where
        self._lock = threading.Lock()
        self.state = "connecting"  # connecting -> up <-> down
        self.cause: str | None = None  # why it is not up
        self.last_error: str | None = None  # the latest problem, kept after recovery (with last_error_ts)
        self.last_error_ts: float | None = None
        self.since = time.time()  # wall time of the last state change
        self._since_mono = time.monotonic()
        self._first_cause: str | None = None
        self._failed_attempts = 0
        self.connects = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.refused: dict[str, str] = {}  # "publish edgekit/v1/cam-01/events" -> reason, until accepted again

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def _problem(self, cause: str) -> None:
        self.last_error, self.last_error_ts = cause, time.time()

    def _go_down(self, state: str, cause: str) -> None:
        if self.state == "up" or self._first_cause is None:
            self.since, self._since_mono = time.time(), time.monotonic()
            self._first_cause, self._failed_attempts = cause, 0
        self.state, self.cause = state, cause

    def failed(self, cause: str, *, retrying: bool = True) -> None:
        """A connection attempt failed (refused, DNS, TLS, closed before CONNACK, bad credentials)."""
        with self._lock:
            self.connect_failures += 1
            changed = cause != self.cause
            self._go_down("down" if self.state != "connecting" else "connecting", cause)
            self._failed_attempts += 1
            self._problem(cause)
        if changed and retrying:
            log.warning("MQTT: cannot connect to %s: %s; retrying with backoff "
                        "(logged again only if the cause changes)",
                        self.where, cause)
        elif changed:
            log.warning("MQTT: cannot connect: %s", cause)

    def lost(self, cause: str) -> None:
        """An established connection ended."""
        with self._lock:
            self.disconnects += 1
            self._go_down("down", cause)
            self._problem(cause)
        log.warning("MQTT: link to %s lost: %s; reconnecting", self.where, cause)

    def up(self) -> MqttEvent | None:
        """The link is up; return the ``mqtt`` event for the outage it ends, if there was one."""
        with self._lock:
            self.connects += 1
            was, cause, first = self.state, self.cause, self._first_cause
            attempts, since, down_s = self._failed_attempts, self.since, time.monotonic() - self._since_mono
            self.state, self.cause, self._first_cause = "up", None, None
            self.since, self._since_mono = time.time(), time.monotonic()
        if first is None:  # connected at the first try
            log.info("MQTT: connected to %s", self.where)
            return None
        log.info("MQTT: link to %s is back after %.1f s %s (cause: %s; %d failed attempt(s))",
                    self.where, down_s, "down" if was == "down" else "without a connection", first, attempts)
        return MqttEvent(state="restored", was=was, cause=first, last_cause=cause, since=round(since, 3),
                         duration_s=round(down_s, 3), failed_attempts=attempts)

    def refusal(self, action: str, topic: str, reason: Any, *, refused_seq: int | None = None,
                retry_s: float | None = None) -> MqttEvent | None:
        """A PUBACK/SUBACK failure; the ``mqtt`` event (and a log line) only the first time per topic."""
        key, words = f"{action} {topic}", reason_words(reason)
        with self._lock:
            first = key not in self.refused
            self.refused[key] = words
            self._problem(f"broker refused {action} to {topic}: {words}")
        if not first:
            return None
        consequence = ("the rows stay in the outbox and are retried with backoff" if action == "publish"
                       else "this device receives no commands on it")
        log.warning("MQTT: %s refused %s to %s: %s; %s (further refusals there are counted, not logged)",
                    self.where, action, topic, words, consequence)
        code = getattr(reason, "value", None)
        return MqttEvent(state="publish-refused" if action == "publish" else "subscribe-refused", topic=topic,
                         reason=str(reason), code=code if isinstance(code, int) else None, refused_seq=refused_seq,
                         retry_s=retry_s)

    def accepted(self, action: str, topic: str) -> None:
        """A publish/subscribe to a topic refused before went through."""
        key = f"{action} {topic}"
        with self._lock:
            was = self.refused.pop(key, None)
        if was is not None:
            log.warning("MQTT: %s accepts %s to %s again", self.where, action, topic)

    def stats(self) -> dict[str, Any]:
        """The ``mqtt`` part of the metrics heartbeat."""
        with self._lock:
            return {"connected": self.state == "up", "state": self.state, "since": round(self.since, 3),
                    "cause": self.cause, "last_error": self.last_error,
                    "last_error_ts": None if self.last_error_ts is None else round(self.last_error_ts, 3),
                    "reconnects": self.reconnects, "connect_failures": self.connect_failures,
                    "disconnects": self.disconnects, "refused": dict(self.refused)}
