"""The benchmark's command-line flags, declared once for ``edgekit benchmark`` and ``edgekit-agent bench``.

Each flag's destination is the :class:`~device_agent.bench.options.BenchOptions` field it
sets and its help is that field's description, so the two command lines cannot drift apart
and :func:`options_from_args` needs no table of its own.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from device_agent.bench.options import FLAGS, BenchOptions

RUNTIMES = ("onnxruntime", "tflite")

_ARGPARSE: Mapping[str, dict[str, Any]] = {  # "help" only where the field's description does not read as a flag's
    "runs": {"type": int, "metavar": "N", "help": "timed runs"},
    "duration_s": {"type": float, "metavar": "SECONDS", "help": "seconds of timed runs (default 10)"},
    "warmup": {"type": int, "metavar": "N"},
    "threads": {"type": int, "metavar": "N"},
    "runtime": {"choices": RUNTIMES},
    "providers": {"action": "append", "metavar": "NAME", "help": "onnxruntime execution provider to prefer "
                  "(repeatable, in order of preference; default: the bundle's, else CPU)"},
    "profile": {"action": "store_false", "default": None, "help": "skip the per-operator profile"},
    "top": {"type": int, "metavar": "N"},
}
COMMON = ("runs", "duration_s", "warmup", "threads", "providers", "profile")
"""The flags both command lines have; ``edgekit benchmark`` adds ``runtime`` and ``top``."""


def add_bench_flags(parser: argparse.ArgumentParser, fields: Iterable[str] = COMMON,
                    *, help_overrides: Mapping[str, str] | None = None) -> None:
    """Add the flags of ``fields`` to ``parser``; ``--runs`` and ``--duration`` exclude each other."""
    how_long = parser.add_mutually_exclusive_group()
    for field in fields:
        spec = dict(_ARGPARSE[field])
        spec["help"] = ((help_overrides or {}).get(field) or spec.get("help")
                        or BenchOptions.model_fields[field].description)
        target = how_long if field in ("runs", "duration_s") else parser
        target.add_argument(FLAGS[field].flag, dest=field, **spec)


def options_from_args(args: argparse.Namespace, **fixed: Any) -> BenchOptions:
    """The options the flags in ``args`` give (a flag left out keeps the default), plus ``fixed``.

    Raises :class:`~device_agent.bench.options.BenchOptionsError`, whose message names the flags."""
    given: dict[str, Any] = {}
    for field in _ARGPARSE:
        value = getattr(args, field, None)
        if value is not None:
            given[field] = tuple(value) if field == "providers" else value
    return BenchOptions(**given, **fixed)
