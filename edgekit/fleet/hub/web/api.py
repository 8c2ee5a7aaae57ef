"""The JSON API under ``/api``: sync endpoints (FastAPI runs them in its thread pool; the store reads
from any thread), every response a model from :mod:`.models`, so ``/openapi.json`` documents it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request

from edgekit.fleet.hub.alerts.rules import AlertRules
from edgekit.fleet.hub.store import Store
from edgekit.fleet.hub.web import cohorts, views
from edgekit.fleet.hub.web.models import (
    AlertsOut,
    CohortDetailOut,
    CohortsOut,
    DeviceDetailOut,
    DeviceOut,
    ErrorOut,
    EventsOut,
    ResultsOut,
    StatsOut,
)

MAX_LIMIT = 10_000

Device = Annotated[str | None, Query(description="only this device's", min_length=1)]
Kind = Annotated[str | None, Query(description="only this kind", min_length=1)]
Since = Annotated[float | None, Query(description="only those with ts >= since (Unix seconds)",
                                      allow_inf_nan=False)]
Limit = Annotated[int, Query(description="at most this many, newest first", ge=1, le=MAX_LIMIT)]


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _rules(request: Request) -> AlertRules:
    rules: AlertRules = request.app.state.rules
    return rules


def router() -> APIRouter:
    api = APIRouter(prefix="/api", tags=["api"], responses={422: {"model": ErrorOut}})

    @api.get("/devices", response_model=list[DeviceOut], summary="Every device, as the fleet table shows it")
    def devices(request: Request) -> list[DeviceOut]:
        return views.fleet(_store(request))

    @api.get("/devices/{device_id}", response_model=DeviceDetailOut, responses={404: {"model": ErrorOut}},
             summary="One device with its recent metrics, events, results and alerts")
    def device(request: Request, device_id: str) -> DeviceDetailOut:
        found = views.detail(_store(request), device_id)
        if found is None:
            raise HTTPException(404, f"unknown device {device_id!r}")
        return found

    @api.get("/results", response_model=ResultsOut, summary="Stored results, newest first")
    def results(request: Request, device: Device = None, since: Since = None, limit: Limit = 100) -> ResultsOut:
        rows = _store(request).results(device=device, since=since, limit=limit)
        return ResultsOut(results=[views.result_out(r) for r in rows])

    @api.get("/events", response_model=EventsOut, summary="Stored events, newest first")
    def events(request: Request, device: Device = None, kind: Kind = None, since: Since = None,
               limit: Limit = 100) -> EventsOut:
        rows = _store(request).events(device=device, kind=kind, since=since, limit=limit)
        return EventsOut(events=[views.event_out(e) for e in rows])

    @api.get("/alerts", response_model=AlertsOut, summary="Alerts raised and cleared, newest first")
    def alerts(request: Request, device: Device = None, kind: Kind = None, since: Since = None,
               limit: Limit = 100) -> AlertsOut:
        rows = _store(request).alerts(device=device, kind=kind, since=since, limit=limit)
        return AlertsOut(alerts=[views.alert_out(a) for a in rows])

    @api.get("/cohorts", response_model=CohortsOut,
             summary="Drift per cohort (model version): the online devices' latest windows merged per signal")
    def cohort_list(request: Request) -> CohortsOut:
        return cohorts.cohorts(_store(request).devices(), _rules(request))

    @api.get("/cohorts/{name:path}", response_model=CohortDetailOut, responses={404: {"model": ErrorOut}},
             summary="One cohort (<model>@<version>) now and its merged drift scores over time")
    def cohort(request: Request, name: str) -> CohortDetailOut:
        found = cohorts.detail(_store(request), name, _rules(request))
        if found is None:
            raise HTTPException(404, f"unknown cohort {name!r}: no device runs it")
        return found

    @api.get("/stats", response_model=StatsOut, summary="Totals: stored, duplicates dropped, missing, lost")
    def stats(request: Request) -> StatsOut:
        return StatsOut(**vars(_store(request).stats()))

    return api
