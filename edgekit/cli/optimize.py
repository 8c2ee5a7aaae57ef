"""``edgekit optimize``: the parser and the handler, a thin layer over :func:`edgekit.optimize.optimize`.

The options are built with :meth:`OptimizeOptions.from_keywords` and checked before the model is
loaded; an :class:`~edgekit.optimize.options.OptionsError` is shown in this command's own names
(:data:`FLAGS`: ``max_drop`` is ``--max-drop`` here).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

EPILOG = """examples:
  edgekit optimize model.onnx --target x86-cpu --calib photos/ --output bundles/cls
  edgekit optimize model.onnx --target x86-cpu --precision int8 --calib street.mp4 --output out --json
  edgekit optimize yolo.onnx --target jetson-orin --task detection --labels coco.txt --calib frames/ --output out
  edgekit optimize yolo.onnx --target camera-npu-int8 --task detection --calib frames/ --max-drop 10 --output npu
  edgekit optimize model.tflite --target rpi5 --calib photos/ --output pi

--precision auto (the default) builds every precision the target offers, validates each
against the original on held-out samples, times them on this machine, and keeps the
fastest that stays within --max-drop; fp32 is always a candidate, so the result is never
slower than the original. INT8 that misses the budget is retried with its most damaged
layers kept in float before it is given up.

TFLite targets (rpi4, rpi5, android-arm64, camera-npu-int8) get LiteRT candidates: fp32,
fp16 weights, INT8 (static, int8 I/O) and dynamic-range INT8. On camera-npu-int8 every
operator must be integer, and any that is not is named. A YOLOv8 detector is cut before its
decode tail for INT8; the tail runs in the agent's yolov8-heads decoder.

Every option and path (target, precision, ranges, --calib, --labels, --anchors,
--preprocess, --output) is checked before the model is loaded.
"""

FLAGS: dict[str, str] = {
    "target": "--target",
    "output": "--output",
    "precision": "--precision",
    "calib": "--calib",
    "max_drop": "--max-drop",
    "task": "--task",
    "decoder": "--decoder",
    "labels": "--labels",
    "anchors": "--anchors",
    "preprocess": "--preprocess",
    "input_shapes": "--input-shape",
    "sparsity": "--sparsity",
    "prune": "--prune",
    "name": "--name",
    "version": "--bundle-version",
    "threads": "--threads",
}
"""The options field each flag sets (:class:`OptimizeOptions` and its ``advanced``), by field name."""


def _shape_arg(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.rpartition(":")
    try:
        shape = [int(d) for d in dims.replace("x", ",").split(",") if d]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:1,3,224,224") from exc
    if not sep or not name or not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:1,3,224,224 with positive dimensions")
    return name, shape


def add_parser(sub: Any) -> None:
    opt = sub.add_parser(
        "optimize",
        help="quantize and convert a model for a target, validate it, write a bundle",
        description="Quantize/convert MODEL for TARGET, prove it still agrees with the original on real "
        "held-out samples, measure it, and write a bundle directory.",
        epilog=EPILOG,
    )
    opt.add_argument("model", help="an .onnx file, or a float .tflite file for a TFLite target "
                     "(PyTorch modules: use the Python API edgekit.optimize.optimize)")
    opt.add_argument("--target", required=True,
                     help="target profile name (see 'edgekit targets') or a .toml profile file")
    opt.add_argument("--output", required=True, help="bundle directory to write (replaced if it is a bundle)")
    opt.add_argument("--precision", default="auto", choices=["auto", "int8", "fp16", "fp32"], help="default: auto")
    opt.add_argument("--calib", help="real data: a folder of images, a video file, or a .npy of ready inputs "
                     "(required)")
    opt.add_argument("--max-drop", type=float, default=1.0, help="accuracy budget in percentage points (default 1)")
    opt.add_argument("--task", choices=["classification", "detection", "raw"], help="default: guessed from the outputs")
    opt.add_argument("--labels", help="text file with one class label per line")
    opt.add_argument("--preprocess",
                     help="preset (imagenet, yolo, tf, unit) or a .json/.toml file of preprocess fields")
    opt.add_argument("--sparsity", type=float, metavar="RATIO",
                     help="zero this fraction of the smallest weights (NNCF magnitude sparsity, 0-1): a smaller "
                          "compressed download, not a faster model; the report gives the deflated size before and "
                          "after")
    opt.add_argument("--prune", type=float, metavar="RATIO",
                     help="also try the model with this fraction of its MACs removed by structured channel pruning "
                          "(0-1, e.g. 0.3): channels ranked on the calibration data, the next layers re-fitted by "
                          "least squares, no training. With --precision auto the pruned candidates compete with the "
                          "unpruned ones; with a fixed precision the pruned model at that precision is built")
    opt.add_argument("--name", help="bundle name (default: the model file's stem)")
    opt.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    advanced = opt.add_argument_group("advanced options")
    advanced.add_argument("--decoder", help="output decoder: softmax-topk, yolov8, yolov8-heads, yolov5, ssd, raw "
                          "(default: from the task)")
    advanced.add_argument("--anchors", help="for --decoder ssd: a .npy of anchors [N, 4] as y, x, h, w (normalized)")
    advanced.add_argument("--input-shape", type=_shape_arg, action="append", default=[], metavar="NAME:DIMS",
                          help="static shape for a dynamic input, e.g. images:1,3,640,640 (repeatable)")
    advanced.add_argument("--bundle-version", default="1", help="bundle version string (default 1)")
    advanced.add_argument("--threads", type=int, help="inference threads for timing (default: the target's)")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.cli.views import print_optimize
    from edgekit.errors import OptionsError
    from edgekit.optimize.options import OptimizeOptions
    from edgekit.optimize.pipeline import optimize

    try:
        options = OptimizeOptions.from_keywords(
            target=args.target, output=args.output, precision=args.precision, calib=args.calib,
            max_drop=args.max_drop, task=args.task, decoder=args.decoder, labels=args.labels, anchors=args.anchors,
            preprocess=args.preprocess, input_shapes=dict(args.input_shape), prune=args.prune,
            sparsity=args.sparsity, name=args.name, version=args.bundle_version, threads=args.threads,
            progress=True,  # on stderr, with --json too: a terminal gets the live list, a log one line per step
        )
        result = optimize(args.model, options)
    except OptionsError as exc:  # not handled here: the same error, in this command's flags (main reports it)
        raise exc.renamed(FLAGS) from exc.__cause__
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        print_optimize(out, str(result.bundle), result.report)
    for warning in result.report.warnings:  # on stderr whatever the output: a busy machine, too few samples
        err.print(f"[bold yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    return 0
