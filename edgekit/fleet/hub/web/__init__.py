"""The hub's HTTP side: JSON API with OpenAPI, the server-rendered dashboard, ``/metrics``, ``/healthz``.

- :mod:`.app`: :func:`create_app` wires it all over a :class:`~edgekit.fleet.hub.store.Store`.
- :mod:`.api` (JSON, models in :mod:`.models`) and :mod:`.pages` (HTML) share :mod:`.views`.
- :mod:`.html`, :mod:`.charts` (inline SVG), :mod:`.thumbnail`: the dashboard's pieces.
- :mod:`.counts`: what the fleet table counts per device (missing seqs, open alerts).
- :mod:`.cohorts` (views) and :mod:`.cohort_page` (HTML): drift per model version, now and over time.
"""

from __future__ import annotations

try:
    import fastapi  # noqa: F401  (checked here so a missing extra says which one)
except ImportError as exc:  # pragma: no cover - exercised where the hub extra is missing
    from edgekit.errors import MissingDependencyError

    raise MissingDependencyError("fastapi", "hub", "the hub's HTTP API and dashboard") from exc

from edgekit.fleet.hub.web.app import Exposer, create_app

__all__ = ["Exposer", "create_app"]
