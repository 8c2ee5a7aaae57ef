"""check-config refuses what run would refuse, with the same message, and passes what run starts.

The config is the systemd unit's ``ExecStartPre``: a config it passes must not make ``run``
fail on something visible before starting (a missing file, a bad URL, an empty password).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from device_agent.cli import main as agent_main
from tests.device_agent.test_bundle_matrix import good_bundle, write_config  # noqa: F401  (one real bundle per module)


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit status and the ``Type: message`` line the CLI printed."""
    status = agent_main(list(argv))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("ConfigError:", "BundleError:"))]
    return status, "\n".join(lines)


CASES = {
    "missing-source-file": ({"source": "{tmp}/nope.mp4"},
                            r"key 'sources.0.uri': source URI .*nope.mp4.*: no such file"),
    "missing-video-node": ({"source": "/dev/video97"},
                           r"key 'sources.0.uri': .*'/dev/video97': no such device node"),
    "url-port-out-of-range": ({"source": "rtsp://cam.local:99999/stream"},
                              r"key 'sources.0.uri': .*99999.*out of range"),
    "url-without-host": ({"source": "rtsp:///stream"}, r"key 'sources.0.uri': .*has no host"),
    "empty-password-file": ({"password": b""}, r"key 'mqtt.password_file': .*pw' is empty"),
    "blank-password-line": ({"password": b"\nsecret\n"}, r"key 'mqtt.password_file': the first line of .*pw' is empty"),
    "non-utf8-password-file": ({"password": b"caf\xe9\n"}, r"key 'mqtt.password_file': .*pw' is not UTF-8 text"),
    "password-path-too-long": ({"mqtt": 'password_file = "' + "p" * 5000 + '"'},
                               r"key 'mqtt.password_file': cannot read .*File name too long"),
    "empty-tls-ca": ({"ca": b""}, r"key 'mqtt.tls.ca': .*ca.pem' is empty"),
    "tls-ca-is-a-folder": ({"mqtt": 'tls = {{ca = "{tmp}"}}'}, r"key 'mqtt.tls.ca': .* is not a regular file"),
}


def build(tmp_path: Path, bundle: Path, source: Path, case: dict[str, object]) -> Path:
    mqtt_lines = ""
    if "password" in case:
        (tmp_path / "pw").write_bytes(case["password"])  # type: ignore[arg-type]
        mqtt_lines = f'username = "cam"\npassword_file = "{tmp_path / "pw"}"'
    if "ca" in case:
        (tmp_path / "ca.pem").write_bytes(case["ca"])  # type: ignore[arg-type]
        mqtt_lines = f'tls = {{ca = "{tmp_path / "ca.pem"}"}}'
    if "mqtt" in case:
        mqtt_lines = str(case["mqtt"]).format(tmp=tmp_path)
    uri = str(case.get("source", source)).format(tmp=tmp_path)
    return write_config(tmp_path, bundle, uri, mqtt_lines=mqtt_lines)  # type: ignore[arg-type]


@pytest.mark.parametrize("case", list(CASES))
def test_check_config_and_run_refuse_alike(case: str, good_bundle: Path, photo_dir: Path, tmp_path: Path,  # noqa: F811
                                           capsys: pytest.CaptureFixture[str]) -> None:
    edit, message = CASES[case]
    config = build(tmp_path, good_bundle, photo_dir, edit)
    checked = refusal(capsys, "check-config", str(config))
    ran = refusal(capsys, "run", "--config", str(config), "--max-frames", "1")
    assert checked[0] == 2 and ran[0] == 2
    assert checked[1] == ran[1]  # the same message, word for word
    assert checked[1].startswith("ConfigError: ")
    assert re.search(message, checked[1]), checked[1]
    assert not (tmp_path / "state").exists()  # run refused before it created the outbox


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_unreadable_tls_ca(good_bundle: Path, photo_dir: Path, tmp_path: Path,  # noqa: F811
                           capsys: pytest.CaptureFixture[str]) -> None:
    config = build(tmp_path, good_bundle, photo_dir, {"ca": b"-----BEGIN CERTIFICATE-----\n"})
    (tmp_path / "ca.pem").chmod(0)
    status, message = refusal(capsys, "check-config", str(config))
    assert status == 2 and "key 'mqtt.tls.ca': cannot read" in message


@pytest.mark.parametrize("source", ["folder", "video", "url", "gstreamer"])
def test_a_good_config_passes(source: str, good_bundle: Path, photo_dir: Path, video_file: Path,  # noqa: F811
                              tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    uri = {"folder": str(photo_dir), "video": str(video_file), "url": "rtsp://user:pw@cam.local:554/stream",
           "gstreamer": "videotestsrc ! videoconvert ! appsink"}[source]
    (tmp_path / "pw").write_text("secret\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    config = write_config(tmp_path, good_bundle, uri,  # type: ignore[arg-type]
                          mqtt_lines=f'username = "cam"\npassword_file = "{tmp_path / "pw"}"\n'
                                     f'tls = {{ca = "{tmp_path / "ca.pem"}"}}')
    assert agent_main(["check-config", str(config)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("ok: cam-01")
