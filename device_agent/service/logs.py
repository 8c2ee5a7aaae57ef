"""What the agent writes to its log, for the person reading ``journalctl -u edgekit-agent``.

Three kinds of line tell the service's story without a debugger:

- one **start-up** line: agent version, the bundle (name, version, precision), the runtime and
  the execution providers it really uses, threads, sources, broker;
- a **summary** every ``[log] summary_interval_s`` (default 60 s): frames per second since the
  last summary, p50/p95 inference latency, results published, outbox depth and the broker
  link, so a glance at the journal says whether the device is healthy;
- one **shutdown** line: why it stopped, how long it ran, totals, what stays in the outbox.

Each event is logged once, where it happens (a source logs its own state changes, the
publisher its link changes); the agent does not log them again when it publishes them.

``--log-format json`` writes one JSON object per line (``ts``, ``level``, ``logger``,
``msg``, and the exception text when there is one) for log shippers (Vector, Fluent Bit,
Loki's promtail) that would otherwise have to parse the text.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; never raises on an odd argument (falls back to ``repr``)."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "thread": record.threadName,
        }
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=repr, ensure_ascii=False)


def configure(level: str = "INFO", fmt: LogFormat = "text", *, stream: Any = None) -> None:
    """Set up the root logger once for the ``edgekit-agent`` process (stderr: journald takes it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def startup_line(*, agent_version: str, bundle: str, version: str, precision: str, runtime: str,
                 providers: Sequence[str], threads: int, sources: Sequence[str], broker: str) -> str:
    """The one line that says what this process is about to do."""
    return (f"edgekit-agent {agent_version} starting: bundle {bundle} v{version} ({precision}), "
            f"runtime {runtime} [{', '.join(providers) or 'default'}], threads {threads or 'auto'}, "
            f"sources {', '.join(sources)}, broker {broker}")


@dataclass
class Totals:
    """Counters the summaries are computed from (monotonic seconds, counts since start)."""

    at_s: float
    frames: int = 0
    published: int = 0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def summary_line(*, previous: Totals, now: Totals, latency_ms: Mapping[str, float], outbox_depth: int,
                 link: str) -> str:
    """The periodic summary: rates since ``previous``, latency percentiles of the recent window."""
    elapsed = max(now.at_s - previous.at_s, 1e-9)
    fps = (now.frames - previous.frames) / elapsed
    return (f"summary: {fps:.1f} fps, infer p50 {_ms(latency_ms.get('p50'))} ms p95 {_ms(latency_ms.get('p95'))} ms, "
            f"{now.published - previous.published} published in {elapsed:.0f} s ({now.published} total), "
            f"outbox {outbox_depth}, broker {link}")


def shutdown_line(*, reason: str, started_s: float, now: Totals, outbox_left: int) -> str:
    """The last line: why, how long, what was done, and what is left for the next start."""
    ran_s = max(now.at_s - started_s, 0.0)
    left = f"{outbox_left} message(s) stay in the outbox for the next start" if outbox_left else "outbox empty"
    return (f"edgekit-agent stopped ({reason}) after {_duration(ran_s)}: {now.frames} frames, "
            f"{now.published} results published; {left}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return (f"{days}d " if days else "") + f"{hours:02d}:{minutes:02d}:{sec:02d}"
