"""A PNG of a benchmark, for people who would rather look than read.

Three panels: p50 per model with p90 and p99 marks and the speedup over the first model;
the latency distribution of every model (violins, so a second mode or a long tail shows);
and latency over the run index (throttling, a noisy neighbour or a slow start show as a
trend or bursts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from device_agent.bench.record import BenchRecord
from edgekit.errors import MissingDependencyError, UsageError


def _pyplot() -> ModuleType:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on a server or a device
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError("matplotlib", "host", "--plot") from exc
    return plt


def plot_benchmark(models: Sequence[BenchRecord], path: Path | str, *, title: str = "edgekit benchmark") -> Path:
    """Write the PNG; models need ``samples_ms`` (kept unless the benchmark was told not to)."""
    out = Path(path)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--plot {str(path)!r}: expected a .png file name")
    missing = [m.name for m in models if not m.samples_ms]
    if missing:
        raise UsageError(f"cannot plot {', '.join(missing)}: the results carry no raw samples")
    plt = _pyplot()
    names = [m.name + (f"\n@{m.device}" if m.device else "") for m in models]
    colors = [f"C{i % 10}" for i in range(len(models))]
    fig, (bars, dist, trace) = plt.subplots(1, 3, figsize=(16, 4.8), gridspec_kw={"width_ratios": [1, 1.2, 1.6]})
    fig.suptitle(title)

    p50 = [m.latency_ms.p50 for m in models]
    xs = range(len(models))
    bars.bar(xs, p50, color=colors)
    bars.scatter(xs, [m.latency_ms.p90 for m in models], marker="_", s=400, color="black", label="p90", zorder=3)
    bars.scatter(xs, [m.latency_ms.p99 for m in models], marker="_", s=400, color="red", label="p99", zorder=3)
    for x, m in zip(xs, models):
        speedup = 1.0 if m.speedup is None else m.speedup
        bars.annotate(f"{m.latency_ms.p50:.2f} ms\n{speedup:.2f}x", (x, m.latency_ms.p50),
                      ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    bars.set_xticks(list(xs), names, fontsize=8)
    bars.set_ylabel("latency ms (bar: p50)")
    bars.legend(fontsize=8, loc="upper right")
    bars.set_title("p50, p90, p99")

    samples = [list(m.samples_ms or ()) for m in models]
    parts = dist.violinplot(samples, positions=list(xs), showmedians=True, showextrema=False)
    for body, color in zip(parts["bodies"], colors):
        body.set_facecolor(color)
        body.set_alpha(0.6)
    dist.set_xticks(list(xs), names, fontsize=8)
    dist.set_ylabel("latency ms")
    dist.set_title("distribution of timed runs")

    for m, name, color in zip(models, names, colors):
        trace.plot(list(m.samples_ms or ()), ".", markersize=2, color=color, label=name.replace("\n", " "))
    trace.set_xlabel("run")
    trace.set_ylabel("latency ms")
    trace.set_title("latency over the run (drift, bursts)")
    trace.legend(fontsize=7, markerscale=4, loc="upper right")

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
