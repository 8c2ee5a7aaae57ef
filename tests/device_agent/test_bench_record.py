"""The frozen benchmark record: the JSON keys scripts read, in their order, and nothing it was not given."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from device_agent.bench.record import BenchRecord, Repeats

KEYS = ["model", "name", "model_file", "runtime", "providers", "providers_asked", "threads", "precision", "input",
        "load_ms", "first_ms", "warmup", "runs", "timed_s", "latency_ms", "throughput_ips", "peak_rss_mb",
        "model_rss_mb", "temperature_c", "machine", "cost", "cost_note", "gops", "peak", "percent_of_peak", "top_ops",
        "top_ops_note", "agent_version"]
"""The keys of one model in 'edgekit benchmark --json' before the record was a model (dict order)."""

LATENCY = {"runs": 3, "p50": 1.5, "p90": 1.9, "p95": 1.95, "p99": 1.99, "p99_9": 1.999, "mean": 1.6, "std": 0.3,
           "min": 1.2, "max": 2.0, "cv": 0.19, "drift_pct": 1.0, "load_ms": 12.5, "first_ms": 3.25}


def _json(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "model": "b/int8", "name": "tiny int8", "model_file": "b/int8/model.onnx", "runtime": "onnxruntime",
        "providers": ["CPUExecutionProvider"], "providers_asked": [], "threads": 2, "precision": "int8",
        "input": "golden", "load_ms": 12.5, "first_ms": 3.25,
        "warmup": {"runs": 40, "ms": 1000.2, "stable": True, "fixed": False, "block_medians_ms": [1.6, 1.5, 1.5]},
        "runs": 3, "timed_s": 0.005, "latency_ms": dict(LATENCY), "throughput_ips": 600.0, "peak_rss_mb": 80.1,
        "model_rss_mb": 4.2, "temperature_c": {"before": None, "after": None},
        "machine": {"load_avg_1m": 0.5, "governor": None, "other_cpu_pct": None, "steal_pct": None},
        "cost": {"macs": 100, "flops": 200, "params": 10, "by_op_type": {"Conv": 100}, "counted": "Conv MACs",
                 "precision": "int8"},
        "cost_note": None, "gops": 0.133, "peak": {"gops": 100.0, "precision": "int8", "source": "detected"},
        "percent_of_peak": 0.13,
        "top_ops": {"runs": 20, "kernel_ms_per_run": 1.2, "source": "onnxruntime profiler (kernel time)",
                    "by_type": [{"op": "Conv", "ms_per_run": 1.0, "percent": 83.3, "nodes": 2}], "by_node": []},
        "top_ops_note": None, "agent_version": "0.1.0", "samples_ms": [1.2, 1.5, 2.0]}
    record.update(changes)
    return record


def test_the_json_has_the_contract_keys_in_order_and_round_trips() -> None:
    record = BenchRecord.model_validate(_json())
    assert list(record.to_json()) == [*KEYS, "samples_ms"]
    assert list(record.to_json(samples=False)) == KEYS
    assert record.to_json() == _json()
    assert BenchRecord.model_validate(json.loads(json.dumps(record.to_json()))) == record


def test_consumers_read_attributes() -> None:
    record = BenchRecord.model_validate(_json())
    assert (record.latency_ms.p50, record.warmup.stable, record.cost and record.cost.flops) == (1.5, True, 200)
    assert record.top_ops is not None and record.top_ops.by_type[0].op == "Conv"
    assert record.machine.other_cpu_pct is None and record.temperature_c.before is None


def test_the_host_keys_appear_only_once_set_and_the_record_is_frozen() -> None:
    record = BenchRecord.model_validate(_json(samples_ms=None))
    assert list(record.to_json()) == KEYS  # no samples kept: no key, as before
    local = record.model_copy(update={"repeats": Repeats(p50_ms=(1.4, 1.5, 1.6), spread_pct=13.3), "speedup": 1.0})
    assert list(local.to_json())[-2:] == ["repeats", "speedup"]
    assert local.to_json()["repeats"] == {"p50_ms": [1.4, 1.5, 1.6], "spread_pct": 13.3}
    remote = record.model_copy(update={"device": "cam-01", "remote": True, "speedup": 1.0})
    assert list(remote.to_json())[-3:] == ["device", "remote", "speedup"]
    with pytest.raises(ValidationError, match="frozen"):
        record.runs = 4  # type: ignore[misc]


def test_a_record_missing_a_key_or_with_an_unknown_one_is_refused_by_name() -> None:
    incomplete = _json()
    del incomplete["latency_ms"]["p50"]
    with pytest.raises(ValidationError, match=r"latency_ms\.p50"):
        BenchRecord.model_validate(incomplete)
    with pytest.raises(ValidationError, match="surprise"):
        BenchRecord.model_validate(_json(surprise=1))


def test_a_record_from_a_newer_agent_is_read_without_its_new_keys() -> None:
    newer = _json(surprise=1)
    newer["latency_ms"]["p99_99"] = 3.0
    record = BenchRecord.model_validate(newer, extra="ignore")  # how the host reads a device's reply
    assert "surprise" not in record.to_json() and "p99_99" not in record.to_json()["latency_ms"]
