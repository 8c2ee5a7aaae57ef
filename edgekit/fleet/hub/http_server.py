"""The hub's HTTP side: an ASGI app served by uvicorn in a background thread, started and stopped cleanly.

The socket is bound here, before uvicorn starts, so a port in use is an error the ``edgekit hub``
command reports (uvicorn would log it and ``sys.exit`` its thread), and ``--http 127.0.0.1:0``
picks a free port that :attr:`HttpServer.address` then names.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from edgekit.errors import EdgeKitError, MissingDependencyError

log = logging.getLogger(__name__)


class HttpServer:
    """``app`` served on ``host:port``; :meth:`start` returns once uvicorn accepts connections."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        try:
            import uvicorn
        except ImportError as exc:
            raise MissingDependencyError("uvicorn", "hub", "edgekit hub --http") from exc
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise EdgeKitError(f"--http {host}:{port}: cannot listen there: {exc}") from exc
        self.host, self.port = host, int(self._socket.getsockname()[1])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="hub-http", daemon=True)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._socket.close()
                raise EdgeKitError(f"the HTTP server on {self.address} did not start (see the log above)")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)
        self._socket.close()
