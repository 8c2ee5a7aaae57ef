"""Every bad bundle is refused the same way by ``verify``, ``check-config`` and ``run``.

One good bundle is written by ``edgekit optimize`` (a tiny real model, fp32); each case breaks
a copy of it as an attacker or a bad transfer would, and the three commands run as real
subprocesses: each must exit 2 and name the same check. ``run`` must refuse before it touches
MQTT or the outbox, so the config points at a port where no broker listens.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from device_agent.bundle.onnx_external import external_data_locations
from device_agent.bundle.verify import sha256_file
from edgekit.optimize.pipeline import optimize
from tests.support.tinymodels import tiny_classifier

MODEL = "model.fp32.onnx"


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("matrix")
    model = tiny_classifier(root / "tiny.onnx")
    return optimize(model, target="x86-cpu", output=root / "b", precision="fp32", calib=photo_dir, max_drop=100).bundle


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, bundle: Path, source: Path, *, mqtt_lines: str = "") -> Path:
    path = folder / "agent.toml"
    path.write_text(f"""device_id = "cam-01"
bundle = "{bundle}"

[[sources]]
uri = "{source}"

[mqtt]
host = "127.0.0.1"
port = {unused_port()}
{mqtt_lines}

[outbox]
path = "{folder / 'state' / 'outbox.db'}"
""")
    return path


def agent(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "device_agent.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def all_three(bundle: Path, config: Path) -> dict[str, tuple[int, str]]:
    """Exit status and stderr of verify, check-config and run, started together (they are independent)."""
    procs = {"verify": agent("verify", str(bundle)), "check-config": agent("check-config", str(config)),
             "run": agent("run", "--config", str(config), "--max-frames", "1")}
    out = {}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=120)
        out[name] = (proc.returncode, err)
    return out


# -- how each case breaks the bundle -------------------------------------------------------------
def manifest_of(bundle: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((bundle / "manifest.json").read_text())


def save_manifest(bundle: Path, raw: dict) -> None:  # type: ignore[type-arg]
    (bundle / "manifest.json").write_text(json.dumps(raw))


def rehash(bundle: Path, *names: str) -> None:
    """Make the manifest agree with the files as they are now: only the model's own checks can catch them."""
    raw = manifest_of(bundle)
    for name in names:
        entry = {"sha256": sha256_file(bundle / name), "size_bytes": (bundle / name).stat().st_size}
        raw["files"][name] = entry
        if name == raw["model"]["file"]:
            raw["model"]["sha256"] = entry["sha256"]
    save_manifest(bundle, raw)


