"""``edgekit inspect``: verify a bundle as a device would and show its manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console


def add_parser(sub: Any) -> None:
    ins = sub.add_parser("inspect", help="verify a bundle and show its manifest",
                         description="Verify every check a device makes (files, sha256, schema, model I/O) and "
                         "show the manifest.")
    ins.add_argument("bundle", help="bundle directory")
    ins.add_argument("--json", action="store_true", help="print the manifest as JSON")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from device_agent.bundle.verify import load_bundle
    from edgekit.cli.views import manifest_view

    bundle = load_bundle(Path(args.bundle))
    if args.json:
        print(json.dumps({"v": 1, **bundle.manifest.model_dump(mode="json", by_alias=True)}))
    else:
        out.print(manifest_view(bundle.manifest))
    return 0
