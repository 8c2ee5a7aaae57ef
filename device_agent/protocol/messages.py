"""Status, metrics and replies: the device's other messages (results and events have their own modules)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from device_agent.protocol.base import Body, Record, omitted
from device_agent.protocol.results import ModelRef


class Status(Body):
    """Retained ``status``: online when connected, offline on a clean stop or as the broker's last will.

    Published by the MQTT client directly (it must exist before the link and as the will), not
    through the outbox, so it carries no ``seq`` or ``boot``: its own header is ``v``, ``device``, ``ts``.
    """

    topic_kind = "status"

    v: Literal[1] = Field(default=1, description="contract version")
    device: str = Field(description="device_id")
    state: Literal["online", "offline"] = Field(description="online, or offline (also the last will)")
    ts: float = Field(description="when this status was written, Unix seconds (for the will: when it connected)")
    agent: str = Field(description="edgekit-agent version")
    model: ModelRef = Field(description="the active model")
    measured_fps: float | None = omitted("frames per second the model ran at when the bundle was built (1000 / its "
                                         "p50 latency in ms on the build machine): what a hub compares the device's "
                                         "fps with; absent when the bundle carries no timing")


class StageLatency(Record):
    """Latency percentiles of one stage over the recent window, in ms."""

    p50: float = Field(description="median, ms")
    p90: float = Field(description="90th percentile, ms")
    p95: float = Field(description="95th percentile, ms")
    p99: float = Field(description="99th percentile, ms")


class SourceStats(Record):
    """One camera source's state and counters."""

    state: str = Field(description="source state (starting, streaming, stalled, reconnecting, stopped)")
    frames_read: int = Field(description="frames read since start")
    frames_dropped: int = Field(description="frames replaced by a newer one before inference took them")
    reconnects: int = Field(description="reopens since start")
    last_frame_age_s: float | None = Field(description="seconds since the last good frame; null before the first")


class LinkStats(Record):
    """The MQTT link's state and counters."""

    connected: bool = Field(description="the link is up")
    state: str = Field(description="connecting, up or down")
    since: float = Field(description="when the state last changed, Unix seconds")
    cause: str | None = Field(description="why it is not up; null when up")
    last_error: str | None = Field(description="the latest problem, kept after recovery")
    last_error_ts: float | None = Field(description="when last_error happened, Unix seconds")
    reconnects: int = Field(description="connections after the first")
    connect_failures: int = Field(description="failed connection attempts")
    disconnects: int = Field(description="established connections lost")
    refused: dict[str, str] = Field(description="'publish <topic>' or 'subscribe <topic>' -> the broker's reason, "
                                    "while refused")
    commands_busy: int = Field(description="commands answered busy")
    commands_dropped: int = Field(description="commands dropped without a reply in a flood")


class DriftHistogram(Record):
    """One drift signal over the rolling window: its histogram, latest score and state."""

    counts: list[int] = Field(description="frames (class_mix: labels seen) per bin over the window")
    edges: list[float] | None = omitted("interior bin edges, fixed by the bundle's baseline: bins are "
                                        "(-inf, e0], (e0, e1], ..., (e_last, inf) (numeric signals)")
    labels: list[str] | None = omitted("the label of each bin, 'other' last (class_mix)")
    baseline_counts: list[int] | None = omitted("the bundle baseline's count per bin (calibration frames; class_mix: "
                                                "labels): what score compares counts with, so a consumer can merge "
                                                "windows of several devices and score them the same way")
    score: float | None = Field(description="latest PSI against the baseline; null before the window's "
                                "minimum frames")
    state: Literal["ok", "warn", "alert"] = Field(description="the signal's drift state")


class Metrics(Body):
    """The heartbeat, every ``publish.metrics_interval_s`` and once at stop."""

    topic_kind = "metrics"

    fps: float = Field(description="frames inferred per second since start")
    frames: int = Field(description="frames inferred since start")
    dropped_frames: int = Field(description="frames dropped by every source (newest frame wins)")
    results: int = Field(description="results published since start")
    suppressed: int = Field(description="results the publish policy held back")
    latency_ms: dict[str, StageLatency] = Field(description="per-stage latency percentiles in ms over the recent "
                                                "window: capture_age, preprocess, infer, postprocess, publish")
    outbox_depth: int = Field(description="messages committed and not yet acknowledged")
    outbox_oldest_age_s: float | None = omitted("age of the oldest unacknowledged message, seconds; left out "
                                                "when the outbox is empty")
    cpu_percent: float = Field(description="process CPU use since the last heartbeat, percent of one core")
    rss_mb: float = Field(description="resident memory, MB")
    temperature_c: float | None = Field(description="SoC temperature, degrees C; null where unknown")
    sources: dict[str, SourceStats] = Field(description="per source name")
    mqtt: LinkStats = Field(description="the MQTT link")
    drift: dict[str, DriftHistogram] | None = omitted("per drift signal, when drift detection is on (the bundle "
                                                      "carries a baseline)")


ReplyState = Literal["running", "done", "error", "refused", "busy"]


class Reply(Body):
    """The outcome of one command on ``reply/<request_id>``: running, then done, or error/refused/busy."""

    topic_kind = "reply"

    request_id: str = Field(description="the command's request_id (also the last topic level)")
    state: ReplyState = Field(
        description="running (interim), done, error (it failed or was invalid), refused (it will not run), "
        "busy (too many commands waiting; send it again)")
    command: str = Field(description="command name")
    error: str | None = omitted("what failed (error)")
    reason: str | None = omitted("why it was refused or not run (refused, busy)")
    result: dict[str, Any] | None = omitted("the command's result (done); for bench the record "
                                            "'edgekit benchmark --json' prints per model")
    replay: bool | None = omitted("true when this is a repeat of the reply to an earlier request with this request_id")
