"""The bundle contract: written by edgekit, verified by device_agent, tampering refused by name."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from device_agent.bundle.manifest import FileEntry, parse_manifest
from device_agent.bundle.verify import load_bundle, sha256_file
from device_agent.errors import BundleError
from edgekit.cli.main import main as edgekit_main
from edgekit.optimize.pipeline import optimize
from tests.support.tinymodels import tiny_classifier


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    model = tiny_classifier(root / "tiny.onnx")
    result = optimize(model, target="x86-cpu", output=root / "b", precision="int8", calib=photo_dir, max_drop=100)
    return result.bundle


@pytest.fixture
def copy(bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bundle, tmp_path / "copy"))


def test_written_bundle_verifies_and_holds_the_contract_fields(bundle: Path) -> None:
    manifest = load_bundle(bundle).manifest
    raw = json.loads((bundle / "manifest.json").read_text())
    for key in ("schema", "name", "version", "model", "target", "precision", "inputs", "outputs", "task", "validation"):
        assert key in raw
    assert raw["schema"] == "edgekit.bundle/1"
    assert manifest.model.file == "model.int8.onnx"
    assert set(manifest.files) == {"model.int8.onnx", "report.json", "golden.npz", "drift.json"}  # drift: issue 17
    assert manifest.inputs[0].shape == [1, 3, 32, 32]
    assert manifest.preprocess is not None and manifest.preprocess.size_wh == (32, 32)
    assert manifest.baseline["input"].std > 0
    assert manifest.source.file == "tiny.onnx"
    assert manifest.measured_fps == pytest.approx(1000 / raw["performance"]["latency_ms"]["optimized"], rel=1e-3)
    assert manifest.model_copy(update={"performance": {}}).measured_fps is None  # no timing: nothing to compare with


def _edit_manifest(bundle: Path, edit) -> None:  # type: ignore[no-untyped-def]
    path = bundle / "manifest.json"
    raw = json.loads(path.read_text())
    edit(raw)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("tamper", "check", "message"),
    [
        (lambda b: (b / "model.int8.onnx").write_bytes((b / "model.int8.onnx").read_bytes()[:-1] + b"\0"),
         "file-sha256", r"'model.int8.onnx' has sha256 [0-9a-f]{64}, the manifest says"),
        (lambda b: (b / "golden.npz").unlink(), "file-present", r"'golden.npz' is listed in the manifest but missing"),
        (lambda b: (b / "report.json").write_text("{}"), "file-size", r"'report.json' is 2 bytes, the manifest says"),
        (lambda b: (b / "extra.bin").write_bytes(b"x"), "unlisted-file", r"files not in the manifest: extra.bin"),
        (lambda b: (b / "manifest.json").unlink(), "manifest-present", r"has no manifest.json"),
        (lambda b: (b / "manifest.json").write_text("{not json"), "manifest-json", r"is not valid JSON"),
        (lambda b: _edit_manifest(b, lambda m: m.update(schema="edgekit.bundle/9")), "schema",
         r"schema 'edgekit.bundle/9'; this agent reads 'edgekit.bundle/1'"),
        (lambda b: _edit_manifest(b, lambda m: m.update(colour="red")), "manifest-fields",
         r"key 'colour': Extra inputs are not permitted \(got 'red'\)"),
        (lambda b: _edit_manifest(b, lambda m: m["inputs"][0].update(shape=[1, 3, 64, 64])), "model-io",
         r"input 'input' shape: manifest \[1, 3, 64, 64\], model \[1, 3, 32, 32\]"),
    ],
    ids=["sha256", "missing", "size", "unlisted", "no-manifest", "bad-json", "schema", "unknown-key", "shape"],
)
def test_tampered_bundle_is_refused_naming_the_check(copy: Path, tamper, check: str, message: str) -> None:  # type: ignore[no-untyped-def]
    tamper(copy)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(copy)
    assert info.value.check == check


def test_inspect_shows_a_good_bundle_and_refuses_a_tampered_one(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["inspect", str(copy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "int8"
    (copy / "golden.npz").write_bytes(b"tampered")
    assert edgekit_main(["inspect", str(copy)]) == 2
    assert "BundleError: bundle check 'file-size' failed" in capsys.readouterr().err


def test_agent_verify_command(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from device_agent.cli import main as agent_main

    assert agent_main(["verify", str(copy)]) == 0
    (copy / "model.int8.onnx").write_bytes(b"garbage")
    assert agent_main(["verify", str(copy)]) == 2
    assert "file-size" in capsys.readouterr().err


def test_agent_verify_names_the_runtime_extra_a_bundle_needs(copy: Path, capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An ONNX bundle on a device installed as edgekit[agent,tflite]: exit 2 and the extra to add."""
    from device_agent.cli import main as agent_main

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails, as when not installed
    assert agent_main(["verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert "MissingDependencyError" in err and "pip install 'edgekit[onnx]'" in err, err


def test_a_listed_drift_baseline_that_is_not_one_is_refused_by_name(copy: Path) -> None:
    drift = copy / "drift.json"
    drift.write_text('{"schema": "edgekit.drift/1", "frames": 0, "signals": {}}')
    manifest = parse_manifest((copy / "manifest.json").read_text())
    files = {**manifest.files, "drift.json": FileEntry(sha256=sha256_file(drift), size_bytes=drift.stat().st_size)}
    (copy / "manifest.json").write_text(manifest.model_copy(update={"files": files}).to_json())
    with pytest.raises(BundleError, match=r"drift-baseline.*frames"):
        load_bundle(copy, check_model_io=False)


def test_a_bundle_without_a_drift_baseline_still_loads(copy: Path) -> None:
    manifest = parse_manifest((copy / "manifest.json").read_text())
    (copy / "drift.json").unlink()
    files = {k: v for k, v in manifest.files.items() if k != "drift.json"}
    (copy / "manifest.json").write_text(manifest.model_copy(update={"files": files}).to_json())
    assert load_bundle(copy).drift is None
