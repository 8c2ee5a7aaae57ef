"""Bad input to `edgekit optimize`: a clear message naming the value, exit 2, nothing left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from edgekit.cli.main import main
from edgekit.errors import OptimizeFailed
from tests.support.tinymodels import tiny_classifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_classifier(tmp_path_factory.mktemp("m") / "tiny.onnx")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def _assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")] == []


def test_missing_model_file(tmp_path: Path, photo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(tmp_path / "nope.onnx"), "--target", "x86-cpu", "--calib", str(photo_dir),
                     "--output", str(out))
    assert code == 2 and "ModelInputError" in err and "nope.onnx' does not exist" in err
    _assert_nothing_left(out)


def test_file_that_is_not_onnx(tmp_path: Path, photo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = tmp_path / "model.onnx"
    fake.write_text("this is not a model\n" * 10)
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(fake), "--target", "x86-cpu", "--calib", str(photo_dir),
                     "--output", str(out))
    assert code == 2 and "not a readable ONNX model" in err
    _assert_nothing_left(out)


def test_unknown_target(tiny: Path, tmp_path: Path, photo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(tiny), "--target", "rpi9", "--calib", str(photo_dir), "--output", str(out))
    assert code == 2 and "unknown target 'rpi9'" in err and "x86-cpu" in err
    _assert_nothing_left(out)


def test_empty_calibration_folder(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(empty), "--output", str(out))
    assert code == 2 and "CalibrationError" in err and "empty" in err
    _assert_nothing_left(out)


def test_unreadable_images(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for i in range(3):
        (bad / f"img{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(bad), "--output", str(out))
    assert code == 2 and "CalibrationError" in err and "img0.jpg" in err
    _assert_nothing_left(out)


def test_dynamic_shape_without_a_shape(tmp_path: Path, photo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_classifier(tmp_path / "dyn.onnx", batch="N", height="H")
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(model), "--target", "x86-cpu", "--calib", str(photo_dir),
                     "--output", str(out))
    assert code == 2 and "dynamic dimensions" in err and "--input-shape input:1,3,224,224" in err
    _assert_nothing_left(out)


def test_dynamic_shape_fixed_by_input_shape(tmp_path: Path, photo_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_classifier(tmp_path / "dyn.onnx", batch="N", height="H")
    out = tmp_path / "out"
    code = main(["optimize", str(model), "--target", "x86-cpu", "--calib", str(photo_dir), "--output", str(out),
                 "--input-shape", "input:1,3,48,48", "--precision", "fp32", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["precision"] == "fp32"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"][0]["shape"] == [1, 3, 48, 48]


def test_non_bundle_output_directory_is_not_clobbered(tiny: Path, tmp_path: Path, photo_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.txt").write_text("keep me")
    code, err = _run(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(photo_dir),
                     "--output", str(out))
    assert code == 2 and "refusing to overwrite" in err
    assert (out / "thesis.txt").read_text() == "keep me"


def test_bad_max_drop_and_a_precision_the_target_lacks(tiny: Path, tmp_path: Path, photo_dir: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--max-drop", "-3",
                     "--output", str(tmp_path / "o"))
    assert code == 2 and "--max-drop -3.0 is out of range" in err
    code, err = _run(capsys, "optimize", str(tiny), "--target", "rpi4", "--precision", "fp16",
                     "--calib", str(photo_dir),
                     "--output", str(tmp_path / "o"))
    assert code == 2 and "--precision fp16 is not offered by target 'rpi4'; it offers int8, fp32" in err


def test_bad_input_shape_argument(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["optimize", str(tiny), "--target", "x86-cpu", "--output", str(tmp_path / "o"), "--input-shape", "1,3,a"])
    assert info.value.code == 2
    assert "expected NAME:1,3,224,224" in capsys.readouterr().err


def test_preprocess_file_with_a_bad_key(tiny: Path, tmp_path: Path, photo_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "pre.json"
    spec.write_text(json.dumps({"resize": "squash", "colour": "RGB"}))
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(photo_dir),
                     "--output", str(out), "--preprocess", str(spec))
    assert code == 2
    assert "key 'resize': Input should be 'letterbox', 'stretch' or 'center-crop' (got 'squash')" in err
    assert "key 'colour': Extra inputs are not permitted" in err
    _assert_nothing_left(out)


def test_ssd_anchors_of_the_wrong_shape(tiny: Path, tmp_path: Path, photo_dir: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    anchors = tmp_path / "anchors.npy"
    np.save(anchors, np.zeros((10, 3), np.float32))
    out = tmp_path / "out"
    code, err = _run(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(photo_dir),
                     "--output", str(out), "--decoder", "ssd", "--task", "detection", "--anchors", str(anchors))
    assert code == 2 and "has shape [10, 3]; expected [N, 4] (y, x, h, w)" in err
    _assert_nothing_left(out)


# -- paths the system refuses: a named usage error (exit 2), never a traceback; with --json one JSON object ----

def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1, captured.out  # exactly one JSON document on stdout
    return code, json.loads(captured.out), captured.err


@pytest.mark.parametrize(("output", "cause"), [
    ("{file}/out", "is a file, not a folder"),  # FileExistsError from mkdir without the check
    ("{file}/deeper/out", "is a file, not a folder"),
    ("/proc/edgekit-out", "cannot be created: No such file or directory"),  # /proc takes no new entries
    ("/sys/edgekit-out", "cannot be created: Operation not permitted"),  # root cannot write /sys either
])
def test_an_output_that_cannot_be_created_is_a_usage_error(tiny: Path, tmp_path: Path, photo_dir: Path, output: str,
                                                           cause: str, capsys: pytest.CaptureFixture[str]) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    out = output.format(file=in_the_way)
    if out.startswith("/sys") and not Path("/sys").is_dir():
        pytest.skip("no /sys on this machine")
    code, doc, err = _run_json(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(photo_dir),
                               "--output", out)
    assert code == 2 and f"OptionsError: --output '{out}' " in err and "Traceback" not in err
    if os.geteuid() == 0 or out.startswith(str(tmp_path)):  # as a user, /proc and /sys are refused by the check
        assert cause in err
    assert doc == {"v": 1, "error": {"type": "OptionsError", "message": err.split(": ", 1)[1].strip(),
                                     "exit_code": 2}}
    if Path(out).parent.is_dir():
        assert list(Path(out).parent.glob(".edgekit-out*")) == []  # no scratch folder left behind


def test_calibration_paths_the_system_refuses(tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a folder")
    code, doc, err = _run_json(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib",
                               str(in_the_way / "photos"), "--output", str(tmp_path / "out"))
    assert code == 2 and "--calib '" in err and "photos' does not exist" in err
    assert doc["v"] == 1 and doc["error"]["type"] == "OptionsError" and doc["error"]["exit_code"] == 2
    unreadable = Path("/proc/1/map_files")  # a folder even root may not list
    if not unreadable.is_dir():
        pytest.skip("no /proc/1/map_files on this machine")
    code, doc, err = _run_json(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(unreadable),
                               "--output", str(tmp_path / "out"))
    assert code == 2 and "CalibrationError" in err and "/proc/1/map_files" in err and "Traceback" not in err
    assert doc["error"]["type"] == "CalibrationError"
    _assert_nothing_left(tmp_path / "out")


def test_every_failure_with_json_prints_one_versioned_json_object(tiny: Path, tmp_path: Path, photo_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, doc, _ = _run_json(capsys, "optimize", str(tmp_path / "nope.onnx"), "--target", "x86-cpu",
                             "--calib", str(photo_dir), "--output", str(tmp_path / "out"))
    assert code == 2 and doc["v"] == 1 and doc["error"]["type"] == "ModelInputError"
    assert "nope.onnx' does not exist" in doc["error"]["message"]
    with pytest.raises(SystemExit) as info:  # refused by the parser: still one JSON object
        main(["optimize", str(tiny), "--output", str(tmp_path / "o"), "--json"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out) == {"v": 1, "error": {
        "type": "UsageError", "message": "the following arguments are required: --target", "exit_code": 2}}
    assert "(see 'edgekit optimize --help')" in captured.err

    def no_candidate(*_args: object, **_kwargs: object) -> None:  # what a missed budget raises (see test_optimize)
        raise OptimizeFailed("no int8 candidate met the accuracy budget of 0.0 points",
                             candidates=[{"name": "int8", "passed": False}])

    monkeypatch.setattr("edgekit.optimize.pipeline.optimize", no_candidate)
    code, doc, _ = _run_json(capsys, "optimize", str(tiny), "--target", "x86-cpu", "--calib", str(photo_dir),
                             "--output", str(tmp_path / "out"))
    assert code == 1 and doc == {"v": 1, "error": {
        "type": "OptimizeFailed", "message": "no int8 candidate met the accuracy budget of 0.0 points",
        "exit_code": 1, "candidates": [{"name": "int8", "passed": False}]}}


def test_the_optimize_json_has_a_version(tiny: Path, tmp_path: Path, photo_dir: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", str(tiny), "--target", "x86-cpu", "--calib", str(photo_dir), "--output",
                 str(tmp_path / "out"), "--precision", "fp32", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["v"] == 1
    steps = [line for line in captured.err.splitlines() if "Loading the model" in line]  # progress still on stderr
    assert len(steps) == 2 and steps[1].endswith(" s")
