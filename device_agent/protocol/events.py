"""Events (``<root>/<device>/events``): one model per ``kind``, a discriminated union on it.

Each kind is what one part of the agent has to say: a camera changed state, a model was
loaded, the outbox dropped rows (``gap``) or moved a corrupt database aside, a command was
rejected, replayed or answered busy, a bench started or ended, a frame was refused, a rule
raised or cleared an alert, the MQTT link came back or the broker refused something, the frames
drifted from the calibration data (or came back to it).
``state`` says which of the kind's moments it is; fields that only one state has are
omitted in the others (:func:`~device_agent.protocol.base.omitted`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field

from device_agent.protocol.base import Body, Record, omitted


class EventBody(Body):
    """Base of every event: they all go to ``events``."""

    topic_kind = "events"


class CameraEvent(EventBody):
    """A camera source changed state (starting, streaming, stalled, reconnecting, stopped)."""

    kind: Literal["camera"] = Field(default="camera", description="event kind")
    source: str = Field(description="name of the source (sources[i].name in the config, or source<i>)")
    # "from" is the wire name; the Python name is from_ (a keyword), accepted when building
    from_: str = Field(validation_alias=AliasChoices("from", "from_"), serialization_alias="from",
                       description="state before the change")
    to: str = Field(description="state after the change")
    reason: str = Field(description="why it changed, in words")
    attempt: int = Field(description="reconnect attempt number (1, 2, ...) when reconnecting, else 0")


class ModelEvent(EventBody):
    """The agent loaded a model bundle."""

    kind: Literal["model"] = Field(default="model", description="event kind")
    state: Literal["loaded"] = Field(description="what happened to the model")
    name: str = Field(description="bundle name")
    version: str = Field(description="bundle version")
    sha256: str = Field(description="sha256 of the model file")
    precision: str = Field(description="precision the bundle runs at (fp32, fp16, int8)")


class OutboxEvent(EventBody):
    """The outbox database was corrupt and moved aside; a fresh one took its place."""

    kind: Literal["outbox"] = Field(default="outbox", description="event kind")
    state: Literal["recovered"] = Field(description="what happened to the outbox")
    moved_aside: str = Field(description="path the corrupt database was moved to (kept, never deleted)")


class GapEvent(EventBody):
    """The outbox bounds dropped unacknowledged messages: exactly which seqs are lost, and why."""

    kind: Literal["gap"] = Field(default="gap", description="event kind")
    first_seq: int = Field(description="lowest dropped seq")
    last_seq: int = Field(description="highest dropped seq (the runs in ranges lie between)")
    count: int = Field(description="number of messages dropped")
    ranges: list[list[int]] = Field(description="every run of dropped seqs as [first, last], inclusive")
    reason: Literal["age", "overflow"] = Field(description="which bound dropped them: outbox.max_age_s or max_rows")


class CommandEvent(EventBody):
    """A command that did not run normally: rejected, answered again (replayed), or refused as busy."""

    kind: Literal["command"] = Field(default="command", description="event kind")
    state: Literal["rejected", "replayed", "busy"] = Field(description="what happened to the command")
    command: str = Field(description="command name from the topic")
    request_id: str | None = Field(description="the payload's request_id, null when it could not be read")
    reason: str | None = omitted("why it was rejected or not run (rejected, busy)")
    first_received: float | None = omitted("when the request_id was first received, Unix seconds (replayed)")


class BenchEvent(EventBody):
    """A bench command started, failed or finished (inference pauses meanwhile)."""

    kind: Literal["bench"] = Field(default="bench", description="event kind")
    state: Literal["started", "failed", "finished"] = Field(description="where the bench is")
    request_id: str = Field(description="the bench command's request_id")
    error: str | None = omitted("why it failed (failed)")
    runs: int | None = omitted("timed runs (finished)")
    p50_ms: float | None = omitted("median latency in ms (finished)")


class FrameEvent(EventBody):
    """A frame could not be preprocessed and was skipped."""

    kind: Literal["frame"] = Field(default="frame", description="event kind")
    state: Literal["rejected"] = Field(description="what happened to the frame")
    source: str = Field(description="source the frame came from")
    frame_id: int = Field(description="frame id within its source")
    reason: str = Field(description="why it was rejected")


MAX_THUMBNAIL_BYTES = 45_000
"""Largest JPEG an alert may carry: base64 makes it 60,000 characters, and the event with its boxes
(:data:`MAX_THUMBNAIL_BOXES`) and envelope stays under the 64 KiB the agent accepts in a payload
(:data:`device_agent.protocol.commands.MAX_PAYLOAD_BYTES`), a size every broker's default takes."""
MAX_THUMBNAIL_BOXES = 20
"""Most boxes a thumbnail carries: the best-scoring ones."""


