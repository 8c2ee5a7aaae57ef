"""TFLite FP32, FP16, INT8 (two ways) and dynamic INT8 vs the ONNX Runtime INT8 of the same models, in one run.

For each model: the FP32 ONNX reference; ONNX Runtime INT8 (the `onnx-int8-static` pass
that `edgekit optimize` uses for x86, without its fallbacks); TFLite FP32 and full-integer
INT8 reached along the found route (`onnx -> torch -> tflite`, PT2E static INT8; a YOLOv8
detector cut at its heads first, its tail decoded in numpy for the comparison); and from the
TFLite FP32 file with ai-edge-quantizer: FP16 weights, static INT8 and dynamic-range INT8.
Every variant is timed interleaved on this machine (ONNX Runtime for .onnx, LiteRT with
XNNPACK for .tflite, same threads) and compared with the FP32 reference on the same held-out
real photos (top-1 agreement, or detection F1 at IoU 0.5; random-weight models agree by
chance only, see the note in the output). For classifiers, also the mixed INT8 a CPU target
falls back to: the 2 layer chains INT8 hurts most kept in float.

    python benchmarks/tflite.py [--models mobilenetv2 efficientnet-lite0 yolov8n-nudenet] [--threads 2]

Writes benchmarks/results/tflite.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from benchlib import prepare
from rich.console import Console
from rich.table import Table

from converters import PASSES
from converters.errors import ConversionError
from converters.onnx_torch import weight_attributes
from converters.routes import find_route
from converters.tflite_check import float_operators
from edgekit.content import samples
from edgekit.optimize.heads import SPLITTERS
from edgekit.optimize.measure import compare_latency, run_all
from edgekit.optimize.sensitivity import candidate_chains, float_chains, rank_chains
from edgekit.optimize.validation import compare_outputs

RESULTS = Path(__file__).parent / "results"
MIXED_CHAINS = 2  # layer chains kept in float in the mixed variant, ranked by ONNX Runtime INT8 output SNR


def bench_model(name: str, work: Path, photos: Path, *, threads: int, console: Console) -> dict[str, Any]:
    model = prepare(name, work)
    zoo, fp32 = model.zoo, model.fp32
    calib, held_out = model.load(photos).split()
    variants: dict[str, Path] = {"onnx fp32": fp32}
    seconds: dict[str, float] = {}
    failures: dict[str, str] = {}
    started = time.perf_counter()
    variants["onnx int8"] = PASSES["onnx-int8-static"](fp32, work / f"{name}.int8.onnx", calibration=[calib],
                                                       input_names=[model.input_name]).dst
    seconds["onnx int8"] = time.perf_counter() - started
    route = find_route("onnx", "tflite")
    started = time.perf_counter()
    program = fp32
    for edge in route[:-1]:
        program = PASSES[edge.key](program, work / f"{name}.{edge.dst}.pt2").dst
    seconds["onnx->torch"] = time.perf_counter() - started
    split = None
    if zoo.task.kind == "detection" and zoo.task.decoder in SPLITTERS:  # INT8 cannot carry the decode tail
        split = SPLITTERS[zoo.task.decoder](fp32, zoo.task, work / f"{name}.heads.onnx", calib[:1])
        heads = PASSES["onnx->torch"](split.path, work / f"{name}.heads.pt2").dst
    for precision in ("fp32", "int8"):
        console.log(f"{name}: TFLite {precision} (litert-torch)")
        started = time.perf_counter()
        cut = split is not None and precision == "int8"
        variants[f"tflite {precision}"] = PASSES[route[-1].key](
            heads if cut else program, work / f"{name}.{precision}.tflite", precision=precision,
            calibration=calib if precision == "int8" else None,
            nhwc_outputs=list(range(len(split.heads))) if cut and split else ()).dst
        seconds[f"tflite {precision}"] = time.perf_counter() - started
    if split is None:  # what a CPU target ships when full INT8 misses a tight budget
        console.log(f"{name}: TFLite int8 with the {MIXED_CHAINS} most sensitive layer chains in float")
        started = time.perf_counter()
        chains = rank_chains(fp32, variants["onnx int8"], candidate_chains(float_chains(onnx.load(str(fp32)))), [calib],
                             quantize=lambda exclude, dst: PASSES["onnx-int8-static"](
                                 fp32, dst, calibration=[calib], input_names=[model.input_name],
                                 nodes_to_exclude=exclude, calibration_cache=work / f"{name}.ranges.json").dst,
                             work_dir=work)
        attributes = weight_attributes(fp32)
        layers = [attributes[n] for c in chains[:MIXED_CHAINS] for n in c.nodes if n in attributes]
        variants["tflite int8-mixed"] = PASSES[route[-1].key](program, work / f"{name}.int8-mixed.tflite",
                                                              precision="int8", calibration=calib,
                                                              float_layers=layers).dst
        seconds["tflite int8-mixed"] = time.perf_counter() - started
    tflite_fp32 = variants["tflite fp32"]
    for label, key, options in (("tflite fp16", "tflite->tflite-fp16", {}),
                                ("tflite int8 (aeq)", "tflite->tflite-int8",
                                 {"mode": "static", "calibration": np.ascontiguousarray(np.moveaxis(calib, 1, -1))}),
                                ("tflite int8-dynamic", "tflite->tflite-int8", {"mode": "dynamic"})):
        console.log(f"{name}: {label} (ai-edge-quantizer)")
        started = time.perf_counter()
        try:
            slug = label.replace(" ", "-").replace("(", "").replace(")", "")
            variants[label] = PASSES[key](tflite_fp32, work / f"{name}.{slug}.tflite", **options).dst
        except ConversionError as exc:  # reported in the table, never hidden
            failures[label] = str(exc).splitlines()[-1][:200]
        seconds[label] = time.perf_counter() - started
    console.log(f"{name}: timing {len(variants)} variants interleaved")
    latency = compare_latency(variants, [held_out[:1]], threads=threads, budget_s=10.0, max_rounds=400).latency
    reference = run_all(fp32, [held_out], threads=threads)
    rows = []
    for label, path in variants.items():
        outputs = run_all(path, [held_out], threads=threads)
        if split is not None and label == "tflite int8":
            outputs = [split.to_reference(o) for o in outputs]
        agreement = compare_outputs(zoo.task, reference, outputs)
        rows.append({
            "variant": label, "p50_ms": round(latency[label].p50_ms, 3),
            "speedup_vs_onnx_fp32": round(latency["onnx fp32"].p50_ms / latency[label].p50_ms, 3),
            "speedup_vs_tflite_fp32": round(latency["tflite fp32"].p50_ms / latency[label].p50_ms, 3),
            "metric": agreement.metric, "agreement": round(agreement.optimized, 2),
            "size_mb": round(path.stat().st_size / 1e6, 2), "convert_s": round(seconds.get(label, 0.0), 1),
            "float_ops": ([str(op) for op in float_operators(path)]
                          if path.suffix == ".tflite" and "int8" in label else None),
            "note": "cut at the heads, tail decoded on the CPU" if split is not None and label == "tflite int8" else "",
        })
    rows.extend({"variant": label, "failed": why} for label, why in failures.items())
    return {"model": name, "pretrained": zoo.pretrained, "held_out": len(held_out), "calibration": len(calib),
            "onnx_to_torch_s": round(seconds["onnx->torch"], 1), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mobilenetv2", "efficientnet-lite0", "yolov8n-nudenet"])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    console = Console(stderr=True)
    results: dict[str, Any] = {"machine": platform.platform(), "threads": args.threads, "models": []}
    with tempfile.TemporaryDirectory(prefix="edgekit-tflite-bench-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        samples.write_image_folder(photos, count=200)
        for name in args.models:
            results["models"].append(bench_model(name, work, photos, threads=args.threads, console=console))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tflite.json").write_text(json.dumps(results, indent=2) + "\n")
    out = Console(width=max(120, Console().width))
    table = Table(title=f"TFLite vs ONNX Runtime, {args.threads} threads, interleaved timing, "
                        "agreement on held-out photos")
    for col in ("model", "variant", "p50 ms", "vs onnx fp32", "vs tflite fp32", "agree %", "metric", "MB", "float ops"):
        table.add_column(col, justify="left" if col in ("model", "variant", "metric") else "right")
    for model in results["models"]:
        label = model["model"] + ("" if model["pretrained"] else " (random)")
        for row in model["rows"]:
            if "failed" in row:
                table.add_row(label, row["variant"], "failed", "", "", "", row["failed"][:60], "", "")
                continue
            floats = "-" if row["float_ops"] is None else str(len(row["float_ops"]))
            table.add_row(label, row["variant"], f"{row['p50_ms']:.2f}", f"{row['speedup_vs_onnx_fp32']:.2f}x",
                          f"{row['speedup_vs_tflite_fp32']:.2f}x", f"{row['agreement']:.1f}",
                          row["metric"].replace("_agreement", "").replace("detection_", ""), f"{row['size_mb']:.1f}",
                          floats)
    out.print(table)
    out.print("random-weight models: agreement means little (near-tied logits); compare their speed only")
    out.print(f"wrote {RESULTS / 'tflite.json'}")


if __name__ == "__main__":
    main()
