"""``--db URL`` to a store: ``sqlite:///path.db`` or a plain path for SQLite, ``postgresql://...`` for PostgreSQL.

SQLite URLs read like SQLAlchemy's: ``sqlite:///hub.db`` is relative to the working directory,
``sqlite:////var/lib/edgekit/hub.db`` absolute. Anything else is a :class:`~edgekit.errors.UsageError`
that names the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from edgekit.errors import UsageError
from edgekit.fleet.hub.store.base import Store

DEFAULT_DB = "edgekit-hub.db"
"""The SQLite file the hub uses when no ``--db`` is given (in the working directory)."""

_EXPECTED = "expected sqlite:///PATH, a file path, or postgresql://[USER[:PASSWORD]@]HOST[:PORT]/DATABASE"


@dataclass(frozen=True)
class StoreUrl:
    """A parsed store URL: which backend, and its path (SQLite) or connection URL (PostgreSQL)."""

    backend: Literal["sqlite", "postgresql"]
    target: str

    @property
    def shown(self) -> str:
        """The URL without a password, for messages and logs."""
        return f"sqlite:///{self.target}" if self.backend == "sqlite" else redact(self.target)


def parse_store_url(url: str) -> StoreUrl:
    """What ``url`` names; :class:`UsageError` naming it when it is neither SQLite nor PostgreSQL."""
    text = url.strip()
    if not text:
        raise UsageError(f"store URL {url!r} is empty: {_EXPECTED}")
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme is None:
        return StoreUrl("sqlite", text)
    name = scheme.group(1).lower()
    if name == "sqlite":
        path = text[len("sqlite:///"):] if text.lower().startswith("sqlite:///") else ""
        if not path or path == ":memory:":
            raise UsageError(f"store URL {url!r} names no file: {_EXPECTED}")
        return StoreUrl("sqlite", path)
    if name in ("postgresql", "postgres") or name.startswith("postgresql+"):
        parts = urlsplit(text)
        if not parts.hostname and "host=" not in parts.query:
            raise UsageError(f"store URL {redact(url)!r} names no host: {_EXPECTED}")
        return StoreUrl("postgresql", urlunsplit(("postgresql", *parts[1:])))
    raise UsageError(f"store URL {redact(url)!r} has an unknown scheme {name!r}: {_EXPECTED}")


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, *parts[2:]))


def store_from_url(url: str | Path) -> Store:
    """Open (and create or migrate) the store ``url`` names."""
    parsed = parse_store_url(str(url))
    if parsed.backend == "sqlite":
        from edgekit.fleet.hub.store.sqlite import SqliteStore

        return SqliteStore(Path(parsed.target))
    from edgekit.fleet.hub.store.postgres import PostgresStore

    return PostgresStore(parsed.target)
