"""Structured pruning (`onnx-prune`) at 20, 30 and 50 % of MACs, with and without least-squares recovery, in one run.

For each model and ratio: MACs and parameters before and after, the measured speedup over
the unpruned FP32 model (ONNX Runtime, all variants timed interleaved on this machine, same
threads), the speedup the MAC reduction alone would predict, and the top-1 agreement with the
unpruned model on held-out real photos. "without LS" only folds the removed channels' means
into the next layer's bias; "with LS" re-fits the next layer by least squares on the
calibration activations. No training and no labels in either.

    python benchmarks/prune.py [--models efficientnet-lite0] [--ratios 0.2 0.3 0.5] [--threads 2]

Writes benchmarks/results/prune.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from converters import PASSES
from converters.errors import ConversionError
from converters.onnx_prepare import prepare_onnx
from device_agent.bench.cost import model_cost
from edgekit import samples
from edgekit.calibration import load_calibration
from edgekit.measure import compare_latency, run_all
from edgekit.validation import compare_outputs
from edgekit.zoo import build_model

RESULTS = Path(__file__).parent / "results"


def bench_model(name: str, ratios: list[float], work: Path, photos: Path, *, threads: int, console: Console) -> dict[str, Any]:
    zoo = build_model(name, Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "bench-models")
    fp32 = prepare_onnx(zoo.onnx_path, work / f"{name}.fp32.onnx").dst
    shape = (1, 3, zoo.preprocess.size_wh[1], zoo.preprocess.size_wh[0])
    calib, held_out = load_calibration(photos, preprocess=zoo.preprocess, input_shape=shape).split()
    variants: dict[str, Path] = {"unpruned": fp32}
    facts: dict[str, dict[str, Any]] = {"unpruned": {"ratio": 0.0, "recovery": "-", "seconds": 0.0}}
    for ratio in ratios:
        for recover in (False, True):
            label = f"{ratio:.0%} {'with' if recover else 'without'} LS"
            console.log(f"{name}: pruning {label}")
            started = time.perf_counter()
            try:
                report = PASSES["onnx-prune"](fp32, work / f"{name}.{ratio}.{recover}.onnx", ratio=ratio,
                                              calibration=calib, recover=recover)
            except ConversionError as exc:  # reported in the table, never hidden
                facts[label] = {"ratio": ratio, "recovery": recover, "failed": str(exc)[:200]}
                continue
            variants[label] = report.dst
            facts[label] = {"ratio": ratio, "recovery": recover, "seconds": round(time.perf_counter() - started, 1),
                            "groups_pruned": report.details["groups_pruned"], "channels": report.details["channels"]}
    console.log(f"{name}: timing {len(variants)} variants interleaved")
    latency = compare_latency(variants, [held_out[:1]], threads=threads, budget_s=10.0, max_rounds=400)
    reference = run_all(fp32, [held_out], threads=threads)
    base = model_cost(fp32)
    rows = []
    for label, fact in facts.items():
        if "failed" in fact:
            rows.append({"variant": label, **fact})
            continue
        path = variants[label]
        cost = model_cost(path)
        agreement = compare_outputs(zoo.task, reference, run_all(path, [held_out], threads=threads))
        rows.append({
            "variant": label, **{k: v for k, v in fact.items() if k != "channels"},
            "macs_m": round(cost.macs / 1e6, 1), "macs_removed": round(1 - cost.macs / base.macs, 3),
            "params_m": round(cost.params / 1e6, 2), "p50_ms": round(latency[label].p50_ms, 3),
            "speedup": round(latency["unpruned"].p50_ms / latency[label].p50_ms, 3),
            "mac_speedup": round(base.macs / cost.macs, 3), "top1_agreement": round(agreement.optimized, 2),
            "mean_cosine": round(float(agreement.details.get("mean_cosine", float("nan"))), 4),
            "channels": fact.get("channels", {}),
        })
    return {"model": name, "pretrained": zoo.pretrained, "held_out": len(held_out), "calibration": len(calib), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.2, 0.3, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    console = Console(stderr=True)
    results: dict[str, Any] = {"machine": platform.platform(), "threads": args.threads, "models": []}
    with tempfile.TemporaryDirectory(prefix="edgekit-prune-bench-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        samples.write_image_folder(photos, count=200)
        for name in args.models:
            results["models"].append(bench_model(name, args.ratios, work, photos, threads=args.threads, console=console))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prune.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"onnx-prune, ONNX Runtime FP32, {args.threads} threads, interleaved timing, agreement on held-out photos")
    for col in ("model", "variant", "MMACs", "removed", "Mparams", "p50 ms", "speedup", "MAC ratio", "top-1 agree %", "cosine"):
        table.add_column(col, justify="left" if col in ("model", "variant") else "right")
    for model in results["models"]:
        label = model["model"] + ("" if model["pretrained"] else " (random)")
        for row in model["rows"]:
            if "failed" in row:
                table.add_row(label, row["variant"], "failed", row["failed"][:60], *[""] * 6)
                continue
            table.add_row(label, row["variant"], f"{row['macs_m']:.0f}", f"{row['macs_removed']:.0%}", f"{row['params_m']:.2f}",
                          f"{row['p50_ms']:.2f}", f"{row['speedup']:.2f}x", f"{row['mac_speedup']:.2f}x",
                          f"{row['top1_agreement']:.1f}", f"{row['mean_cosine']:.3f}")
    Console(width=max(120, Console().width)).print(table)
    print(f"wrote {RESULTS / 'prune.json'}")


if __name__ == "__main__":
    main()
