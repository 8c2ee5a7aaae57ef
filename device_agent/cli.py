"""The ``edgekit-agent`` command on the device.

Exit status: 0 success, 1 the work failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from device_agent import __version__
from device_agent.errors import AgentError, BundleError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgekit-agent", description="Run EdgeKit bundles on a device.")
    parser.add_argument("--version", action="version", version=f"edgekit-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser(
        "verify",
        help="verify a bundle as the agent does before loading it",
        description="Check a bundle's manifest schema, every file's size and sha256, and that the model's "
        "inputs and outputs match the manifest.",
    )
    verify.add_argument("bundle", help="bundle directory")
    verify.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    return parser


def _verify(args: argparse.Namespace) -> int:
    from device_agent.bundle import load_bundle

    bundle = load_bundle(args.bundle)
    m = bundle.manifest
    if args.json:
        print(json.dumps({"bundle": str(bundle.root), "ok": True, "name": m.name, "version": m.version,
                          "precision": m.precision, "runtime": m.target.runtime}))
    else:
        print(f"ok: {m.name} v{m.version} ({m.precision}, {m.target.runtime}) in {bundle.root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"verify": _verify}[args.command](args)
    except BundleError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
