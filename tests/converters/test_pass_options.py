"""A pass's options are a pydantic model built from its signature: bad options fail before the pass runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from converters import PASSES, ConversionError, Pass, PassOptionsError, PassReport
from converters.onnx_prune import prune_onnx
from device_agent.errors import UnknownKeyError

RAN: list[dict[str, object]] = []


def _scale(src: Path, dst: Path, /, *, factor: float, label: str = "x", names: tuple[str, ...] = ()) -> PassReport:
    RAN.append({"factor": factor, "label": label, "names": names})
    return PassReport("test-scale", src, dst, 0.0, {"factor": factor})


def test_a_misspelt_option_fails_before_the_pass_runs_naming_pass_option_and_valid_ones(tmp_path: Path) -> None:
    scale = Pass("test-scale", _scale)
    RAN.clear()
    with pytest.raises(PassOptionsError, match=r"^pass 'test-scale': unknown option 'facter'.*; "
                                               r"valid options: factor, label, names$"):
        scale(tmp_path / "a", tmp_path / "b", factor=2.0, facter=3.0)
    assert RAN == []
    with pytest.raises(ConversionError, match=r"pass 'test-scale': missing option 'factor'"):
        scale(tmp_path / "a", tmp_path / "b")
    with pytest.raises(PassOptionsError, match=r"option 'factor': Input should be a valid number.*\(got 'big'\)"):
        scale(tmp_path / "a", tmp_path / "b", factor="big")
    assert RAN == []


def test_valid_options_reach_the_pass_validated_and_defaults_stay_the_functions(tmp_path: Path) -> None:
    scale = Pass("test-scale", _scale)
    RAN.clear()
    report = scale(tmp_path / "a", tmp_path / "b", factor=2, names=("a",))
    assert report.details == {"factor": 2.0} and RAN == [{"factor": 2.0, "label": "x", "names": ("a",)}]
    assert scale.__doc__ == _scale.__doc__ and scale.__wrapped__ is _scale  # type: ignore[attr-defined]


def test_a_registered_pass_is_called_one_way_the_decorated_name_is_the_registry_entry(tmp_path: Path) -> None:
    assert PASSES["onnx-prune"] is prune_onnx
    assert isinstance(prune_onnx, Pass) and list(PASSES["onnx-sparsity"].options.model_fields) == ["ratio"]
    missing = tmp_path / "nope.onnx"  # the options are checked first: the missing file is never read
    with pytest.raises(PassOptionsError, match=r"^pass 'onnx-prune': unknown option 'ratoi'; .*valid options: "
                                               r"ratio, calibration, recover, multiple"):
        PASSES["onnx-prune"](missing, tmp_path / "p.onnx", ratio=0.3, ratoi=0.3, calibration=np.zeros((2, 3)))
    with pytest.raises(PassOptionsError, match=r"option 'calibration': Input should be an instance of ndarray"):
        prune_onnx(missing, tmp_path / "p.onnx", ratio=0.3, calibration=[[0.0]])
    assert not (tmp_path / "p.onnx").exists()


def test_an_unknown_pass_names_the_known_ones() -> None:
    with pytest.raises(UnknownKeyError, match=r"unknown pass 'onnx-prnue'; known passes: .*onnx-prune, onnx-sparsity"):
        PASSES["onnx-prnue"]
