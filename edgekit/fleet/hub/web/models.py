"""The JSON API's response models: what ``/openapi.json`` documents and what every endpoint returns.

Field names are an acceptance interface (issue 17): add fields, do not rename these.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

DriftState = Literal["pending", "ok", "warn", "alert"]
SignalState = Literal["ok", "warn", "alert"]


class ModelOut(BaseModel):
    name: str = Field(description="bundle name")
    version: str = Field(description="bundle version")
    precision: str = Field(description="precision the bundle runs at (fp32, fp16, int8)")


class LatencyOut(BaseModel):
    p50: float | None = Field(description="median inference latency, ms (the latest metrics' infer stage)")
    p95: float | None = Field(description="95th percentile inference latency, ms")


class OutboxOut(BaseModel):
    pending: int | None = Field(description="messages committed on the device and not yet acknowledged")
    oldest_age_s: float | None = Field(description="age of the oldest pending message, seconds, when the "
                                       "metrics carry it")


class DeviceOut(BaseModel):
    """One device as the fleet table shows it."""

    id: str = Field(description="device id")
    online: bool = Field(description="its latest retained status says online")
    model: ModelOut | None = Field(description="the model it runs (status, or the newest result)")
    agent: str | None = Field(description="edgekit-agent version")
    last_seen: float | None = Field(description="when the hub last heard from it, Unix seconds (hub clock)")
    fps: float | None = Field(description="frames inferred per second (latest metrics)")
    latency_ms: LatencyOut = Field(description="inference latency percentiles, ms (latest metrics)")
    outbox: OutboxOut = Field(description="the device's outbox (latest metrics)")
    drift_state: DriftState | None = Field(description="the worst drift signal state in the latest metrics; "
                                           "pending while the window holds too few frames for a verdict; "
                                           "null when the device does not report drift")
    open_alerts: int = Field(description="alerts whose latest state is raised")
    missing_seqs: int = Field(description="seqs neither received nor announced lost (yet)")


class SeriesPoint(BaseModel):
    ts: float = Field(description="the metrics message's time, Unix seconds")
    fps: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    outbox_pending: int | None
    drift_scores: dict[str, float | None] = Field(description="drift signal -> its PSI score")


class ResultOut(BaseModel):
    device: str
    seq: int
    boot: str = Field(description="the agent run that sent it")
    ts: float = Field(description="the device's time, Unix seconds")
    model: ModelOut
    result: dict[str, Any] = Field(description="the decoded output (classifications, detections or raw)")
    frame: dict[str, Any] | None = Field(description="the frame it is about")
    latency_ms: dict[str, float] | None = Field(description="per-stage latency of this inference, ms")
    payload: dict[str, Any] = Field(description="the whole message as received")


class EventOut(BaseModel):
    device: str
    seq: int
    boot: str
    ts: float
    kind: str = Field(description="event kind (alert, gap, drift, camera, model...)")
    payload: dict[str, Any] = Field(description="the whole message as received")


class AlertOut(BaseModel):
    device: str
    kind: str = Field(description="rule (a device's alert event), drift, offline, backlog, fps...")
    state: str = Field(description="raised or cleared")
    ts: float
    detail: dict[str, Any]
    seq: int | None = Field(description="the device event's seq for a rule alert; null for the hub's own")


class SeqAccountOut(BaseModel):
    received: int
    missing: list[tuple[int, int]] = Field(description="runs of missing seqs [first, last]")
    lost: list[tuple[int, int]] = Field(description="runs the device announced lost [first, last]")


class DeviceDetailOut(DeviceOut):
    """One device with its recent history."""

    status: dict[str, Any] | None = Field(description="the latest retained status payload")
    metrics: dict[str, Any] | None = Field(description="the latest metrics payload")
    series: list[SeriesPoint] = Field(description="recent metrics, oldest first")
    events: list[EventOut] = Field(description="recent events, newest first")
    results: list[ResultOut] = Field(description="recent results, newest first")
    alerts: list[AlertOut] = Field(description="recent alerts, newest first")
    seqs: SeqAccountOut | None = Field(description="its seq accounting")


class ResultsOut(BaseModel):
    results: list[ResultOut]


class EventsOut(BaseModel):
    events: list[EventOut]


class AlertsOut(BaseModel):
    alerts: list[AlertOut]


class StatsOut(BaseModel):
    results_stored: int = Field(description="results stored since the store was created (retention does not "
                                "lower it)")
    events_stored: int
    metrics_stored: int
    duplicates_dropped: int = Field(description="redelivered (device, seq) not stored again")
    missing: int = Field(description="seqs neither received nor announced lost, every device")
    lost: int = Field(description="seqs the devices announced lost (gap events)")
    devices: int


class HealthOut(BaseModel):
    status: Literal["ok"]
    store: str = Field(description="the store's URL, without a password")


class ErrorOut(BaseModel):
    error: str = Field(description="what was wrong, naming the parameter or the id")
    detail: list[dict[str, Any]] | None = None


class CohortSignalOut(BaseModel):
    """One drift signal of a cohort: the windows of its devices summed, scored against the shared baseline."""

    psi: float = Field(description="PSI of the summed window against the baseline")
    state: SignalState = Field(description="by the hub's drift thresholds (class_mix: only when "
                                                  "the chi-square test also says it differs)")
    frames: int = Field(description="frames (class_mix: labels) in the summed window")
    counts: list[int] = Field(description="the devices' window counts per bin, summed")
    baseline_counts: list[int] = Field(description="the bundle baseline's count per bin")
    devices: list[str] = Field(description="the devices whose window was summed")
    edges: list[float] | None = Field(description="interior bin edges (numeric signals)")
    labels: list[str] | None = Field(description="bin labels (class_mix)")
    p_value: float | None = Field(description="chi-square p-value of the summed class mix (class_mix only)")


class CohortOut(BaseModel):
    """The devices running one model version, their latest drift windows merged per signal."""

    name: str = Field(description="``<model>@<version>``, the cohort alerts' ``detail.cohort``")
    model: str
    version: str
    devices: list[str] = Field(description="online devices of the cohort with drift in their latest metrics")
    state: DriftState = Field(description="the worst signal state; pending while no signal has enough devices "
                              "(min_devices) with a scored window")
    signals: dict[str, CohortSignalOut] = Field(description="drift signal -> its merged window and score")


class CohortsOut(BaseModel):
    cohorts: list[CohortOut]
    warn: float = Field(description="PSI from which a signal is warn")
    alert: float = Field(description="PSI from which a signal is alert (and a cohort drift alert is raised)")
    min_devices: int = Field(description="devices with a scored window a signal needs before it is judged")


class CohortPoint(BaseModel):
    """The cohort's merged score in one time bucket: each device's newest heartbeat in it, summed."""

    ts: float = Field(description="the newest heartbeat in the bucket, Unix seconds (device clock)")
    devices: int = Field(description="devices with a heartbeat in the bucket")
    psi: dict[str, float] = Field(description="drift signal -> PSI of the summed windows")
    states: dict[str, SignalState] = Field(description="drift signal -> its state")


class CohortDetailOut(CohortOut):
    """One cohort now, and its merged scores over time."""

    members: list[str] = Field(description="every device whose latest model is this version, online or not")
    series: list[CohortPoint] = Field(description="merged scores per time bucket, oldest first")
