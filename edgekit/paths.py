"""Paths the user names for us to write (``--output``, ``--plot``, ``--csv``): why one cannot be written,
said before any work where it can be seen, and the operating system's refusal, when it comes anyway,
as a :class:`~edgekit.errors.UsageError` that names the flag, the path and the cause (exit 2), not a
traceback.

Running as root, ``os.access`` says yes to everything, yet ``/proc`` and ``/sys`` still refuse a new
file; so :func:`creation_problem` is a first look and :func:`writing` the answer that counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekit.errors import UsageError


def creation_problem(path: Path | str) -> str | None:
    """Why a file or folder cannot be created at ``path`` (its folders included), judged without writing
    anything, or None: the nearest existing folder above it is a file, or it may not be written to."""
    folder = Path(path).absolute().parent
    while not (folder.exists() or folder.is_symlink()) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{str(path)!r} cannot be created: {str(folder)!r} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{str(path)!r} cannot be created: no permission to write in {str(folder)!r}"
    return None


def os_error_cause(exc: OSError) -> str:
    """The operating system's reason, and the file it was about when that is not the one named."""
    cause = exc.strerror or type(exc).__name__
    return f"{cause} ({exc.filename})" if exc.filename else cause


@contextmanager
def writing(flag: str, path: Path | str) -> Iterator[None]:
    """``with writing("--csv", path): ...``: an ``OSError`` inside becomes a :class:`UsageError`
    ``--csv 'PATH' cannot be written: CAUSE``."""
    try:
        yield
    except OSError as exc:
        raise UsageError(f"{flag} {str(path)!r} cannot be written: {os_error_cause(exc)}") from exc


def check_writable(flag: str, path: Path | str | None) -> None:
    """Raise :class:`UsageError` now (before any work) if ``path`` visibly cannot be created."""
    if path is None:
        return
    if Path(path).is_dir():
        raise UsageError(f"{flag} {str(path)!r} is a folder; expected a file name")
    if (problem := creation_problem(path)) is not None:
        raise UsageError(f"{flag} {problem}")
