"""One style for both command lines: the same parser (wrapped help, the "see --help" hint), help without a
literal ``%%``, and with ``--json`` one versioned JSON object on stdout, on success and on failure."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from device_agent import cli as agent_cli
from device_agent.command_line import HelpFormatter, Parser
from edgekit.cli import main as edgekit_cli


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


@pytest.mark.parametrize("build", [edgekit_cli.build_parser, agent_cli.build_parser], ids=["edgekit", "agent"])
def test_every_help_is_in_the_shared_style_and_has_no_literal_percent_pair(build) -> None:  # type: ignore[no-untyped-def]
    parsers = list(_parsers(build()))
    assert len(parsers) > 5
    for parser in parsers:
        assert isinstance(parser, Parser) and parser.formatter_class is HelpFormatter, parser.prog
        text = parser.format_help()
        assert "%%" not in text, f"{parser.prog} --help prints a literal %%"
        assert "%(" not in text, parser.prog


def test_the_benchmark_help_says_percent_of_peak() -> None:
    bench = next(p for p in _parsers(edgekit_cli.build_parser()) if p.prog.endswith("benchmark"))
    assert "% of peak (this CPU's" in " ".join(bench.format_help().split())


def test_help_wraps_paragraphs_and_keeps_examples_as_written() -> None:
    formatter = HelpFormatter("prog", width=40)
    text = formatter._fill_text("examples:\n  prog --a very long example line that stays whole\n\nA paragraph "
                                "written\nacross short lines is filled again to the width.", 40, "")
    lines = text.splitlines()
    assert lines[:2] == ["examples:", "  prog --a very long example line that stays whole"]
    assert lines[3:] == ["A paragraph written across short lines", "is filled again to the width."]


@pytest.mark.parametrize(("main", "prog"), [(edgekit_cli.main, "edgekit"), (agent_cli.main, "edgekit-agent")])
def test_a_refused_command_line_names_the_help_and_answers_json(main, prog: str,  # type: ignore[no-untyped-def]
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["no-such-command", "--json"])
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert f"(see '{prog} --help')" in captured.err
    doc = json.loads(captured.out)
    assert doc["v"] == 1 and doc["error"]["type"] == "UsageError" and doc["error"]["exit_code"] == 2
    assert "no-such-command" in doc["error"]["message"]


def test_zoo_list_json(capsys: pytest.CaptureFixture[str]) -> None:
    from edgekit.content.zoo import ZOO

    assert edgekit_cli.main(["zoo", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["v"] == 1 and [m["name"] for m in doc["models"]] == list(ZOO)
    assert "efficientnet-lite0" in [m["name"] for m in doc["models"]]


def test_zoo_build_refuses_an_output_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("x")
    assert edgekit_cli.main(["zoo", "build", "mobilenetv2", "--output", str(in_the_way / "zoo"), "--json"]) == 2
    captured = capsys.readouterr()
    assert "UsageError: --output '" in captured.err and "is a file, not a folder" in captured.err
    assert json.loads(captured.out)["error"]["type"] == "UsageError"


def test_the_agent_answers_json_on_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert agent_cli.main(["verify", str(tmp_path / "gone"), "--json"]) == 2
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["v"] == 1 and doc["error"]["exit_code"] == 2 and "gone" in doc["error"]["message"]
    assert captured.err.startswith(f"{doc['error']['type']}: ")
    config = tmp_path / "agent.toml"
    config.write_text("device_id = 3\n")
    assert agent_cli.main(["check-config", str(config), "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["v"] == 1 and doc["error"]["exit_code"] == 2


def test_targets_json_is_versioned(capsys: pytest.CaptureFixture[str]) -> None:
    assert edgekit_cli.main(["targets", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["v"] == 1 and doc["targets"]["rpi5"]["runtime"] == "tflite"


@pytest.mark.parametrize("argv", [["edgekit", "targets", "--json"], ["edgekit-agent", "--help"]])
def test_a_reader_that_goes_away_gets_no_traceback(argv: list[str]) -> None:
    """``edgekit targets --json | head -c 10``: stdout's reader is gone before the command writes."""
    import os
    import subprocess
    import sys

    module = "edgekit.cli.main" if argv[0] == "edgekit" else "device_agent.cli"
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone: every write raises BrokenPipeError (Python ignores SIGPIPE)
    try:
        done = subprocess.run([sys.executable, "-c", f"import sys; from {module} import main; sys.exit(main())",
                               *argv[1:]], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
                              check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 141)  # --help exits through argparse before our handler: 0 is fine there
