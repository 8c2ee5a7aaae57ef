"""The ``edgekit`` command: a thin layer over the Python API.

Each command is one module of this package with ``add_parser(subparsers)`` and
``run(args, out, err) -> exit status``, registered in :data:`COMMANDS`; the errors are
reported here and nowhere else. Exit status: 0 success, 1 the work failed (no candidate met
the budget), 2 bad usage or bad input. ``--json`` prints exactly one JSON object on stdout,
with ``"v"``: the result, or on any failure ``{"v": 1, "error": {"type", "message", "exit_code"}}``
(:func:`device_agent.command_line.error_document`); progress goes to stderr either way.
The parser and its help are :mod:`device_agent.command_line`'s, shared with ``edgekit-agent``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape

from converters.errors import ConversionError
from device_agent.command_line import Parser, UsageExit, print_error_document, reader_went_away, wants_json
from device_agent.errors import AgentError
from edgekit import __version__
from edgekit.cli import bench, hub, inspect_bundle, monitor, optimize, protocol, samples, targets, zoo
from edgekit.errors import EdgeKitError, OptimizeFailed


class Command(Protocol):
    """What a command module provides."""

    def add_parser(self, sub: Any) -> None: ...

    def run(self, args: argparse.Namespace, out: Console, err: Console) -> int: ...


COMMANDS: dict[str, Command] = {
    "optimize": optimize,
    "inspect": inspect_bundle,  # not inspect.py: a script run from this folder would shadow the stdlib
    "targets": targets,
    "zoo": zoo,
    "monitor": monitor,
    "hub": hub,
    "benchmark": bench,
    "protocol": protocol,
    "samples": samples,
}
"""Every command by name, in the order ``edgekit --help`` lists them."""

EPILOG = """examples:
  edgekit targets
  edgekit optimize model.onnx --target rpi5 --calib photos/ --output bundles/cls
  edgekit inspect bundles/cls
  edgekit benchmark model.onnx bundles/cls

Run 'edgekit COMMAND --help' for a command's options and examples.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="edgekit", description="Optimize, bundle and benchmark vision models for edge devices.",
                    epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(sub)
    assert list(sub.choices) == list(COMMANDS), f"a module added a command other than its own: {list(sub.choices)}"
    return parser


def _error(err: Console, exc: BaseException) -> None:
    err.print(f"[bold red]{type(exc).__name__}[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except UsageExit as exc:  # the parser has said why on stderr; --json gets its one object too
        if wants_json(argv):
            print_error_document(exc, exc.code if isinstance(exc.code, int) else 2)
        raise
    out, err = Console(), Console(stderr=True, soft_wrap=True)
    if not out.is_terminal:
        out = Console(width=120)  # piped or logged: do not squeeze tables into 80 columns
    as_json = bool(getattr(args, "json", False))
    try:
        return COMMANDS[args.command].run(args, out, err)
    except (EdgeKitError, ConversionError, AgentError) as exc:  # the three roots; each class carries its exit code
        _error(err, exc)
        if as_json:
            extra = {"candidates": exc.candidates} if isinstance(exc, OptimizeFailed) else {}
            print_error_document(exc, exc.exit_code, **extra)
        return exc.exit_code
    except BrokenPipeError:
        return reader_went_away()
    except KeyboardInterrupt as exc:
        err.print("interrupted")
        if as_json:
            print_error_document(exc, 130)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
