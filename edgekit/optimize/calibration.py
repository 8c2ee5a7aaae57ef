"""Calibration and validation data from ``--calib PATH``, as ready model-input tensors.

Three kinds of input: a folder of images, a video file (frames sampled evenly), or a
``.npy`` array of ready inputs. Images and frames go through
:func:`device_agent.pipeline.preprocess.preprocess` with the bundle's spec, so quantization is
calibrated on exactly the tensors the device will feed the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from device_agent.bundle.manifest import PreprocessSpec
from device_agent.errors import PreprocessError
from device_agent.pipeline.preprocess import preprocess as preprocess_frame
from edgekit.errors import CalibrationError, MissingDependencyError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm")
MIN_SAMPLES = 2  # one to calibrate on, one to validate on
VIDEO_HELDOUT = 200
"""Held-out frames a video aims at: one frame is then 0.5 points, half the default 1-point budget, so
pass or miss never turns on a single frame. Calibration needs far fewer: the quantizer fits ranges
that settle within a few dozen frames, and neighbouring frames of a video repeat each other."""
VIDEO_MIN_CALIB = 32
"""Frames a video keeps for calibration however many the held-out set would like (a 10 s clip at
10 fps: 68 held-out and 32 to calibrate on, instead of 40 and 60)."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True, eq=False)
class CalibrationSet:
    """Model inputs loaded from one ``--calib`` source, and what could not be read."""

    inputs: np.ndarray  # [N, *input_shape[1:]] float32, in the spec's layout
    source: str  # the path as given
    kind: str  # "images" | "video" | "npy"
    names: tuple[str, ...]  # one per input: file name or "frame 12"
    skipped: tuple[str, ...] = ()  # "name: reason" for each file that could not be used

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def split(
        self, *, holdout_fraction: float = 0.4, max_calib: int = 300, seed: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Disjoint ``(calibration, validation)`` inputs, the same for the same seed.

        Validation gets ``holdout_fraction`` of the samples (at least one) so accuracy is
        never measured on data the quantizer saw; calibration gets the rest, capped at
        ``max_calib`` (and at least one). A video's held-out set gets up to
        :data:`VIDEO_HELDOUT` frames, as long as :data:`VIDEO_MIN_CALIB` remain to calibrate on.
        """
        n = len(self)
        if n < MIN_SAMPLES:
            raise CalibrationError(
                f"{self.source} gave {n} sample; need at least {MIN_SAMPLES} to split into calibration and validation"
            )
        if not 0.0 < holdout_fraction < 1.0:
            raise CalibrationError(f"holdout_fraction must be between 0 and 1 (exclusive), got {holdout_fraction}")
        if max_calib < 1:
            raise CalibrationError(f"max_calib must be at least 1, got {max_calib}")
        n_val = min(n - 1, max(1, round(n * holdout_fraction)))
        if self.kind == "video":
            n_val = min(n - 1, max(n_val, min(VIDEO_HELDOUT, n - VIDEO_MIN_CALIB)))
        order = np.random.default_rng(seed).permutation(n)
        val_idx = np.sort(order[:n_val])
        calib_idx = np.sort(order[n_val:][:max_calib])
        return self.inputs[calib_idx], self.inputs[val_idx]


def load_calibration(
    path: Path | str,
    *,
    preprocess: PreprocessSpec | None,
    input_shape: tuple[int, ...],
    max_samples: int = 500,
    progress: Progress | None = None,
) -> CalibrationSet:
    """Load ``path`` (image folder, video or ``.npy``) as up to ``max_samples`` model inputs.

    ``input_shape`` is the model input including the batch of one, e.g. ``(1, 3, 224, 224)``;
    a dimension <= 0 matches any size. ``preprocess`` is required for images and video.
    ``progress(done, total)`` is called as images or frames are read.
    """
    p = Path(path)
    if max_samples < MIN_SAMPLES:
        raise CalibrationError(f"max_samples must be at least {MIN_SAMPLES}, got {max_samples}")
    problem = source_problem(path)
    if problem is not None:
        raise CalibrationError(f"calibration data {problem}")
    if p.is_file() and p.suffix.lower() == ".npy":
        return _load_npy(p, str(path), input_shape, max_samples)
    if preprocess is None:
        raise CalibrationError(
            f"calibration data {str(path)!r} holds images; a preprocess spec is needed to turn them into "
            "model inputs (give one, or pass a .npy of ready inputs)"
        )
    loader = _load_folder if p.is_dir() else _load_video
    return loader(p, str(path), preprocess, input_shape, max_samples, progress)


def source_problem(path: Path | str) -> str | None:
    """Why ``path`` cannot be calibration data, judged by its kind alone (checked before any work), or None."""
    p = Path(path)
    if not p.exists():
        return f"{str(path)!r} does not exist; give a folder of images, a video or a .npy"
    suffix = p.suffix.lower()
    if not (p.is_dir() or suffix in (".npy", *VIDEO_EXTENSIONS)):
        return (f"{str(path)!r} is a {suffix or 'extension-less'} file; expected a folder of images "
                f"({', '.join(IMAGE_EXTENSIONS)}), a video ({', '.join(VIDEO_EXTENSIONS)}) or a .npy array")
    return None


def _cv2() -> ModuleType:
    try:
        import cv2
    except ImportError as exc:
        raise MissingDependencyError("cv2", "host", "reading calibration images and video") from exc
    return cv2


def _shape_matches(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
    return len(got) == len(want) and all(w <= 0 or g == w for g, w in zip(got, want))


def _evenly(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` indices spread evenly over ``range(n)``, first and last included."""
    return np.unique(np.linspace(0, n - 1, num=min(n, k)).round().astype(int))


class _Tensors:
    """Collects preprocessed tensors, checking the first against the model input shape."""

    def __init__(self, source: str, spec: PreprocessSpec, input_shape: tuple[int, ...]) -> None:
        self.source, self.spec, self.want = source, spec, tuple(input_shape[1:])
        self.inputs: list[np.ndarray] = []
        self.names: list[str] = []
        self.skipped: list[str] = []

    def add(self, name: str, frame_bgr: np.ndarray) -> None:
        try:
            tensor, _ = preprocess_frame(frame_bgr, self.spec)
        except PreprocessError as exc:
            self.skipped.append(f"{name}: {exc}")
            return
        if not _shape_matches(tensor.shape[1:], self.want):
            raise CalibrationError(
                f"the preprocess spec (size_wh={self.spec.size_wh}, layout={self.spec.layout}, "
                f"color={self.spec.color}) makes inputs of shape {tensor.shape[1:]} but the model "
                f"expects {self.want} (without batch)"
            )
        self.inputs.append(tensor[0])
        self.names.append(name)

    def result(self, kind: str) -> CalibrationSet:
        return CalibrationSet(np.stack(self.inputs), self.source, kind, tuple(self.names), tuple(self.skipped))


def _load_folder(
    folder: Path, source: str, spec: PreprocessSpec, input_shape: tuple[int, ...], max_samples: int,
    progress: Progress | None,
) -> CalibrationSet:  # fmt: skip
    files = sorted(
        f for pattern in ("*", "*/*") for f in folder.glob(pattern)
        if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file()
    )  # fmt: skip
    if not files:
        raise CalibrationError(
            f"folder {source!r} has no images (looked for {', '.join(IMAGE_EXTENSIONS)}, any case, "
            "in the folder and its direct subfolders)"
        )
    chosen = [files[i] for i in _evenly(len(files), max_samples)]
    cv2, out = _cv2(), _Tensors(source, spec, input_shape)
    for done, f in enumerate(chosen, start=1):
        name = str(f.relative_to(folder))
        try:
            image = cv2.imdecode(np.fromfile(f, dtype=np.uint8), cv2.IMREAD_COLOR)
        except OSError as exc:
            out.skipped.append(f"{name}: {exc}")
            image = None
        else:
            if image is None:
                out.skipped.append(f"{name}: not a readable image")
        if image is not None:
            out.add(name, image)
        if progress is not None:
            progress(done, len(chosen))
    if len(out.inputs) < MIN_SAMPLES:
        few = "; ".join(out.skipped[:3]) + ("; ..." if len(out.skipped) > 3 else "")
        raise CalibrationError(
            f"only {len(out.inputs)} of the {len(chosen)} images in {source!r} could be used "
            f"(need at least {MIN_SAMPLES}): {few}"
        )
    return out.result("images")


def _load_video(
    video: Path, source: str, spec: PreprocessSpec, input_shape: tuple[int, ...], max_samples: int,
    progress: Progress | None,
) -> CalibrationSet:  # fmt: skip
    cv2 = _cv2()
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise CalibrationError(f"cannot open video {source!r}: OpenCV found no decodable stream in it")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:  # container without a frame count: count by reading through once
            while cap.grab():
                total += 1
            cap.release()
            cap = cv2.VideoCapture(str(video))
        wanted = set(_evenly(total, max_samples).tolist()) if total > 0 else set()
        out = _Tensors(source, spec, input_shape)
        # Sequential grab is slower than seeking but exact: mp4v/MJPG seeks land on keyframes.
        for index in range(total):
            if not cap.grab():
                break  # the header over-counted; keep what was decoded
            if index in wanted:
                ok, frame = cap.retrieve()
                if ok:
                    out.add(f"frame {index}", frame)
                else:
                    out.skipped.append(f"frame {index}: could not be decoded")
                if progress is not None:
                    progress(len(out.inputs) + len(out.skipped), len(wanted))
    finally:
        cap.release()
    if len(out.inputs) < MIN_SAMPLES:
        raise CalibrationError(
            f"video {source!r} has {len(out.inputs)} decodable frames; need at least {MIN_SAMPLES}"
        )
    return out.result("video")


def _load_npy(path: Path, source: str, input_shape: tuple[int, ...], max_samples: int) -> CalibrationSet:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CalibrationError(f"cannot read {source!r} as a .npy array: {exc}") from exc
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise CalibrationError(f"{source!r} holds dtype {getattr(array, 'dtype', type(array))}; expected numbers")
    want = tuple(input_shape[1:])
    if array.ndim == len(want) + 2 and array.shape[1] == 1:
        array = array.reshape(array.shape[0], *array.shape[2:])  # [N, 1, ...]: a batch of one each
    if not _shape_matches(tuple(array.shape[1:]), want) or array.ndim != len(want) + 1:
        raise CalibrationError(
            f"{source!r} has shape {tuple(array.shape)}; expected [N, {', '.join(map(str, want))}] "
            f"or [N, 1, {', '.join(map(str, want))}] for model input {tuple(input_shape)}"
        )
    if array.shape[0] < MIN_SAMPLES:
        raise CalibrationError(f"{source!r} holds {array.shape[0]} sample; need at least {MIN_SAMPLES}")
    index = _evenly(array.shape[0], max_samples)
    inputs = np.ascontiguousarray(array[index], dtype=np.float32)
    names = tuple(f"sample {i}" for i in index.tolist())
    return CalibrationSet(inputs, source, "npy", names)
