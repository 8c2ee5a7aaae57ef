"""The MQTT contract, version 1, as code: every topic, message and command (design.md, "MQTT contract").

The agent builds every message it publishes through these models and the host parses every
message it receives through :func:`parse`; the JSON Schema (:func:`schema_files`,
``edgekit protocol schema``) is generated from them.

- :mod:`.topics`: the topic tree, built and parsed.
- :mod:`.base`: the envelope, the exact-when-built / tolerant-when-parsed rule, :class:`ProtocolError`.
- :mod:`.results`, :mod:`.events`, :mod:`.messages`: what a device publishes.
- :mod:`.commands`: what a device accepts (the allow-list).
- :mod:`.wire`: parsing a received message; :mod:`.schema`: the JSON Schema files.

Cost on the hot path (``benchmarks/protocol.py``: interleaved rounds, minimum per result, on
the shared 2-core machine): a result with 5 classes costs 14 us to build through the models
against 4.3 us for the dict literal it replaced, one with 10 detections 22 us against 6.2 us.
That is 10-16 us more per published frame, under the ~20 us where ``model_construct`` (13-15
us, barely cheaper) would be worth its lost checks, so results are validated like every other
message. The dump to a JSON-ready dict (another 6-10 us) runs in the committer's thread, not
the inference loop's.
"""

from __future__ import annotations

from device_agent.errors import CommandError, ProtocolError
from device_agent.protocol.base import ENVELOPE_FIELDS, PROTOCOL_VERSION, Body, Envelope, body_of
from device_agent.protocol.commands import COMMANDS, BenchCommand, Command, parse_command, request_id_of
from device_agent.protocol.events import (
    EVENT_TYPES,
    AlertEvent,
    BenchEvent,
    CameraEvent,
    CommandEvent,
    DriftEvent,
    Event,
    FrameEvent,
    GapEvent,
    ModelEvent,
    MqttEvent,
    OutboxEvent,
    Thumbnail,
    ThumbnailBox,
)
from device_agent.protocol.messages import (
    DriftHistogram,
    LinkStats,
    Metrics,
    Reply,
    SourceStats,
    StageLatency,
    Status,
)
from device_agent.protocol.results import ClassScore, Decoded, DetectedBox, FrameRef, ModelRef, RawTensor, Result
from device_agent.protocol.topics import TOPIC_ROOT, Topic, Topics, parse_topic, subscription
from device_agent.protocol.wire import Received, parse

__all__ = [
    "COMMANDS", "ENVELOPE_FIELDS", "EVENT_TYPES", "PROTOCOL_VERSION", "TOPIC_ROOT", "AlertEvent", "BenchCommand",
    "BenchEvent",
    "Body", "CameraEvent", "ClassScore", "Command", "CommandError", "CommandEvent", "Decoded", "DetectedBox",
    "DriftEvent", "DriftHistogram",
    "Envelope", "Event", "FrameEvent", "FrameRef", "GapEvent", "LinkStats", "Metrics", "ModelEvent", "ModelRef",
    "MqttEvent", "OutboxEvent", "ProtocolError", "RawTensor", "Received", "Reply", "Result", "SourceStats",
    "StageLatency", "Status", "Thumbnail", "ThumbnailBox", "Topic", "Topics", "body_of", "parse", "parse_command",
    "parse_topic", "request_id_of", "subscription",
]
