"""The options of :func:`edgekit.optimize.optimize`, as data.

A handful of options up front (:class:`OptimizeOptions`), the rarely used ones in
:class:`AdvancedOptions` (the ones the CLI examples never show, as nncf keeps its
``AdvancedQuantizationParameters``). ``optimize(model, target=..., threads=2)`` still takes
every option as a flat keyword: :meth:`OptimizeOptions.from_keywords` sorts them.

Every check runs before any work, in two steps: the model validators check each value on its
own (no I/O), and :meth:`OptimizeOptions.check` checks what needs the file system or another
option (the target exists and offers the precision, the calibration data and the label,
anchor and preprocessing files exist, the output can become a bundle). Loading, simplifying
and exporting a model takes seconds to minutes; a typo in ``--calib`` should not wait for it.

Errors name the API's fields (``max_drop -1.0 is out of range``); a front end with names of
its own (the CLI's ``--max-drop``) shows the same error in them with :meth:`OptionsError.renamed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, InstanceOf, ValidationError, field_validator

from device_agent.bundle.manifest import PreprocessSpec
from device_agent.service.config_errors import brief
from edgekit.errors import OptionsError
from edgekit.optimize.calibration import MIN_SAMPLES
from edgekit.optimize.finetune import FineTune
from edgekit.targets import TargetProfile

PrecisionChoice = Literal["auto", "int8", "fp16", "fp32"]
TaskChoice = Literal["classification", "detection", "raw"]


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class AdvancedOptions(_Options):
    """The options most runs leave alone."""

    decoder: str | None = Field(default=None, description="output decoder key: softmax-topk, yolov8, yolov8-heads, "
                                "yolov5, ssd, raw; default: the task's")
    anchors: str | Path | None = Field(default=None, description="for decoder ssd: a .npy of anchors [N, 4] as y, x, "
                                       "h, w (normalized)")
    input_shapes: dict[str, list[int]] = Field(default_factory=dict, description="static shape for each dynamic "
                                               "input, by input name, e.g. {'images': [1, 3, 640, 640]}")
    finetune: InstanceOf[FineTune] | None = Field(default=None, description="the user's data and loss to fine-tune "
                                                  "the pruned model with (needs prune)")
    version: str = Field(default="1", min_length=1, description="the bundle's version string")
    max_samples: int = Field(default=500, description="the most calibration and validation samples to read")
    threads: int | None = Field(default=None, description="inference threads for validation and timing; "
                                "default: the target's (0 lets the runtime choose)")

    @field_validator("input_shapes")
    @classmethod
    def _positive(cls, shapes: dict[str, list[int]]) -> dict[str, list[int]]:
        for name, shape in shapes.items():
            if not shape or min(shape) <= 0:
                raise ValueError(f"{name}:{shape} has a dimension that is not positive; expected e.g. 1,3,224,224")
        return shapes

    @field_validator("max_samples")
    @classmethod
    def _enough(cls, value: int) -> int:
        if value < MIN_SAMPLES:
            raise ValueError(f"{value} is too few; need at least {MIN_SAMPLES} (one to calibrate, one to validate on)")
        return value

    @field_validator("threads")
    @classmethod
    def _threads(cls, value: int | None) -> int | None:
        if value is not None and value < 0:
            raise ValueError(f"{value} is out of range; expected 0 (the runtime chooses) or more threads")
        return value


class OptimizeOptions(_Options):
    """What to optimize for and how (the model itself is ``optimize``'s first argument)."""

    target: str = Field(description="target profile name (see `edgekit targets`) or the path of a .toml profile")
    output: Path = Field(description="bundle directory to write; an existing bundle there is replaced")
    precision: PrecisionChoice = Field(default="auto", description="auto: every precision the target offers, the "
                                       "fastest within the budget wins; or one precision")
    calib: str | Path | None = Field(default=None, description="real data to calibrate and validate on: a folder "
                                     "of images, a video file or a .npy of ready inputs (required)")
    max_drop: float = Field(default=1.0, description="accuracy budget: the most the agreement with the original "
                            "may drop, in percentage points")
    task: TaskChoice | None = Field(default=None, description="what the model does; default: guessed from its outputs")
    labels: str | Path | list[str] | None = Field(default=None, description="class labels, or a text file with one "
                                                  "per line")
    preprocess: PreprocessSpec | str | Path | dict[str, Any] | None = Field(
        default=None, description="how frames become inputs: a spec, its fields, a preset (imagenet, yolo, tf, unit) "
        "or a .json/.toml file; default: suits the task")
    example_input: Any = Field(default=None, description="for a torch.nn.Module: an input tensor to export it with")
    prune: float | None = Field(default=None, description="also try the model with this fraction of its MACs "
                                "removed by structured channel pruning (0-1)")
    sparsity: float | None = Field(default=None, description="zero this fraction of the smallest weights (0-1): a "
                                   "smaller compressed download, not a faster model")
    name: str | None = Field(default=None, description="the bundle's name; default: the model's")
    progress: bool = Field(default=False, description="show the steps as they run (on stderr)")
    advanced: AdvancedOptions = Field(default_factory=AdvancedOptions, description="the rarely used options")

    @field_validator("max_drop")
    @classmethod
    def _budget(cls, value: float) -> float:
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"{value} is out of range; expected percentage points between 0 and 100")
        return value

    @field_validator("prune")
    @classmethod
    def _prune(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 < value < 1.0:
            raise ValueError(f"{value} is out of range; expected the fraction of MACs to remove, between 0 and 1 "
                             "(exclusive), e.g. 0.3")
        return value

    @field_validator("sparsity")
    @classmethod
    def _sparsity(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 < value < 1.0:
            raise ValueError(f"{value} is out of range; expected the fraction of weights to zero, between 0 and 1 "
                             "(exclusive), e.g. 0.5")
        return value

    @classmethod
    def from_keywords(cls, **keywords: Any) -> OptimizeOptions:
        """Options from flat keywords (``threads=2`` as well as ``advanced=AdvancedOptions(threads=2)``).

        Raises :class:`OptionsError` naming every bad value, and ``TypeError`` for a keyword
        that is no option (a typo in code, as for any function)."""
        fields, advanced = {}, {}
        for key, value in keywords.items():
            if key in cls.model_fields:
                fields[key] = value
            elif key in AdvancedOptions.model_fields:
                advanced[key] = value
            else:
                raise TypeError(f"optimize() got an unexpected keyword argument {key!r}")
        if advanced:
            if "advanced" in fields:
                raise TypeError(f"optimize() got advanced= and its fields {', '.join(advanced)} as keywords; give one")
            fields["advanced"] = advanced
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            problems: dict[str, str] = {}
            for error in exc.errors():  # a union reports once per member: the first says enough
                field, text = _problem(error)
                problems.setdefault(field, text)
            raise OptionsError(list(problems.items())) from None

    def check(self) -> TargetProfile:
        """Check what needs the file system or two options together, before any work; the target's profile.

        Raises :class:`~edgekit.errors.TargetError` for an unknown target, else
        :class:`OptionsError` naming every other problem at once."""
        from edgekit.targets import get_target

        profile = get_target(self.target)
        problems = [*self._cross_checks(profile), *_file_checks(self)]
        if problems:
            raise OptionsError(problems)
        return profile

    def _cross_checks(self, profile: TargetProfile) -> list[tuple[str, str]]:
        problems = []
        if self.precision not in ("auto", "fp32") and self.precision not in profile.precisions:
            problems.append(("precision", f"{self.precision} is not offered by target {profile.name!r}; "
                                          f"it offers {', '.join(profile.precisions)}"))
        if self.advanced.finetune is not None and self.prune is None:
            problems.append(("finetune", "is the fine-tuning hook of a pruned model; give prune=RATIO too"))
        return problems


def _file_checks(options: OptimizeOptions) -> list[tuple[str, str]]:
    from edgekit.optimize.bundle_writer import destination_problem
    from edgekit.optimize.calibration import source_problem
    from edgekit.optimize.modelspec import anchors_problem, preprocess_problem
    from edgekit.paths import creation_problem

    problems = []
    if options.calib is None:
        problems.append(("calib", "is required: a folder of images, a video file or a .npy of inputs, "
                                  "to calibrate and validate on"))
    elif (calib := source_problem(options.calib)) is not None:
        problems.append(("calib", calib))
    if isinstance(options.labels, str | Path) and not Path(options.labels).is_file():
        problems.append(("labels", f"{str(options.labels)!r} does not exist; expected a text file with one label "
                                   "per line"))
    if options.advanced.anchors is not None and (anchors := anchors_problem(options.advanced.anchors)) is not None:
        problems.append(("anchors", anchors))
    if isinstance(options.preprocess, str | Path) and (spec := preprocess_problem(options.preprocess)) is not None:
        problems.append(("preprocess", spec))
    if (output := destination_problem(options.output) or creation_problem(options.output)) is not None:
        problems.append(("output", output))
    return problems


def _problem(error: Any) -> tuple[str, str]:
    """One pydantic error as ``(field, text)``: the field by its flat keyword name (``threads``, not
    ``advanced.threads``), the text from our own validators as written, pydantic's with the value."""
    loc = [str(p) for p in error["loc"]]
    field = loc[1] if loc[:1] == ["advanced"] and len(loc) > 1 else (loc[0] if loc else "options")
    if error["type"] == "value_error":
        return field, str(error["ctx"]["error"])
    return field, f"{brief(error.get('input'))} is invalid: {error['msg']}"
