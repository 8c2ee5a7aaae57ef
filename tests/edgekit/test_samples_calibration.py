"""Sample photos, the image folder and video made from them, and loading them as calibration data."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device_agent.bundle.manifest import PreprocessSpec
from edgekit.content import samples
from edgekit.errors import CalibrationError, UsageError
from edgekit.optimize.calibration import VIDEO_HELDOUT, VIDEO_MIN_CALIB, CalibrationSet, load_calibration

pytest.importorskip("skimage")

NCHW = PreprocessSpec(size_wh=(64, 48), layout="NCHW")
NHWC = PreprocessSpec(size_wh=(64, 48), layout="NHWC")
SHAPE_NCHW = (1, 3, 48, 64)
SHAPE_NHWC = (1, 48, 64, 3)


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    samples.write_image_folder(folder, count=12, seed=3)
    return folder


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_video(tmp_path_factory.mktemp("video") / "clip.mp4", seconds=3, fps=5, size_wh=(160, 120))


def test_photos_are_real_bgr_images() -> None:
    found = samples.photos()
    assert len(found) >= 10
    names = [n for n, _ in found]
    assert len(set(names)) == len(names)
    for name, image in found:
        assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8, name
        assert min(image.shape[:2]) >= 64 and image.std() > 10, name  # not blank


def test_image_folder_is_readable_and_deterministic(tmp_path: Path) -> None:
    first = samples.write_image_folder(tmp_path / "a", count=8, seed=7)
    again = samples.write_image_folder(tmp_path / "b", count=8, seed=7)
    other = samples.write_image_folder(tmp_path / "c", count=8, seed=8)
    assert len(first) == 8 and all(p.suffix == ".jpg" for p in first)
    assert [p.name for p in first] == [p.name for p in again]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in again]
    assert [p.read_bytes() for p in first] != [p.read_bytes() for p in other]
    for p in first:
        image = cv2.imread(str(p))
        assert image is not None and max(image.shape[:2]) <= 640



def test_image_folder_from_a_subset_of_photos_holds_only_those(tmp_path: Path) -> None:
    kept = [p for p in samples.photos() if p[0] in ("coffee", "chelsea")]
    written = samples.write_image_folder(tmp_path / "subset", count=6, source=kept)
    assert sorted({p.stem.rsplit("_", 1)[0] for p in written}) == ["chelsea", "coffee"]
    with pytest.raises(CalibrationError, match="empty"):
        samples.write_image_folder(tmp_path / "none", count=2, source=[])


def test_folder_photos_reads_named_files_and_names_a_missing_one(tmp_path: Path) -> None:
    (name, image), *_ = samples.photos()
    cv2.imwrite(str(tmp_path / "one.png"), image)
    cv2.imwrite(str(tmp_path / "tiny.png"), image[:20, :20])  # too small to be a photo: left out
    (tmp_path / "notes.txt").write_text("not an image")
    found = samples.folder_photos(tmp_path)
    assert [n for n, _ in found] == ["one"] and np.array_equal(found[0][1], image), name
    with pytest.raises(CalibrationError, match=r"gone\.jpg is missing"):
        samples.folder_photos(tmp_path, ["one.png", "gone.jpg"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no readable"):
        samples.folder_photos(tmp_path / "empty")

def test_video_has_the_right_frame_count(video: Path) -> None:
    cap = cv2.VideoCapture(str(video))
    frames = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (120, 160, 3)
        frames += 1
    cap.release()
    assert frames == 15


@pytest.mark.parametrize(("spec", "shape"), [(NCHW, SHAPE_NCHW), (NHWC, SHAPE_NHWC)])
def test_load_folder(image_dir: Path, spec: PreprocessSpec, shape: tuple[int, ...]) -> None:
    calls: list[tuple[int, int]] = []
    data = load_calibration(image_dir, preprocess=spec, input_shape=shape, progress=lambda d, t: calls.append((d, t)))
    assert data.kind == "images" and data.inputs.dtype == np.float32
    assert data.inputs.shape == (12, *shape[1:])
    assert len(data.names) == 12 and data.skipped == ()
    assert calls[-1] == (12, 12)
    assert 0.0 <= data.inputs.min() and data.inputs.max() <= 1.0


def test_load_folder_caps_samples_and_reports_skipped(image_dir: Path, tmp_path: Path) -> None:
    for p in sorted(image_dir.glob("*.jpg"))[:5]:
        (tmp_path / p.name.upper()).write_bytes(p.read_bytes())  # upper-case extensions count too
    (tmp_path / "broken.png").write_bytes(b"not a png")
    data = load_calibration(tmp_path, preprocess=NCHW, input_shape=SHAPE_NCHW)
    assert len(data) == 5 and len(data.skipped) == 1 and data.skipped[0].startswith("broken.png")
    capped = load_calibration(tmp_path, preprocess=NCHW, input_shape=SHAPE_NCHW, max_samples=3)
    assert len(capped) + len(capped.skipped) == 3


def test_load_video(video: Path) -> None:
    data = load_calibration(video, preprocess=NHWC, input_shape=SHAPE_NHWC, max_samples=6)
    assert data.kind == "video" and data.inputs.shape == (6, 48, 64, 3)
    assert data.names[0] == "frame 0" and data.names[-1] == "frame 14"


def test_load_npy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    plain, batched = tmp_path / "plain.npy", tmp_path / "batched.npy"
    np.save(plain, rng.random((10, 3, 48, 64), dtype=np.float32))
    np.save(batched, rng.integers(0, 255, (4, 1, 3, 48, 64), dtype=np.uint8))
    data = load_calibration(plain, preprocess=None, input_shape=SHAPE_NCHW)
    assert data.kind == "npy" and data.inputs.shape == (10, 3, 48, 64)
    assert load_calibration(batched, preprocess=None, input_shape=SHAPE_NCHW).inputs.dtype == np.float32


def test_split_is_disjoint_and_deterministic() -> None:
    data = CalibrationSet(np.arange(20, dtype=np.float32)[:, None], "x", "npy", tuple(map(str, range(20))))
    calib, val = data.split(holdout_fraction=0.25, seed=1)
    assert len(calib) == 15 and len(val) == 5
    assert not set(calib[:, 0]) & set(val[:, 0])
    again = data.split(holdout_fraction=0.25, seed=1)
    assert np.array_equal(calib, again[0]) and np.array_equal(val, again[1])
    assert len(data.split(max_calib=4)[0]) == 4
    tiny_calib, tiny_val = CalibrationSet(np.zeros((2, 1), np.float32), "x", "npy", ("a", "b")).split()
    assert len(tiny_calib) == 1 and len(tiny_val) == 1
    with pytest.raises(CalibrationError, match="need at least 2"):
        CalibrationSet(np.zeros((1, 1), np.float32), "x", "npy", ("a",)).split()


def test_a_video_gives_the_held_out_set_the_frames_it_needs() -> None:
    def split(n: int, kind: str) -> tuple[int, int]:
        calib, val = CalibrationSet(np.zeros((n, 1), np.float32), "x", kind, tuple(map(str, range(n)))).split()
        return len(calib), len(val)

    assert split(100, "video") == (VIDEO_MIN_CALIB, 100 - VIDEO_MIN_CALIB)  # the demo's 10 s clip: 68, not 40
    assert split(500, "video") == (300, VIDEO_HELDOUT)  # a longer video: one frame is 0.5 points
    assert split(1000, "video") == (300, 400)  # 40 % when that is more
    assert split(20, "video") == (12, 8) and split(2, "video") == (1, 1)  # as before when it cannot
    assert split(100, "images") == (60, 40) and split(100, "npy") == (60, 40)  # photos: unchanged


def _corrupt_jpgs(folder: Path) -> Path:
    folder.mkdir()
    for i in range(4):
        (folder / f"img_{i}.jpg").write_bytes(b"\xff\xd8garbage" * 10)
    return folder


def _wrong_npy(tmp_path: Path) -> Path:
    np.save(tmp_path / "wrong.npy", np.zeros((4, 3, 32, 32), np.float32))
    return tmp_path / "wrong.npy"


def _text_file(tmp_path: Path) -> Path:
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    return tmp_path / "labels.txt"


def _corrupt_video(tmp_path: Path) -> Path:
    (tmp_path / "broken.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    return tmp_path / "broken.mp4"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda t: t / "nowhere", r"nowhere' does not exist"),
        (lambda t: t, r"has no images \(looked for \.jpg, \.jpeg"),
        (lambda t: _corrupt_jpgs(t / "bad"), r"only 0 of the 4 images .* img_0\.jpg: not a readable image"),
        (_wrong_npy, r"shape \(4, 3, 32, 32\); expected \[N, 3, 48, 64\]"),
        (_text_file, r"is a \.txt file; expected a folder of images"),
        (_corrupt_video, r"video .*broken\.mp4"),
    ],
    ids=["missing", "empty-folder", "corrupt-jpgs", "npy-shape", "txt", "corrupt-video"],
)
def test_bad_calibration_data_is_refused(tmp_path: Path, make, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CalibrationError, match=match) as info:
        load_calibration(make(tmp_path), preprocess=NCHW, input_shape=SHAPE_NCHW)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2


def test_images_need_a_preprocess_spec(image_dir: Path) -> None:
    with pytest.raises(CalibrationError, match="preprocess spec is needed"):
        load_calibration(image_dir, preprocess=None, input_shape=SHAPE_NCHW)


def test_spec_must_match_model_input(image_dir: Path) -> None:
    with pytest.raises(CalibrationError, match=r"makes inputs of shape \(3, 48, 64\).*expects \(3, 224, 224\)"):
        load_calibration(image_dir, preprocess=NCHW, input_shape=(1, 3, 224, 224))


def test_npy_must_be_numeric(tmp_path: Path) -> None:
    np.save(tmp_path / "s.npy", np.array([["a"] * 3] * 4))
    with pytest.raises(CalibrationError, match="expected numbers"):
        load_calibration(tmp_path / "s.npy", preprocess=None, input_shape=(1, 3))


def test_cli_writes_images_and_video(tmp_path: Path) -> None:
    lines: list[str] = []
    assert samples.main([str(tmp_path), "--images", "3", "--video-seconds", "1"], echo=lines.append) == 0
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 3
    assert (tmp_path / "street.mp4").exists() and "street.mp4" in lines[-1]
