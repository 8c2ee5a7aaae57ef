"""The agent config: the design.md example works as written; mistakes point at the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from device_agent.cli import main as agent_main
from device_agent.errors import ConfigError
from device_agent.service.config import load_config

MINIMAL = """device_id = "cam-01"
bundle = "bundles/mobilenet-int8"     # a bundle directory

[[sources]]
uri = "samples/street.mp4"   # camera index, /dev/videoN, rtsp://..., GStreamer pipeline, folder
loop = false
fps = 10                     # pacing for files; absent = as fast as inference allows

[mqtt]
host = "127.0.0.1"
port = 1883

[outbox]
path = "state/outbox.db"
"""


def test_the_design_example_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(MINIMAL)
    config = load_config(file)
    assert config.device_id == "cam-01" and config.sources[0].fps == 10
    assert config.bundle == tmp_path / "bundles/mobilenet-int8"
    assert config.sources[0].uri == str(tmp_path / "samples/street.mp4")
    assert config.outbox.path == tmp_path / "state/outbox.db"
    assert config.publish.policy == "every" and config.mqtt.protocol == "5"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("port = 1883", 'port = "eighteen"'),
         r"key 'mqtt.port': Input should be a valid integer.*'eighteen'"),
        (lambda t: t.replace("port = 1883", "port = 1883\nhots = 'x'"),
         r"key 'mqtt.hots': Extra inputs are not permitted"),
        (lambda t: t.replace("fps = 10", "fps = -1"), r"key 'sources.0.fps': Input should be greater than 0"),
        (lambda t: t.replace('device_id = "cam-01"', 'device_id = "cam 01!"'),
         r"key 'device_id': String should match pattern"),
        (lambda t: t + "\n[[rules]]\nname = 'r'\nlabel = 'person'\nzone = [[0, 0], [1, 1]]\n",
         r"key 'rules.0.zone': Value error, a zone needs at least 3 points"),
        (lambda t: t.replace("[mqtt]", "[mqtt\n"), r"not valid TOML"),
        (lambda t: t.replace("fps = 10", "fps = 10\nstall_after_s = 5\nread_timeout_s = 5"),
         r"key 'sources.0.read_timeout_s': Value error, must be longer than stall_after_s \(5\)"),
    ],
    ids=["wrong-type", "unknown-key", "negative-fps", "bad-device-id", "short-zone", "bad-toml", "read-before-stall"],
)
def test_mistakes_point_at_the_key(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "agent.toml"
    file.write_text(edit(MINIMAL))
    with pytest.raises(ConfigError, match=message):
        load_config(file)


def test_read_timeout_follows_the_stall_limit(tmp_path: Path) -> None:
    """A stall must be detected (3 s by default, under 5 s) before a read gives up, so the read
    timeout is derived from the stall limit unless it is given, and then it must be longer."""
    file = tmp_path / "agent.toml"
    file.write_text(MINIMAL)
    source = load_config(file).sources[0]
    assert (source.stall_after_s, source.read_timeout_s) == (3.0, 5.0)
    file.write_text(MINIMAL.replace("fps = 10", "fps = 10\nstall_after_s = 10"))
    source = load_config(file).sources[0]
    assert (source.stall_after_s, source.read_timeout_s) == (10.0, 12.0)
    file.write_text(MINIMAL.replace("fps = 10", "fps = 10\nread_timeout_s = 20"))
    assert load_config(file).sources[0].read_timeout_s == 20.0


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "agent.toml"
    file.write_text(MINIMAL.replace("port = 1883", "port = 1883\ncolour = 1"))
    assert agent_main(["check-config", str(file)]) == 2
    assert "ConfigError" in capsys.readouterr().err
    file.write_text(MINIMAL)
    assert agent_main(["check-config", str(file)]) == 2  # the bundle does not exist
    assert "bundle check 'manifest-present' failed" in capsys.readouterr().err
    assert agent_main(["check-config", str(tmp_path / "missing.toml")]) == 2
