"""Which HTTP app the hub serves: the one place that picks it.

:func:`default_app_factory` returns :func:`edgekit.fleet.hub.web.create_app` (the dashboard, the
JSON API, ``/metrics``) and, where that package is absent, the minimal
:func:`edgekit.fleet.hub.fallback_app.create_app` (``/api/stats``, ``/healthz``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from edgekit.fleet.hub.store import Store

AppFactory = Callable[[Store], Any]
"""``factory(store)`` -> an ASGI app reading ``store``."""

WEB_MODULE = "edgekit.fleet.hub.web"


def default_app_factory() -> AppFactory:
    """The web package's ``create_app`` when installed in this tree, else the fallback app's."""
    try:
        module = importlib.import_module(WEB_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != WEB_MODULE:
            raise
        module = importlib.import_module("edgekit.fleet.hub.fallback_app")
    factory: AppFactory = module.create_app
    return factory
