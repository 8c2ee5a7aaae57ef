"""Store records to the API's models: one place that decides what a device's fps, latency, outbox and
drift state are, used by the JSON API and the dashboard alike."""

from __future__ import annotations

from typing import Any, cast

from edgekit.fleet.hub.store import Alert, Device, ModelInfo, Store, StoredEvent, StoredMetrics, StoredResult
from edgekit.fleet.hub.web.counts import missing_counts, open_alert_counts
from edgekit.fleet.hub.web.models import (
    AlertOut,
    DeviceDetailOut,
    DeviceOut,
    DriftState,
    EventOut,
    LatencyOut,
    ModelOut,
    OutboxOut,
    ResultOut,
    SeqAccountOut,
    SeriesPoint,
)

LATENCY_STAGE = "infer"
"""The stage whose percentiles the fleet shows as "latency"."""

DRIFT_ORDER: dict[str, int] = {"pending": -1, "ok": 0, "warn": 1, "alert": 2}

SERIES_POINTS = 360
"""Metrics messages a device page charts (an hour at the agent's default 10 s heartbeat)."""

RECENT = 50
"""Events, results and alerts a device page lists."""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def latency(metrics: dict[str, Any] | None) -> LatencyOut:
    stage = ((metrics or {}).get("latency_ms") or {}).get(LATENCY_STAGE) or {}
    return LatencyOut(p50=_number(stage.get("p50")), p95=_number(stage.get("p95")))


def drift_scores(metrics: dict[str, Any] | None) -> dict[str, float | None]:
    drift = (metrics or {}).get("drift") or {}
    return {str(name): _number(signal.get("score")) for name, signal in drift.items() if isinstance(signal, dict)}


def drift_state(metrics: dict[str, Any] | None) -> DriftState | None:
    """The worst state among the drift signals that have a score; ``pending`` when none has one yet (the
    agent's window holds fewer frames than its ``min_frames``: no verdict, which is not ``ok``); None when the
    metrics carry no drift."""
    drift = (metrics or {}).get("drift") or {}
    signals = [signal for signal in drift.values() if isinstance(signal, dict)]
    worst: DriftState | None = "pending" if signals else None
    for signal in signals:
        found = str(signal.get("state"))
        if signal.get("score") is not None and DRIFT_ORDER.get(found, -2) > DRIFT_ORDER[worst or "pending"]:
            worst = cast(DriftState, found)
    return worst


def outbox(metrics: dict[str, Any] | None) -> OutboxOut:
    m = metrics or {}
    pending = m.get("outbox_depth")
    oldest = m.get("outbox_oldest_age_s")  # not in the contract yet: shown when an agent sends it
    return OutboxOut(pending=int(pending) if isinstance(pending, int) else None, oldest_age_s=_number(oldest))


def model_out(model: ModelInfo | None) -> ModelOut | None:
    return None if model is None else ModelOut(name=model.name, version=model.version, precision=model.precision)


def device_out(device: Device, open_alerts: int, missing: int) -> DeviceOut:
    return DeviceOut(id=device.id, online=device.online, model=model_out(device.model), agent=device.agent,
                     last_seen=device.last_seen, fps=_number((device.metrics or {}).get("fps")),
                     latency_ms=latency(device.metrics), outbox=outbox(device.metrics),
                     drift_state=drift_state(device.metrics), open_alerts=open_alerts, missing_seqs=missing)


def fleet(store: Store, devices: list[Device] | None = None) -> list[DeviceOut]:
    """Every device for the fleet table (no query over results or over every seq); ``devices`` when the
    caller read ``store.devices()`` already."""
    alerts, missing = open_alert_counts(store), missing_counts(store)
    return [device_out(d, alerts.get(d.id, 0), missing.get(d.id, 0))
            for d in (store.devices() if devices is None else devices)]


def result_out(r: StoredResult) -> ResultOut:
    frame, result, lat = r.payload.get("frame"), r.payload.get("result"), r.payload.get("latency_ms")
    return ResultOut(device=r.device, seq=r.seq, boot=r.boot, ts=r.ts, model=ModelOut(**vars(r.model)),
                     result=result if isinstance(result, dict) else {},
                     frame=frame if isinstance(frame, dict) else None,
                     latency_ms=lat if isinstance(lat, dict) else None, payload=r.payload)


def event_out(e: StoredEvent) -> EventOut:
    return EventOut(device=e.device, seq=e.seq, boot=e.boot, ts=e.ts, kind=e.kind, payload=e.payload)


def alert_out(a: Alert) -> AlertOut:
    return AlertOut(device=a.device, kind=a.kind, state=a.state, ts=a.ts, detail=a.detail, seq=a.seq)


def series_point(m: StoredMetrics) -> SeriesPoint:
    lat, box = latency(m.payload), outbox(m.payload)
    return SeriesPoint(ts=m.ts, fps=_number(m.payload.get("fps")), latency_p50_ms=lat.p50, latency_p95_ms=lat.p95,
                       outbox_pending=box.pending, drift_scores=drift_scores(m.payload))


def detail(store: Store, device_id: str) -> DeviceDetailOut | None:
    """One device with its recent metrics, events, results and alerts; None when the hub never heard of it."""
    device = store.device(device_id)
    if device is None:
        return None
    accounts = store.seq_accounts(device_id)
    account = accounts[0] if accounts else None
    summary = device_out(device, open_alert_counts(store, device_id).get(device_id, 0),
                         account.missing_count if account else 0)
    metrics = store.metrics(device=device_id, limit=SERIES_POINTS)
    return DeviceDetailOut(
        **summary.model_dump(), status=device.status, metrics=device.metrics,
        series=[series_point(m) for m in reversed(metrics)],
        events=[event_out(e) for e in store.events(device=device_id, limit=RECENT)],
        results=[result_out(r) for r in store.results(device=device_id, limit=RECENT)],
        alerts=[alert_out(a) for a in store.alerts(device=device_id, limit=RECENT)],
        seqs=None if account is None else SeqAccountOut(received=account.received, missing=list(account.missing),
                                                         lost=list(account.lost)))
