"""ONNX file -> PyTorch module, the edge ``onnx -> torch``.

Why it exists: there is no working ONNX -> TFLite route on our hosts (onnx2tf needs an old
TensorFlow, onnx2torch needs torchvision), while torch -> TFLite works through
``torch.export`` and litert-torch. So a static-shape ONNX model, as ``onnx-prepare`` writes
it, is rebuilt here as an ``nn.Module`` of plain torch ops that computes the same function.

All shapes are static, so everything computed from shapes and constants (Shape, Gather,
Concat, ... on constants) is folded while the module is built; ``forward`` holds only the
real computation. Weights become parameters that ``F.conv2d``/``F.linear`` take directly.
The pass exports the module with ``torch.export`` and checks it against ONNX Runtime, so a
wrong conversion fails here and not on a device. The ops live in
:mod:`converters.onnx_torch_ops`; torch is imported only when a conversion runs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from converters.base import PassReport, register_pass, timed
from converters.deps import import_onnx, import_torch
from converters.errors import (
    ConversionError,
    UnsupportedModelError,
)
from converters.onnx_prepare import graph_inputs, load_onnx

if TYPE_CHECKING:
    import onnx

    from converters.onnx_torch_ops import OnnxModule

#: Largest ``max|ort - torch| / max(1, max|ort|)`` accepted as the same model.
RELATIVE_TOLERANCE = 1e-4
#: Opsets whose op semantics the registry follows (written for 13-20; 11, 12, 21 and 22 read the same).
MIN_OPSET, MAX_OPSET = 11, 22

#: Attribute names a constant must not take: the module's own, and nn.Module's.
_RESERVED = frozenset({"training", "input_names", "output_names", "steps"})


def _import_torch() -> Any:
    return import_torch("converting ONNX to PyTorch")


def _import_onnx() -> tuple[Any, Any]:
    return import_onnx("converting ONNX to PyTorch")


def _opset(model: Any) -> int:
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedModelError(f"onnx->torch takes ONNX opsets {MIN_OPSET}-{MAX_OPSET}; the model uses {opset}")
    return opset


def _check_ops(model: Any, supported: Mapping[str, Any]) -> None:
    """Every unsupported op type at once, each with the first node that uses it."""
    missing: dict[str, tuple[str, int]] = {}
    for index, node in enumerate(model.graph.node):
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if key not in supported:
            name, count = missing.get(key, (node.name or f"{node.op_type}_{index}", 0))
            missing[key] = (name, count + 1)
    if missing:
        found = ", ".join(f"{key} (node {name!r}{f' and {n - 1} more' if n > 1 else ''})"
                          for key, (name, n) in sorted(missing.items()))
        raise ConversionError(
            f"onnx->torch: unsupported ONNX ops: {found}; supported ops: {', '.join(sorted(supported))}"
        )


def _static_inputs(model: Any) -> list[tuple[str, list[int], int]]:
    """``(name, shape, ONNX element type)`` of every real input; a dynamic dimension is an error."""
    found = []
    for vi in graph_inputs(model):
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
        if any(d < 0 for d in dims):
            raise UnsupportedModelError(
                f"onnx->torch needs static shapes; input {vi.name!r} has dynamic dimensions "
                "(run the onnx-prepare pass with input_shapes first)"
            )
        found.append((vi.name, dims, vi.type.tensor_type.elem_type))
    return found


def _attributes(onnx: Any, proto: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    for attr in proto.attribute:
        value = onnx.helper.get_attribute_value(attr)
        if attr.type == onnx.AttributeProto.TENSOR:
            value = onnx.numpy_helper.to_array(value)
        elif isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode() for v in value]
        attrs[attr.name] = value
    return attrs


def _attribute_name(source: str, taken: set[str]) -> str:
    """A module attribute name for an ONNX value: identifier characters only, and not in ``taken``."""
    base = re.sub(r"[^0-9A-Za-z_]", "_", source).strip("_") or "const"
    base = f"c_{base}" if base[0].isdigit() else base
    name, k = base, 1
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    return name


def onnx_to_torch(model: onnx.ModelProto | Path | str) -> OnnxModule:
    """Rebuild a static-shape ONNX model as a torch module that computes the same function.

    ``model`` is a loaded ``ModelProto`` or the path of an ``.onnx`` file. The module's
    ``forward`` takes the graph inputs positionally, in ONNX order, and returns the outputs
    as a tuple (one output: the tensor); it is ready for ``torch.export.export``. Raises
    :class:`ConversionError` listing every unsupported op type (checked before anything is
    built), and :class:`UnsupportedModelError` for dynamic shapes or an opset outside
    ``MIN_OPSET``-``MAX_OPSET``.
    """
    torch = _import_torch()
    onnx, _ = _import_onnx()
    from converters import onnx_torch_ops as ops

    if not isinstance(model, onnx.ModelProto):  # ``onnx`` is imported lazily, so mypy cannot narrow here
        model = load_onnx(Path(cast("Path | str", model)))
    opset = _opset(model)
    _check_ops(model, ops.OPS)
    inputs = _static_inputs(model)
    with torch.no_grad():
        return _build(torch, onnx, ops, model, opset, inputs)


def weight_attributes(model: onnx.ModelProto | Path | str) -> dict[str, str]:
    """ONNX node name -> the module attribute holding its weight (input 1), for every node that has
    one, in the module (and ``torch.export`` program) :func:`onnx_to_torch` builds from ``model``.
    This is how a layer chosen on the ONNX graph is found again in the program."""
    module = onnx_to_torch(model)
    return {step.node.name: ref.key for step in module.steps
            if len(step.refs) > 1 and (ref := step.refs[1]) is not None and ref.on_module}


def write_parameters(module: OnnxModule, model: onnx.ModelProto) -> int:
    """Copy the (trained) weights and biases of ``module``, built from ``model`` by :func:`onnx_to_torch`,
    back into ``model``'s initializers, undoing what the build did to them (a Gemm's transposition and
    alpha/beta, a MatMul's transposition). Returns how many initializers were written."""
    onnx, _ = _import_onnx()
    numpy_helper = onnx.numpy_helper
    inits = {i.name: i for i in model.graph.initializer}
    params = dict(module.named_parameters())
    written = 0
    for step in module.steps:
        node = step.node
        for i, ref in enumerate(step.refs):
            name = node.inputs[i] if i < len(node.inputs) else ""
            if ref is None or not ref.on_module or name not in inits or ref.key not in params:
                continue
            value = params[ref.key].detach().cpu().numpy()
            old = numpy_helper.to_array(inits[name])
            if node.op_type == "Gemm" and i == 1 and 1 in node.prepared:
                value = value / np.asarray(node.attr("alpha", 1.0), value.dtype)
                value = value if node.attr("transB", 0) else value.T
            elif node.op_type == "Gemm" and i == 2 and 2 in node.prepared:
                if old.shape != (value.shape[0],):
                    continue  # a broadcast bias: written as a vector, it would change shape
                value = value / np.asarray(node.attr("beta", 1.0), value.dtype)
            elif node.op_type == "MatMul" and i == 1 and 1 in node.prepared:
                value = value.T
            if value.shape != old.shape:
                raise ConversionError(f"write_parameters: {node.name!r} input {i} ({name!r}) is {list(old.shape)} in "
                                      f"the ONNX model and {list(value.shape)} in the module")
            inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value.astype(old.dtype)), name))
            written += 1
    return written


