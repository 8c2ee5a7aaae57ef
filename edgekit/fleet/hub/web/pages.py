"""The dashboard: server-rendered pages over the same views as the JSON API.

- ``/``: the fleet table and the drift by model version (reads the devices table and the newest
  alerts, never the results or the metrics history).
- ``/cohorts/{name}``: one model version's drift now and over time (:mod:`.cohorts`).
- ``/devices/{id}``: charts over its recent metrics (fps, latency, drift score per signal) and
  detections per class, its alerts, events (with thumbnails) and results.
- ``/events`` and ``/alerts``: filtered lists (a GET form: device, kind, since).

Detections per class are counted from the device's results inside the chart's time window, one
bounded query on the ``(device, ts)`` index (at most :data:`CLASS_RESULTS` rows): only a device
page pays it, the fleet page never does, and it needs no aggregate table kept at ingest. When
the window holds more results than that, the chart says it covers the newest ones.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from edgekit.fleet.hub.store import Store
from edgekit.fleet.hub.web import charts, cohorts, views
from edgekit.fleet.hub.web.cohort_page import cohort_page, cohort_table
from edgekit.fleet.hub.web.html import NONE, ago, device_link, esc, number, page, state, table, when
from edgekit.fleet.hub.web.models import DeviceDetailOut, DeviceOut, EventOut
from edgekit.fleet.hub.web.thumbnail import render as thumbnail

REFRESH_S = 10
CLASS_RESULTS = 5000
LIST_LIMIT = 200
_ENVELOPE = frozenset({"v", "device", "seq", "boot", "ts", "kind", "thumbnail"})


def parse_since(text: str) -> float | None:
    """A form's ``since``: Unix seconds or an ISO 8601 time (UTC unless it names a zone); "" means none."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)  # ValueError names the text
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def _summary(payload: dict[str, Any]) -> str:
    fields = {k: v for k, v in payload.items() if k not in _ENVELOPE}
    return esc(" ".join(f"{k}={json.dumps(v, separators=(',', ':'))}" for k, v in fields.items())[:400])


def fleet_table(devices: list[DeviceOut]) -> str:
    headers = ("Device", "Online", "Model", "fps", "Latency p50 / p95 (ms)", "Outbox", "Last seen", "Drift",
               "Open alerts", "Missing seqs")
    return table(headers, [_fleet_row(d) for d in devices], numeric=frozenset({3, 4, 5, 8, 9}),
                 empty="no device has reported yet")


def _model(d: DeviceOut) -> str:
    return esc(f"{d.model.name} {d.model.version} ({d.model.precision})") if d.model else NONE


def _fleet_row(d: DeviceOut) -> tuple[str, ...]:
    oldest = d.outbox.oldest_age_s
    return (device_link(d.id), '<span class="on">online</span>' if d.online else '<span class="off">offline</span>',
            _model(d), number(d.fps), f"{number(d.latency_ms.p50)} / {number(d.latency_ms.p95)}",
            number(d.outbox.pending, 0) + (f' <span class="muted">oldest {number(oldest, 0)} s</span>'
                                           if oldest is not None else ""),
            ago(d.last_seen), state(d.drift_state),
            f'<span class="raised">{d.open_alerts}</span>' if d.open_alerts else "0", number(d.missing_seqs, 0))


def events_table(events: list[EventOut], *, with_device: bool = True) -> str:
    headers = ("Time", "Device", "Seq", "Kind", "What", "Thumbnail") if with_device else \
        ("Time", "Seq", "Kind", "What", "Thumbnail")
    rows = [((when(e.ts), device_link(e.device)) if with_device else (when(e.ts),))
            + (esc(e.seq), state(e.kind) if e.kind == "alert" else esc(e.kind), _summary(e.payload),
               thumbnail(e.payload)) for e in events]
    return table(headers, rows, empty="no events")


def alerts_table(alerts: list[Any]) -> str:
    rows = [(when(a.ts), device_link(a.device), esc(a.kind), state(a.state),
             esc(json.dumps(a.detail, separators=(",", ":"))[:300])) for a in alerts]
    return table(("Time", "Device", "Kind", "State", "Detail"), rows, empty="no alerts")


def device_charts(store: Store, found: DeviceDetailOut) -> str:
    series = found.series
    fps = {"fps": [(p.ts, p.fps) for p in series]}
    lat = {"p50": [(p.ts, p.latency_p50_ms) for p in series], "p95": [(p.ts, p.latency_p95_ms) for p in series]}
    signals = sorted({name for p in series for name in p.drift_scores})
    drift = {name: [(p.ts, p.drift_scores.get(name)) for p in series] for name in signals}
    if series:
        start, end = series[0].ts, series[-1].ts
    else:
        start = end = found.results[0].ts if found.results else 0.0
    rows = store.results(device=found.id, since=start, limit=CLASS_RESULTS) if found.results else []
    if rows:
        start, end = min(start, rows[-1].ts), max(end, rows[0].ts)
    title = "Detections per class" + (f" (newest {CLASS_RESULTS} results)" if len(rows) >= CLASS_RESULTS else "")
    classes = charts.per_class(((r.ts, r.payload) for r in rows), start=start, end=end)
    return ('<div class="charts">' + charts.line_chart("Frames per second", fps, unit="fps")
            + charts.line_chart(f"Latency ({views.LATENCY_STAGE})", lat, unit="ms")
            + charts.line_chart(title, classes, unit="per bucket")
            + charts.line_chart("Drift score (PSI) per signal", drift, unit="PSI") + "</div>")


