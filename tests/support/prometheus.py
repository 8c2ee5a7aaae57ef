"""A real Prometheus for tests: an exposition served over HTTP, scraped every second by Debian's ``prometheus``.

:func:`serve_exposition` serves ``GET /metrics`` from a callable (the hub's
``HubMetrics.exposition``) on a free 127.0.0.1 port with the standard library's HTTP server;
:class:`Prometheus` runs ``prometheus`` on a generated config that scrapes it (interval and
timeout 1 s), a TSDB in a temp dir and its own free port, and queries its HTTP API.

Without the binary the test skips with install instructions, except under ``CI=true``, where a
missing Prometheus is a failure (like the Mosquitto fixtures in :mod:`tests.support.mqtt_broker`).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support.mqtt_broker import free_port
from tests.support.tools import find_tool, unavailable

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
INSTALL_HINT = "install it with: sudo apt-get install prometheus (scripts/setup.sh does)"


def require_prometheus() -> str:
    """Path of the prometheus binary; skip the test (fail under CI=true) when it is missing."""
    return find_tool(PROMETHEUS, "prometheus") or unavailable(
        f"this test needs Prometheus ({PROMETHEUS} not found); {INSTALL_HINT}")


@contextmanager
def serve_exposition(exposition: Callable[[], tuple[bytes, str]]) -> Iterator[str]:
    """Serve ``GET /metrics`` from ``exposition()`` in a thread; yields ``host:port``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the name http.server calls
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body, content_type = exposition()
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # one line per scrape would flood the test's output
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="exposition", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Prometheus:
    """``prometheus`` scraping ``target`` (``host:port``, path /metrics) every second; stop with :meth:`stop`."""

    def __init__(self, binary: str, target: str, root: Path) -> None:
        self.port = free_port()
        config = root / "prometheus.yml"
        config.write_text(json.dumps({  # JSON is YAML: no YAML writer needed
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "edgekit-hub", "static_configs": [{"targets": [target]}]}],
        }))
        self.log = root / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdout=log, stderr=subprocess.STDOUT, cwd=root)

    def evaluate(self, expr: str) -> dict[str, Any]:
        """The API's whole answer to an instant query: ``status`` (success or error), ``data`` or ``error``."""
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                answer: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:  # a bad query is a 400 with the error in its JSON body;
            body = exc.read()                   # 503 "Service Unavailable" while it starts
            try:
                answer = json.loads(body)
            except ValueError:
                answer = {"status": "down", "error": f"HTTP {exc.code}: {body[:200]!r}"}
        except OSError as exc:
            answer = {"status": "down", "error": str(exc)}
        return answer

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now (``[]`` while Prometheus is not up or has no sample)."""
        answer = self.evaluate(expr)
        result: list[dict[str, Any]] = answer["data"]["result"] if answer.get("status") == "success" else []
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def output(self) -> str:
        """What Prometheus logged (for a failing test's message)."""
        return self.log.read_text(errors="replace")[-2000:]