class _Builder:
    """The state of one walk over the graph: folded constants, example tensors, the module's own tensors."""

    def __init__(self, torch: Any, onnx: Any, ops: Any, model: Any, opset: int,
                 inputs: list[tuple[str, list[int], int]]) -> None:
        self.torch, self.onnx, self.ops, self.opset = torch, onnx, ops, opset
        self.consts: dict[str, np.ndarray] = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
        self.examples = {name: torch.zeros(shape, dtype=ops.DTYPES.get(kind, torch.float32))
                         for name, shape, kind in inputs}
        self.tensors: dict[str, tuple[Any, bool]] = {}  # module attribute -> (tensor, is a parameter)
        self.owners: dict[Any, str] = {}  # ONNX value name, or (node, input) for a prepared one -> attribute
        self.taken = set(_RESERVED) | set(dir(torch.nn.Module))

    def on_module(self, source: Any, array: np.ndarray, parameter: bool) -> Any:
        """A reference to ``array`` as a tensor the module owns (a parameter if ``parameter`` and float)."""
        parameter = parameter and array.dtype.kind == "f"
        if source not in self.owners:
            key = _attribute_name(source if isinstance(source, str) else f"{source[0]}_in{source[1]}", self.taken)
            self.taken.add(key)
            self.owners[source] = key
            self.tensors[key] = (self.torch.from_numpy(np.array(array)), parameter)
        elif parameter:  # first seen as a plain constant, now as a weight: a weight it is
            self.tensors[self.owners[source]] = (self.tensors[self.owners[source]][0], True)
        return self.ops.Ref(self.owners[source], True)

    def node(self, proto: Any, index: int) -> Any:
        """The op's view of one ONNX node: its attributes, constant inputs and input shapes."""
        examples, consts = self.examples, self.consts
        unknown = [n for n in proto.input if n and n not in examples and n not in consts]
        if unknown:
            raise ConversionError(f"onnx->torch: node {proto.name!r} reads {unknown}, which no earlier node "
                                  "computes (the graph must be topologically sorted)")
        return self.ops.Node(
            name=proto.name or f"{proto.op_type}_{index}", op_type=proto.op_type, inputs=tuple(proto.input),
            outputs=tuple(proto.output), attrs=_attributes(self.onnx, proto), opset=self.opset,
            consts=tuple(consts.get(n) for n in proto.input),
            shapes=tuple((tuple(examples[n].shape) if n in examples else consts[n].shape) if n else None
                         for n in proto.input),
        )

    def arguments(self, node: Any, plan: dict[int, Any], at_run_time: bool) -> tuple[list[Any], list[Any]]:
        """Each input's reference in the module (None for a folded one) and its value now."""
        refs, args = [], []
        for i, name in enumerate(node.inputs):
            ref = arg = None
            if name in self.examples:
                ref, arg = self.ops.Ref(name, False), self.examples[name]
            elif name and not (i in plan and plan[i] is None):
                array = plan.get(i, self.consts[name])
                same = array is self.consts[name]
                if at_run_time:
                    # a weight or bias is owned by its node: ONNX exporters merge equal initializers
                    # (three heads with the same bias), and a quantizer gives each layer's bias its
                    # own scale, so a shared one would keep all but the first layer in float
                    own = not same or i in plan
                    ref = self.on_module((node.name, i) if own else name, array, parameter=i in plan)
                    arg = self.tensors[ref.key][0]
                else:
                    arg = self.torch.from_numpy(np.array(array))
            refs.append(ref)
            args.append(arg)
        return refs, args

    def step(self, proto: Any, index: int) -> Any | None:
        """Run one node on the examples; its step in the module, or None when it was folded to constants."""
        ops = self.ops
        node = self.node(proto, index)
        plan = {i: a for i, a in ops.PREPARE[node.op_type](node).items() if node.const(i) is not None}
        node = dataclasses.replace(node, prepared=frozenset(i for i, a in plan.items() if a is not None))
        at_run_time = node.op_type not in ops.ALWAYS_CONSTANT and any(n in self.examples for n in node.inputs)
        refs, args = self.arguments(node, plan, at_run_time)
        try:
            result = ops.OPS[node.op_type](node, *args)
        except ConversionError:
            raise
        except Exception as exc:  # torch's own complaint about this node's attributes or shapes
            raise node.fail(f"could not be built: {type(exc).__name__}: {exc}") from exc
        outputs = (result,) if isinstance(result, self.torch.Tensor) else tuple(result)
        for k, name in enumerate(node.outputs):
            if name and k >= len(outputs):
                raise node.fail(f"output {k} ({name!r}) is not supported")
            if name and at_run_time:
                self.examples[name] = outputs[k]
            elif name:
                self.consts[name] = outputs[k].numpy()
        return ops.Step(ops.OPS[node.op_type], node, tuple(refs)) if at_run_time else None

    def output_ref(self, name: str) -> Any:
        if name in self.examples:
            return self.ops.Ref(name, False)
        if name in self.consts:
            return self.on_module(name, self.consts[name], parameter=False)
        raise ConversionError(f"onnx->torch: graph output {name!r} is computed by no node")


