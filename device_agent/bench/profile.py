"""Where the time goes inside a model: per-operator times from the runtime's own profiler.

onnxruntime writes a Chrome-trace JSON with one ``Node`` event per kernel call
(``<node>_kernel_time``, duration in microseconds, ``args.op_name``). LiteRT's Python API
has no operator profiler; for TFLite the benchmark shows operators by their share of MACs
instead and says so.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from device_agent.errors import AgentError


@dataclass(frozen=True)
class OpTime:
    """Time spent in one operator type (or one node) per inference."""

    op: str
    ms_per_run: float
    percent: float  # of the time inside all kernels
    nodes: int  # how many nodes of this type (1 for a node entry)

    def to_json(self) -> dict[str, object]:
        return {"op": self.op, "ms_per_run": round(self.ms_per_run, 4), "percent": round(self.percent, 2),
                "nodes": self.nodes}


@dataclass(frozen=True)
class OpProfile:
    runs: int
    kernel_ms_per_run: float
    by_type: tuple[OpTime, ...]
    by_node: tuple[OpTime, ...]
    source: str

    def to_json(self, top: int = 10) -> dict[str, object]:
        return {"runs": self.runs, "kernel_ms_per_run": round(self.kernel_ms_per_run, 4), "source": self.source,
                "by_type": [t.to_json() for t in self.by_type[:top]],
                "by_node": [t.to_json() for t in self.by_node[:top]]}


def parse_ort_profile(trace: Path, *, skip_runs: int = 0) -> OpProfile:
    """Sum onnxruntime's kernel events by operator type and by node, per run.

    The first ``skip_runs`` runs of the session (its own warm-up) are left out, using the
    trace's ``model_run`` events to tell the runs apart."""
    try:
        events = json.loads(trace.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AgentError(f"cannot read the onnxruntime profile {str(trace)!r}: {exc}") from exc
    starts = sorted(float(e.get("ts", 0)) for e in events if e.get("name") == "model_run")
    if len(starts) <= skip_runs:
        raise AgentError(f"the onnxruntime profile {str(trace)!r} holds {len(starts)} runs; "
                         f"expected more than {skip_runs}")
    after_ts = starts[skip_runs]
    runs = len(starts) - skip_runs
    by_type_us: dict[str, float] = defaultdict(float)
    by_node_us: dict[str, float] = defaultdict(float)
    node_type: dict[str, str] = {}
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") != "Node" or not name.endswith("_kernel_time") or float(event.get("ts", 0)) < after_ts:
            continue
        node = name[: -len("_kernel_time")]
        op = str(event.get("args", {}).get("op_name", "?"))
        by_type_us[op] += float(event.get("dur", 0))
        by_node_us[node] += float(event.get("dur", 0))
        node_type[node] = op
    total_us = sum(by_type_us.values())

    def rows(table: dict[str, float], count: dict[str, int]) -> tuple[OpTime, ...]:
        ordered = sorted(table.items(), key=lambda kv: kv[1], reverse=True)
        return tuple(OpTime(k, us / runs / 1000.0, 100.0 * us / total_us if total_us else 0.0, count.get(k, 1))
                     for k, us in ordered)

    nodes_per_type: dict[str, int] = defaultdict(int)
    for op in node_type.values():
        nodes_per_type[op] += 1
    return OpProfile(runs=runs, kernel_ms_per_run=total_us / runs / 1000.0, by_type=rows(by_type_us, nodes_per_type),
                     by_node=rows({f"{n} ({node_type[n]})": us for n, us in by_node_us.items()}, {}),
                     source="onnxruntime profiler (kernel time)")
