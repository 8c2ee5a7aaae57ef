"""Which operators of a TFLite model are not integer: what an int8-only NPU cannot run.

An NPU that only runs int8 hands every operator with a float input or output back to the
CPU, often with a copy each way, so a "full-integer" model with a few float operators left
is slow in exactly the places nobody looks. This check names each one: its position, its
operator type and its float tensors, so the user (or the optimizer) can act on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from converters.errors import ConversionError, MissingDependencyError

_FLOAT = {"float32", "float16", "float64", "bfloat16"}


@dataclass(frozen=True)
class FloatOp:
    index: int  # position in the execution plan
    op: str  # builtin operator name, e.g. ADD
    float_tensors: tuple[str, ...]  # "name (dtype)" of each float input or output

    def __str__(self) -> str:
        return f"#{self.index} {self.op} ({', '.join(self.float_tensors)})"


def float_operators(path: Path) -> list[FloatOp]:
    """Every operator of ``path`` with a float input or output, in execution order."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError as exc:
        raise MissingDependencyError("ai_edge_litert", "tflite", "checking a TFLite model's operators") from exc
    try:  # without the default delegate, so the plan lists the model's own operators, not one DELEGATE node
        interpreter = Interpreter(model_path=str(path),
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ConversionError(f"LiteRT cannot load {str(path)!r}: {exc}") from exc
    tensors = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = []
    for op in interpreter._get_ops_details():  # the public API has no operator list
        floats = []
        for index in [*op["inputs"], *op["outputs"]]:
            detail = tensors.get(int(index))
            if detail is not None and detail["dtype"].__name__ in _FLOAT:
                floats.append(f"{detail['name']} ({detail['dtype'].__name__})")
        if floats:
            found.append(FloatOp(int(op["index"]), str(op["op_name"]), tuple(floats)))
    return found


def require_integer_only(path: Path, *, target: str = "an int8-only NPU") -> None:
    """Raise :class:`ConversionError` naming every float operator of ``path``."""
    found = float_operators(path)
    if found:
        shown = "; ".join(str(op) for op in found[:12]) + (f"; and {len(found) - 12} more" if len(found) > 12 else "")
        raise ConversionError(f"{path.name} is not integer-only: {len(found)} operator(s) would fall back to the CPU "
                              f"on {target}: {shown}")
