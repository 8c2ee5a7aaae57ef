"""The one benchmark options model: validated once, frozen, its errors named by flag or by key."""

from __future__ import annotations

import argparse
import json

import pytest
from pydantic import ValidationError

from device_agent.bench.flags import COMMON, add_bench_flags, options_from_args
from device_agent.bench.options import BenchOptions, key_names
from device_agent.errors import BenchInputError, BenchOptionsError


@pytest.mark.parametrize(("given", "message"), [
    ({"runs": 0}, "--runs must be at least 1, got 0"),
    ({"duration_s": -1.0}, "--duration must be a positive number of seconds, got -1.0"),
    ({"warmup": -2}, "--warmup must be 0 or more runs, got -2"),
    ({"threads": -1}, "--threads must be 0 (runtime default) or more, got -1"),
    ({"runs": 5, "duration_s": 1.0}, "give --runs or --duration, not both"),
    ({"runs": "many"}, "--runs must be at least 1, got 'many'"),
    ({"min_runs": 0}, "min_runs: Input should be greater than or equal to 1 (got 0)"),
    ({"format": "csv"}, "format: Extra inputs are not permitted (got 'csv')"),
])
def test_a_bad_option_is_named_by_its_flag(given: dict[str, object], message: str) -> None:
    with pytest.raises(BenchOptionsError) as caught:
        BenchOptions(**given)  # type: ignore[arg-type]
    assert str(caught.value) == message
    assert isinstance(caught.value, BenchInputError)  # the CLIs' exit status 2
    assert [p.field for p in caught.value.problems] == [next(reversed(given))]


def test_every_problem_is_kept_and_can_be_named_by_key() -> None:
    with pytest.raises(BenchOptionsError) as caught:
        BenchOptions.model_validate({"runs": 0, "warmup": -1, "threads": -3})
    assert [p.field for p in caught.value.problems] == ["runs", "warmup", "threads"]
    assert caught.value.render(key_names()).split("; ") == [
        "key 'runs' must be at least 1, got 0", "key 'warmup' must be 0 or more runs, got -1",
        "key 'threads' must be 0 (runtime default) or more, got -3"]
    with pytest.raises(BenchOptionsError) as both:
        BenchOptions(runs=3, duration_s=2.0)
    assert both.value.render(key_names()) == "give key 'runs' or key 'duration_s', not both"


def test_options_are_frozen_and_travel_to_the_worker_as_json() -> None:
    options = BenchOptions(runs=7, providers=("CUDAExecutionProvider",), target="rpi5", target_peak_gops={"fp32": 1.5})
    with pytest.raises(ValidationError, match="frozen"):
        options.runs = 8  # type: ignore[misc]
    assert BenchOptions.model_validate(json.loads(options.model_dump_json())) == options
    assert list(options.to_json()) == ["runs", "duration_s", "warmup", "threads", "runtime", "providers", "min_runs",
                                       "min_warmup_s", "max_warmup_s", "profile", "top", "keep_samples", "target",
                                       "target_peak_gops"]  # the "options" of 'edgekit benchmark --json'


def _parser(fields: tuple[str, ...] = COMMON) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_bench_flags(parser, fields)
    return parser


def test_flags_set_the_fields_they_name_and_leave_the_rest_at_their_defaults() -> None:
    args = _parser((*COMMON, "runtime", "top")).parse_args(
        ["--runs", "30", "--warmup", "2", "--threads", "4", "--provider", "A", "--provider", "B", "--no-profile",
         "--runtime", "tflite", "--top", "3"])
    options = options_from_args(args, keep_samples=False)
    assert options == BenchOptions(runs=30, warmup=2, threads=4, providers=("A", "B"), profile=False,
                                   runtime="tflite", top=3, keep_samples=False)
    assert options_from_args(_parser().parse_args([])) == BenchOptions()


def test_flags_keep_runs_and_duration_apart_and_bad_values_name_the_flag() -> None:
    with pytest.raises(argparse.ArgumentError, match="not allowed with argument --runs"):
        _parser().parse_args(["--runs", "3", "--duration", "2"])
    with pytest.raises(BenchOptionsError, match=r"^--duration must be a positive number of seconds, got 0\.0$"):
        options_from_args(_parser().parse_args(["--duration", "0"]))
