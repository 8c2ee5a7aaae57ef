"""The result of benchmarking one model: a frozen record, the JSON ``edgekit benchmark --json`` prints.

One record per model, whether measured here, in the worker process or on a device over MQTT
(the ``bench`` command's ``result``). Its JSON keys are a contract scripts read
(``latency_ms.p50``, ``load_ms``, ``peak_rss_mb``, ...): :meth:`BenchRecord.to_json` writes
exactly the keys the dict it replaced had, in the same order. The host adds what only it
knows (``repeats``, ``speedup``; ``device`` and ``remote`` for a device's record); those
keys, and ``samples_ms``, appear only when set.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


class Latency(_Record):
    """Timed runs in milliseconds (:class:`~device_agent.bench.stats.LatencyStats`), with load and first run."""

    runs: int
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    mean: float
    std: float
    min: float
    max: float
    cv: float = Field(description="coefficient of variation: std / mean (0.02 = 2 %)")
    drift_pct: float = Field(description="median of the last tenth of the runs vs the first tenth, in percent")
    load_ms: float
    first_ms: float


class WarmupRecord(_Record):
    """What the warm-up did (:class:`~device_agent.bench.stats.Warmup`)."""

    runs: int
    ms: float
    stable: bool = Field(description="false when it hit its cap before the latency settled")
    fixed: bool = Field(description="--warmup N: exactly N runs, no stability test")
    block_medians_ms: tuple[float, ...] = ()


class Temperatures(_Record):
    before: float | None
    after: float | None


class MachineState(_Record):
    """What the machine was doing: at the start (load, governor) and over the timed runs (contention)."""

    load_avg_1m: float | None = None
    governor: str | None = None
    other_cpu_pct: float | None = Field(default=None, description="other programs' share of all CPUs, timed runs")
    steal_pct: float | None = Field(default=None, description="CPU time the hypervisor gave to other guests")


class CostRecord(_Record):
    """MACs and parameters (:class:`~device_agent.bench.cost.ModelCost`)."""

    macs: int
    flops: int
    params: int
    by_op_type: dict[str, int]
    counted: str
    precision: str = "fp32"


class PeakRecord(_Record):
    """The peak compute the achieved GOP/s is set against (:class:`~device_agent.bench.hardware.Peak`)."""

    gops: float
    precision: str
    source: str


class OpTimeRecord(_Record):
    op: str
    ms_per_run: float
    percent: float
    nodes: int


class OpProfileRecord(_Record):
    """Where the time goes by operator (:class:`~device_agent.bench.profile.OpProfile`), the top ones."""

    runs: int
    kernel_ms_per_run: float
    source: str
    by_type: tuple[OpTimeRecord, ...]
    by_node: tuple[OpTimeRecord, ...]


class Repeats(_Record):
    """With ``--repeat`` N: every repeat's p50 and their spread; the record is the median repeat."""

    p50_ms: tuple[float, ...]
    spread_pct: float


_SET_ONLY = ("samples_ms", "device", "remote", "repeats", "speedup")
"""Keys written only when set: the dict this record replaced had them only then."""


class BenchRecord(_Record):
    """One model measured: what, how, how fast, how much memory and compute, where the time goes."""

    model: str = Field(description="what was named: a bundle directory or a model file")
    name: str
    model_file: str
    runtime: str
    providers: tuple[str, ...] = Field(description="execution providers the runtime used")
    providers_asked: tuple[str, ...]
    threads: int = Field(description="inference threads; 0: the runtime's default")
    precision: str
    input: str = Field(description="golden (the bundle's photo) or random")
    load_ms: float
    first_ms: float
    warmup: WarmupRecord
    runs: int
    timed_s: float
    latency_ms: Latency
    throughput_ips: float | None
    peak_rss_mb: float
    model_rss_mb: float
    temperature_c: Temperatures
    machine: MachineState
    cost: CostRecord | None
    cost_note: str | None
    gops: float | None = Field(description="achieved giga-operations per second at p50")
    peak: PeakRecord | None
    percent_of_peak: float | None
    top_ops: OpProfileRecord | None
    top_ops_note: str | None
    agent_version: str
    samples_ms: tuple[float, ...] | None = Field(default=None, description="every timed run's latency, in order")
    device: str | None = Field(default=None, description="host: the device that measured it (remote)")
    remote: bool | None = Field(default=None, description="host: true when a device measured it over MQTT")
    repeats: Repeats | None = Field(default=None, description="host: the repeats this median one was picked from")
    speedup: float | None = Field(default=None, description="host: the first model's p50 / this one's")

    def to_json(self, *, samples: bool = True) -> dict[str, Any]:
        """The record as JSON; ``samples=False`` leaves ``samples_ms`` out."""
        unset = {key for key in _SET_ONLY if getattr(self, key) is None}
        if not samples:
            unset.add("samples_ms")
        return self.model_dump(mode="json", exclude=unset)
