"""``edgekit samples``: real sample photos and a video, for demos and calibration (no download)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console


def add_parser(sub: Any) -> None:
    smp = sub.add_parser("samples", help="write real sample photos and a video for demos and calibration",
                         description="Cut an image folder and a pan/zoom video from the real photographs that "
                         "scikit-image, scikit-learn and matplotlib ship (no download).")
    smp.add_argument("folder", help="writes FOLDER/images/ and FOLDER/street.mp4")
    smp.add_argument("--images", type=int, default=300, help="number of images (default 300)")
    smp.add_argument("--video-seconds", type=float, default=10.0, help="video length (default 10)")


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from edgekit.content import samples

    folder = Path(args.folder)
    images = samples.write_image_folder(folder / "images", count=args.images)
    video = samples.write_video(folder / "street.mp4", seconds=args.video_seconds)
    out.print(f"wrote {len(images)} images to {folder / 'images'} and {video}")
    return 0
