"""What a benchmark measures and for how long: the one options model every entry point builds.

``edgekit benchmark`` and ``edgekit-agent bench`` build it from their flags
(:mod:`device_agent.bench.flags`), the worker process from JSON, the agent from a ``bench``
command. It is validated once, here: a bad value raises :class:`BenchOptionsError`, which
keeps each problem by field so that every caller names it in its own words (``--runs`` on
a command line, ``key 'runs'`` in a reply over MQTT).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from device_agent.errors import BenchOptionsError, OptionProblem
from device_agent.service.config_errors import brief

# The constraints of the options a bench command also carries over MQTT
# (device_agent.protocol.commands.BenchCommand adds its caps on top).
Runs = Annotated[int, Field(ge=1)]
DurationS = Annotated[float, Field(gt=0)]
WarmupRuns = Annotated[int, Field(ge=0)]
Threads = Annotated[int, Field(ge=0)]


@dataclass(frozen=True)
class Flag:
    """How a command line names an option and what a good value is, for its error message."""

    flag: str
    expects: str | None = None  # "must be <expects>, got <value>"; None: pydantic's own words


FLAGS: Mapping[str, Flag] = {
    "runs": Flag("--runs", "at least 1"),
    "duration_s": Flag("--duration", "a positive number of seconds"),
    "warmup": Flag("--warmup", "0 or more runs"),
    "threads": Flag("--threads", "0 (runtime default) or more"),
    "runtime": Flag("--runtime"),
    "providers": Flag("--provider"),
    "profile": Flag("--no-profile"),
    "top": Flag("--top", "0 or more operators"),
}
"""Field -> command-line flag, shared by both command lines (:mod:`device_agent.bench.flags`)."""


def flag_names() -> dict[str, str]:
    """Every field's name on the command line (its own name where it has no flag)."""
    return {field: FLAGS[field].flag if field in FLAGS else field for field in BenchOptions.model_fields}


def key_names() -> dict[str, str]:
    """Every field named as the key of a JSON object (a bench command's reply)."""
    return {field: f"key '{field}'" for field in BenchOptions.model_fields}


def options_error(exc: ValidationError) -> BenchOptionsError:
    """A pydantic error as :class:`BenchOptionsError`, each problem by field, named by its flag."""
    problems = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else "options"
        flag = FLAGS.get(field)
        if err["type"] == "bench_option":  # ours: its message already names the fields
            template = err["msg"]
        elif flag is not None and flag.expects is not None and err["type"] != "extra_forbidden":
            template = f"{{{field}}} must be {flag.expects}, got {brief(err.get('input'))}"
        else:
            template = f"{{{field}}}: {err['msg']} (got {brief(err.get('input'))})"
        problems.append(OptionProblem(field, template))
    return BenchOptionsError(tuple(problems), flag_names())


class BenchOptions(BaseModel):
    """What to measure and how long. ``runs`` and ``duration_s`` exclude each other.

    Frozen and validated on construction: a bad value raises :class:`BenchOptionsError`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    runs: Runs | None = Field(default=None, description="timed runs (excludes duration_s)")
    duration_s: DurationS | None = Field(
        default=None, description="seconds of timed runs (excludes runs; neither given: 10 s)")
    warmup: WarmupRuns | None = Field(default=None, description="exactly N warm-up runs (default: until stable)")
    threads: Threads | None = Field(
        default=None, description="inference threads (0: the runtime's default; absent: the bundle target's)")
    runtime: str | None = Field(default=None, description="onnxruntime or tflite (default: from the bundle or file)")
    providers: tuple[str, ...] = Field(
        default=(), description="onnxruntime execution providers, in order of preference (default: the bundle's, "
        "else CPU)")
    min_runs: int = Field(default=10, ge=1, description="with a duration: time at least this many runs")
    min_warmup_s: float = Field(default=1.0, ge=0, description="shortest warm-up, in seconds")
    max_warmup_s: float = Field(default=20.0, gt=0, description="longest warm-up, in seconds, stable or not")
    profile: bool = Field(default=True, description="add the per-operator profile (a few more runs)")
    top: int = Field(default=10, ge=0, description="operators kept in the profile")
    keep_samples: bool = Field(default=True, description="keep every timed run's latency (samples_ms)")
    target: str | None = Field(default=None, description="the device is this target: its peak compute comes from "
                               "target_peak_gops, not from this CPU's")
    target_peak_gops: dict[str, float] = Field(default_factory=dict, description="the target's peak GOP/s by precision")

    @field_validator("duration_s")
    @classmethod
    def _runs_or_duration(cls, duration_s: float | None, info: ValidationInfo) -> float | None:
        # a field validator (not a model validator) so that the problem is the field's
        if duration_s is not None and info.data.get("runs") is not None:
            raise PydanticCustomError("bench_option", "give {runs} or {duration_s}, not both")
        return duration_s

    @model_validator(mode="wrap")
    @classmethod
    def _as_bench_error(cls, data: Any, handler: ModelWrapValidatorHandler[BenchOptions]) -> BenchOptions:
        try:
            return handler(data)
        except ValidationError as exc:  # AgentError, not ValueError: it leaves pydantic as it is
            raise options_error(exc) from None

    def to_json(self) -> dict[str, Any]:
        """Every option, as the worker process reads it back and ``--json`` prints it."""
        return self.model_dump(mode="json")
