"""Plain-text output of ``edgekit-agent bench`` (the device has no rich) and the host record."""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from typing import Any

from device_agent import __version__
from device_agent.bench.hardware import detect_cpu
from device_agent.bench.record import BenchRecord


def host_info() -> dict[str, Any]:
    """The machine and library versions, so that a result file says where it was measured."""
    info: dict[str, Any] = {"cpu": detect_cpu().to_json(), "python": platform.python_version(),
                            "platform": platform.platform(), "agent": __version__}
    for module in ("onnxruntime", "ai_edge_litert", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            info[module] = None
    return info


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _providers(m: BenchRecord) -> str:
    missing = [a for a in m.providers_asked if not any(a in used for used in m.providers)]
    return (f"  providers used: {', '.join(m.providers) or '-'}"
            + (f" (asked: {', '.join(m.providers_asked)})" if missing else ""))


def _compute(m: BenchRecord) -> str:
    cost = m.cost
    return (f"  peak RSS {_f(m.peak_rss_mb, 1)} MB   "
            + (f"{cost.flops / 1e9:.3f} GFLOPs, {cost.params / 1e6:.2f} M params, " if cost else "")
            + f"{_f(m.gops, 1)} GOP/s"
            + (f" = {_f(m.percent_of_peak, 1)}% of {m.peak.gops:.0f} ({m.peak.source})" if m.peak else ""))


def _machine(m: BenchRecord) -> list[str]:
    machine, lines = m.machine, []
    if machine.other_cpu_pct is not None:
        lines.append(f"  other programs used {machine.other_cpu_pct}% of the CPUs during the timed runs"
                     + (f", steal {machine.steal_pct}%" if machine.steal_pct else ""))
    if machine.governor not in (None, "performance"):
        lines.append(f"  note: CPU governor '{machine.governor}' scales the clock; "
                     "'performance' gives steadier numbers")
    return lines


def text_report(models: Sequence[BenchRecord]) -> str:
    """Two columns per line, one block per model: readable over SSH on a 80-column terminal."""
    lines: list[str] = []
    for m in models:
        lat, warm = m.latency_ms, m.warmup
        lines += [
            f"{m.name}  ({m.runtime}, {m.threads or 'default'} threads, {m.precision}, input: {m.input})",
            _providers(m),
            (f"  load {_f(m.load_ms, 1)} ms   first run {_f(m.first_ms, 2)} ms   warm-up {warm.runs} runs"
             + ("" if warm.fixed else (" (stable)" if warm.stable else " (NOT stable: latency still moving)"))),
            (f"  {m.runs} timed runs: p50 {_f(lat.p50)}  p90 {_f(lat.p90)}  p95 {_f(lat.p95)}  "
             f"p99 {_f(lat.p99)}  p99.9 {_f(lat.p99_9)} ms"),
            (f"  mean {_f(lat.mean)} ms  std {_f(lat.std)} ms  CV {_f(100 * lat.cv, 1)}%  "
             f"drift {_f(lat.drift_pct, 1)}%  throughput {_f(m.throughput_ips, 1)}/s"),
            _compute(m),
            *_machine(m),
        ]
        if m.top_ops:
            ops = ", ".join(f"{o.op} {o.percent:.0f}%" for o in m.top_ops.by_type[:5])
            lines.append(f"  time by operator: {ops}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def pipeline_text(result: Mapping[str, Any]) -> str:
    lines = [f"{result['name']} on {result['source']}: {result['frames']} frames, {result['e2e_fps']} fps end to end",
             f"  {'stage':<12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'share':>8}"]
    for stage, s in result["stages_ms"].items():
        lines.append(f"  {stage:<12}{s['p50']:>10.3f}{s['p90']:>10.3f}{s['p99']:>10.3f}{s['share_pct']:>7.1f}%")
    e2e = result["e2e_ms"]
    lines.append(f"  {'end to end':<12}{e2e['p50']:>10.3f}{e2e['p90']:>10.3f}{e2e['p99']:>10.3f}")
    return "\n".join(lines) + "\n"