def tamper_model(b: Path) -> None:
    data = bytearray((b / MODEL).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (b / MODEL).write_bytes(bytes(data))


def truncate_model(b: Path) -> None:
    (b / MODEL).write_bytes((b / MODEL).read_bytes()[:1000])


def rehashed_garbage(b: Path) -> None:
    (b / MODEL).write_bytes(np.random.default_rng(0).integers(128, 256, 4096, dtype=np.uint8).tobytes())
    rehash(b, MODEL)


def symlinked_model(b: Path) -> None:
    outside = b.parent / "outside.onnx"
    shutil.copyfile(b / MODEL, outside)
    (b / MODEL).unlink()
    (b / MODEL).symlink_to(outside)


def missing_golden(b: Path) -> None:
    (b / "golden.npz").unlink()
    raw = manifest_of(b)
    del raw["files"]["golden.npz"]
    save_manifest(b, raw)


def golden_mismatch(b: Path) -> None:
    with np.load(b / "golden.npz") as golden:
        arrays = {k: golden[k] for k in golden.files}
    arrays["output_0"] = arrays["output_0"] + 10.0 * (np.abs(arrays["output_0"]).max() + 1.0)
    np.savez(b / "golden.npz", **arrays)
    rehash(b, "golden.npz")


def golden_not_npz(b: Path) -> None:
    (b / "golden.npz").write_bytes(b"PK\x03\x04 not really a zip")
    rehash(b, "golden.npz")


def manifest_not_utf8(b: Path) -> None:
    (b / "manifest.json").write_bytes((b / "manifest.json").read_bytes().replace(b'"name"', b'"n\xe9\xff"', 1))


def manifest_deeply_nested(b: Path) -> None:
    depth = 200_000
    (b / "manifest.json").write_text('{"schema": "edgekit.bundle/1", "x": ' + "[" * depth + "]" * depth + "}")


def manifest_lone_surrogate(b: Path) -> None:
    """Valid JSON, but "\\ud800" is no text: verify used to crash printing the name."""
    raw = manifest_of(b)
    raw["name"] = "\ud800"
    save_manifest(b, raw)


def path_escaping(b: Path) -> None:
    (b.parent / "x").write_bytes(b"outside")
    raw = manifest_of(b)
    raw["files"]["../x"] = {"sha256": sha256_file(b.parent / "x"), "size_bytes": 7}
    save_manifest(b, raw)


def external_data_escaping(b: Path) -> None:
    """The weights move to a file beside the bundle, and the model names it as ``../weights.bin``."""
    model = onnx.load(str(b / MODEL))
    onnx.save(model, str(b.parent / "staged.onnx"), save_as_external_data=True, location="weights.bin",
              size_threshold=0)
    staged = onnx.load(str(b.parent / "staged.onnx"), load_external_data=False)
    for tensor in staged.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    onnx.save(staged, str(b / MODEL))
    rehash(b, MODEL)


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "tampered-model": (tamper_model, "file-sha256"),
    "truncated-model": (truncate_model, "file-size"),
    "rehashed-garbage": (rehashed_garbage, "model-load"),
    "symlinked-model": (symlinked_model, "file-symlink"),
    "missing-golden": (missing_golden, "golden-missing"),
    "golden-mismatch": (golden_mismatch, "golden-mismatch"),
    "golden-not-npz": (golden_not_npz, "golden-format"),
    "manifest-not-utf8": (manifest_not_utf8, "manifest-json"),
    "manifest-deeply-nested": (manifest_deeply_nested, "manifest-json"),
    "manifest-lone-surrogate": (manifest_lone_surrogate, "manifest-json"),
    "path-escaping": (path_escaping, "file-present"),
    "external-data-escaping": (external_data_escaping, "external-data"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_bundle_is_refused_alike_by_verify_check_config_and_run(
    case: str, good_bundle: Path, photo_dir: Path, tmp_path: Path
) -> None:
    tamper, check = CASES[case]
    bundle = Path(shutil.copytree(good_bundle, tmp_path / "bundle"))
    tamper(bundle)
    config = write_config(tmp_path, bundle, photo_dir)
    results = all_three(bundle, config)
    for command, (status, err) in results.items():
        assert status == 2, f"{command}: exit {status}\n{err}"
        assert f"BundleError: bundle check '{check}' failed" in err, f"{command}:\n{err}"
        assert "Traceback" not in err, f"{command}:\n{err}"
    assert not (tmp_path / "state").exists()  # run refused before it created the outbox


def test_the_good_bundle_passes_all_three(good_bundle: Path, photo_dir: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path, good_bundle, photo_dir)
    verify = subprocess.run([sys.executable, "-m", "device_agent.cli", "verify", str(good_bundle)],
                            check=False, capture_output=True, text=True, timeout=120)
    check = subprocess.run([sys.executable, "-m", "device_agent.cli", "check-config", str(config)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and verify.stdout.startswith("ok: "), verify.stderr
    assert check.returncode == 0 and check.stdout.startswith("ok: cam-01"), check.stderr


def test_external_data_locations_agree_with_the_onnx_package(good_bundle: Path, tmp_path: Path) -> None:
    model = onnx.load(str(good_bundle / MODEL))
    assert external_data_locations((good_bundle / MODEL).read_bytes()) == []
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=False,
              size_threshold=0)
    saved = onnx.load(str(tmp_path / "m.onnx"), load_external_data=False)
    expected = sorted({e.value for t in onnx.external_data_helper._get_all_tensors(saved)
                       for e in t.external_data if e.key == "location"})
    assert len(expected) >= 6  # one file per initializer
    assert external_data_locations((tmp_path / "m.onnx").read_bytes()) == expected
    assert external_data_locations(b"\xff" * 64) is None  # not protobuf: left to the runtime (model-load)
