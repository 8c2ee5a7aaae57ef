"""What both backends' SQL shares: a statement runner's type, multi-row placeholders, the migration loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from edgekit.errors import StoreError

Execute = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
"""Run one statement in the caller's transaction; the rows it returns (empty for DML)."""


def row_marks(placeholder: str, columns: int, rows: int) -> str:
    """``(?, ?), (?, ?)`` for ``rows`` rows of ``columns`` values."""
    row = "(" + ", ".join([placeholder] * columns) + ")"
    return ", ".join([row] * rows)


def apply_migrations(execute: Execute, migrations: Sequence[Sequence[str]], placeholder: str) -> int:
    """Apply every migration the store lacks (``migrations[n - 1]`` brings version ``n - 1`` to ``n``), in the
    caller's transaction; returns the version now. A store from a newer hub is refused, never written."""
    execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)", ())
    rows = execute("SELECT max(version) FROM schema_version", ())
    version = int(rows[0][0] or 0) if rows else 0
    if version > len(migrations):
        raise StoreError(f"the store's schema is version {version}, newer than this hub's "
                         f"{len(migrations)}: upgrade edgekit")
    for number, statements in enumerate(migrations[version:], start=version + 1):
        for statement in statements:
            execute(statement, ())
        execute(f"INSERT INTO schema_version (version) VALUES ({placeholder})", (number,))
    return len(migrations)


def rows_of(cursor: Any) -> list[tuple[Any, ...]]:
    """A psycopg statement's rows, or none for one that returns no rows (psycopg raises on fetchall then)."""
    return cursor.fetchall() if cursor.description is not None else []
