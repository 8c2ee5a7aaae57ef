"""What `edgekit benchmark` shows says what it measured: units, threads, peaks, the profiler's summed
kernel time, the pipeline's layout, the PNG's context and the bundle's real candidate name."""

from __future__ import annotations

import csv
import json
import shutil
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console

from device_agent.bench.options import BenchOptions
from device_agent.bench.pipeline import WARMUP_FRAMES
from device_agent.bench.record import BenchRecord, MachineState, WarmupRecord
from device_agent.bench.text import host_info, pipeline_text, text_report, wrap
from device_agent.bundle.manifest import parse_manifest
from edgekit.bench.benchmark import benchmark
from edgekit.bench.plot import benchmark_figure, plot_benchmark
from edgekit.bench.report import CSV_FIELDS, print_benchmark, print_pipeline, write_csv
from edgekit.cli.main import main as edgekit_main
from edgekit.optimize.pipeline import optimize
from tests.support.tinymodels import tiny_classifier

HOST = {"hostname": "bench-box", "cpu": {"model": "Test CPU 9000", "arch": "x86_64", "cores": 2, "max_ghz": 3.0}}
WHEN = datetime(2024, 5, 6, 7, 8, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[BenchRecord]:
    root = tmp_path_factory.mktemp("out")
    model = tiny_classifier(root / "small.onnx", size=32)
    default = benchmark([model], options=BenchOptions(runs=20, warmup=2, threads=0)).models[0]
    two = benchmark([model], options=BenchOptions(runs=20, warmup=2, threads=2)).models[0]
    return [default, two.model_copy(update={"name": "small 2 threads"})]


@pytest.fixture(scope="module")
def mixed_bundle(tmp_path_factory: pytest.TempPathFactory, photo_dir: Path) -> Path:
    """An optimized bundle, relabelled as the mixed-precision candidate the demo shipped."""
    root = tmp_path_factory.mktemp("bundle")
    built = optimize(tiny_classifier(root / "tiny.onnx", size=32), target="x86-cpu", output=root / "b",
                     precision="int8", calib=photo_dir, max_drop=100).bundle
    manifest = json.loads((built / "manifest.json").read_text())
    # optimize records the candidate only where it says more than the precision (a mixed one): older agents
    # refuse the key, so a plain int8 bundle stays readable by them
    assert "candidate" not in manifest and manifest["precision"].startswith("int8")
    shutil.copytree(built, root / "mixed")
    manifest.update(precision="int8-mixed", candidate="int8-mixed-8")
    (root / "mixed" / "manifest.json").write_text(json.dumps(manifest))
    return root / "mixed"


def _png_text(path: Path) -> dict[str, str]:
    """The PNG's tEXt/zTXt/iTXt chunks."""
    data, pos, found = path.read_bytes(), 8, {}
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"tEXt":
            key, _, value = body.partition(b"\0")
            found[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _lang, _, rest = rest.partition(b"\0")
            _tkey, _, value = rest.partition(b"\0")
            found[key.decode()] = (zlib.decompress(value) if compressed else value).decode()
        pos += 12 + length
    return found


def test_help_prints_a_single_percent_sign(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        edgekit_main(["benchmark", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "% of peak" in out and "%%" not in out


def test_csv_has_the_tables_units(records: list[BenchRecord], tmp_path: Path) -> None:
    rows = list(csv.DictReader(write_csv(tmp_path / "r.csv", records).open()))
    assert list(rows[0]) == list(CSV_FIELDS)
    assert "cv" not in rows[0] and "cv_pct" in rows[0]
    assert float(rows[0]["cv_pct"]) == pytest.approx(100.0 * records[0].latency_ms.cv, abs=1e-3)
    assert [r["threads"] for r in rows] == ["default", "2"]
    assert rows[0]["peak_precision"] == (records[0].peak.precision if records[0].peak else "")


def test_the_table_shows_threads_the_peak_and_the_summed_kernel_time(records: list[BenchRecord]) -> None:
    console = Console(width=100, record=True)
    print_benchmark(console, records, host=HOST)
    out = " ".join(console.export_text().split())
    assert "(default thr)" in out and "(2 thr)" in out
    assert "summed over the runtime's default inference threads" in out
    assert "summed over the 2 inference threads" in out
    if records[0].peak:
        assert f"% of {records[0].peak.precision}" in out
    assert "measured on bench-box: Test CPU 9000" in out
    assert "summed over the 2 inference threads" in " ".join(text_report(records[1:]).split())


def test_notes_never_wrap_inside_a_number_or_off_its_unit() -> None:
    text = "onnxruntime profiler: 102.843 ms of kernel time per run, 20 profiled runs, p50 latency of 50.5 ms"
    for width in range(20, 60):
        lines = wrap(text, width)
        joined = " ".join(line.strip() for line in lines)
        assert joined == text
        for number in ("102.843 ms", "20 profiled", "of 50.5 ms"):
            assert any(number in line for line in lines)


def test_the_png_says_where_when_and_what_went_wrong(records: list[BenchRecord], tmp_path: Path) -> None:
    noisy = records[0].model_copy(update={
        "machine": MachineState(other_cpu_pct=80.0),
        "warmup": WarmupRecord(runs=500, ms=20000.0, stable=False, fixed=False)})
    models = [noisy, records[1]]
    fig = benchmark_figure(models, host=HOST, repeat=3, when=WHEN)
    texts = "\n".join(t.get_text() for t in fig.texts)
    for expected in ("bench-box", "Test CPU 9000", "x86_64", "2 cores", "2024-05-06 07:08 UTC",
                     f"{noisy.name}: default threads, 20 runs", "small 2 threads: 2 threads, 20 runs",
                     "median of 3 repeats"):
        assert expected in texts
    assert "WARNING" in texts and "other programs used 80.0% of the CPUs" in texts
    assert "warm-up hit its cap before the latency settled" in texts
    warning = next(t for t in fig.texts if "80.0%" in t.get_text())
    assert warning.get_color() == "firebrick"

    png = plot_benchmark(models, tmp_path / "b.png", host=HOST, repeat=3, when=WHEN)
    description = _png_text(png)["Description"]
    assert "bench-box" in description and "2024-05-06 07:08 UTC" in description and "WARNING" in description


def test_the_png_of_a_quiet_run_has_no_warning(records: list[BenchRecord]) -> None:
    quiet = [r.model_copy(update={"machine": MachineState(other_cpu_pct=1.0),
                                  "warmup": WarmupRecord(runs=5, ms=10.0, stable=True, fixed=False)}) for r in records]
    texts = [t.get_text() for t in benchmark_figure(quiet, host=host_info(), when=WHEN).texts]
    assert texts and not any("WARNING" in t for t in texts)


def test_a_bundle_is_shown_by_its_candidate_name(mixed_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["benchmark", str(mixed_bundle), "--runs", "10", "--warmup", "1", "--no-profile"]) == 0
    out = capsys.readouterr().out
    assert "tiny int8-mixed-8" in out
    manifest = json.loads((mixed_bundle / "manifest.json").read_text())
    del manifest["candidate"]  # a bundle written before the candidate was recorded
    old = parse_manifest(json.dumps(manifest))
    assert old.candidate is None and old.label == "tiny int8-mixed"
    assert "candidate" not in json.loads(old.to_json())  # an older agent reads it back


def test_pipeline_publish_is_timed_as_the_agent_does_it(mixed_bundle: Path, video_file: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_main(["benchmark", str(mixed_bundle), "--pipeline", str(video_file), "--frames", "30",
                         "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["pipeline"][0]
    assert result["name"] == "tiny int8-mixed-8"
    assert list(result["stages_ms"]) == ["capture", "preprocess", "infer", "postprocess", "publish"]
    commit = result["commit_thread"]  # the agent's group committer, on its own thread
    assert 30 <= commit["messages"] <= 30 + WARMUP_FRAMES and 1 <= commit["batches"] <= commit["messages"]
    assert commit["ms_per_frame"] > 0 and commit["ms_per_batch"] >= commit["ms_per_frame"]

    console = Console(width=100, record=True)
    print_pipeline(console, result)
    table = console.export_text()
    out = " ".join(table.split())
    e2e_row = next(line for line in table.splitlines() if "end to end" in line and "│" in line)
    assert "fps" not in e2e_row and e2e_row.rstrip("│ ").endswith("-")  # the share column holds no rate
    assert f"end to end: {result['e2e_fps']} fps" in out
    assert "queueing it to the group committer" in out and "off the frame's path" in out
    assert "committer's own thread" in " ".join(pipeline_text(result).split())
