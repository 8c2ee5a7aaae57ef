"""A PNG of a benchmark, for people who would rather look than read.

Three panels: p50 per model with p90 and p99 marks and the speedup over the first model;
the latency distribution of every model (violins, so a second mode or a long tail shows);
and latency over the run index (throttling, a noisy neighbour or a slow start show as a
trend or bursts). Under them, what a picture passed around needs to be read at all: where it
was measured (host and CPU, or the device), threads and runs per model, the date, and any
warning that makes the numbers doubtful (other programs on the CPUs, a warm-up that never
settled). The same lines are written into the PNG's ``Description`` text chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

from device_agent.bench.record import BenchRecord
from device_agent.bench.text import threads_shown, wrap
from edgekit import __version__
from edgekit.bench.report import measured_on, warnings
from edgekit.errors import MissingDependencyError, UsageError

FOOTER_WIDTH = 150
"""Characters per footer line: the figure is 16 inches wide, its footer set at 8 points."""


def _pyplot() -> ModuleType:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a server or a device
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "host", "--plot") from exc
    return plt


def footer_lines(models: Sequence[BenchRecord], host: Mapping[str, Any], *, repeat: int = 1,
                when: datetime | None = None) -> tuple[list[str], list[str]]:
    """The footer's lines: what was measured where and when, and the warnings (each a line of its own)."""
    when = when or datetime.now(timezone.utc)
    setup = "; ".join(f"{m.name}: {threads_shown(m.threads)} threads, {m.runs} runs" for m in models)
    about = [f"{measured_on(models, host)}; {when:%Y-%m-%d %H:%M} UTC; edgekit {__version__}",
             setup + (f"; median of {repeat} repeats, taken in turns" if repeat > 1 else "")]
    return about, [f"WARNING: {w}" for w in warnings(models)]


def _bars(ax: Any, models: Sequence[BenchRecord], names: list[str], colors: list[str]) -> None:
    xs = range(len(models))
    ax.bar(xs, [m.latency_ms.p50 for m in models], color=colors)
    ax.scatter(xs, [m.latency_ms.p90 for m in models], marker="_", s=400, color="black", label="p90", zorder=3)
    ax.scatter(xs, [m.latency_ms.p99 for m in models], marker="_", s=400, color="red", label="p99", zorder=3)
    for x, m in zip(xs, models):
        speedup = 1.0 if m.speedup is None else m.speedup
        ax.annotate(f"{m.latency_ms.p50:.2f} ms\n{speedup:.2f}x", (x, m.latency_ms.p50),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(list(xs), names, fontsize=8)
    ax.set_ylabel("latency ms (bar: p50)")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("p50, p90, p99")


def _distributions(ax: Any, models: Sequence[BenchRecord], names: list[str], colors: list[str]) -> None:
    xs = list(range(len(models)))
    parts = ax.violinplot([list(m.samples_ms or ()) for m in models], positions=xs, showmedians=True,
                          showextrema=False)
    for body, color in zip(parts["bodies"], colors):
        body.set_facecolor(color)
        body.set_alpha(0.6)
    ax.set_xticks(xs, names, fontsize=8)
    ax.set_ylabel("latency ms")
    ax.set_title("distribution of timed runs")


def _trace(ax: Any, models: Sequence[BenchRecord], names: list[str], colors: list[str]) -> None:
    for m, name, color in zip(models, names, colors):
        ax.plot(list(m.samples_ms or ()), ".", markersize=2, color=color, label=name.replace("\n", " "))
    ax.set_xlabel("run")
    ax.set_ylabel("latency ms")
    ax.set_title("latency over the run (drift, bursts)")
    ax.legend(fontsize=7, markerscale=4, loc="upper right")


def benchmark_figure(models: Sequence[BenchRecord], *, host: Mapping[str, Any], repeat: int = 1,
                     when: datetime | None = None, title: str = "edgekit benchmark") -> Any:
    """The figure, not yet saved (a matplotlib ``Figure``); its footer is :func:`footer_lines`."""
    missing = [m.name for m in models if not m.samples_ms]
    if missing:
        raise UsageError(f"cannot plot {', '.join(missing)}: the results carry no raw samples")
    plt = _pyplot()
    names = [m.name + (f"\n@{m.device}" if m.device else "") for m in models]
    colors = [f"C{i % 10}" for i in range(len(models))]
    about, warned = footer_lines(models, host, repeat=repeat, when=when)
    lines = [(line, "dimgray") for text in about for line in wrap(text, FOOTER_WIDTH)]
    lines += [(line, "firebrick") for text in warned for line in wrap(text, FOOTER_WIDTH)]
    footer_in = 0.18 * len(lines) + 0.1
    fig, (bars, dist, trace) = plt.subplots(1, 3, figsize=(16, 4.8 + footer_in),
                                            gridspec_kw={"width_ratios": [1, 1.2, 1.6]})
    fig.suptitle(title)
    _bars(bars, models, names, colors)
    _distributions(dist, models, names, colors)
    _trace(trace, models, names, colors)
    height = 4.8 + footer_in
    for i, (line, color) in enumerate(lines):
        fig.text(0.01, (footer_in - 0.05 - 0.18 * (i + 0.5)) / height, line, fontsize=8, color=color,
                 ha="left", va="center", family="monospace")
    fig.tight_layout(rect=(0, footer_in / height, 1, 1))
    return fig


def plot_benchmark(models: Sequence[BenchRecord], path: Path | str, *, host: Mapping[str, Any] | None = None,
                   repeat: int = 1, when: datetime | None = None, title: str = "edgekit benchmark") -> Path:
    """Write the PNG; models need ``samples_ms`` (kept unless the benchmark was told not to). ``host`` is the
    benchmark's :func:`~device_agent.bench.text.host_info` (this machine's when not given)."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--plot {str(path)!r}: expected a .png file name")
    if host is None:
        from device_agent.bench.text import host_info

        host = host_info()
    when = when or datetime.now(timezone.utc)
    fig = benchmark_figure(models, host=host, repeat=repeat, when=when, title=title)
    about, warned = footer_lines(models, host, repeat=repeat, when=when)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=110, metadata={"Title": title, "Description": "\n".join([*about, *warned]),
                                            "Software": f"edgekit {__version__}"})
    finally:
        _pyplot().close(fig)
    return out
