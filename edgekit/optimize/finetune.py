"""The fine-tuning hook: a few epochs of the user's own training on a pruned model.

Post-training pruning recovers what least squares can (:mod:`converters.onnx_prune`); a
user who has training data and a loss can give the rest back. :class:`FineTune` carries them;
:func:`finetune_onnx` rebuilds the pruned ONNX model as a PyTorch module (the ``onnx ->
torch`` edge, so ONNX and PyTorch inputs are treated alike), trains its float weights with
Adam, and writes them back into the ONNX file, which then goes on to quantization and
validation like any candidate.

The models EdgeKit handles are static at batch 1, so each batch from the loader is run one
sample at a time with the gradients summed: the loader's batch size is the optimizer's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from converters.base import PassReport, timed
from edgekit.errors import UsageError


@dataclass(frozen=True)
class FineTune:
    """The user's data and loss, to fine-tune a pruned model (Python API: ``optimize(..., finetune=FineTune(...))``).

    ``loader`` yields ``(inputs, targets)`` batches, inputs as the model takes them (``[B, C, H,
    W]`` float, preprocessed like ``--calib``; numpy arrays or tensors); it is iterated once per
    epoch, so a ``torch.utils.data.DataLoader`` or a list both work. ``loss(outputs, targets)``
    returns a scalar tensor; ``outputs`` is what the model returns for one sample (a tensor, or a
    tuple for several outputs) and ``targets`` that sample's slice of the batch's targets.
    """

    loader: Iterable[tuple[Any, Any]]
    loss: Callable[[Any, Any], Any]
    epochs: int = 3
    lr: float = 1e-4

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise UsageError(f"FineTune epochs {self.epochs} must be at least 1")
        if not self.lr > 0:
            raise UsageError(f"FineTune lr {self.lr} must be positive")


def finetune_onnx(src: Path, dst: Path, spec: FineTune, *,
                  progress: Callable[[int, int], None] | None = None) -> PassReport:
    """Train ``src``'s float weights with ``spec`` and write the model to ``dst``; the report has the loss per epoch."""
    import onnx
    import torch

    from converters.onnx_torch import onnx_to_torch, write_parameters

    with timed() as elapsed:
        model = onnx.load(str(src))
        module = onnx_to_torch(model)
        params = [p for p in module.parameters() if p.dtype.is_floating_point]
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.Adam(params, lr=spec.lr)
        module.train()
        losses: list[float] = []
        for epoch in range(spec.epochs):
            total, count = 0.0, 0
            for batch, (inputs, targets) in enumerate(spec.loader):
                x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
                optimizer.zero_grad()
                for i in range(len(x)):
                    loss = spec.loss(module(x[i : i + 1]), _row(targets, i))
                    if not torch.is_tensor(loss) or loss.ndim != 0:
                        raise UsageError("FineTune loss must return a scalar tensor; "
                                         f"it returned {type(loss).__name__} {getattr(loss, 'shape', '')}")
                    (loss / len(x)).backward()
                    total, count = total + float(loss.detach()), count + 1
                optimizer.step()
                if batch == 0 and epoch == 0 and not math.isfinite(total):
                    raise UsageError(f"FineTune loss is {total} on the first batch; check the loss and the targets")
            if count == 0:
                raise UsageError("FineTune loader yielded no batch; it must yield (inputs, targets) pairs every epoch")
            losses.append(total / count)
            if progress:
                progress(epoch + 1, spec.epochs)
        written = write_parameters(module.eval(), model)
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(dst))
    return PassReport("finetune", src, dst, elapsed(), {
        "epochs": spec.epochs, "lr": spec.lr, "samples_per_epoch": count,
        "loss_per_epoch": [round(v, 5) for v in losses], "tensors_trained": written,
    })


def _row(targets: Any, i: int) -> Any:
    """Sample ``i`` of a batch of targets (a tensor, an array, or a tuple of them), kept as a batch of one."""
    import torch

    if isinstance(targets, (tuple, list)):
        return type(targets)(_row(t, i) for t in targets)
    return torch.as_tensor(np.asarray(targets) if not torch.is_tensor(targets) else targets)[i : i + 1]
