"""``edgekit protocol schema``: the JSON Schema of every MQTT message and command, from the models.

The schema is generated from :mod:`device_agent.protocol` (never written by hand), so what a
consumer in another language validates against is exactly what the agent builds and the host
parses. A thin layer over :func:`device_agent.protocol.schema.schema_files`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from edgekit.errors import UsageError

EPILOG = """files (one per topic kind, one per command):
  status.json    retained online/offline, agent and model versions
  results.json   one inference result
  events.json    every event, a union told apart by "kind"
  metrics.json   the heartbeat
  reply.json     the outcome of a command, on reply/<request_id>
  cmd-NAME.json  each command a device accepts on cmd/NAME (cmd-bench.json)

Message schemas describe what arrives: the body plus the envelope the outbox adds (v, device,
seq, boot, ts; status has v, device, ts). Unknown fields are allowed in messages (a newer agent
may add some) and refused in commands (a device runs only what it understands).

examples:
  edgekit protocol schema                      # one JSON object keyed by file name, on stdout
  edgekit protocol schema --output docs/protocol
"""


def add_parser(sub: Any) -> None:
    proto = sub.add_parser("protocol", help="the MQTT contract: JSON Schema of every message and command",
                           description="The MQTT contract between devices and the host (edgekit/v1), as code.")
    proto_sub = proto.add_subparsers(dest="protocol_command", required=True, parser_class=type(proto))
    schema = proto_sub.add_parser(
        "schema", help="write the JSON Schema of every message and command",
        description="Write the JSON Schema of every message a device publishes and every command it accepts, "
        "generated from the protocol models.",
        epilog=EPILOG)
    schema.add_argument("--output", metavar="DIR", help="write one file per topic kind and command into DIR "
                        "(created if missing); default: print one JSON object keyed by file name")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from device_agent.protocol.schema import schema_files

    files = schema_files()
    if args.output is None:
        print(json.dumps(files, indent=2))
        return 0
    folder = Path(args.output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, schema in files.items():
            (folder / name).write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output {str(folder)!r}: cannot write the schema files: {exc.strerror or exc}") from exc
    err.print(f"wrote {len(files)} schema files to {folder}: {', '.join(files)}")
    return 0
