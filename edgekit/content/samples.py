"""Real photographs that ship inside installed packages, for demos, tests and calibration.

Quantization and validation need real image content: synthetic noise or gradients give
activation ranges no camera ever produces. The photos come from files that scikit-image,
scikit-learn and matplotlib install with themselves, so nothing touches the network.
Every source is optional; at least :data:`MIN_PHOTOS` must be found.

Run ``python -m edgekit.content.samples DIR`` to write ``DIR/images/`` and ``DIR/street.mp4``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from edgekit.errors import CalibrationError, EdgeKitError, MissingDependencyError

MIN_PHOTOS = 5
JPEG_QUALITY = 92
_MIN_ZOOM = 0.55  # a video shot shows at least this fraction of the photo's width
INSTALL_HINT = "pip install 'edgekit[dev]'  (scikit-image, scikit-learn) or matplotlib"

_SKIMAGE_NAMES = (
    "astronaut", "coffee", "chelsea", "cat", "rocket", "hubble_deep_field",
    "immunohistochemistry", "retina", "camera", "coins", "brick", "grass", "gravel",
)  # fmt: skip
# A missing package, a missing data file, or (for scikit-image's fetcher) no network.
_LOAD_ERRORS = (ImportError, OSError, ValueError, RuntimeError)


def _cv2() -> ModuleType:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("cv2", "host", "writing sample images and video") from exc
    return cv2


def _to_bgr(rgb_or_gray: np.ndarray) -> np.ndarray:
    image = np.asarray(rgb_or_gray)
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image[..., 2::-1])  # RGB(A) -> BGR, alpha dropped


def _skimage_photos() -> list[tuple[str, np.ndarray]]:
    try:
        from skimage import data
    except ImportError:
        return []
    found = []
    for name in _SKIMAGE_NAMES:
        try:  # one missing file (older release, no network for its fetcher) skips one photo
            found.append((name, _to_bgr(getattr(data, name)())))
        except (*_LOAD_ERRORS, AttributeError):
            pass
    return found


def _sklearn_photos() -> list[tuple[str, np.ndarray]]:
    try:
        from sklearn.datasets import load_sample_images

        bunch = load_sample_images()
    except _LOAD_ERRORS:
        return []
    return [(Path(f).stem, _to_bgr(im)) for f, im in zip(bunch.filenames, bunch.images)]


def _matplotlib_photos() -> list[tuple[str, np.ndarray]]:
    try:
        from matplotlib import cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    except _LOAD_ERRORS:
        return []
    image = _cv2().imread(str(path), _cv2().IMREAD_COLOR)
    return [] if image is None else [("grace_hopper", image)]


def folder_photos(folder: Path | str, names: Sequence[str] | None = None) -> list[tuple[str, np.ndarray]]:
    """The images in ``folder`` (``names``: those files; default: every .jpg/.png, sorted) as
    ``(stem, HxWx3 uint8 BGR)``: more distinct photos for a benchmark, e.g. the natural photos
    among OpenCV's samples (Debian ``opencv-doc``). Unreadable files are an error when named,
    and left out (with images under 64 pixels a side) when not."""
    cv2 = _cv2()
    folder = Path(folder)
    paths = [folder / n for n in names] if names is not None else sorted(
        p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    found = []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None and names is not None:
            raise CalibrationError(f"{path} is missing or not an image OpenCV can read; expected one of the "
                                   f"photos {list(names)}")
        if image is not None and min(image.shape[:2]) >= 64:
            found.append((path.stem, image))
    if not found:
        raise CalibrationError(f"{folder} holds no readable .jpg or .png photos")
    return found


@lru_cache(maxsize=1)
def _cached_photos() -> tuple[tuple[str, np.ndarray], ...]:
    seen: set[str] = set()
    found = []
    for loader in (_skimage_photos, _sklearn_photos, _matplotlib_photos):
        for name, image in loader():
            digest = hashlib.sha1(image.tobytes()).hexdigest()
            if digest in seen:  # skimage's cat() is chelsea() under another name
                continue
            seen.add(digest)
            image.flags.writeable = False
            found.append((name, image))
    return tuple(found)


def photos() -> list[tuple[str, np.ndarray]]:
    """Every sample photo found, as ``(name, HxWx3 uint8 BGR)``, in a fixed order.

    The arrays are shared and read-only; copy one before drawing on it. Raises
    :class:`CalibrationError` naming what to install when fewer than :data:`MIN_PHOTOS`
    are found.
    """
    found = _cached_photos()
    if len(found) < MIN_PHOTOS:
        names = ", ".join(n for n, _ in found) or "none"
        raise CalibrationError(
            f"found {len(found)} sample photos ({names}); need at least {MIN_PHOTOS}. "
            f"Install the packages that ship them: {INSTALL_HINT}"
        )
    return list(found)


def _augment(image: np.ndarray, rng: np.random.Generator, *, max_side_px: int) -> np.ndarray:
    """Random crop (30-100% of the area, aspect 3:4..4:3), flip, brightness/contrast jitter."""
    cv2 = _cv2()
    h, w = image.shape[:2]
    area = rng.uniform(0.3, 1.0) * w * h
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    cw = int(min(w, max(8, round(np.sqrt(area * aspect)))))
    ch = int(min(h, max(8, round(np.sqrt(area / aspect)))))
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    out = image[y0 : y0 + ch, x0 : x0 + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    contrast, brightness = rng.uniform(0.85, 1.15), rng.uniform(-15.0, 15.0)
    out = np.clip(out.astype(np.float32) * contrast + brightness, 0, 255).astype(np.uint8)
    scale = max_side_px / max(cw, ch)
    if scale < 1.0:
        size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
        out = cv2.resize(out, size, interpolation=cv2.INTER_AREA)
    return out


def write_image_folder(dst: Path | str, *, count: int = 200, max_side_px: int = 640, seed: int = 0,
                       source: Sequence[tuple[str, np.ndarray]] | None = None) -> list[Path]:
    """Write ``count`` JPEGs of augmented real photos into ``dst``; return their paths.

    The photos (``source``, by default :func:`photos`) are used in turn (shuffled once by
    ``seed``), so every one is represented; pass a subset to keep some photos out of a
    calibration set entirely. The same seed gives byte-identical files. Names look like
    ``chelsea_0007.jpg``.
    """
    if count < 1:
        raise CalibrationError(f"count must be at least 1, got {count}")
    cv2 = _cv2()
    source = photos() if source is None else list(source)
    if not source:
        raise CalibrationError("no photos to write: the source given is empty")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(source))
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for i in range(count):
        name, image = source[int(order[i % len(source)])]
        ok, jpeg = cv2.imencode(".jpg", _augment(image, rng, max_side_px=max_side_px),
                                [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])  # fmt: skip
        if not ok:
            raise CalibrationError(f"OpenCV could not encode {name} as JPEG")
        path = dst / f"{name}_{i:04d}.jpg"
        path.write_bytes(jpeg.tobytes())
        written.append(path)
    return written


def _shot_rects(image: np.ndarray, rng: np.random.Generator, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and end crop rectangles ``(x, y, w)`` of one pan/zoom shot, in photo pixels."""
    h, w = image.shape[:2]
    full_w = min(w, h * aspect)
    zooms = sorted(rng.uniform(_MIN_ZOOM, 1.0, size=2))
    if rng.random() < 0.5:
        zooms.reverse()  # zoom out instead of in
    rects = []
    for zoom in zooms:
        rw = full_w * zoom
        rects.append(np.array([rng.uniform(0, w - rw), rng.uniform(0, h - rw / aspect), rw]))
    return rects[0], rects[1]


