"""The ``edgekit-agent`` command on the device.

Exit status: 0 success, 1 the work failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from device_agent import __version__
from device_agent.config import ConfigError
from device_agent.errors import AgentError, BundleError
from device_agent.publisher import PublisherAuthError


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

    run = sub.add_parser(
        "run",
        help="run a bundle on camera frames and publish results over MQTT",
        description="Load and self-test the bundle, read the sources, run inference offline and publish every "
        "result through the durable outbox to MQTT. SIGTERM or SIGINT stops it cleanly.",
    )
    run.add_argument("--config", required=True, help="agent config file (TOML)")
    run.add_argument("--max-frames", type=int, help="stop after this many frames (tests, demos)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    check = sub.add_parser(
        "check-config",
        help="validate a config file (and its bundle) without starting",
        description="Validate every key of the config file and verify the bundle it names; exit 2 with a message "
        "that names the bad key otherwise.",
    )
    check.add_argument("config", help="agent config file (TOML)")
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")
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


def _check_config(args: argparse.Namespace) -> int:
    from device_agent.bundle import load_bundle
    from device_agent.config import load_config

    config = load_config(args.config)
    bundle = load_bundle(config.bundle)
    summary = {"config": args.config, "ok": True, "device_id": config.device_id, "bundle": str(bundle.root),
               "model": bundle.manifest.name, "sources": [s.uri for s in config.sources],
               "broker": f"{config.mqtt.host}:{config.mqtt.port}"}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"ok: {config.device_id}: {bundle.manifest.name} on {len(config.sources)} source(s), "
              f"broker {config.mqtt.host}:{config.mqtt.port}")
    return 0


def _run(args: argparse.Namespace) -> int:
    import logging

    from device_agent.agent import Agent
    from device_agent.config import load_config

    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    agent = Agent(load_config(args.config))
    agent.install_signal_handlers()
    return agent.run(max_frames=args.max_frames)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"verify": _verify, "check-config": _check_config, "run": _run}[args.command](args)
    except (BundleError, ConfigError, PublisherAuthError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except AgentError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
