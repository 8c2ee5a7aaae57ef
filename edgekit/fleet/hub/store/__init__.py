"""The hub's store: one :class:`Store` interface, SQLite (default) and PostgreSQL behind it.

- :mod:`.base`: the interface; :mod:`.records`: what it returns.
- :mod:`.batch`: messages to rows; :mod:`.accounting`: seq runs merged and subtracted.
- :mod:`.sqlite` (+ :mod:`.sqlite_schema`), :mod:`.postgres` (+ :mod:`.postgres_schema`): the backends.
- :mod:`.url`: ``--db URL`` to a store (:func:`store_from_url`).
"""

from __future__ import annotations

from edgekit.fleet.hub.store.base import COUNTERS, Store
from edgekit.fleet.hub.store.records import (
    Alert,
    BootSpan,
    Device,
    IngestReport,
    ModelInfo,
    Retention,
    RetentionReport,
    SeqAccount,
    SeqRange,
    Stats,
    StoredEvent,
    StoredMetrics,
    StoredResult,
)
from edgekit.fleet.hub.store.url import DEFAULT_DB, StoreUrl, parse_store_url, store_from_url

__all__ = [
    "COUNTERS", "DEFAULT_DB", "Alert", "BootSpan", "Device", "IngestReport", "ModelInfo", "Retention",
    "RetentionReport", "SeqAccount", "SeqRange", "Stats", "Store", "StoreUrl", "StoredEvent", "StoredMetrics",
    "StoredResult", "parse_store_url", "store_from_url",
]