def _build(torch: Any, onnx: Any, ops: Any, model: Any, opset: int,
           inputs: list[tuple[str, list[int], int]]) -> OnnxModule:
    """Walk the graph once: fold constant nodes, turn the others into steps of the module."""
    builder = _Builder(torch, onnx, ops, model, opset, inputs)
    steps = [step for index, proto in enumerate(model.graph.node) if (step := builder.step(proto, index)) is not None]
    output_refs = [builder.output_ref(out.name) for out in model.graph.output]
    return ops.OnnxModule(input_names=[name for name, _, _ in inputs],
                          output_names=[o.name for o in model.graph.output],
                          steps=steps, output_refs=output_refs, tensors=builder.tensors)


def random_inputs(model: Any, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded inputs for every graph input: normal floats, zero integers (indices stay in range)."""
    onnx, _ = _import_onnx()
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, shape, kind in _static_inputs(model):
        dtype = onnx.helper.tensor_dtype_to_np_dtype(kind)
        feeds[name] = rng.standard_normal(shape).astype(dtype) if dtype.kind == "f" else np.zeros(shape, dtype)
    return feeds


def _compare(names: Sequence[str], expected: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> tuple[float, float]:
    """The largest absolute and relative difference from ONNX Runtime's outputs; :class:`ConversionError`
    naming the output whose shape differs or whose relative difference passes ``RELATIVE_TOLERANCE``."""
    max_abs, max_rel = 0.0, 0.0
    for name, ref, actual in zip(names, expected, got):
        if actual.shape != ref.shape:
            raise ConversionError(
                f"onnx->torch: output {name!r} has shape {actual.shape}, ONNX Runtime gives {ref.shape}"
            )
        diff = float(np.max(np.abs(ref.astype(np.float64) - actual))) if ref.size else 0.0
        rel = diff / max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
        if rel > RELATIVE_TOLERANCE:
            raise ConversionError(
                f"onnx->torch: output {name!r} differs from ONNX Runtime by {diff:.3g} "
                f"(relative {rel:.3g} > {RELATIVE_TOLERANCE})"
            )
        max_abs, max_rel = max(max_abs, diff), max(max_rel, rel)
    return max_abs, max_rel


@register_pass("onnx->torch")
def convert_onnx_to_torch(src: Path, dst: Path, /, *, seed: int = 0) -> PassReport:
    """Rebuild ``src`` as a torch module, ``torch.export`` it, and save the program to ``dst`` (``.pt2``).

    The exported program is checked against ONNX Runtime on inputs drawn with ``seed``.
    Details: ``opset``, ``nodes``, ``run_time_nodes`` (the rest were folded), ``parameters``
    (tensors) and ``param_count`` (elements), ``max_abs_diff`` and ``max_rel_diff``. Raises
    :class:`ConversionError` naming the output when the two disagree by more than
    ``RELATIVE_TOLERANCE``, and when ``torch.export`` fails.
    """
    torch = _import_torch()
    _, ort = _import_onnx()
    src, dst = Path(src), Path(dst)
    with timed() as elapsed:
        model = load_onnx(src)
        module = onnx_to_torch(model)
        feeds = random_inputs(model, seed=seed)
        example = tuple(torch.from_numpy(a) for a in feeds.values())
        try:
            exported = torch.export.export(module, example)
        except Exception as exc:  # export's errors are many and internal; the cause stays chained
            raise ConversionError(
                f"onnx->torch: torch.export failed on the rebuilt module: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            expected = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, feeds)
        except Exception as exc:
            raise ConversionError(f"onnx->torch: ONNX Runtime cannot run {src}: {exc}") from exc
        with torch.no_grad():
            got = exported.module()(*example)
        got = (got,) if isinstance(got, torch.Tensor) else tuple(got)
        max_abs, max_rel = _compare(module.output_names, expected, [value.numpy() for value in got])
        dst.parent.mkdir(parents=True, exist_ok=True)
        torch.export.save(exported, str(dst))
        seconds = elapsed()
    return PassReport(
        name="onnx->torch",
        src=src,
        dst=dst,
        seconds=seconds,
        details={
            "opset": _opset(model),
            "nodes": len(model.graph.node),
            "run_time_nodes": len(module.steps),
            "parameters": sum(1 for _ in module.parameters()),
            "param_count": int(sum(p.numel() for p in module.parameters())),
            "max_abs_diff": max_abs,
            "max_rel_diff": max_rel,
        },
    )
