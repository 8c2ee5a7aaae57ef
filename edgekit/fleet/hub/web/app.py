"""The hub's HTTP app: the JSON API (documented at ``/openapi.json``), the dashboard, ``/metrics``, ``/healthz``.

Endpoints are sync functions: FastAPI runs them in its thread pool, and the store reads from
any thread (SQLite: a connection per thread over WAL; PostgreSQL: a reader connection). No
Swagger UI: it loads from a CDN, and the hub runs offline on a LAN; the dashboard links the
OpenAPI document instead.

Errors are JSON ``{"error": ..., "detail": [...]}``: a bad query value is a 422 naming the
parameter, an unknown device a 404 naming the id, a failing store a 503 naming the store.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from edgekit import __version__
from edgekit.errors import StoreError
from edgekit.fleet.hub.alerts.rules import AlertRules
from edgekit.fleet.hub.store import Store
from edgekit.fleet.hub.web import api, pages
from edgekit.fleet.hub.web.models import HealthOut


class Exposer(Protocol):
    """What serves ``/metrics``: the metrics part's registry in the exposition format."""

    def exposition(self) -> tuple[bytes, str]:
        """``(body, content type)``."""
        ...


def _invalid(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"parameter": ".".join(str(part) for part in e["loc"][1:]) or str(e["loc"][0]), "in": e["loc"][0],
               "message": e["msg"], "input": e.get("input")} for e in exc.errors()]
    named = "; ".join(f"{e['parameter']}: {e['message']} (got {e['input']!r})" for e in errors)
    return JSONResponse({"error": f"invalid request: {named}", "detail": errors}, status_code=422)


def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)


def _store_failed(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=503)


def create_app(store: Store, *, metrics: Exposer | None = None, rules: AlertRules | None = None) -> FastAPI:
    """The hub's ASGI app over ``store``; ``metrics`` serves ``GET /metrics`` when given; ``rules`` are the
    drift thresholds cohorts are judged by (those of the alert engine; the defaults when not given)."""
    app = FastAPI(title="EdgeKit hub", version=__version__, docs_url=None, redoc_url=None,
                  description="Every device's results, events, metrics and alerts, as stored by `edgekit hub`.")
    app.state.store = store
    app.state.rules = rules or AlertRules()
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(StoreError, _store_failed)
    app.include_router(api.router())
    app.include_router(pages.router())

    @app.get("/healthz", response_model=HealthOut, tags=["health"], summary="The hub answers and its store reads")
    def healthz() -> HealthOut:
        store.counters()
        return HealthOut(status="ok", store=store.url)

    if metrics is not None:
        exposer = metrics

        @app.get("/metrics", tags=["metrics"], response_class=Response,
                 summary="Prometheus exposition format", responses={200: {"content": {"text/plain": {}}}})
        def prometheus() -> Response:
            body, content_type = exposer.exposition()
            return Response(body, media_type=content_type)

    return app
