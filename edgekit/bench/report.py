"""Benchmark results for people (a side-by-side rich table) and for spreadsheets (CSV)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

Row = tuple[str, Callable[[Mapping[str, Any]], Any]]


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


def _lat(key: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda m: _num(m["latency_ms"][key], 3)


def _warmup(m: Mapping[str, Any]) -> str:
    w = m["warmup"]
    if w["fixed"]:
        return f"{w['runs']} (fixed)"
    return f"{w['runs']} ({'stable' if w['stable'] else '[yellow]not stable[/]'})"


def _cost(key: str, unit: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda m: _si(m["cost"][key], unit) if m.get("cost") else "-"


def _repeats(m: Mapping[str, Any]) -> str:
    r = m.get("repeats")
    if not r or len(r["p50_ms"]) < 2:
        return "-"
    return f"{r['spread_pct']:.1f}% over {len(r['p50_ms'])}"


def _providers(m: Mapping[str, Any]) -> str:
    used = [p.replace("ExecutionProvider", "") for p in m.get("providers", [])]
    asked = [p.replace("ExecutionProvider", "") for p in m.get("providers_asked", [])]
    missing = [p for p in asked if not any(p in u for u in used)]  # LiteRT reports "ai_edge_litert/XNNPACK"
    return ", ".join(used) + (f" [yellow](not available: {', '.join(missing)})[/]" if missing else "")


ROWS: tuple[Row, ...] = (
    ("runtime", lambda m: f"{m['runtime']} ({m['threads'] or 'default'} thr)"),
    ("providers", lambda m: _providers(m)),
    ("precision", lambda m: m["precision"]),
    ("load ms", lambda m: _num(m["load_ms"], 1)),
    ("first run ms", lambda m: _num(m["first_ms"], 2)),
    ("warm-up runs", _warmup),
    ("timed runs", lambda m: str(m["runs"])),
    ("p50 ms", _lat("p50")),
    ("p90 ms", _lat("p90")),
    ("p95 ms", _lat("p95")),
    ("p99 ms", _lat("p99")),
    ("p99.9 ms", _lat("p99_9")),
    ("mean ms", _lat("mean")),
    ("std ms", _lat("std")),
    ("CV %", lambda m: _num(100.0 * m["latency_ms"]["cv"], 1)),
    ("drift %", lambda m: _num(m["latency_ms"]["drift_pct"], 1)),
    ("p50 spread, repeats", _repeats),
    ("other CPU use %", lambda m: _num((m.get("machine") or {}).get("other_cpu_pct"), 1)),
    ("throughput /s", lambda m: _num(m["throughput_ips"], 1)),
    ("speedup (p50)", lambda m: _num(m.get("speedup"), 2, "x")),
    ("peak RSS MB", lambda m: _num(m["peak_rss_mb"], 1)),
    ("FLOPs", _cost("flops", "FLOP")),
    ("params", _cost("params", "")),
    ("GOP/s", lambda m: _num(m["gops"], 1)),
    ("% of peak", lambda m: _num(m["percent_of_peak"], 1, "%") if m["percent_of_peak"] is not None else "-"),
)


def comparison_table(models: Sequence[Mapping[str, Any]], *, title: str = "edgekit benchmark") -> Table:
    """One column per model, one row per measure: what a person compares at a glance."""
    table = Table(title=title, title_justify="left")
    table.add_column("", style="bold", no_wrap=True)
    for m in models:
        table.add_column(m["name"] + (f"\n@{m['device']}" if m.get("device") else ""), justify="right", no_wrap=True)
    for label, get in ROWS:
        table.add_row(label, *(str(get(m)) for m in models))
    return table


def top_ops_table(model: Mapping[str, Any], top: int = 8) -> Table | None:
    """The operator types where the time goes (runtime profiler), or where the MACs are."""
    profile = model.get("top_ops")
    if profile:
        table = Table(title=f"{model['name']}: time by operator", title_justify="left",
                      caption=f"{profile['source']}: {profile['kernel_ms_per_run']:.3f} ms in kernels per run, "
                              f"{profile['runs']} profiled runs", caption_justify="left")
        for col in ("operator", "nodes", "ms/run", "share"):
            table.add_column(col, justify="left" if col == "operator" else "right")
        for op in profile["by_type"][:top]:
            table.add_row(op["op"], str(op["nodes"]), f"{op['ms_per_run']:.3f}", f"{op['percent']:.1f}%")
        return table
    cost = model.get("cost")
    if not cost or not cost.get("by_op_type"):
        return None
    total = sum(cost["by_op_type"].values()) or 1
    table = Table(title=f"{model['name']}: MACs by operator", title_justify="left",
                  caption=model.get("top_ops_note") or "", caption_justify="left")
    for col in ("operator", "MACs", "share"):
        table.add_column(col, justify="left" if col == "operator" else "right")
    for op, macs in list(cost["by_op_type"].items())[:top]:
        table.add_row(op, _si(macs, ""), f"{100.0 * macs / total:.1f}%")
    return table


def pipeline_table(result: Mapping[str, Any]) -> Table:
    table = Table(title=f"pipeline: {result['name']} on {result['source']} ({result['frames']} frames, "
                        f"{result['frame_size_wh'][0]}x{result['frame_size_wh'][1]})", title_justify="left")
    for col in ("stage", "p50 ms", "p90 ms", "p99 ms", "mean ms", "share of p50"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for stage, s in result["stages_ms"].items():
        table.add_row(stage, _num(s["p50"], 3), _num(s["p90"], 3), _num(s["p99"], 3), _num(s["mean"], 3),
                      f"{s['share_pct']:.1f}%")
    e2e = result["e2e_ms"]
    table.add_row("[bold]end to end[/]", _num(e2e["p50"], 3), _num(e2e["p90"], 3), _num(e2e["p99"], 3),
                  _num(e2e["mean"], 3), f"[bold]{result['e2e_fps']} fps[/]")
    return table


def print_benchmark(console: Console, result: Mapping[str, Any], *, top: int = 8) -> None:
    models = result["models"]
    console.print(comparison_table(models))
    for m in models:
        ops = top_ops_table(m, top)
        if ops is not None:
            console.print(ops)
    cpu = result["host"]["cpu"]
    notes = [f"measured on {cpu['model']} ({cpu['arch']}, {cpu['cores']} cores"
             + (f", {cpu['max_ghz']:.2f} GHz" if cpu.get("max_ghz") else "") + ")"]
    for m in models:
        if m.get("peak"):
            peak = m["peak"]
            notes.append(f"{m['name']}: peak {peak['gops']:.0f} GOP/s {peak['precision']} ({peak['source']})")
    for m in models:
        machine = m.get("machine") or {}
        if (machine.get("other_cpu_pct") or 0) > 10:
            notes.append(f"[yellow]{m['name']}: other programs used {machine['other_cpu_pct']}% of the CPUs during the "
                         "timed runs; its numbers carry their noise[/]")
        if (machine.get("steal_pct") or 0) > 2:
            notes.append(f"[yellow]{m['name']}: the hypervisor gave {machine['steal_pct']}% of the CPU time to other "
                         "guests (steal) during the timed runs[/]")
    governors = sorted({str(machine["governor"]) for machine in (m.get("machine") or {} for m in models)
                        if machine.get("governor") not in (None, "performance")})
    if governors:
        notes.append(f"CPU governor {', '.join(governors)} scales the clock; for steadier numbers set "
                     "'performance' (cpupower frequency-set -g performance)")
    if min(m["runs"] for m in models) < 1000:
        notes.append("p99.9 of fewer than 1000 runs is close to the maximum; use --runs 1000 or more for tail latency")
    for line in notes:
        console.print(f"[dim]{line}[/]", highlight=False)


CSV_FIELDS = ("name", "model", "runtime", "precision", "threads", "runs", "load_ms", "first_ms", "p50_ms", "p90_ms",
              "p95_ms", "p99_ms", "p99_9_ms", "mean_ms", "std_ms", "cv", "throughput_ips", "speedup", "peak_rss_mb",
              "macs", "params", "gops", "percent_of_peak", "warmup_runs", "warmup_stable", "device")


def csv_row(m: Mapping[str, Any]) -> dict[str, Any]:
    lat = m["latency_ms"]
    cost = m.get("cost") or {}
    return {"name": m["name"], "model": m["model"], "runtime": m["runtime"], "precision": m["precision"],
            "threads": m["threads"], "runs": m["runs"], "load_ms": m["load_ms"], "first_ms": m["first_ms"],
            **{f"{k}_ms": lat[k] for k in ("p50", "p90", "p95", "p99", "p99_9", "mean", "std")}, "cv": lat["cv"],
            "throughput_ips": m["throughput_ips"], "speedup": m.get("speedup"), "peak_rss_mb": m["peak_rss_mb"],
            "macs": cost.get("macs"), "params": cost.get("params"), "gops": m["gops"],
            "percent_of_peak": m["percent_of_peak"], "warmup_runs": m["warmup"]["runs"],
            "warmup_stable": m["warmup"]["stable"], "device": m.get("device", "")}


def write_csv(path: Path | str, models: Sequence[Mapping[str, Any]]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for m in models:
            writer.writerow(csv_row(m))
    return out