def _fit_for_video(image: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    # Shrink big photos once with INTER_AREA so the per-frame warp never downsamples
    # much (warpAffine has no area filter, and aliasing would shimmer while panning).
    h, w = image.shape[:2]
    full_w = min(w, h * size_wh[0] / size_wh[1])
    scale = size_wh[0] / (_MIN_ZOOM * full_w)
    if scale >= 1.0:
        return image
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return _cv2().resize(image, size, interpolation=_cv2().INTER_AREA)


def _open_writer(dst: Path, fps: float, size_wh: tuple[int, int]) -> tuple[Any, Path]:  # (cv2.VideoWriter, path)
    cv2 = _cv2()
    for path, codec in ((dst, "mp4v"), (dst.with_suffix(".avi"), "MJPG")):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), fps, size_wh)
        if writer.isOpened():
            return writer, path
        writer.release()
    raise CalibrationError(f"OpenCV could not open a video writer for {dst} (tried mp4v and MJPG .avi)")


def scene_frames(*, seconds: float = 5.0, fps: int = 10, size_wh: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """The frames (BGR, ``size_wh``) of a sample video as :func:`write_video` makes it, decoded back (so they
    carry the codec's artefacts, as a camera's do): what benchmarks time per-frame work on."""
    cv2 = _cv2()
    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "clip.mp4", seconds=seconds, fps=fps, size_wh=size_wh)
        cap, frames = cv2.VideoCapture(str(path)), []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
    return frames


