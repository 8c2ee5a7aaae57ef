"""The ONNX graph as an ``nn.Module``: the steps it runs and where each finds its inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from converters.onnx_torch_ops.registry import Node, OpFn


class Ref(NamedTuple):
    """Where a step finds an input at run time: the value table, or an attribute of the module."""

    key: str
    on_module: bool


@dataclass(frozen=True)
class Step:
    """One run-time node: the op function, its node, and where each input comes from."""

    fn: OpFn
    node: Node
    refs: tuple[Ref | None, ...]


class OnnxModule(nn.Module):
    """An ONNX graph as a torch module: ``forward`` runs the steps, in order, with plain torch ops.

    Build it with :func:`converters.onnx_torch.onnx_to_torch`. Constants live on the module
    (parameters for weights, buffers for the rest); ``forward`` takes the graph inputs
    positionally, in ONNX order, and returns the outputs as a tuple (one output: the tensor).
    """

    def __init__(self, *, input_names: Sequence[str], output_names: Sequence[str], steps: Sequence[Step],
                 output_refs: Sequence[Ref], tensors: Mapping[str, tuple[Tensor, bool]]) -> None:
        super().__init__()
        for key, (tensor, is_parameter) in tensors.items():
            if is_parameter:
                self.register_parameter(key, nn.Parameter(tensor, requires_grad=False))
            else:
                self.register_buffer(key, tensor)
        self.input_names, self.output_names = tuple(input_names), tuple(output_names)
        self.steps, self._output_refs = tuple(steps), tuple(output_refs)

    def _fetch(self, values: dict[str, Tensor], ref: Ref | None) -> Tensor | None:
        if ref is None:
            return None
        return getattr(self, ref.key) if ref.on_module else values[ref.key]

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} inputs {list(self.input_names)}, got {len(inputs)}")
        values = dict(zip(self.input_names, inputs))
        for step in self.steps:
            outputs = step.fn(step.node, *(self._fetch(values, r) for r in step.refs))
            outputs = (outputs,) if isinstance(outputs, Tensor) else outputs
            values.update((name, value) for name, value in zip(step.node.outputs, outputs) if name)
        results = tuple(self._fetch(values, r) for r in self._output_refs)
        return results[0] if len(results) == 1 else results  # type: ignore[return-value]
