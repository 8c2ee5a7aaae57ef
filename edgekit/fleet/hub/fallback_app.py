"""The smallest HTTP app the hub serves when its web package (:mod:`edgekit.fleet.hub.web`) is absent:
``/api/stats`` and ``/healthz``, read through the :class:`Store` interface only."""

from __future__ import annotations

import dataclasses
from typing import Any

from edgekit.fleet.hub.store import Store


def create_app(store: Store, *, metrics: Any = None) -> Any:
    """A Starlette app over ``store`` (``metrics`` is accepted for the web app's signature, unused)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse
    from starlette.routing import Route

    def stats(_request: Request) -> JSONResponse:
        return JSONResponse(dataclasses.asdict(store.stats()))

    def healthz(_request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    return Starlette(routes=[Route("/api/stats", stats), Route("/healthz", healthz)])
