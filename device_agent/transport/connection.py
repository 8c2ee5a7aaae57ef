"""How the agent's MQTT connection is set up: the settings, the keepalive, the paho client.

Split from :mod:`device_agent.transport.publisher` so that the publisher reads as what it
does with a connection (drain the outbox, take commands), and the choices made once per
connection (protocol, credentials, TLS, last will, reconnect delays, keepalive) sit together.

Half-open links: paho pings after ``keepalive`` seconds without traffic and gives up one
more ``keepalive`` after an unanswered ping, checking once a second, so it notices a broker
that stopped answering only 1-2 x keepalive + 1 s later (measured: 3.9 s at keepalive 2).
The agent therefore gives paho (and the broker) half the configured keepalive, which puts
detection within ``keepalive + 1 s``, inside 1.5 x keepalive for any keepalive >= 2 s; the
broker in turn drops a silent device (and sends its will) after 0.75 x keepalive.
"""

from __future__ import annotations

from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

AUTH_FAILURES = {134: "bad user name or password", 135: "not authorized", 4: "bad user name or password",
                 5: "not authorized"}  # MQTT 5 reason codes; MQTT 3.1.1 CONNACK return codes 4 and 5
"""CONNACK codes that mean the credentials were refused: retrying cannot help."""
STATUS_HEADROOM = 10
"""paho's in-flight window beyond the publisher's own, for the retained status messages."""


def paho_keepalive_s(keepalive_s: int) -> int:
    """The keepalive given to paho so that a half-open link is noticed within 1.5 x ``keepalive_s``."""
    return max(1, keepalive_s // 2)


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

    def where(self) -> str:
        """The broker and the user, for messages a person reads."""
        user = self.username if self.username is not None else "(anonymous)"
        return f"broker {self.host}:{self.port} as user {user!r}"


RECONNECT_MAX_S = 10
"""paho's reconnect backoff doubles from 1 s up to this. 10 s, not paho's 120 s (or the 30 s used before):
after an outage a device is publishing again within 10 s of the broker's return, and a fleet of 1000
devices still makes at most 100 connection attempts a second against a broker that is down."""

def new_client(settings: MqttSettings, *, will_topic: str, will_payload: bytes, max_inflight: int) -> mqtt.Client:
    """A paho client set up for ``settings``, with a retained last will; not connected, no callbacks yet."""
    protocol = mqtt.MQTTv5 if settings.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                         protocol=protocol)
    client.max_inflight_messages_set(max_inflight + STATUS_HEADROOM)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls_ca:
        client.tls_set(ca_certs=settings.tls_ca, certfile=settings.tls_cert, keyfile=settings.tls_key)
    client.will_set(will_topic, will_payload, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=RECONNECT_MAX_S)
    return client
