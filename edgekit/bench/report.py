"""Benchmark results for people (a side-by-side rich table) and for spreadsheets (CSV)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from device_agent.bench.record import BenchRecord
from device_agent.bench.text import kernel_time_note, pipeline_notes, threads_shown, wrap

Note = tuple[str, str]  # (rich style, text)

Row = tuple[str, Callable[[BenchRecord], Any]]


def _num(value: Any, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}{suffix}"
    return f"{float(value):.{digits}f}{suffix}"


def _si(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def _lat(key: str) -> Callable[[BenchRecord], str]:
    return lambda m: _num(getattr(m.latency_ms, key), 3)


def _warmup(m: BenchRecord) -> str:
    w = m.warmup
    if w.fixed:
        return f"{w.runs} (fixed)"
    return f"{w.runs} ({'stable' if w.stable else '[yellow]not stable[/]'})"


def _cost(key: str, unit: str) -> Callable[[BenchRecord], str]:
    return lambda m: _si(getattr(m.cost, key), unit) if m.cost else "-"


def _repeats(m: BenchRecord) -> str:
    r = m.repeats
    if not r or len(r.p50_ms) < 2:
        return "-"
    return f"{r.spread_pct:.1f}% over {len(r.p50_ms)}"


def _providers(m: BenchRecord) -> str:
    used = [p.replace("ExecutionProvider", "") for p in m.providers]
    asked = [p.replace("ExecutionProvider", "") for p in m.providers_asked]
    missing = [p for p in asked if not any(p in u for u in used)]  # LiteRT reports "ai_edge_litert/XNNPACK"
    return ", ".join(used) + (f" [yellow](not available: {', '.join(missing)})[/]" if missing else "")


def _percent_of_peak(m: BenchRecord) -> str:
    if m.percent_of_peak is None or m.peak is None:
        return "-"
    return f"{m.percent_of_peak:.1f}% of {m.peak.precision}"


ROWS: tuple[Row, ...] = (
    ("runtime", lambda m: f"{m.runtime} ({threads_shown(m.threads)} thr)"),
    ("providers", _providers),
    ("precision", lambda m: m.precision),
    ("load ms", lambda m: _num(m.load_ms, 1)),
    ("first run ms", lambda m: _num(m.first_ms, 2)),
    ("warm-up runs", _warmup),
    ("timed runs", lambda m: str(m.runs)),
    ("p50 ms", _lat("p50")),
    ("p90 ms", _lat("p90")),
    ("p95 ms", _lat("p95")),
    ("p99 ms", _lat("p99")),
    ("p99.9 ms", _lat("p99_9")),
    ("mean ms", _lat("mean")),
    ("std ms", _lat("std")),
    ("CV %", lambda m: _num(100.0 * m.latency_ms.cv, 1)),
    ("drift %", lambda m: _num(m.latency_ms.drift_pct, 1)),
    ("p50 spread, repeats", _repeats),
    ("other CPU use %", lambda m: _num(m.machine.other_cpu_pct, 1)),
    ("throughput /s", lambda m: _num(m.throughput_ips, 1)),
    ("speedup (p50)", lambda m: _num(m.speedup, 2, "x")),
    ("peak RSS MB", lambda m: _num(m.peak_rss_mb, 1)),
    ("FLOPs", _cost("flops", "FLOP")),
    ("params", _cost("params", "")),
    ("GOP/s", lambda m: _num(m.gops, 1)),
    ("% of peak", _percent_of_peak),
)


def _title(m: BenchRecord) -> str:
    return m.name + (f"\n@{m.device}" if m.device else "")


def comparison_table(models: Sequence[BenchRecord], *, title: str = "edgekit benchmark") -> Table:
    """One column per model, one row per measure: what a person compares at a glance."""
    table = Table(title=title, title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    for m in models:
        table.add_column(_title(m), justify="right", no_wrap=True)
    for label, get in ROWS:
        table.add_row(label, *(str(get(m)) for m in models))
    return table


def top_ops_table(model: BenchRecord, top: int = 8) -> Table | None:
    """The operator types where the time goes (runtime profiler), or where the MACs are; what the
    numbers mean is in :func:`top_ops_notes` (printed under it, at the console's width)."""
    profile = model.top_ops
    if profile:
        table = Table(title=f"{model.name}: time by operator", title_justify="left")
        for col in ("operator", "nodes", "ms/run", "share"):
            table.add_column(col, justify="left" if col == "operator" else "right")
        for row in profile.by_type[:top]:
            table.add_row(row.op, str(row.nodes), f"{row.ms_per_run:.3f}", f"{row.percent:.1f}%")
        return table
    cost = model.cost
    if not cost or not cost.by_op_type:
        return None
    total = sum(cost.by_op_type.values()) or 1
    table = Table(title=f"{model.name}: MACs by operator", title_justify="left")
    for col in ("operator", "MACs", "share"):
        table.add_column(col, justify="left" if col == "operator" else "right")
    for op_type, macs in list(cost.by_op_type.items())[:top]:
        table.add_row(op_type, _si(macs, ""), f"{100.0 * macs / total:.1f}%")
    return table


def top_ops_notes(model: BenchRecord) -> list[str]:
    """Under the operator table: the profiler's kernel time (summed over threads), or why MACs are shown."""
    if model.top_ops:
        return [kernel_time_note(model) or ""]
    return [model.top_ops_note] if model.top_ops_note and model.cost and model.cost.by_op_type else []


PIPELINE_COLUMNS = ("stage", "p50 ms", "p90 ms", "p99 ms", "mean ms", "share of p50")


def pipeline_table(result: Mapping[str, Any]) -> Table:
    """One row per stage and one end to end, every row in the same columns; rates are in :func:`pipeline_notes`."""
    table = Table(title=f"pipeline: {result['name']} on {result['source']} ({result['frames']} frames, "
                        f"{result['frame_size_wh'][0]}x{result['frame_size_wh'][1]})", title_justify="left")
    for col in PIPELINE_COLUMNS:
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, s in result["stages_ms"].items():
        table.add_row(stage, _num(s["p50"], 3), _num(s["p90"], 3), _num(s["p99"], 3), _num(s["mean"], 3),
                      f"{s['share_pct']:.1f}%")
    e2e = result["e2e_ms"]
    table.add_row("[bold]end to end[/]", _num(e2e["p50"], 3), _num(e2e["p90"], 3), _num(e2e["p99"], 3),
                  _num(e2e["mean"], 3), "-")
    return table


def print_notes(console: Console, notes: Sequence[str | Note]) -> None:
    """Each note cut at the console's width between words, never inside a number or off its unit."""
    for note in notes:
        style, text = note if isinstance(note, tuple) else ("dim", note)
        for line in wrap(text, max(console.width, 40)):
            console.print(Text(line, style=style), soft_wrap=True)


def print_pipeline(console: Console, result: Mapping[str, Any]) -> None:
    console.print(pipeline_table(result))
    print_notes(console, pipeline_notes(result))


def _notes(models: Sequence[BenchRecord], host: Mapping[str, Any]) -> list[Note]:
    notes: list[Note] = [("dim", measured_on(models, host))]
    for m in models:
        if m.peak:
            notes.append(("dim", f"{m.name}: % of peak against {m.peak.gops:.0f} GOP/s {m.peak.precision} "
                                 f"({m.peak.source})"))
    notes += [("yellow", w) for w in warnings(models)]
    governors = sorted({str(m.machine.governor) for m in models if m.machine.governor not in (None, "performance")})
    if governors:
        notes.append(("dim", f"CPU governor {', '.join(governors)} scales the clock; for steadier numbers set "
                             "'performance' (cpupower frequency-set -g performance)"))
    if min(m.runs for m in models) < 1000:
        notes.append(("dim", "p99.9 of fewer than 1000 runs is close to the maximum; use --runs 1000 or more for "
                             "tail latency"))
    return notes


def measured_on(models: Sequence[BenchRecord], host: Mapping[str, Any]) -> str:
    """Where the numbers come from: the devices that measured them, or this host and its CPU."""
    devices = sorted({m.device for m in models if m.device})
    if devices:
        return f"measured on device {', '.join(devices)}"
    cpu = host["cpu"]
    return (f"measured on {host.get('hostname') or 'this host'}: {cpu['model']} ({cpu['arch']}, {cpu['cores']} cores"
            + (f", {cpu['max_ghz']:.2f} GHz" if cpu.get("max_ghz") else "") + ")")


def warnings(models: Sequence[BenchRecord]) -> list[str]:
    """What makes a model's numbers doubtful: other programs on the CPUs, steal time, an unsettled warm-up."""
    found = []
    for m in models:
        if (m.machine.other_cpu_pct or 0) > 10:
            found.append(f"{m.name}: other programs used {m.machine.other_cpu_pct}% of the CPUs during the timed "
                         "runs; its numbers carry their noise")
        if (m.machine.steal_pct or 0) > 2:
            found.append(f"{m.name}: the hypervisor gave {m.machine.steal_pct}% of the CPU time to other guests "
                         "(steal) during the timed runs")
        if not m.warmup.fixed and not m.warmup.stable:
            found.append(f"{m.name}: the warm-up hit its cap before the latency settled; the timed runs may "
                         "still be drifting")
    return found


def print_benchmark(console: Console, models: Sequence[BenchRecord], *, host: Mapping[str, Any], top: int = 8) -> None:
    """The comparison table, each model's operators, and notes on the machine (``host``: :func:`host_info`)."""
    console.print(comparison_table(models))
    for m in models:
        ops = top_ops_table(m, top)
        if ops is not None:
            console.print(ops)
            print_notes(console, top_ops_notes(m))
    print_notes(console, _notes(models, host))


CSV_FIELDS = ("name", "model", "runtime", "precision", "threads", "runs", "load_ms", "first_ms", "p50_ms", "p90_ms",
              "p95_ms", "p99_ms", "p99_9_ms", "mean_ms", "std_ms", "cv_pct", "drift_pct", "throughput_ips", "speedup",
              "peak_rss_mb", "macs", "params", "gops", "peak_gops", "peak_precision", "percent_of_peak",
              "other_cpu_pct", "warmup_runs", "warmup_stable", "device")
"""Units as in the table: percentages in percent (``*_pct``, ``percent_of_peak``), times in ms; ``threads``
is the count asked for or ``default``."""


def csv_row(m: BenchRecord) -> dict[str, Any]:
    lat = m.latency_ms
    return {"name": m.name, "model": m.model, "runtime": m.runtime, "precision": m.precision,
            "threads": threads_shown(m.threads), "runs": m.runs, "load_ms": m.load_ms, "first_ms": m.first_ms,
            **{f"{k}_ms": getattr(lat, k) for k in ("p50", "p90", "p95", "p99", "p99_9", "mean", "std")},
            "cv_pct": round(100.0 * lat.cv, 3), "drift_pct": lat.drift_pct, "throughput_ips": m.throughput_ips,
            "speedup": m.speedup, "peak_rss_mb": m.peak_rss_mb, "macs": m.cost.macs if m.cost else None,
            "params": m.cost.params if m.cost else None, "gops": m.gops,
            "peak_gops": m.peak.gops if m.peak else None, "peak_precision": m.peak.precision if m.peak else None,
            "percent_of_peak": m.percent_of_peak, "other_cpu_pct": m.machine.other_cpu_pct,
            "warmup_runs": m.warmup.runs, "warmup_stable": m.warmup.stable, "device": m.device or ""}


def write_csv(path: Path | str, models: Sequence[BenchRecord]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for m in models:
            writer.writerow(csv_row(m))
    return out
