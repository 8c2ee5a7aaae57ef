"""The ``edgekit-agent`` command on the device.

Exit status: 0 success, 1 the work failed, 2 bad usage or bad input. Every error class
carries its own status (``exit_code``, see :mod:`device_agent.errors`); :func:`main` catches
only the root, :class:`~device_agent.errors.AgentError`.

Each sub-command is two functions, one that adds its parser and one that runs it, registered
together in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from device_agent import __version__
from device_agent.bench.flags import add_bench_flags, options_from_args
from device_agent.command_line import (
    JSON_VERSION,
    Parser,
    UsageExit,
    print_error_document,
    reader_went_away,
    wants_json,
)
from device_agent.errors import AgentError
from device_agent.install.board import BOARD_KINDS, RUNTIME_EXTRAS

if TYPE_CHECKING:
    from typing import TypeAlias

    _Subparsers: TypeAlias = argparse._SubParsersAction[Parser]  # what add_subparsers returns


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="edgekit-agent", description="Run EdgeKit bundles on a device.",
                    epilog="Run 'edgekit-agent COMMAND --help' for a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"edgekit-agent {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for name, (add_parser, _) in COMMANDS.items():
        add_parser(sub, name)
    return parser


def _verify_parser(sub: _Subparsers, name: str) -> None:
    verify = sub.add_parser(
        name,
        help="verify a bundle as the agent does before loading it",
        description="Run every check a device runs before it loads a bundle: the manifest's schema, every file's "
        "size and sha256 (plain files inside the bundle, nothing unlisted), the model loads and its inputs and outputs "
        "match the manifest, and the golden self-test. A failure exits 2 and names the check.",
    )
    verify.add_argument("bundle", help="bundle directory")
    verify.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _run_parser(sub: _Subparsers, name: str) -> None:
    run = sub.add_parser(
        name,
        help="run a bundle on camera frames and publish results over MQTT",
        description="Load and self-test the bundle, read the sources, run inference offline and publish every "
        "result through the durable outbox to MQTT. SIGTERM or SIGINT stops it cleanly.",
    )
    run.add_argument("--config", required=True, help="agent config file (TOML)")
    run.add_argument("--max-frames", type=int, help="stop after this many frames (tests, demos)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument("--log-format", choices=["text", "json"],
                     help="text lines, or one JSON object per line for log shippers (default: the config's [log] "
                     "format, else text)")


def _check_config_parser(sub: _Subparsers, name: str) -> None:
    check = sub.add_parser(
        name,
        help="validate a config file (and its bundle) without starting",
        description="Run every check that 'run' makes before it starts, without starting: every key of the config "
        "file, the credential and TLS files, the sources (files, device nodes, URLs), and the bundle with its golden "
        "self-test; exit 2 with a message that names the bad key or check otherwise.",
    )
    check.add_argument("config", help="agent config file (TOML)")
    check.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _bench_parser(sub: _Subparsers, name: str) -> None:
    bench = sub.add_parser(
        name,
        help="measure a bundle's latency on this device",
        description="Load the bundle's model with the agent's runtime, run it once, warm it up until the latency "
        "is stable, time it, and report load/first/p50/p90/p95/p99/p99.9, mean, std, CV, throughput, peak memory, "
        "FLOPs and the share of this CPU's peak, and the time per operator. --pipeline times every stage of the "
        "agent on a video or camera instead.",
    )
    bench.add_argument("bundle", help="bundle directory (or a .onnx/.tflite file)")
    add_bench_flags(bench)
    bench.add_argument("--pipeline", metavar="SOURCE", help="time the agent's stages on this video, folder or camera")
    bench.add_argument("--frames", type=int, default=300, help="with --pipeline: frames to time (default 300)")
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _install_parser(sub: _Subparsers, name: str) -> None:
    install = sub.add_parser(
        name,
        help="install the agent as a systemd service (Raspberry Pi, Jetson, any Linux)",
        description="Detect the board, create the virtual environment /opt/edgekit-agent with the agent and the one "
        "runtime that suits it (edgekit[agent,tflite], LiteRT, on a Raspberry Pi; edgekit[agent,onnx] elsewhere: "
        "onnxruntime-gpu on a Jetson, CPU onnxruntime otherwise; --runtime overrides), write "
        "/etc/edgekit/agent.toml from a template (never over an existing one), create the service user and "
        "/var/lib/edgekit-agent, and install and enable edgekit-agent.service (notify + watchdog, restart on "
        "failure, hardened, logs in the journal). Running it again upgrades and keeps config, outbox and bundles.",
        epilog="examples:\n  sudo edgekit-agent install --device-id cam-01 --broker mqtt.local:1883\n"
        "  sudo edgekit-agent install --board jetson --onnxruntime-wheel "
        "onnxruntime_gpu-1.19.0-cp310-linux_aarch64.whl\n"
        "  sudo edgekit-agent install --board raspberry-pi --runtime onnx\n"
        "  edgekit-agent install --root /tmp/image --dry-run",
    )
    install.add_argument("--root", default="/", help="install into this staging root instead of / (default /)")
    install.add_argument("--dry-run", action="store_true", help="print every step without doing it")
    install.add_argument("--board", choices=list(BOARD_KINDS), help="skip detection: the board kind")
    install.add_argument("--runtime", choices=list(RUNTIME_EXTRAS),
                         help="the runtime extra to install instead of the board's (tflite on a Raspberry Pi, onnx "
                         "elsewhere): the one the bundles for this device need")
    install.add_argument("--package", default="", help="pip requirement or path of the agent package "
                         "(default: the source this agent runs from, else edgekit from PyPI)")
    install.add_argument("--onnxruntime-wheel", help="Jetson: NVIDIA's onnxruntime-gpu wheel (file or URL)")
    install.add_argument("--index-url", help="Jetson: a package index with onnxruntime-gpu for this JetPack")
    install.add_argument("--no-venv", action="store_true", help="do not create the environment or install packages")
    install.add_argument("--device-id", default=socket.gethostname(),
                         help="device_id in a new config (default: host name)")
    install.add_argument("--source", default="/dev/video0",
                         help="camera or video in a new config (default /dev/video0)")
    install.add_argument("--broker", type=_broker, default=("127.0.0.1", 1883),
                         help="HOST:PORT in a new config (default 127.0.0.1:1883)")
    install.add_argument("--no-start", action="store_true", help="enable the service but do not start it")


def _uninstall_parser(sub: _Subparsers, name: str) -> None:
    uninstall = sub.add_parser(
        name,
        help="remove the service (config, outbox and bundles are kept unless --purge)",
        description="Stop and disable edgekit-agent.service and remove its unit, user and tmpfiles entries. The "
        "environment, /etc/edgekit and /var/lib/edgekit-agent (the outbox with any unsent results, the bundles) "
        "are kept unless --purge.",
    )
    uninstall.add_argument("--root", default="/", help="the root the agent was installed into (default /)")
    uninstall.add_argument("--purge", action="store_true", help="also remove the environment, config and state")
    uninstall.add_argument("--dry-run", action="store_true", help="print every step without doing it")


def _verify(args: argparse.Namespace) -> int:
    from device_agent.bundle.verify import load_bundle

    bundle = load_bundle(args.bundle)
    m = bundle.manifest
    if args.json:
        print(json.dumps({"v": JSON_VERSION, "bundle": str(bundle.root), "ok": True, "name": m.name,
                          "version": m.version, "precision": m.precision, "candidate": m.candidate,
                          "runtime": m.target.runtime}))
    else:
        print(f"ok: {m.name} v{m.version} ({m.candidate or m.precision}, {m.target.runtime}) in {bundle.root}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from device_agent.service.config import load_config
    from device_agent.service.preflight import preflight

    config = load_config(args.config)
    bundle = preflight(config).bundle  # the very checks run makes before it starts
    summary = {"v": JSON_VERSION, "config": args.config, "ok": True, "device_id": config.device_id,
               "bundle": str(bundle.root), "model": bundle.manifest.name, "sources": [s.uri for s in config.sources],
               "broker": f"{config.mqtt.host}:{config.mqtt.port}"}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"ok: {config.device_id}: {bundle.manifest.name} on {len(config.sources)} source(s), "
              f"broker {config.mqtt.host}:{config.mqtt.port}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    from device_agent.bench.text import host_info, pipeline_text, text_report

    if args.pipeline:
        from device_agent.bench.pipeline import benchmark_pipeline

        result = benchmark_pipeline(args.bundle, args.pipeline, frames=args.frames, threads=args.threads)
        print(json.dumps({"v": JSON_VERSION, "pipeline": [result]}) if args.json else pipeline_text(result),
              end="\n" if args.json else "")
        return 0
    from device_agent.bench.runner import benchmark_model

    options = options_from_args(args, keep_samples=False)
    if not args.json:
        print(f"benchmarking {args.bundle} ...", file=sys.stderr, flush=True)
    record = benchmark_model(
        args.bundle, options,
        on_phase=None if args.json else lambda name: print(f"  {name}", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"v": JSON_VERSION, "host": host_info(), "models": [record.to_json()]}))
    else:
        print(text_report([record]), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from device_agent.service import logs
    from device_agent.service.agent import Agent
    from device_agent.service.config import load_config

    logs.configure(args.log_level, args.log_format or "text")
    config = load_config(args.config)
    if args.log_format is None and config.log.format != "text":
        logs.configure(args.log_level, config.log.format)
    agent = Agent(config)
    agent.install_signal_handlers()
    return agent.run(max_frames=args.max_frames)


def _broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT, e.g. 192.168.1.10:1883")
    return host, int(port)


def _install(args: argparse.Namespace) -> int:
    from pathlib import Path

    from device_agent.install import (
        InstallOptions,
        detect_board,
        install_steps,
        run_steps,
    )
    from device_agent.install.board import board_for

    os.umask(0o022)  # the environment and the unit must be readable by the service user, whatever root's umask
    root = Path(args.root)
    board = board_for(args.board, runtime=args.runtime) if args.board else detect_board(root, runtime=args.runtime)
    options = InstallOptions(board=board, root=root, package=args.package, onnxruntime_wheel=args.onnxruntime_wheel,
                             index_url=args.index_url, venv=not args.no_venv, device_id=args.device_id,
                             source=args.source, broker=args.broker, start=not args.no_start)
    run_steps(install_steps(options), dry_run=args.dry_run, echo=print)
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from pathlib import Path

    from device_agent.install import run_steps, uninstall_steps

    run_steps(uninstall_steps(Path(args.root), purge=args.purge), dry_run=args.dry_run, echo=print)
    return 0


COMMANDS: dict[str, tuple[Callable[[_Subparsers, str], None], Callable[[argparse.Namespace], int]]] = {
    "verify": (_verify_parser, _verify),
    "run": (_run_parser, _run),
    "check-config": (_check_config_parser, _check_config),
    "bench": (_bench_parser, _bench),
    "install": (_install_parser, _install),
    "uninstall": (_uninstall_parser, _uninstall),
}
"""Each sub-command: the function that adds its parser (in this order in ``--help``) and the one that runs it."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageExit as exc:  # the parser has said why on stderr; --json gets its one object too
        if wants_json(argv):
            print_error_document(exc, 2)
        raise
    try:
        return COMMANDS[args.command][1](args)
    except AgentError as exc:  # the root; each class carries its exit code (device_agent/errors.py)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        if getattr(args, "json", False):
            print_error_document(exc, exc.exit_code)
        return exc.exit_code
    except BrokenPipeError:
        return reader_went_away()


if __name__ == "__main__":
    raise SystemExit(main())
