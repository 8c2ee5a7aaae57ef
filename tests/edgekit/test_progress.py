"""Steps: silent for library callers, one timestamped line per step start and end off a terminal (never
wrapped), a failed step shown as failed, the live list on a terminal."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

import edgekit.progress as progress_module
from edgekit.progress import Steps

LINE = re.compile(r"^\d\d:\d\d:\d\d (?P<text>.+)$")
LONG = "Quantizing to INT8 (120 calibration samples), correcting the bias of each layer of a model with a long name"


def _log() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=80, soft_wrap=True), buffer


def _texts(buffer: io.StringIO) -> list[str]:
    lines = buffer.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines  # every line starts with its time
    return [LINE.match(line).group("text") for line in lines]  # type: ignore[union-attr]


def test_off_a_terminal_each_step_prints_its_start_and_its_end_with_the_duration() -> None:
    console, buffer = _log()
    with Steps(enabled=True, console=console) as steps:
        assert not steps.live
        with steps.step(LONG):
            pass
        with steps.step("Reading calibration data", total=3) as advance:
            advance(3, 3)
    texts = _texts(buffer)
    assert texts[0] == f"{LONG} ..."  # one line, not cut at 80 columns
    assert re.fullmatch(re.escape(LONG) + r": done in \d+\.\d s", texts[1])
    assert texts[2] == "Reading calibration data ..."
    assert re.fullmatch(r"Reading calibration data: done in \d+\.\d s", texts[3])
    assert len(texts) == 4


def test_a_failed_step_is_shown_as_failed_and_the_error_goes_on() -> None:
    console, buffer = _log()
    with (pytest.raises(ValueError, match="bad layer"), Steps(enabled=True, console=console) as steps,
          steps.step("Measuring the INT8 error of 12 layer chains", total=12) as advance):
        advance(4, 12)
        raise ValueError("bad layer")
    texts = _texts(buffer)
    assert re.fullmatch(r"Measuring the INT8 error of 12 layer chains: FAILED after \d+\.\d s \(ValueError\)",
                        texts[-1])
    assert not any("done" in text for text in texts)


def test_a_long_step_reports_its_progress_now_and_then(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "PROGRESS_EVERY_S", 0.0)
    console, buffer = _log()
    with Steps(enabled=True, console=console) as steps, steps.step("Correcting biases", total=3) as advance:
        for done in range(1, 4):
            advance(done, 3)
    texts = _texts(buffer)
    assert [t.split(" (")[0] for t in texts[1:3]] == ["Correcting biases: 1/3", "Correcting biases: 2/3"]


def test_a_sequence_ends_each_phase_when_the_next_begins() -> None:
    console, buffer = _log()
    with pytest.raises(TimeoutError), Steps(enabled=True, console=console) as steps, steps.sequence() as begin:
        begin("small.onnx: load")
        begin("small.onnx: warmup")
        raise TimeoutError
    texts = _texts(buffer)
    assert [t.split(":")[1].strip() if t.count(":") else t for t in texts] == [
        "load ...", "load", "warmup ...", "warmup"]
    assert " done in " in texts[1] and " FAILED after " in texts[3]


def test_library_callers_get_silence() -> None:
    console, buffer = _log()
    with Steps(console=console) as steps, steps.step("Loading the model", total=2) as advance:
        advance(1, 2)
        steps.note("a note")
    assert buffer.getvalue() == ""


def test_on_a_terminal_a_done_step_is_ticked_and_a_failed_one_crossed() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)
    with pytest.raises(RuntimeError), Steps(enabled=True, console=console) as steps:
        assert steps.live
        with steps.step("Loading the model"):
            pass
        with steps.step("Quantizing", total=4) as advance:
            advance(2, 4)
            raise RuntimeError
    final = buffer.getvalue().split("\x1b[2K")[-1].splitlines()  # the last frame drawn: one line per step
    assert "✓ Loading the model" in final[0] and "0/?" not in buffer.getvalue()
    assert "✗ Quantizing — failed" in final[1] and "2/4" in final[1]
