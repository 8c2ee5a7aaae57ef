"""``edgekit hub``: store every device's messages, serve them over HTTP, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from rich.console import Console

from edgekit.fleet.hub.alerts.rules import alert_args
from edgekit.fleet.hub.homeassistant import homeassistant_args

DEFAULT_HTTP = "127.0.0.1:8080"

EPILOG = """examples:
  edgekit hub --broker 127.0.0.1:1883
  edgekit hub --broker mqtt-a:1883,mqtt-b:1883 --db postgresql://hub@db/edgekit --http 0.0.0.0:8080 --keep-results 30d

The hub's MQTT session is persistent (client id --client-id, kept by the broker for --session-expiry): a hub that
stops or crashes gets, when it comes back, every message published meanwhile, and acknowledges each only once it is
stored. The broker must queue enough for it: in mosquitto.conf set persistence true and raise max_queued_messages
(default 1000 per client; e.g. 1000000) and max_queued_bytes to cover the longest hub outage you plan for.
"""


def add_parser(sub: Any) -> None:
    hub = sub.add_parser("hub", help="store every device's results, serve the dashboard and API (long-running)",
                         description="Subscribe to every device's status, results, events and metrics with a "
                         "persistent MQTT session, store each message once (by device and seq), account for every "
                         "missing seq, and serve the dashboard, the JSON API and /metrics over HTTP. Runs until "
                         "SIGTERM or Ctrl-C, then stores and acknowledges what it holds.", epilog=EPILOG)
    hub.add_argument("--broker", required=True, metavar="HOST:PORT[,HOST:PORT...]",
                     help="the MQTT broker; several are tried in order on every (re)connect")
    hub.add_argument("--db", default=None, metavar="URL",
                     help="sqlite:///PATH, a file path, or postgresql://USER@HOST/DB (default: "
                     "sqlite:///edgekit-hub.db in the working directory)")
    hub.add_argument("--http", default=DEFAULT_HTTP, metavar="HOST:PORT",
                     help=f"serve the dashboard, API and /metrics here, or 'off' (default: {DEFAULT_HTTP}, this "
                     "host only; 0.0.0.0:8080 for the LAN)")
    for kind in ("results", "events", "metrics", "alerts"):
        hub.add_argument(f"--keep-{kind}", default=None, metavar="DURATION",
                         help=f"delete {kind} older than this, e.g. 30d, 12h, 90m, 3600s (default: keep all)")
    hub.add_argument("--client-id", default="edgekit-hub",
                     help="MQTT client id: the broker keeps the session under it (default: edgekit-hub; one per hub)")
    hub.add_argument("--session-expiry", default="1d", metavar="DURATION",
                     help="how long the broker keeps the session and queues messages while the hub is away "
                     "(default: 1d)")
    hub.add_argument("--receive-maximum", type=int, default=1000, metavar="N",
                     help="unacknowledged messages the broker may send ahead, so batches fill (default: 1000)")
    hub.add_argument("--batch-size", type=int, default=500, metavar="N",
                     help="messages committed per transaction at most (default: 500)")
    alert_args(hub)
    homeassistant_args(hub)
    hub.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    hub.add_argument("--log-format", default="text", choices=["text", "json"],
                     help="json: one JSON object per line, for log shippers")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from device_agent.service import logs
    from edgekit.fleet.hub.alerts.rules import alerts_from_args
    from edgekit.fleet.hub.service import Hub

    options = hub_options(args)  # every usage error before anything is opened
    rules = alerts_from_args(args)
    logs.configure(args.log_level, args.log_format)
    log = logging.getLogger("edgekit.hub")
    store = open_store(args.db)
    try:
        parts = observers(args, store, rules)
        hub = Hub(broker=args.broker, store=store, options=options, observers=parts,
                  app_factory=app_factory(parts))
    except BaseException:
        store.close()
        raise
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        http = f"http://{hub.http.address}/" if hub.http is not None else "off"
        log.info("edgekit hub starting: broker %s (client id %s, session kept %s), store %s, http %s", hub.brokers,
                 options.client_id, args.session_expiry, store.url, http)
        hub.start()
        stop.wait()
        log.info("stopping: committing and acknowledging what is in hand")
    finally:
        hub.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def hub_options(args: argparse.Namespace) -> Any:
    from edgekit.errors import UsageError
    from edgekit.fleet.hub.durations import parse_duration, parse_listen
    from edgekit.fleet.hub.ingest import IngestOptions
    from edgekit.fleet.hub.service import HubOptions
    from edgekit.fleet.hub.store import Retention, parse_store_url
    from edgekit.fleet.session import Persistence, parse_brokers

    parse_brokers(args.broker)
    if args.db is not None:
        parse_store_url(args.db)
    for flag, value in (("--receive-maximum", args.receive_maximum), ("--batch-size", args.batch_size)):
        if not 1 <= value <= 65535:
            raise UsageError(f"{flag} {value}: expected a number from 1 to 65535")
    keep = {kind: parse_duration(f"--keep-{kind}", value) for kind in ("results", "events", "metrics", "alerts")
            if (value := getattr(args, f"keep_{kind}")) is not None}
    expiry = parse_duration("--session-expiry", args.session_expiry)
    return HubOptions(
        client_id=args.client_id,
        persistence=Persistence(session_expiry_s=min(int(expiry.total_seconds()), 0xFFFFFFFF),
                                receive_maximum=args.receive_maximum),
        ingest=IngestOptions(batch_max=args.batch_size, queue_max=max(4 * args.receive_maximum, args.batch_size)),
        retention=Retention(**{f"keep_{kind}": value for kind, value in keep.items()}),
        http=parse_listen("--http", args.http))


def open_store(url: str | None) -> Any:
    from edgekit.fleet.hub.store import DEFAULT_DB, store_from_url

    return store_from_url(url if url is not None else f"sqlite:///{DEFAULT_DB}")


def observers(args: argparse.Namespace, store: Any, rules: Any) -> list[Any]:
    """The hub's parts besides the store: /metrics, the alert engine, and Home Assistant with --homeassistant."""
    from edgekit.fleet.hub.alerts.engine import AlertEngine
    from edgekit.fleet.hub.homeassistant import homeassistant_from_args
    from edgekit.fleet.hub.metrics import HubMetrics

    parts: list[Any] = [HubMetrics(store), AlertEngine(store, rules)]
    homeassistant = homeassistant_from_args(args, store=store)
    return parts if homeassistant is None else [*parts, homeassistant]


def app_factory(parts: list[Any]) -> Any:
    """The dashboard, API and /metrics (:mod:`edgekit.fleet.hub.web`), serving the hub's own metrics."""
    from edgekit.fleet.hub.alerts.engine import AlertEngine
    from edgekit.fleet.hub.metrics import HubMetrics
    from edgekit.fleet.hub.web import create_app

    metrics = next((part for part in parts if isinstance(part, HubMetrics)), None)
    engine = next((part for part in parts if isinstance(part, AlertEngine)), None)  # cohorts judged as it judges
    return lambda store: create_app(store, metrics=metrics, rules=None if engine is None else engine.rules)
