"""Structured pruning (`onnx-prune`) at 20, 30 and 50 % of MACs, with and without least-squares recovery, in one run.

For each model and ratio: MACs and parameters before and after, the measured speedup over
the unpruned FP32 model (ONNX Runtime, all variants timed interleaved on this machine, same
threads), the speedup the MAC reduction alone would predict, and the top-1 agreement with the
unpruned model on held-out real photos. "without LS" only folds the removed channels' means
into the next layer's bias; "with LS" re-fits the next layer by least squares on the
calibration activations. No training and no labels in either. An ONNX Runtime INT8 row is the
yardstick: how far a change every user accepts moves the same predictions.

Agreement is measured twice. "new crops": held-out crops of the photos the calibration crops
came from (what a random split of one folder measures). "unseen photos": crops of photos kept
out of calibration altogether (a third of the sample photos), i.e. content the pruning never
saw. The gap between the two is how much the pruning specialised to its calibration images.

    python benchmarks/prune.py [--models efficientnet-lite0 efficientnet-lite2] [--ratios 0.2 0.3 0.5]
        [--opencv-samples /usr/share/doc/opencv-doc/examples/data] [--diversity 4 8 16]

Writes benchmarks/results/prune.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
from benchlib import cosine, prepare
from rich.console import Console
from rich.table import Table

from converters import PASSES
from converters.errors import ConversionError
from device_agent.bench.cost import model_cost
from edgekit.content import samples
from edgekit.optimize.measure import compare_latency, run_all
from edgekit.optimize.validation import compare_outputs

RESULTS = Path(__file__).parent / "results"
#: The photographs of things among OpenCV's sample images (Debian ``opencv-doc``,
#: /usr/share/doc/opencv-doc/examples/data): no chessboards, text, logos or renders.
OPENCV_PHOTOS = (
    "HappyFish.jpg", "aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png",
    "board.jpg", "box_in_scene.png", "building.jpg", "butterfly.jpg", "chicky_512.png", "ela_original.jpg",
    "fruits.jpg", "graf1.png", "home.jpg", "leuvenA.jpg", "licenseplate_motion.jpg", "messi5.jpg", "orange.jpg",
    "pca_test1.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg",
)  # fmt: skip


def split_photos(work: Path, pool: list[tuple[str, np.ndarray]], *, seed: int = 0) -> tuple[Path, Path, list[str]]:
    """Crops of two thirds of the photos (calibration and "new crops"), and crops of the other
    third (the "unseen photos"), in two folders; and the unseen photos' names."""
    unseen = {pool[i][0] for i in np.random.default_rng(seed).permutation(len(pool))[: len(pool) // 3]}
    seen_dir, unseen_dir = work / "photos-seen", work / "photos-unseen"
    samples.write_image_folder(seen_dir, count=200, source=[p for p in pool if p[0] not in unseen], seed=seed)
    samples.write_image_folder(unseen_dir, count=80, source=[p for p in pool if p[0] in unseen], seed=seed + 1)
    return seen_dir, unseen_dir, sorted(unseen)


def diversity(name: str, ratio: float, counts: list[int], work: Path, pool: list[tuple[str, np.ndarray]],
              unseen_dir: Path, unseen_names: Collection[str], *, threads: int,
              console: Console) -> list[dict[str, Any]]:
    """Agreement on the unseen photos when the same number of calibration crops (120) come from
    ``counts`` distinct photos, and from all of them: how much the pruning's generalisation
    owes to variety."""
    model = prepare(name, work)
    unseen = model.load(unseen_dir).inputs
    reference = run_all(model.fp32, [unseen], threads=threads)
    seen = [p for p in pool if p[0] not in unseen_names]
    seen = [seen[i] for i in np.random.default_rng(0).permutation(len(seen))]  # every subset a mix of sources
    rows = []
    for count in sorted({c for c in counts if 0 < c < len(seen)} | {len(seen)}):  # and all of them
        folder = work / f"diversity-{count}"
        samples.write_image_folder(folder, count=120, source=seen[:count], seed=count)
        calib = model.load(folder).inputs
        console.log(f"{name}: pruning {ratio:.0%} calibrated on {count} distinct photos")
        pruned = PASSES["onnx-prune"](model.fp32, work / f"{name}.diversity-{count}.onnx", ratio=ratio,
                                      calibration=calib).dst
        agreement = compare_outputs(model.zoo.task, reference, run_all(pruned, [unseen], threads=threads))
        rows.append({"model": name, "ratio": ratio, "distinct_photos": count, "calibration_samples": len(calib),
                     "top1_agreement_unseen": round(agreement.optimized, 2), "mean_cosine_unseen": cosine(agreement)})
    return rows


def bench_model(name: str, ratios: list[float], work: Path, photos: tuple[Path, Path], *, threads: int,
                console: Console) -> dict[str, Any]:
    model = prepare(name, work)
    zoo, fp32 = model.zoo, model.fp32
    calib, held_out = model.load(photos[0]).split()
    unseen = model.load(photos[1]).inputs
    int8 = PASSES["onnx-int8-static"](fp32, work / f"{name}.int8.onnx", calibration=[calib],
                                      input_names=[model.input_name]).dst
    variants: dict[str, Path] = {"unpruned": fp32, "INT8 (reference)": int8}
    facts: dict[str, dict[str, Any]] = {"unpruned": {"ratio": 0.0, "recovery": "-", "seconds": 0.0},
                                        "INT8 (reference)": {"ratio": 0.0, "recovery": "-", "seconds": 0.0}}
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
    latency = compare_latency(variants, [held_out[:1]], threads=threads, budget_s=10.0, max_rounds=400).latency
    reference = run_all(fp32, [held_out], threads=threads)
    reference_unseen = run_all(fp32, [unseen], threads=threads)
    base = model_cost(fp32)
    rows = []
    for label, fact in facts.items():
        if "failed" in fact:
            rows.append({"variant": label, **fact})
            continue
        path = variants[label]
        cost = model_cost(path)
        agreement = compare_outputs(zoo.task, reference, run_all(path, [held_out], threads=threads))
        unseen_agreement = compare_outputs(zoo.task, reference_unseen, run_all(path, [unseen], threads=threads))
        rows.append({
            "variant": label, **{k: v for k, v in fact.items() if k != "channels"},
            "macs_m": round(cost.macs / 1e6, 1), "macs_removed": round(1 - cost.macs / base.macs, 3),
            "params_m": round(cost.params / 1e6, 2), "p50_ms": round(latency[label].p50_ms, 3),
            "speedup": round(latency["unpruned"].p50_ms / latency[label].p50_ms, 3),
            "mac_speedup": round(base.macs / cost.macs, 3), "top1_agreement": round(agreement.optimized, 2),
            "mean_cosine": cosine(agreement), "top1_agreement_unseen": round(unseen_agreement.optimized, 2),
            "mean_cosine_unseen": cosine(unseen_agreement),
            "channels": fact.get("channels", {}),
        })
    return {"model": name, "pretrained": zoo.pretrained, "held_out": len(held_out), "unseen": len(unseen),
            "calibration": len(calib), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["efficientnet-lite0", "efficientnet-lite2"])
    parser.add_argument("--ratios", nargs="+", type=float, default=[0.2, 0.3, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--opencv-samples", type=Path, metavar="DIR",
                        help="add the photographs among OpenCV's sample images to the pool: DIR is "
                             "/usr/share/doc/opencv-doc/examples/data once Debian's opencv-doc is installed")
    parser.add_argument("--diversity", nargs="*", type=int, default=[4, 8, 16], metavar="N",
                        help="also prune the first model calibrated on N distinct photos each, and on all "
                             "the calibration photos (give no N to skip)")
    parser.add_argument("--diversity-ratio", type=float, default=0.3)
    args = parser.parse_args()
    console = Console(stderr=True)
    results: dict[str, Any] = {"machine": platform.platform(), "threads": args.threads, "models": []}
    with tempfile.TemporaryDirectory(prefix="edgekit-prune-bench-") as tmp:
        work = Path(tmp)
        pool = samples.photos() + (
            samples.folder_photos(args.opencv_samples, OPENCV_PHOTOS) if args.opencv_samples else [])
        results["photos"] = len(pool)
        *photos, results["unseen_photos"] = split_photos(work, pool)
        for name in args.models:
            results["models"].append(bench_model(name, args.ratios, work, (photos[0], photos[1]), threads=args.threads,
                                                 console=console))
        results["diversity"] = (diversity(args.models[0], args.diversity_ratio, args.diversity, work, pool, photos[1],
                                          results["unseen_photos"], threads=args.threads, console=console)
                                if args.diversity else [])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "prune.json").write_text(json.dumps(results, indent=2) + "\n")
    table = Table(title=f"onnx-prune, ONNX Runtime FP32, {args.threads} threads, interleaved timing; top-1 agreement "
                        f"on new crops of the calibration photos and on {len(results['unseen_photos'])} unseen photos "
                        f"of {results['photos']}")
    for col in ("model", "variant", "MMACs", "removed", "Mparams", "p50 ms", "speedup", "MAC ratio",
                "agree new crops %", "agree unseen %", "cosine unseen"):
        table.add_column(col, justify="left" if col in ("model", "variant") else "right")
    for model in results["models"]:
        label = model["model"] + ("" if model["pretrained"] else " (random)")
        for row in model["rows"]:
            if "failed" in row:
                table.add_row(label, row["variant"], "failed", row["failed"][:60], *[""] * 7)
                continue
            table.add_row(label, row["variant"], f"{row['macs_m']:.0f}", f"{row['macs_removed']:.0%}",
                          f"{row['params_m']:.2f}", f"{row['p50_ms']:.2f}", f"{row['speedup']:.2f}x",
                          f"{row['mac_speedup']:.2f}x",
                          f"{row['top1_agreement']:.1f}", f"{row['top1_agreement_unseen']:.1f}",
                          f"{row['mean_cosine_unseen']:.3f}")
    Console(width=max(120, Console().width)).print(table)
    if results["diversity"]:
        spread = Table(title=f"the same number of calibration crops from more distinct photos "
                             f"({results['diversity'][0]['model']}, {args.diversity_ratio:.0%} of MACs, with LS)")
        for col in ("distinct calibration photos", "calibration crops", "agree unseen %", "cosine unseen"):
            spread.add_column(col, justify="right")
        for row in results["diversity"]:
            spread.add_row(str(row["distinct_photos"]), str(row["calibration_samples"]),
                           f"{row['top1_agreement_unseen']:.1f}", f"{row['mean_cosine_unseen']:.3f}")
        Console(width=max(120, Console().width)).print(spread)
    print(f"wrote {RESULTS / 'prune.json'}")


if __name__ == "__main__":
    main()
