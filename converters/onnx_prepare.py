"""``onnx-prepare``: check an ONNX model, fix its dynamic shapes and simplify it.

Every later pass starts from this float model, and it is the reference the optimized
candidates are validated against, so what it does must not change the model's outputs:
only constant folding and graph simplification (onnxslim), and shapes made static.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from converters.base import PassReport, register_pass, timed
from converters.errors import MissingDependencyError, UnsupportedModelError


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("onnx", "host", "preparing an ONNX model") from exc
    return onnx


def load_onnx(path: Path) -> Any:
    """Load and fully check an ONNX file; a file that is not ONNX gets a clear error."""
    onnx = _onnx()
    if not path.is_file():
        raise UnsupportedModelError(f"model file {str(path)!r} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends: the file is not an ONNX model
        raise UnsupportedModelError(
            f"{str(path)!r} is not a readable ONNX model ({type(exc).__name__}: {exc}); "
            "expected a .onnx file exported by torch.onnx, tf2onnx or similar"
        ) from exc
    if not model.graph.node:
        raise UnsupportedModelError(f"{str(path)!r} parsed as ONNX but holds no graph nodes; is it an ONNX model?")
    try:
        onnx.checker.check_model(model, full_check=False)
    except onnx.checker.ValidationError as exc:
        raise UnsupportedModelError(f"{str(path)!r} fails the ONNX checker: {exc}") from exc
    return model


def graph_inputs(model: Any) -> list[Any]:
    """Real inputs: graph inputs that are not initializers (old exporters list weights as inputs)."""
    initializers = {init.name for init in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initializers]


def input_dims(value_info: Any) -> list[int | str]:
    dims: list[int | str] = []
    for d in value_info.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims


def _fix_shapes(model: Any, shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """Make every input static: given shapes win, a lone dynamic batch dimension becomes 1."""
    fixed: dict[str, list[int]] = {}
    for vi in graph_inputs(model):
        dims = input_dims(vi)
        if vi.name in shapes:
            wanted = list(shapes[vi.name])
            if len(wanted) != len(dims):
                raise UnsupportedModelError(
                    f"input {vi.name!r} has rank {len(dims)} ({dims}); "
                    f"the shape given, {wanted}, has rank {len(wanted)}"
                )
        else:
            dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
            if dynamic and dynamic != [0]:
                raise UnsupportedModelError(
                    f"input {vi.name!r} has dynamic dimensions {dims}; give a static shape, "
                    f"e.g. --input-shape {vi.name}:1,3,224,224"
                )
            wanted = [1 if i == 0 and i in dynamic else int(d) for i, d in enumerate(dims)]
        for dim, value in zip(vi.type.tensor_type.shape.dim, wanted):
            dim.Clear()
            dim.dim_value = int(value)
        fixed[vi.name] = wanted
    unknown = set(shapes) - set(fixed)
    if unknown:
        raise UnsupportedModelError(
            f"--input-shape names {sorted(unknown)}, but the model's inputs are {sorted(fixed)}"
        )
    # Output and intermediate shapes were inferred for the dynamic graph: drop and re-infer.
    del model.graph.value_info[:]
    for out in model.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
    return fixed


@register_pass("onnx-prepare")
def prepare_onnx(
    src: Path,
    dst: Path,
    /,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    simplify: bool = True,
    max_opset: int | None = None,
) -> PassReport:
    """Check ``src``, make its shapes static, simplify it, and write ``dst``."""
    onnx = _onnx()
    with timed() as elapsed:
        model = load_onnx(src)
        opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if max_opset is not None and opset > max_opset:
            raise UnsupportedModelError(
                f"{src.name} uses ONNX opset {opset}; the target's runtime takes at most opset {max_opset}"
            )
        nodes_before = len(model.graph.node)
        fixed = _fix_shapes(model, input_shapes or {})
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False, data_prop=True)
        simplifier = "none"
        if simplify:
            model, simplifier = _simplify(model)
        _name_nodes(model)
        onnx.checker.check_model(model)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(dst))
    return PassReport(
        "onnx-prepare",
        src,
        dst,
        elapsed(),
        {
            "opset": opset,
            "input_shapes": fixed,
            "nodes_before": nodes_before,
            "nodes_after": len(model.graph.node),
            "simplifier": simplifier,
        },
    )


def _name_nodes(model: Any) -> None:
    """Give every node a unique name: quantization excludes layers by name."""
    seen: set[str] = set()
    for index, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{index}"
        seen.add(node.name)


def _simplify(model: Any) -> tuple[Any, str]:
    try:
        import onnxslim
    except ImportError:
        return model, "none (onnxslim not installed)"
    try:
        return onnxslim.slim(model), f"onnxslim {getattr(onnxslim, '__version__', '')}".strip()
    except Exception as exc:  # noqa: BLE001  onnxslim failing on an exotic graph is not fatal: keep the checked model
        return model, f"none (onnxslim failed: {type(exc).__name__}: {exc})"
