"""``edgekit targets``: the target profiles, built-in and the user's."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from device_agent.command_line import JSON_VERSION


def add_parser(sub: Any) -> None:
    tgt = sub.add_parser("targets", help="list target profiles",
                         description="List the target profiles: built-in ones and those in EDGEKIT_TARGETS_PATH "
                         "or ~/.config/edgekit/targets.")
    tgt.add_argument("--json", action="store_true", help="print {\"v\": 1, \"targets\": {name: profile}} as JSON")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.cli.views import targets_table
    from edgekit.targets import available_targets

    profiles = available_targets()
    if args.json:
        print(json.dumps({"v": JSON_VERSION, "targets": {k: v.model_dump() for k, v in profiles.items()}}))
    else:
        out.print(targets_table(profiles))
    return 0