def write_video(
    dst: Path | str,
    *,
    seconds: float = 10.0,
    fps: float = 10.0,
    size_wh: tuple[int, int] = (640, 480),
    seconds_per_shot: float = 2.5,
    seed: int = 0,
) -> Path:
    """Write a video of slow pan/zoom ("Ken Burns") shots over the sample photos.

    MP4 (mp4v) when OpenCV can write it, else MJPG in an ``.avi`` next to ``dst``; the
    path actually written is returned. The file is reopened to check its frame count.
    """
    cv2 = _cv2()
    n_frames = round(seconds * fps)
    if n_frames < 1:
        raise CalibrationError(f"seconds * fps must give at least 1 frame, got {seconds} s at {fps} fps")
    source = photos()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(source))
    out_w, out_h = size_wh
    shot_frames = max(1, round(seconds_per_shot * fps))
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    writer, path = _open_writer(dst, fps, size_wh)
    try:
        for i in range(n_frames):
            shot, t = divmod(i, shot_frames)
            if t == 0:
                image = _fit_for_video(source[int(order[shot % len(source)])][1], size_wh)
                start, end = _shot_rects(image, rng, out_w / out_h)
            x, y, rw = start + (end - start) * (t / max(1, shot_frames - 1))
            s = out_w / rw
            warp = np.array([[s, 0.0, -x * s], [0.0, s, -y * s]], dtype=np.float64)
            frame = cv2.warpAffine(image, warp, size_wh, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            writer.write(frame)
    finally:
        writer.release()
    cap, got = cv2.VideoCapture(str(path)), 0
    while cap.grab():
        got += 1
    cap.release()
    if got != n_frames:
        raise CalibrationError(f"wrote {n_frames} frames to {path} but reading it back gives {got}")
    return path


def main(argv: Sequence[str] | None = None, *, echo: Callable[[str], None] = print) -> int:
    """``python -m edgekit.content.samples DIR``: write ``DIR/images/`` and ``DIR/street.mp4``."""
    parser = argparse.ArgumentParser(prog="python -m edgekit.content.samples", description=main.__doc__)
    parser.add_argument("dir", type=Path, help="output folder")
    parser.add_argument("--images", type=int, default=200, help="number of JPEGs (default 200)")
    parser.add_argument("--video-seconds", type=float, default=10.0, help="video length (default 10)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        images = write_image_folder(args.dir / "images", count=args.images, seed=args.seed)
        video = write_video(args.dir / "street.mp4", seconds=args.video_seconds, seed=args.seed)
    except EdgeKitError as exc:
        echo(f"{type(exc).__name__}: {exc}")
        return exc.exit_code
    echo(f"wrote {len(images)} images from {len(photos())} photos to {args.dir / 'images'}")
    echo(f"wrote {video} ({args.video_seconds:g} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