def device_page(store: Store, found: DeviceDetailOut) -> str:
    facts = [("Online", "yes" if found.online else "no"), ("Model", _model(found)),
             ("Agent", esc(found.agent) if found.agent else NONE),
             ("Last seen", ago(found.last_seen)), ("fps", number(found.fps)),
             ("Latency p50 / p95 (ms)", f"{number(found.latency_ms.p50)} / {number(found.latency_ms.p95)}"),
             ("Outbox pending", number(found.outbox.pending, 0)), ("Drift", state(found.drift_state)),
             ("Open alerts", esc(found.open_alerts)), ("Missing seqs", number(found.missing_seqs, 0))]
    results = [(when(r.ts), esc(r.seq), esc(f"{r.model.name} {r.model.version}"),
                esc(", ".join(charts.labels_of(r.payload))) or NONE) for r in found.results]
    return (f"<h1>{esc(found.id)}</h1>" + table(("Device", "Now"), [(esc(k), v) for k, v in facts])
            + "<h2>Over time</h2>" + device_charts(store, found)
            + "<h2>Alerts</h2>" + alerts_table(found.alerts)
            + "<h2>Recent events</h2>" + events_table(found.events, with_device=False)
            + "<h2>Recent results</h2>" + table(("Time", "Seq", "Model", "Found"), results, empty="no results"))


def _filters(action: str, device: str, kind: str, since: str) -> str:
    return (f'<form method="get" action="{action}"><label>Device<input name="device" value="{esc(device)}"></label>'
            f'<label>Kind<input name="kind" value="{esc(kind)}"></label><label>Since (Unix s or ISO 8601, UTC)'
            f'<input name="since" value="{esc(since)}"></label><button type="submit">Filter</button></form>')


def router() -> APIRouter:
    pages = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

    @pages.get("/")
    def fleet(request: Request) -> HTMLResponse:
        store: Store = request.app.state.store
        found = store.devices()
        devices = views.fleet(store, found)
        note = f'<p class="muted">{len(devices)} devices.</p>'
        drift = "<h2>Drift by model version</h2>" + cohort_table(cohorts.cohorts(found, request.app.state.rules))
        return HTMLResponse(page("Fleet", "<h1>Fleet</h1>" + fleet_table(devices) + note + drift,
                                 refresh_s=REFRESH_S))

    @pages.get("/cohorts/{name:path}")
    def cohort(request: Request, name: str) -> HTMLResponse:
        found = cohorts.detail(request.app.state.store, name, request.app.state.rules)
        if found is None:
            body = f'<h1>Unknown cohort</h1><p class="error">No device runs {esc(name)}.</p>'
            return HTMLResponse(page("Unknown cohort", body), status_code=404)
        return HTMLResponse(page(f"Cohort {found.name}", cohort_page(found), refresh_s=REFRESH_S))

    @pages.get("/devices/{device_id}")
    def device(request: Request, device_id: str) -> HTMLResponse:
        store: Store = request.app.state.store
        found = views.detail(store, device_id)
        if found is None:
            body = f'<h1>Unknown device</h1><p class="error">The hub never heard from {esc(device_id)}.</p>'
            return HTMLResponse(page("Unknown device", body), status_code=404)
        return HTMLResponse(page(found.id, device_page(store, found), refresh_s=REFRESH_S))

    @pages.get("/events")
    def events(request: Request, device: str = "", kind: str = "", since: str = "") -> HTMLResponse:
        return _listing(request, "events", device, kind, since)

    @pages.get("/alerts")
    def alerts(request: Request, device: str = "", kind: str = "", since: str = "") -> HTMLResponse:
        return _listing(request, "alerts", device, kind, since)

    return pages


def _listing(request: Request, what: str, device: str, kind: str, since: str) -> HTMLResponse:
    store: Store = request.app.state.store
    form = _filters(f"/{what}", device, kind, since)
    try:
        since_ts = parse_since(since)
    except ValueError:
        error = f'<p class="error">since: {esc(since)} is neither Unix seconds nor an ISO 8601 time.</p>'
        return HTMLResponse(page(what.title(), f"<h1>{what.title()}</h1>{form}{error}"), status_code=400)
    filters: dict[str, Any] = {"device": device.strip() or None, "kind": kind.strip() or None, "since": since_ts,
                               "limit": LIST_LIMIT}
    if what == "events":
        listing = events_table([views.event_out(e) for e in store.events(**filters)])
    else:
        listing = alerts_table(store.alerts(**filters))
    return HTMLResponse(page(what.title(), f"<h1>{what.title()}</h1>{form}{listing}"))
