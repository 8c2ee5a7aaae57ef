"""The ``edgekit`` command: a thin layer over the Python API.

Each command is one module of this package with ``add_parser(subparsers)`` and
``run(args, out, err) -> exit status``, registered in :data:`COMMANDS`; the errors are
reported here and nowhere else. Exit status: 0 success, 1 the work failed (no candidate met
the budget), 2 bad usage or bad input. ``--json`` prints exactly one JSON object on stdout;
progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from rich.console import Console
from rich.markup import escape

from converters.errors import ConversionError
from device_agent.errors import AgentError
from edgekit import __version__
from edgekit.cli import bench, inspect_bundle, monitor, optimize, protocol, samples, targets, zoo
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


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its message, add the hint
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgekit", description="Optimize, bundle and benchmark vision models for edge devices.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for command in COMMANDS.values():
        command.add_parser(sub)
    assert list(sub.choices) == list(COMMANDS), f"a module added a command other than its own: {list(sub.choices)}"
    return parser


def _error(err: Console, exc: BaseException) -> None:
    err.print(f"[bold red]{type(exc).__name__}[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:
        out = Console(width=120)  # piped or logged: do not squeeze tables into 80 columns
    try:
        return COMMANDS[args.command].run(args, out, err)
    except (EdgeKitError, ConversionError, AgentError) as exc:  # the three roots; each class carries its exit code
        _error(err, exc)
        if isinstance(exc, OptimizeFailed) and getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "candidates": exc.candidates}, default=str))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