ThumbnailSkipped = Literal["rate_limited", "too_large", "encode_failed"]
"""Why a raised alert carries no thumbnail although thumbnails are on."""


class ThumbnailBox(Record):
    """One of the alert's detections, in thumbnail pixels."""

    label: str = Field(description="class label from the bundle")
    score: float = Field(description="confidence in [0, 1]")
    box: list[float] = Field(description="box [x1, y1, x2, y2] in thumbnail pixels (the frame's box, scaled)")


class Thumbnail(Record):
    """A small JPEG of the frame that raised an alert (opt-in: ``[thumbnails]`` in the agent's config)."""

    media_type: Literal["image/jpeg"] = Field(default="image/jpeg", description="the image's MIME type")
    width: int = Field(description="image width in pixels")
    height: int = Field(description="image height in pixels")
    data: str = Field(description="the JPEG, base64 (standard alphabet, padded); at most thumbnails.max_bytes "
                      "before encoding")
    boxes: list[ThumbnailBox] = Field(description="the detections that matched the rule, scaled into the image "
                                      "(empty for a classifier)")


class AlertEvent(EventBody):
    """A rule's label was seen N frames in a row (raised), or no longer (cleared); a raised one may carry a
    thumbnail of its frame."""

    kind: Literal["alert"] = Field(default="alert", description="event kind")
    rule: str = Field(description="rule name from the config")
    label: str = Field(description="label the rule watches")
    state: Literal["raised", "cleared"] = Field(
        description="raised once when the streak reaches N, cleared once when it ends")
    score: float | None = omitted("best matching score in the frame that raised it (raised)")
    frames: int | None = omitted("matching frames in a row when raised (raised)")
    source: str = Field(description="source of the frame that raised or cleared it")
    frame_id: int = Field(description="id of that frame")
    thumbnail: Thumbnail | None = omitted("a small JPEG of that frame with the matching boxes (raised, thumbnails "
                                          "on)")
    thumbnail_skipped: ThumbnailSkipped | None = omitted(
        "why a raised alert has no thumbnail although thumbnails are on: another was sent less than "
        "min_interval_s ago, no JPEG fits max_bytes, or the frame could not be encoded (raised, thumbnails on)")


class MqttEvent(EventBody):
    """The MQTT link is back after an outage (restored), or the broker refused a publish or subscribe."""

    kind: Literal["mqtt"] = Field(default="mqtt", description="event kind")
    state: Literal["restored", "publish-refused", "subscribe-refused"] = Field(description="what happened to the link")
    was: str | None = omitted("link state during the outage: down, or connecting if never connected (restored)")
    cause: str | None = omitted("first cause of the outage, in words (restored)")
    last_cause: str | None = omitted("cause at the last failed attempt (restored)")
    since: float | None = omitted("when the outage began, Unix seconds (restored)")
    duration_s: float | None = omitted("how long the link was down, seconds (restored)")
    failed_attempts: int | None = omitted("failed connection attempts during the outage (restored)")
    topic: str | None = omitted("topic the broker refused (refused)")
    reason: str | None = omitted("the broker's reason, in words (refused)")
    code: int | None = omitted("the broker's MQTT reason code (refused)")
    refused_seq: int | None = omitted("seq of the refused message; it stays in the outbox (publish-refused)")
    retry_s: float | None = omitted("seconds until it is retried (publish-refused)")


class DriftEvent(EventBody):
    """A drift signal changed state over the rolling window: ok, warn or alert (announced once per change)."""

    kind: Literal["drift"] = Field(default="drift", description="event kind")
    signal: str = Field(description="brightness, contrast, dynamic_range, blur, underexposed, overexposed, "
                        "top1_confidence, detections or class_mix")
    state: Literal["ok", "warn", "alert"] = Field(description="the signal's state now")
    previous: Literal["ok", "warn", "alert"] = Field(description="its state before")
    score: float = Field(description="PSI of the window's histogram against the bundle's baseline")
    threshold: float = Field(description="the threshold crossed: warn or alert, upwards or (less the hysteresis) "
                             "downwards")
    window: int = Field(description="frames in the window scored")
    p_value: float | None = omitted("chi-square p-value of the class mix against the baseline (class_mix)")


EVENT_TYPES: tuple[type[EventBody], ...] = (CameraEvent, ModelEvent, OutboxEvent, GapEvent, CommandEvent,
                                             BenchEvent, FrameEvent, AlertEvent, MqttEvent, DriftEvent)
"""Every event kind, in the order the README lists them."""

Event = Annotated[
    CameraEvent | ModelEvent | OutboxEvent | GapEvent | CommandEvent | BenchEvent | FrameEvent | AlertEvent | MqttEvent
    | DriftEvent,
    Field(discriminator="kind"),
]
"""Any event, told apart by ``kind``."""
