"""Durations and addresses as ``edgekit hub`` flags take them: ``30d``, ``12h``, ``90m``, ``3600s``; ``HOST:PORT``."""

from __future__ import annotations

import re
from datetime import timedelta

from edgekit.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def parse_duration(flag: str, text: str, *, bare_seconds: bool = False) -> timedelta:
    """``30d`` as a timedelta (``90`` too, as seconds, with ``bare_seconds``); :class:`UsageError` naming
    ``flag`` and ``text`` when it is not a positive duration."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0 or not (match.group(2) or bare_seconds):
        unit = "" if bare_seconds else " with a unit"
        raise UsageError(f"{flag} {text!r}: expected a positive duration{unit}, e.g. 30d, 12h, 90m or 3600s")
    return timedelta(seconds=float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()])


def parse_listen(flag: str, text: str) -> tuple[str, int] | None:
    """``HOST:PORT`` to listen on (port 0: any free one), or None for ``off``; :class:`UsageError` otherwise."""
    if text.strip().lower() in ("off", "none", ""):
        return None
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"{flag} {text!r}: expected HOST:PORT (e.g. 127.0.0.1:8080, 0.0.0.0:8080) or off")
    return host, int(port)
