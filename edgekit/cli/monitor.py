"""``edgekit monitor``: a live table of the devices on a broker, or their messages as JSON lines."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console


def add_parser(sub: Any) -> None:
    mon = sub.add_parser("monitor", help="live table of devices on a broker (or JSON lines)",
                         description="Subscribe to edgekit/v1/# and show each device: online, model, fps, latency, "
                         "outbox depth, last alert. Duplicates are dropped and gaps counted using (device, seq).")
    mon.add_argument("--broker", required=True, help="HOST:PORT of the MQTT broker")
    mon.add_argument("--device", help="only this device id")
    mon.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    mon.add_argument("--json", action="store_true", help="print one JSON object per new message (JSON lines)")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from rich.live import Live

    from edgekit.cli.views import monitor_table
    from edgekit.fleet.monitor import MonitorState, watch

    state = MonitorState()
    if args.json:
        watch(args.broker, device=args.device, duration_s=args.duration, state=state,
              on_record=lambda record: print(json.dumps(record, default=str), flush=True))
        return 0
    with Live(monitor_table(state), console=out, refresh_per_second=2) as live:
        watch(args.broker, device=args.device, duration_s=args.duration, state=state,
              on_record=lambda _record: live.update(monitor_table(state)))
    return 0
