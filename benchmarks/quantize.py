"""FP32 vs `edgekit optimize` INT8 vs ONNX Runtime's and NNCF's default quantization.

For each model, in one run: the same calibration and held-out photos for every method,
latency measured interleaved (so machine noise lands on all alike), agreement with the
FP32 original on the held-out samples, and how many compute layers run in integer.

    python benchmarks/quantize.py [--models efficientnet-lite0 mobilenetv2 ...] [--budget-s 8]

Writes benchmarks/results/quantize.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchlib import prepare
from rich.console import Console
from rich.table import Table

from converters import PASSES
from converters.onnx_int8 import quantized_compute_nodes
from edgekit.content import samples
from edgekit.errors import OptimizeFailed
from edgekit.optimize.measure import compare_latency, run_all
from edgekit.optimize.pipeline import optimize
from edgekit.optimize.validation import compare_outputs

RESULTS = Path(__file__).parent / "results"


def bench_model(name: str, work: Path, photos: Path, *, budget_s: float, console: Console) -> dict:
    model = prepare(name, work)
    zoo, fp32, input_name = model.zoo, model.fp32, model.input_name
    calib, held_out = model.load(photos).split()
    variants: dict[str, Path] = {"fp32": fp32}
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    # Agreement of a random-weight model says nothing (near-tied logits): for those the
    # budget is open and only speed is compared; the pretrained model gets a 3-point budget.
    max_drop = 3.0 if zoo.pretrained else 100.0
    try:
        result = optimize(zoo.onnx_path, target="x86-cpu", output=work / f"{name}-bundle", precision="int8",
                          calib=photos, preprocess=zoo.preprocess, task=zoo.task.kind, labels=zoo.task.labels,
                          max_drop=max_drop)
    except OptimizeFailed as exc:
        console.log(f"{name}: no INT8 candidate within {max_drop} points ({exc}); timing the best INT8 try anyway")
        result = optimize(zoo.onnx_path, target="x86-cpu", output=work / f"{name}-bundle", precision="int8",
                          calib=photos, preprocess=zoo.preprocess, task=zoo.task.kind, labels=zoo.task.labels,
                          max_drop=100.0)
    seconds["edgekit int8"] = time.perf_counter() - start
    variants["edgekit int8"] = result.bundle / result.manifest.model.file
    report = PASSES["onnx-int8-static"](fp32, work / f"{name}.ort.onnx", calibration=[calib],
                                        input_names=[input_name], preset="ort-default")
    variants["ort quantize_static default"], seconds["ort quantize_static default"] = report.dst, report.seconds
    report = PASSES["onnx-int8-nncf"](fp32, work / f"{name}.nncf.onnx", calibration=[calib], input_names=[input_name])
    variants["nncf.quantize default"], seconds["nncf.quantize default"] = report.dst, report.seconds
    latency = compare_latency(variants, [held_out[:1]], budget_s=budget_s, max_rounds=400).latency
    reference = run_all(fp32, [held_out])
    rows = []
    for method, path in variants.items():
        agreement = compare_outputs(zoo.task, reference, run_all(path, [held_out]))
        fused, total = quantized_compute_nodes(path)
        rows.append({
            "model": name,
            "method": method,
            "p50_ms": latency[method].p50_ms,
            "p90_ms": latency[method].p90_ms,
            "speedup_vs_fp32": latency["fp32"].p50_ms / latency[method].p50_ms,
            "metric": agreement.metric,
            "agreement": agreement.optimized,
            "int8_compute_layers": f"{fused}/{total}",
            "size_mb": path.stat().st_size / 1e6,
            "quantize_s": seconds.get(method, 0.0),
            "held_out_samples": agreement.samples,
            "edgekit_candidate": result.winner if method == "edgekit int8" else None,
        })
    console.log(f"{name}: done")
    return {"model": name, "pretrained": zoo.pretrained, "rows": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "mobilenetv2", "mobilenetv3-small"])
    parser.add_argument("--budget-s", type=float, default=8.0, help="timing budget per model (all variants together)")
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    console = Console(stderr=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        samples.write_image_folder(work / "photos", count=args.images, seed=7)
        results = [bench_model(m, work, work / "photos", budget_s=args.budget_s, console=console) for m in args.models]
    RESULTS.mkdir(exist_ok=True)
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0]},
           "results": results}
    (RESULTS / "quantize.json").write_text(json.dumps(out, indent=2) + "\n")
    table = Table(title="INT8 quantization on this machine (ONNX Runtime CPU)")
    for col in ("model", "method", "p50 ms", "vs fp32", "agreement %", "int8 layers", "MB"):
        table.add_column(col, justify="left" if col in ("model", "method") else "right")
    for r in (row for res in results for row in res["rows"]):
        table.add_row(r["model"], r["method"] + (f" ({r['edgekit_candidate']})" if r["edgekit_candidate"] else ""),
                      f"{r['p50_ms']:.2f}", f"{r['speedup_vs_fp32']:.2f}x", f"{r['agreement']:.1f}",
                      r["int8_compute_layers"], f"{r['size_mb']:.1f}")
    Console(width=120).print(table)
    print(f"wrote {RESULTS / 'quantize.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
