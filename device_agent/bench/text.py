"""Plain-text output of ``edgekit-agent bench`` (the device has no rich) and the host record."""

from __future__ import annotations

import platform
import re
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from device_agent import __version__
from device_agent.bench.hardware import detect_cpu
from device_agent.bench.record import BenchRecord


def host_info() -> dict[str, Any]:
    """The machine and library versions, so that a result file says where it was measured."""
    info: dict[str, Any] = {"hostname": platform.node(), "cpu": detect_cpu().to_json(),
                            "python": platform.python_version(), "platform": platform.platform(), "agent": __version__}
    for module in ("onnxruntime", "ai_edge_litert", "numpy"):
        try:
            info[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            info[module] = None
    return info


_GLUE = re.compile(r"(?<=\d)( )(?=\S)|(?<=\S)( )(?=\d)")
_JOINED = "\x00"


def wrap(text: str, width: int = 80, *, indent: str = "") -> list[str]:
    """``text`` cut into lines of at most ``width`` columns (a word longer than that stays whole), never
    inside a number nor between a number and the words on either side of it (``102.8 ms``, ``of 20``)."""
    glued = _GLUE.sub(_JOINED, text)
    lines = textwrap.wrap(glued, width, initial_indent=indent, subsequent_indent=indent + "  ",
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace(_JOINED, " ") for line in lines]


def threads_shown(threads: int) -> str:
    """The thread count as a person reads it: the number asked for, or ``default`` (0: the runtime picks)."""
    return str(threads) if threads else "default"


def kernel_time_note(m: BenchRecord) -> str | None:
    """The profiler's kernel time per run, said to be summed over the threads (it can exceed the latency)."""
    profile = m.top_ops
    if profile is None:
        return None
    threads = f"the {m.threads} inference threads" if m.threads else "the runtime's default inference threads"
    return (f"{profile.source}: {_ms(profile.kernel_ms_per_run)} ms of kernel time per run, summed over {threads} "
            f"({profile.runs} profiled runs); kernels run side by side, so this can exceed the p50 latency of "
            f"{_ms(m.latency_ms.p50)} ms")


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


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
            + (f" = {_f(m.percent_of_peak, 1)}% of the {m.peak.precision} peak {m.peak.gops:.0f} GOP/s "
               f"({m.peak.source})" if m.peak else ""))


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
            f"{m.name}  ({m.runtime}, {threads_shown(m.threads)} threads, {m.precision}, input: {m.input})",
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
            lines += wrap(kernel_time_note(m) or "", 80, indent="  ")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def pipeline_notes(result: Mapping[str, Any]) -> list[str]:
    """What the pipeline table's numbers mean: the end-to-end rate and the committer's thread."""
    notes = [f"end to end: {result['e2e_fps']} fps, one frame at a time; the agent overlaps capture and "
             f"preprocessing with inference, so its rate lies between this and {result['infer_only_fps']} fps "
             "(inference alone)"]
    commit = result.get("commit_thread")
    if commit and commit.get("messages"):
        notes.append(f"publish: building the result and queueing it to the group committer, as the agent does; "
                     f"the committer's own thread, off the frame's path, spent {commit['ms_per_frame']:.3f} ms "
                     f"per frame committing to the outbox ({commit['batches']} batches of "
                     f"{commit['frames_per_batch']:.1f} frames, {commit['ms_per_batch']:.3f} ms per batch)")
    return notes


def pipeline_text(result: Mapping[str, Any]) -> str:
    lines = [f"{result['name']} on {result['source']}: {result['frames']} frames",
             f"  {'stage':<12}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'share':>8}"]
    for stage, s in result["stages_ms"].items():
        lines.append(f"  {stage:<12}{s['p50']:>10.3f}{s['p90']:>10.3f}{s['p99']:>10.3f}{s['share_pct']:>7.1f}%")
    e2e = result["e2e_ms"]
    lines.append(f"  {'end to end':<12}{e2e['p50']:>10.3f}{e2e['p90']:>10.3f}{e2e['p99']:>10.3f}{'-':>8}")
    for note in pipeline_notes(result):
        lines += wrap(note, 80, indent="  ")
    return "\n".join(lines) + "\n"
