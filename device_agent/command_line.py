"""One style for both command lines, ``edgekit`` and ``edgekit-agent`` (here, since edgekit may import the
agent but not the reverse).

- :class:`Parser`: argparse with help wrapped to the terminal (a paragraph is re-filled, an indented
  line such as an example is kept as written) and, on a usage error, the usage, the message and
  ``(see 'PROG --help')``, exit 2 (:class:`UsageExit`, a ``SystemExit``).
- :func:`error_document`: the one JSON object a ``--json`` command prints on stdout when it fails,
  ``{"v": 1, "error": {"type", "message", "exit_code"}}``; every JSON document carries ``"v"``
  (:data:`JSON_VERSION`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import Any, NoReturn

JSON_VERSION = 1
"""The ``"v"`` of every JSON document the two command lines print."""


class UsageExit(SystemExit):
    """argparse refused the command line (exit 2); ``message`` is what it said, after the usage and the hint."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs wrapped to the width, paragraph by paragraph; indented lines (examples,
    lists) and a line ending in ``:`` (a heading) are kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "%(prog)" in text:
            text = text % {"prog": self._prog}
        out: list[str] = []
        paragraph: list[str] = []

        def flush() -> None:
            if paragraph:
                out.extend(textwrap.wrap(" ".join(paragraph), width, initial_indent=indent, subsequent_indent=indent,
                                         break_on_hyphens=False))
                paragraph.clear()

        for line in text.splitlines():
            if not line.strip() or line[0].isspace() or line.rstrip().endswith(":"):
                flush()
                out.append(indent + line if line.strip() else "")
            else:
                paragraph.append(line.strip())
        flush()
        return "\n".join(out)


class Parser(argparse.ArgumentParser):
    """The parser of both command lines and of every sub-command (pass it as ``parser_class``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its message, add the hint
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")
        raise UsageExit(message)


def wants_json(argv: Sequence[str] | None) -> bool:
    """Whether the command line asks for JSON (checked on the words, so a refused command line can answer in JSON)."""
    return "--json" in (sys.argv[1:] if argv is None else argv)


def error_document(exc: BaseException, exit_code: int, **extra: Any) -> dict[str, Any]:
    """``{"v": 1, "error": {"type", "message", "exit_code", **extra}}`` for ``exc`` (a refused command line
    is a ``UsageError``, as it is for the package's own checks)."""
    message = exc.message if isinstance(exc, UsageExit) else str(exc) or type(exc).__name__
    kind = "UsageError" if isinstance(exc, UsageExit) else type(exc).__name__
    return {"v": JSON_VERSION, "error": {"type": kind, "message": message, "exit_code": exit_code, **extra}}


def print_error_document(exc: BaseException, exit_code: int, **extra: Any) -> None:
    """Print :func:`error_document` as one line on stdout."""
    print(json.dumps(error_document(exc, exit_code, **extra), default=str), flush=True)


def reader_went_away() -> int:
    """The reader of stdout closed it (``edgekit targets --json | head -c 100``): no traceback, and no
    second BrokenPipeError when Python flushes stdout at exit. 141 is what a shell reports for SIGPIPE."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141
