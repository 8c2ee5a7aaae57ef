from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.errors import TargetError
from edgekit.targets import available_targets, get_target

REQUIRED = {"rpi4", "rpi5", "jetson-nano", "jetson-orin", "android-arm64", "camera-npu-int8", "x86-cpu"}


def test_builtin_profiles_are_all_there_and_complete() -> None:
    profiles = available_targets()
    assert REQUIRED <= set(profiles)
    assert get_target("camera-npu-int8").int8_io_required is True
    assert get_target("jetson-orin").precisions[0] == "int8"
    assert get_target("rpi5").runtime == "tflite"
    for name in REQUIRED - {"x86-cpu"}:
        assert profiles[name].peak_gops, f"{name} has no peak compute"


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(TargetError, match=r"unknown target 'rpi9'; expected one of: .*rpi5.*x86-cpu"):
        get_target("rpi9")


def test_user_profile_folder_adds_a_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "coral.toml").write_text(
        'name = "my-box"\ndescription = "test box"\nruntime = "onnxruntime"\nprecisions = ["int8"]\n'
        'threads = 2\nopset_max = 17\nlayout = "NCHW"\nint8_io_required = false\n'
    )
    monkeypatch.setenv("EDGEKIT_TARGETS_PATH", str(tmp_path))
    assert get_target("my-box").threads == 2


def test_profile_file_with_a_bad_key_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "bad"\ndescription = "x"\nruntime = "onnxruntime"\nprecisions = ["int4"]\n'
        'threads = 2\nopset_max = 17\nlayout = "NCHW"\nint8_io_required = false\ncolour = 1\n'
    )
    with pytest.raises(TargetError, match=r"key 'precisions.0'.*'int4'.*key 'colour': Extra inputs"):
        get_target(str(bad))
