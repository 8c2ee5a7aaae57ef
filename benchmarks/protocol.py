"""What building a result through the protocol models costs, per result, against the dict literal it replaced.

A result is built once per published frame, in the inference loop's thread. Three ways, run
interleaved (round-robin rounds, so the shared machine's noise hits each alike), each timed
with ``time.perf_counter_ns`` over a batch of builds; the minimum of the rounds (the cost itself)
and the median (what a busy shared machine adds) are kept:

- ``dict``: the dict literal the agent built before the contract was code;
- ``validate``: ``Result(frame=FrameRef(...), model=..., result=Decoded.model_validate(...))``,
  every field validated, which is what the agent does (the build, in the loop's thread);
- ``construct``: the same models through ``model_construct`` (no validation), for comparison;
- ``+dump`` rows: the same plus ``model_dump(mode="json")``, which the committer thread does.

Writes ``benchmarks/results/protocol.json`` and prints a table. Run: ``python benchmarks/protocol.py``.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from device_agent.pipeline.decoders.types import Classification, DecodeResult, Detection
from device_agent.protocol import Decoded, FrameRef, ModelRef, Result, body_of

ROUNDS = 15
BATCH = 2000
MODEL = ModelRef(name="mobilenet", version="1.2.0", precision="int8")


def _decoded(kind: str) -> DecodeResult:
    if kind == "classification":
        return DecodeResult("softmax-topk", "classification",
                            classifications=tuple(Classification(i, f"class{i}", 0.1 * i) for i in range(5)))
    return DecodeResult("yolov8", "detection",
                        detections=tuple(Detection(i % 3, "person", 0.5, (1.0 * i, 2.0, 30.0, 40.5))
                                         for i in range(10)))


def _ways(decoded: DecodeResult) -> dict[str, Callable[[], Any]]:
    latency = {"capture_age": 3.2, "preprocess": 1.1, "infer": 12.3, "postprocess": 0.4}

    def as_dict() -> Any:
        return {"frame": {"id": 7, "source": "cam", "ts": 1.7e9, "size_wh": [640, 480]},
                "model": {"name": "mobilenet", "version": "1.2.0", "precision": "int8"},
                "result": decoded.to_json(), "latency_ms": {k: round(v, 3) for k, v in latency.items()}}

    def validate() -> Result:
        return Result(frame=FrameRef(id=7, source="cam", ts=1.7e9, size_wh=[640, 480]), model=MODEL,
                      result=Decoded.model_validate(decoded.to_json()),
                      latency_ms={k: round(v, 3) for k, v in latency.items()})

    def construct() -> Result:
        return Result.model_construct(frame=FrameRef.model_construct(id=7, source="cam", ts=1.7e9, size_wh=[640, 480]),
                                      model=MODEL, result=Decoded.model_construct(**decoded.to_json()),
                                      latency_ms={k: round(v, 3) for k, v in latency.items()})

    return {"dict": as_dict, "validate": validate, "construct": construct,
            "validate+dump": lambda: body_of(validate())}


def _time_us(fn: Callable[[], Any]) -> float:
    start = time.perf_counter_ns()
    for _ in range(BATCH):
        fn()
    return (time.perf_counter_ns() - start) / BATCH / 1e3


def main() -> None:
    table: dict[str, dict[str, float]] = {}
    for kind in ("classification", "detection"):
        ways = _ways(_decoded(kind))
        assert json.dumps(body_of(ways["validate"]())) == json.dumps(ways["dict"]())  # same JSON on the wire
        for fn in ways.values():  # warm-up
            _time_us(fn)
        samples: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(ROUNDS):
            for name, fn in ways.items():
                samples[name].append(_time_us(fn))
        for stat, pick in (("min", min), ("median", statistics.median)):
            table[f"{kind} {stat}"] = {name: round(pick(s), 2) for name, s in samples.items()}
    out = Path(__file__).parent / "results" / "protocol.json"
    out.write_text(json.dumps({"rounds": ROUNDS, "batch": BATCH, "us_per_result": table}, indent=2) + "\n")
    print(f"{'us per result':<24}" + "".join(f"{name:>16}" for name in next(iter(table.values()))))
    for row_name, row in table.items():
        print(f"{row_name:<24}" + "".join(f"{us:>16.2f}" for us in row.values()))
    print(f"({ROUNDS} interleaved rounds of {BATCH} builds each; written to {out})")


if __name__ == "__main__":
    main()
