"""Talking to systemd's service manager: readiness, the watchdog, and stopping (``sd_notify``).

The unit is ``Type=notify`` with ``WatchdogSec=``: systemd passes ``NOTIFY_SOCKET`` (an
``AF_UNIX`` datagram socket, ``@`` meaning the abstract namespace) and ``WATCHDOG_USEC``.
The agent says ``READY=1`` once its bundle is loaded and its sources have started, then
``WATCHDOG=1`` from its main loop at least twice per watchdog interval, so an agent whose loop
hangs (a stuck camera read, a deadlock) stops feeding it and systemd restarts it. Outside
systemd (no ``NOTIFY_SOCKET``) every call does nothing. Pure standard library: the protocol
is one datagram of ``KEY=value`` lines.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class Notifier:
    """``sd_notify`` for one process; a no-op unless systemd gave it a socket."""

    def __init__(self, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())  # the watchdog may be meant for another process
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._clock = clock
        self._last_ping = float("-inf")
        self._sock: socket.socket | None = None
        if self.address:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *lines: str) -> bool:
        """Send ``KEY=value`` lines; False (logged, never raised) if systemd did not take them."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:  # the manager went away (shutdown): the agent keeps its own course
            log.warning("sd_notify to %r failed: %s", self.address.replace("\0", "@"), exc)
            return False
        return True

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        """Feed the watchdog, at most once per half interval (call it as often as you like)."""
        if self.watchdog_s is None:
            return
        now = self._clock()
        if now - self._last_ping >= self.watchdog_s / 2:
            self._last_ping = now
            self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
