"""Human-readable views: the optimize summary, a bundle's manifest, the target list."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from device_agent.bundle.manifest import Manifest
from edgekit.targets import TargetProfile

if TYPE_CHECKING:
    from edgekit.optimize.report import OptimizeReport


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def optimize_table(report: OptimizeReport) -> Table:
    validation = report.validation
    table = Table(title=f"Candidates: {validation.metric} vs the original "
                        f"on {validation.samples} held-out samples",
                  title_justify="left")
    for column in ("candidate", "p50 ms", "speedup (95% CI)", "agree %", "drop", "MB", "budget", ""):
        table.add_column(column, justify="left" if column in ("candidate", "budget", "") else "right", no_wrap=True)
    for c in report.candidates:
        table.add_row(
            c.name,
            _fmt(c.latency_ms.p50 if c.latency_ms else None),
            _speedup(c.speedup, c.speedup_ci95, resolved=not _contended(report)),
            _fmt(c.value),
            _fmt(c.drop),
            _fmt(c.size_bytes / 1e6, 1),
            "[green]pass[/]" if c.passed else "[red]miss[/]",
            "[bold green]winner[/]" if c.name == report.winner else "",
        )
    return table


def _contended(report: OptimizeReport) -> bool:
    timing = report.timing
    return (timing.contention_pct or 0.0) > timing.contention_limit_pct


def _speedup(value: float | None, ci: list[float] | None, *, resolved: bool) -> str:
    """``1.42x (1.38-1.47)``; ``not resolved`` on a machine too busy for a ratio to mean anything."""
    if value is None:
        return "-"
    if not resolved:
        return "not resolved"
    return f"{value:.2f}x" + (f" ({ci[0]:.2f}-{ci[1]:.2f})" if ci else "")


def _timing_line(report: OptimizeReport) -> str:
    timing = report.timing
    busy = ("contention not measurable" if timing.contention_pct is None
            else f"other CPU use {timing.contention_pct:.0f}%")
    return f"timing      {timing.rounds} interleaved rounds in {timing.seconds:.1f} s ({timing.stopped}), {busy}"


def print_optimize(console: Console, bundle: str, report: OptimizeReport) -> None:
    validation, data, latency = report.validation, report.data, report.latency_ms
    ci = f" (95% CI {validation.ci95[0]:.1f}-{validation.ci95[1]:.1f})" if validation.ci95 else ""
    lines = [
        f"bundle      {bundle}",
        f"target      {report.target.name} ({report.target.runtime})",
        f"winner      {report.winner}: {report.reason}",
        f"latency     {latency.reference:.2f} ms fp32 -> {latency.optimized:.2f} ms"
        + (" (busy machine: not a result)" if _contended(report) else ""),
        _timing_line(report),
        f"validation  {validation.metric} {validation.optimized:.2f}{ci} vs {validation.reference:.2f} on "
        f"{validation.samples} held-out samples ({'passed' if validation.passed else 'FAILED'}, budget "
        f"{validation.max_drop} points)",
        f"data        {data.calibration} calibration + {data.validation} validation samples from {data.source}"
        + (f", {len(data.skipped)} unreadable skipped" if data.skipped else ""),
        f"took        {report.seconds:.1f} s",
        *(f"[bold yellow]warning[/]     {escape(w)}" for w in report.warnings),
    ]
    console.print(Panel(Group(optimize_table(report), "", *lines), title="edgekit optimize", expand=False))


def manifest_view(manifest: Manifest) -> Panel:
    head = Table.grid(padding=(0, 2))
    head.add_row("name", f"{manifest.name} v{manifest.version}")
    head.add_row("created", f"{manifest.created} by edgekit {manifest.toolkit_version}")
    head.add_row("target", f"{manifest.target.name} / {manifest.target.runtime} / threads {manifest.target.threads}")
    head.add_row("precision", manifest.precision + (f" (candidate {manifest.candidate})"
                                                    if manifest.candidate not in (None, manifest.precision) else ""))
    head.add_row("model", f"{manifest.model.file} sha256 {manifest.model.sha256[:16]}…")
    head.add_row("source", f"{manifest.source.file} ({manifest.source.format}) sha256 {manifest.source.sha256[:16]}…")
    task = manifest.task
    head.add_row("task", f"{task.kind} / decoder {task.decoder} / {len(task.labels)} labels")
    if manifest.preprocess:
        p = manifest.preprocess
        head.add_row("preprocess", f"{p.size_wh[0]}x{p.size_wh[1]} {p.resize} {p.color} {p.layout} scale {p.scale:.5g} "
                                   f"mean {list(p.mean)} std {list(p.std)}")
    if manifest.validation:
        v = manifest.validation
        ci = f" (95% CI {v.ci95[0]:.1f}-{v.ci95[1]:.1f})" if v.ci95 else ""
        head.add_row("validation", f"{v.metric} {v.optimized:.2f}{ci} vs {v.reference:.2f} on {v.samples} samples "
                                   f"({'passed' if v.passed else 'FAILED'})")
    latency = manifest.performance.get("latency_ms", {})
    if latency:
        timing = manifest.performance.get("timing") or {}
        busy = (timing.get("contention_pct") or 0) > timing.get("contention_limit_pct", 100)
        head.add_row("latency", f"{latency.get('optimized', 0):.2f} ms "
                                f"(fp32 {latency.get('reference', 0):.2f} ms) on the build machine"
                                + (f", [yellow]busy ({timing['contention_pct']:.0f}% other CPU use): "
                                   "not a result[/]" if busy else ""))
    for warning in manifest.performance.get("warnings") or []:
        head.add_row("[yellow]warning[/]", escape(str(warning)))
    io = Table("tensor", "name", "shape", "dtype", "layout", title_justify="left")
    for kind, specs in (("input", manifest.inputs), ("output", manifest.outputs)):
        for s in specs:
            io.add_row(kind, s.name, str(s.shape), s.dtype, s.layout)
    files = Table("file", "bytes", "sha256")
    for name, entry in sorted(manifest.files.items()):
        files.add_row(name, str(entry.size_bytes), entry.sha256[:16] + "…")
    return Panel(Group(head, "", io, "", files), title="bundle (verified)", expand=False)


def targets_table(profiles: Mapping[str, TargetProfile]) -> Table:
    table = Table("target", "runtime", "precisions", "threads", "layout", "int8 I/O", "peak GOP/s",
                  caption="\n".join(f"{n}: {p.description}" for n, p in sorted(profiles.items())),
                  caption_justify="left")
    for name, p in sorted(profiles.items()):
        peak = ", ".join(f"{k} {v:g}" for k, v in p.peak_gops.items()) or "detected"
        table.add_row(name, p.runtime, ", ".join(p.precisions), str(p.threads or "auto"), p.layout,
                      "yes" if p.int8_io_required else "no", peak)
    return table


def _malformed(view: Any) -> str:
    """How many messages broke the contract, and the last problem (shortened), in red."""
    if not view.malformed:
        return "0"
    problem = view.last_error if len(view.last_error) <= 60 else view.last_error[:57] + "..."
    return f"[red]{view.malformed}: {escape(problem)}[/]"


def monitor_table(state: Any) -> Table:  # state: edgekit.fleet.monitor.MonitorState
    table = Table("device", "online", "model", "fps", "infer p50 ms", "outbox", "results", "dup", "missing",
                  "malformed", "last alert", title="edgekit monitor", title_justify="left")
    for view in sorted(state.devices.values(), key=lambda v: v.device):
        online = "-" if view.online is None else ("[green]yes[/]" if view.online else "[red]no[/]")
        table.add_row(view.device, online, view.model, _fmt(view.fps, 1), _fmt(view.infer_p50_ms),
                      "-" if view.outbox_depth is None else str(view.outbox_depth), str(view.results),
                      str(view.duplicates), str(view.missing), _malformed(view), view.last_alert)
    return table
