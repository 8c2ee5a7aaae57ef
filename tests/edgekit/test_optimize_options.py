"""``optimize``'s options as data: validated by name, every check before the model is loaded, the
CLI's flags in its messages, and the typed report that serializes to the report.json of before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekit.cli import optimize as optimize_cli
from edgekit.cli.main import build_parser, main
from edgekit.errors import TargetError, UsageError
from edgekit.optimize import AdvancedOptions, OptimizeOptions, OptimizeReport, OptionsError, optimize
from tests.support.tinymodels import tiny_classifier


@pytest.fixture
def no_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model loader fails the test if it is called: the checks must have refused first."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the options were checked")

    monkeypatch.setattr("edgekit.optimize.pipeline.bring_model", refuse)


def test_errors_name_the_api_fields() -> None:
    with pytest.raises(OptionsError, match=r"^max_drop -1.0 is out of range; expected percentage points") as info:
        OptimizeOptions.from_keywords(target="x86-cpu", output="o", max_drop=-1)
    assert info.value.problems == (("max_drop", "-1.0 is out of range; expected percentage points between 0 and 100"),)
    assert isinstance(info.value, UsageError) and info.value.exit_code == 2
    with pytest.raises(OptionsError) as info:  # every problem at once, the advanced ones by their flat name
        OptimizeOptions.from_keywords(target="x86-cpu", output="o", precision="int4", prune=1.3, threads=-2)
    assert [field for field, _ in info.value.problems] == ["precision", "prune", "threads"]
    assert "precision 'int4' is invalid: Input should be 'auto', 'int8', 'fp16' or 'fp32'" in str(info.value)
    renamed = info.value.renamed({"prune": "--prune", "threads": "--threads"})
    assert "--prune 1.3 is out of range" in str(renamed) and "--threads -2 is out of range" in str(renamed)


def test_flat_keywords_and_the_advanced_model_are_the_same_options() -> None:
    flat = OptimizeOptions.from_keywords(target="rpi5", output="o", threads=2, max_samples=60, version="3")
    nested = OptimizeOptions(target="rpi5", output=Path("o"),
                             advanced=AdvancedOptions(threads=2, max_samples=60, version="3"))
    assert flat == nested and flat.advanced.threads == 2
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        OptimizeOptions.from_keywords(target="rpi5", output="o", colour=1)
    with pytest.raises(TypeError, match="options or keywords, not both"):
        optimize("m.onnx", flat, threads=1)


def test_missing_calib_is_reported_before_the_model_is_loaded(no_loading: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(OptionsError, match=r"^calib '.*nowhere' does not exist; give a folder of images"):
        optimize(tmp_path / "huge.onnx", target="x86-cpu", output=out, calib=tmp_path / "nowhere")
    with pytest.raises(OptionsError, match=r"^calib is required"):
        optimize(tmp_path / "huge.onnx", target="x86-cpu", output=out)
    assert list(tmp_path.iterdir()) == []  # not even the scratch directory


def test_every_path_and_pairing_is_checked_first(no_loading: None, tmp_path: Path, photo_dir: Path) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.txt").write_text("keep me")
    with pytest.raises(OptionsError) as info:
        optimize(tmp_path / "m.onnx", target="rpi4", output=tmp_path / "precious", calib=photo_dir,
                 precision="fp16", labels=tmp_path / "labels.txt", anchors=tmp_path / "a.npy",
                 preprocess="imagenett", finetune=_finetune())
    fields = [field for field, _ in info.value.problems]
    assert fields == ["precision", "finetune", "labels", "anchors", "preprocess", "output"]
    assert "precision fp16 is not offered by target 'rpi4'; it offers int8, fp32" in str(info.value)
    assert "finetune is the fine-tuning hook of a pruned model; give prune=RATIO too" in str(info.value)
    with pytest.raises(TargetError, match="unknown target 'rpi9'"):
        optimize(tmp_path / "m.onnx", target="rpi9", output=tmp_path / "o", calib=photo_dir)


def _finetune():  # type: ignore[no-untyped-def]
    from edgekit.optimize.finetune import FineTune

    return FineTune([], lambda out, target: out)


def test_the_cli_reports_the_same_checks_in_its_flags(no_loading: None, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["optimize", str(tmp_path / "m.onnx"), "--target", "x86-cpu", "--calib", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "out"), "--threads", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "OptionsError" in err and "--threads -1 is out of range" in err
    code = main(["optimize", str(tmp_path / "m.onnx"), "--target", "x86-cpu", "--calib", str(tmp_path / "nowhere"),
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "--calib '" in err and "nowhere' does not exist" in err
    assert not (tmp_path / "out").exists()


def test_the_flag_table_covers_every_option_flag() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    flags = {s for a in sub.choices["optimize"]._actions for s in a.option_strings} - {"-h", "--help", "--json"}  # type: ignore[attr-defined]
    assert set(optimize_cli.FLAGS.values()) == flags
    fields = set(OptimizeOptions.model_fields) | set(AdvancedOptions.model_fields)
    assert set(optimize_cli.FLAGS) <= fields


REPORT_KEYS = ["source", "target", "prepare", "preprocess", "task", "data", "candidates", "winner", "reason",
               "latency_ms", "validation", "machine", "seconds", "timing", "warnings"]
CANDIDATE_KEYS = ["name", "precision", "latency_ms", "speedup", "speedup_ci95", "metric", "value", "drop", "details",
                  "passed", "size_bytes", "excluded_nodes", "passes", "note", "blocker"]
TIMING_KEYS = ["rounds", "seconds", "stopped", "contention_pct", "other_cpu_pct", "steal_pct", "contention_limit_pct",
               "resolved", "speedup_ci95"]
CLI_KEYS = ["v", "bundle", "precision", "candidate", "target", "latency_ms", "speedup", "validation", "candidates",
            "reason", "seconds", "timing", "warnings"]


def test_the_report_is_typed_and_writes_the_same_json(tmp_path: Path, photo_dir: Path) -> None:
    model = tiny_classifier(tmp_path / "tiny.onnx")
    result = optimize(model, target="x86-cpu", output=tmp_path / "b", precision="fp32", calib=photo_dir)
    report = result.report
    assert isinstance(report, OptimizeReport) and report.winner == "fp32" and report.data.kind == "images"
    written = json.loads((result.bundle / "report.json").read_text())
    assert list(written) == REPORT_KEYS and list(written["candidates"][0]) == CANDIDATE_KEYS
    assert list(written["data"]) == ["source", "kind", "samples", "calibration", "validation", "skipped"]
    assert list(written["latency_ms"]) == ["reference", "optimized"]
    assert list(written["machine"]) == ["platform", "processor"]
    assert written == json.loads(json.dumps(report.to_json(), default=str))
    again = OptimizeReport.model_validate(written).to_json()  # every key typed, none lost
    assert json.loads(json.dumps(again)) == written
    assert list(written["timing"]) == TIMING_KEYS and written["timing"]["speedup_ci95"] == [1.0, 1.0]
    assert written["timing"]["stopped"] == "resolved" and written["timing"]["rounds"] >= 10
    assert isinstance(written["warnings"], list) and all(isinstance(w, str) for w in written["warnings"])
    lo, hi = written["validation"]["ci95"]  # 64 held-out samples all agreeing: Wilson's 94.3-100
    assert written["validation"]["optimized"] == 100.0 and lo == pytest.approx(94.34, abs=0.01) and hi == 100.0
    assert written["candidates"][0]["speedup_ci95"] == [1.0, 1.0]
    cli = result.to_json()
    assert list(cli) == CLI_KEYS
    assert cli["validation"] == written["validation"] and cli["candidates"] == written["candidates"]
    assert cli["latency_ms"] == written["latency_ms"] and cli["seconds"] == written["seconds"]
    assert cli["timing"] == written["timing"] and cli["warnings"] == written["warnings"]
